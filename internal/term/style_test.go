package term

import (
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestStyleFor(t *testing.T) {
	for _, c := range []struct {
		env         map[string]string
		tty         bool
		utf8, color bool
	}{
		{nil, true, true, true}, // no locale: UTF-8, as systemd assumes
		{map[string]string{"LANG": "en_US.UTF-8"}, true, true, true},
		{map[string]string{"LANG": "C.utf8"}, false, true, false},
		{map[string]string{"LANG": "C"}, true, false, true},
		{map[string]string{"LANG": "POSIX"}, true, false, true},
		{map[string]string{"LANG": "en_US.UTF-8", "LC_ALL": "C"}, true, false, true},
		{map[string]string{"LANG": "C", "LC_CTYPE": "de_DE.UTF-8"}, true, true, true},
		{map[string]string{"LANG": "de_DE.ISO-8859-1"}, true, false, true},
		{map[string]string{"LANG": "sr_RS.UTF-8@latin"}, true, true, true},
		{map[string]string{"NO_COLOR": "1"}, true, true, false},
		{map[string]string{"NO_COLOR": ""}, true, true, true},
		{map[string]string{"TERM": "dumb"}, true, true, false},
	} {
		got := StyleFor(env(c.env), c.tty)
		if got.UTF8 != c.utf8 || got.Color != c.color {
			t.Errorf("StyleFor(%v, tty %v) = %+v, want UTF8 %v Color %v", c.env, c.tty, got, c.utf8, c.color)
		}
	}
}

func TestGlyphs(t *testing.T) {
	ascii, utf8 := Style{}, Style{UTF8: true}
	for state, want := range map[string][2]string{
		"active": {"*", "●"}, "inactive": {"*", "○"}, "failed": {"x", "×"}, "reloading": {"*", "↻"}, "activating": {"*", "●"},
	} {
		if got := ascii.Dot(state); got != want[0] {
			t.Errorf("ASCII Dot(%s) = %q, want %q", state, got, want[0])
		}
		if got := utf8.Dot(state); got != want[1] {
			t.Errorf("UTF-8 Dot(%s) = %q, want %q", state, got, want[1])
		}
	}
	if ascii.Arrow() != "->" || utf8.Arrow() != "→" {
		t.Errorf("arrows: %q %q", ascii.Arrow(), utf8.Arrow())
	}
	if got := (Style{Color: true}).Dot("failed"); got != red+"x"+reset {
		t.Errorf("coloured failed dot = %q", got)
	}
	for _, s := range []string{ascii.Dot("failed"), ascii.Red("x"), utf8.Green("ok")} {
		if strings.Contains(s, "\x1b") {
			t.Errorf("colour without Color: %q", s)
		}
	}
}

func TestTimestamp(t *testing.T) {
	tm := time.Unix(1700000000, 0)
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	if got := Timestamp(tm, berlin); got != "Tue 2023-11-14 23:13:20 CET" {
		t.Errorf("Timestamp = %q", got)
	}
	if got := TimestampAgo(tm, tm.Add(3*time.Minute+10*time.Second), time.UTC); got != "Tue 2023-11-14 22:13:20 UTC; 3min 10s ago" {
		t.Errorf("TimestampAgo = %q", got)
	}
}

// TestAgoIsSystemds compares Ago with systemd's own wording of the same
// offsets (systemd-analyze timestamp, "From now:").
func TestAgoIsSystemds(t *testing.T) {
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Fatalf("systemd-analyze is needed to compare with systemd's wording (Debian's systemd package): %v", err)
	}
	offsets := []time.Duration{
		-90 * time.Minute, 1500 * time.Millisecond, 42*time.Second + 500*time.Millisecond, 125 * time.Second, 4*time.Minute + 30*time.Second,
		17 * time.Minute, 65 * time.Minute, 5*time.Hour + 59*time.Minute, 7 * time.Hour, 24*time.Hour + 30*time.Minute,
		27 * time.Hour, 3*day + time.Hour, 8 * day, 15*day + 2*time.Hour, 40 * day, 200 * day, 400 * day, 900 * day,
	}
	for _, d := range offsets {
		before := time.Now()
		at := before.Add(-d).Truncate(time.Second)
		out, err := exec.Command("systemd-analyze", "timestamp", "@"+strconv.FormatInt(at.Unix(), 10)).Output()
		after := time.Now()
		if err != nil {
			t.Fatalf("systemd-analyze timestamp: %v", err)
		}
		var want string
		for _, l := range strings.Split(string(out), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "From now" {
				want = strings.TrimSpace(v)
			}
		}
		if got1, got2 := Ago(at, before), Ago(at, after); got1 != want && got2 != want {
			t.Errorf("offset %v: Ago = %q (or %q), systemd says %q", d, got1, got2, want)
		}
	}
}

func TestAgoSmall(t *testing.T) {
	now := time.Unix(1700000000, 0)
	for d, want := range map[time.Duration]string{0: "now", 250 * time.Millisecond: "250ms ago", 40 * time.Microsecond: "40us ago", -2 * time.Second: "2s left"} {
		if got := Ago(now.Add(-d), now); got != want {
			t.Errorf("Ago(%v) = %q, want %q", d, got, want)
		}
	}
}
