package cli

import (
	"bytes"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/sitectl/sitectl/internal/modes"
	"github.com/sitectl/sitectl/internal/status"
	"github.com/sitectl/sitectl/internal/term"
)

func printed(t *testing.T, style term.Style, s status.Site) string {
	t.Helper()
	old := time.Local
	time.Local = time.UTC
	t.Cleanup(func() { time.Local = old })
	var out bytes.Buffer
	now := time.Date(2026, 11, 21, 6, 13, 2, 0, time.UTC)
	e := &env{stdout: &out, style: style, now: func() time.Time { return now }}
	e.printStatus(s)
	return out.String()
}

func at(s string) *time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return &t
}

// TestStatusTellsDownFromIdle: the printed status of a site whose socket
// is stopped, of an idle one and of a crash loop differ where it matters.
func TestStatusTellsDownFromIdle(t *testing.T) {
	base := status.Site{Site: "karl", File: "/etc/sitectl/sites/karl.toml", SiteFile: status.FileState{State: "ok"}, Mode: "normal",
		Unit: "site-karl.service", LoadState: "loaded", Listen: []string{"127.0.0.1:8001"}}
	idle := base
	idle.State, idle.Running, idle.Socket, idle.ActiveState, idle.SubState = "idle", true, "listening", "inactive", "dead"
	idle.Sockets = []status.Socket{{Unit: "site-karl.socket", State: "listening"}}
	down := idle
	down.State, down.Running, down.Socket = "stopped", false, "stopped"
	down.Sockets = []status.Socket{{Unit: "site-karl.socket", State: "stopped"}}
	// A valid file put in place since the last daemon-reload:
	// `systemctl start` alone would say "Unit not found".
	unloaded := down
	unloaded.LoadState = "not-found"
	masked := idle
	masked.State, masked.Running, masked.LoadState = "stopped", false, "masked"
	masked.StartProblems = []string{"it is masked, and systemd starts no masked unit (`systemctl unmask site-karl.service`)"}
	loop := idle
	loop.State, loop.Running, loop.ActiveState, loop.SubState, loop.NRestarts = "restarting", false, "activating", "auto-restart", 7
	loop.LastFailure = &status.Failure{Result: "exit-code", Time: at("2026-11-21T06:12:58Z"), ExitCode: "exited", ExitStatus: "3"}

	for _, c := range []struct {
		s    status.Site
		want []string
	}{
		{idle, []string{"○ karl (/etc/sitectl/sites/karl.toml)", "      state: idle", "     socket: listening (site-karl.socket)",
			"    service: inactive (dead); idle: the first request starts it"}},
		{down, []string{"      state: stopped", "     socket: stopped: visitors are refused; start it with systemctl start site-karl.socket (site-karl.socket)"}},
		{unloaded, []string{"      state: stopped", "     socket: stopped: visitors are refused; systemd has no units for the site yet: run systemctl daemon-reload (the generator writes them), then systemctl start site-karl.socket (site-karl.socket)"}},
		{masked, []string{"      state: stopped", "     socket: listening (site-karl.socket)",
			"    service: masked, inactive (dead); the first request fails its sockets: systemd starts no masked unit (`systemctl unmask site-karl.service` lets it start)",
			"      start: would fail: it is masked"}},
		{loop, []string{"      state: restarting", "    service: activating (auto-restart)",
			"   restarts: 7 after failures since the last deliberate start; last failure: exit-code (exited, status 3) at Sat 2026-11-21 06:12:58 UTC; 4s ago"}},
	} {
		got := printed(t, term.Style{UTF8: true}, c.s)
		for _, w := range c.want {
			if !strings.Contains(got, w+"\n") && !strings.Contains(got, w) {
				t.Errorf("status of a %s site lacks %q:\n%s", c.s.State, w, got)
			}
		}
	}
}

// TestStatusOutputStyles: ASCII where the locale is not UTF-8, colour only
// when asked for, escaped app text, times with zone and "ago".
func TestStatusOutputStyles(t *testing.T) {
	s := status.Site{Site: "karl", File: "/etc/sitectl/sites/karl.toml", SiteFile: status.FileState{State: "ok"}, Mode: "maintenance",
		Unit: "site-karl.service", LoadState: "loaded", ActiveState: "active", SubState: "running", MainPID: 4250, Since: at("2026-11-21T06:10:02Z"),
		State: "running", Running: true, Socket: "listening", Sockets: []status.Socket{{Unit: "site-karl.socket", State: "listening"}},
		StatusText: "mode \x1b[2Jnormal", Listen: []string{"127.0.0.1:8001"}, ModeApplied: true,
		Pending: &statusPending}
	ascii := printed(t, term.Style{}, s)
	for _, w := range []string{"* karl (", "normal -> maintenance", "since Sat 2026-11-21 06:10:02 UTC; 3min 0s ago; main PID 4250", `mode \x1b[2Jnormal`} {
		if !strings.Contains(ascii, w) {
			t.Errorf("ASCII status lacks %q:\n%s", w, ascii)
		}
	}
	for _, r := range ascii {
		if r > 0x7e || r < 0x20 && r != '\n' {
			t.Errorf("ASCII status has %q:\n%s", r, ascii)
			break
		}
	}
	utf8 := printed(t, term.Style{UTF8: true}, s)
	if !strings.Contains(utf8, "● karl") || !strings.Contains(utf8, "normal → maintenance") || strings.Contains(utf8, "\x1b") {
		t.Errorf("UTF-8 status without colour:\n%s", utf8)
	}
	if color := printed(t, term.Style{UTF8: true, Color: true}, s); !strings.Contains(color, "\x1b[0;1;32m●\x1b[0m \x1b[0;1;39mkarl") {
		t.Errorf("coloured status:\n%q", color)
	}
}

var statusPending = pendingAt()

func pendingAt() (p modesPending) {
	p.Since, p.Kind, p.From, p.To = *at("2026-11-21T06:12:00Z"), "mode", "normal", "maintenance"
	return p
}

type modesPending = modes.Pending

// TestSitesJSONIsOneDocument: list --json and status --json marshal each
// site on its own; what they print is what marshalling the whole slice
// prints, byte for byte, for no site, one and several, with text that
// term.JSON escapes, in batches that end anywhere.
func TestSitesJSONIsOneDocument(t *testing.T) {
	one := status.Site{Site: "karl", File: "/etc/sitectl/sites/karl.toml", SiteFile: status.FileState{State: "ok", Errors: []status.FileError{}},
		Listen: []string{"127.0.0.1:8001"}, Sockets: []status.Socket{{Unit: "site-karl.socket", State: "listening"}}, Since: at("2026-11-21T06:12:58Z")}
	two := one
	two.Site, two.StatusText, two.Pending = "anna", "serving \u200e<b>&\u0085", &modes.Pending{Kind: "mode", From: "a", To: "b"}
	var many []status.Site // more than a batch of every CPU, each site unlike the others
	for i := range 2*runtime.GOMAXPROCS(0)*3 + 5 {
		s := one
		if i%2 == 1 {
			s = two
		}
		s.Site, s.MainPID = fmt.Sprintf("s-%03d", i), i
		many = append(many, s)
	}
	defer func(b int) { sitesJSONBatch = b }(sitesJSONBatch)
	for _, batch := range []int{1, 3, 256} {
		sitesJSONBatch = batch
		for _, ss := range [][]status.Site{nil, {}, {one}, {one, two, one}, many} {
			var want, got bytes.Buffer
			if err := writeJSON(&want, sitesJSON(ss)); err != nil {
				t.Fatal(err)
			}
			if err := writeSitesJSON(&got, ss); err != nil {
				t.Fatal(err)
			}
			if got.String() != want.String() {
				t.Errorf("%d sites, batches of %d:\ngot  %q\nwant %q", len(ss), batch, got.String(), want.String())
			}
		}
	}
}

// TestStatusNamesLocalChanges: a copy that shadows the generator's unit,
// made from an older site file, and drop-ins are named with the command
// that takes them out; drop-ins shared with other units are told apart.
func TestStatusNamesLocalChanges(t *testing.T) {
	s := status.Site{Site: "karl", File: "/etc/sitectl/sites/karl.toml", SiteFile: status.FileState{State: "ok"}, Mode: "normal",
		Unit: "site-karl.service", LoadState: "loaded", ActiveState: "active", SubState: "running", State: "running", Running: true,
		Socket: "listening", Sockets: []status.Socket{{Unit: "site-karl.socket", State: "listening"}},
		LocalChanges: []status.LocalChange{
			{Unit: "site-karl.service", Shadow: "/etc/systemd/system/site-karl.service", ShadowStale: true,
				DropIns: []string{"/etc/systemd/system/site-karl.service.d/override.conf"}, Shared: []string{"/etc/systemd/system/site-.service.d/x.conf"},
				Revert: "systemctl revert site-karl.service"},
			{Unit: "site-karl.socket", Shadow: "/etc/systemd/system/site-karl.socket", DropIns: []string{}, Shared: []string{}, Revert: "systemctl revert site-karl.socket"},
		}}
	got := printed(t, term.Style{UTF8: true}, s)
	for _, w := range []string{
		"      local: site-karl.service: loaded from /etc/systemd/system/site-karl.service, made from an older version of the site file: systemd runs the site as that version said",
		"; drop-in /etc/systemd/system/site-karl.service.d/override.conf: `systemctl revert site-karl.service` takes them out; drop-in /etc/systemd/system/site-.service.d/x.conf, which applies to other units as well (`systemctl revert` leaves it)\n",
		"      local: site-karl.socket: loaded from /etc/systemd/system/site-karl.socket, which shadows the unit sitectl generates: no daemon-reload brings the site file's changes into it: `systemctl revert site-karl.socket` takes it out\n",
	} {
		if !strings.Contains(got, w) {
			t.Errorf("status lacks %q:\n%s", w, got)
		}
	}
	s.LocalChanges = []status.LocalChange{}
	if got := printed(t, term.Style{UTF8: true}, s); strings.Contains(got, "local:") {
		t.Errorf("status without local changes:\n%s", got)
	}
}

// A mode status cannot tell says why, and never prints a blank.
func TestStatusSaysWhyTheModeIsUnknown(t *testing.T) {
	for state, want := range map[string]string{
		"ok":      "mode: unknown: sitectl cannot read the site's state (see the warning above)\n",
		"invalid": "mode: unknown: the site file has mistakes, and sitectl has no readable record of the site's mode\n",
		"gone":    "mode: unknown: the site file is gone, and sitectl has no readable record of the site's mode\n",
	} {
		s := status.Site{Site: "karl", File: "/etc/sitectl/sites/karl.toml", SiteFile: status.FileState{State: state}, Unit: "site-karl.service", LoadState: "loaded"}
		if got := printed(t, term.Style{}, s); !strings.Contains(got, want) {
			t.Errorf("site file %s, no mode:\n%s\nwant %q", state, got, want)
		}
	}
}
