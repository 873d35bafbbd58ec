package modes

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sitectl/sitectl/internal/site"
)

func raceSite(t *testing.T, extra string) *site.Site {
	t.Helper()
	return parseSite(t, "exec = [\"/bin/app\"]\n[[listen]]\naddress = \"127.0.0.1:1\"\n"+
		"[modes.read-only]\nenvironment = { READ_ONLY = \"1\" }\n"+extra)
}

func parseSite(t *testing.T, text string) *site.Site {
	t.Helper()
	s, err := site.Parse("/etc/sitectl/sites/karl.toml", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Issue 11.3, the interleaving that lost a switch: prepare (Refresh) reads
// the recorded mode, a switch records another mode, and prepare then
// writes the mode it read back over it. The hook puts the switch's write
// exactly there. Without the mode lock the switch's write completes inside
// the hook and prepare undoes it; with the lock the switch waits until
// prepare is done and its mode stays. No timing is involved: the hook
// returns when the switch's write has either finished or is known to wait.
func TestRefreshNeverWritesBackAStaleMode(t *testing.T) {
	st := Store{Dir: t.TempDir()}
	// The site file changed since normal was recorded: prepare has
	// something to write.
	before := raceSite(t, "")
	normal, _ := before.Mode("normal")
	if err := st.Write(before, normal); err != nil {
		t.Fatal(err)
	}
	s := raceSite(t, "[modes.normal]\nenvironment = { CHANGED = \"1\" }\n")
	readOnly, _ := s.Mode("read-only")

	switched := make(chan error, 1)
	waiting := make(chan struct{}, 1)
	testHookContended = func() { waiting <- struct{}{} }
	testHookRead = func() {
		testHookRead = nil
		go func() { switched <- st.Write(s, readOnly) }() // the switch
		select {
		case err := <-switched:
			switched <- err // written while prepare was between its read and its write
		case <-waiting: // the switch waits for the lock
		}
	}
	t.Cleanup(func() { testHookRead, testHookContended = nil, nil })

	if _, err := st.Refresh(s); err != nil {
		t.Fatal(err)
	}
	if err := <-switched; err != nil {
		t.Fatal(err)
	}
	if cur, _, _ := st.Current("karl"); cur != "read-only" {
		t.Fatalf("the switch recorded read-only while prepare ran; the mode file now says %q: prepare wrote back the mode it had read", cur)
	}
}

// Refresh records the default mode of a new site, rewrites a recorded
// mode's file from the site file, and keeps the file of a mode the site
// file no longer has.
func TestRefresh(t *testing.T) {
	st := Store{Dir: t.TempDir()}
	s := raceSite(t, "")
	for _, c := range []struct {
		site *site.Site
		want Refreshed
	}{
		{s, RefreshedDefault},
		{s, RefreshedNothing},
		{raceSite(t, "[modes.normal]\nenvironment = { CHANGED = \"1\" }\n"), RefreshedMode},
		{parseSite(t, "default_mode = \"read-only\"\nexec = [\"/bin/app\"]\n[[listen]]\naddress = \"127.0.0.1:1\"\n"+
			"[modes.read-only]\n[modes.normal]\nenvironment = { CHANGED = \"1\" }\n"), RefreshedNothing},
	} {
		if r, err := st.Refresh(c.site); r != c.want || err != nil {
			t.Fatalf("Refresh = %v, %v; want %v", r, err, c.want)
		}
	}
	env, _ := st.ReadEnv("karl")
	if !slices.Contains(env, site.EnvVar{Name: "CHANGED", Value: "1"}) {
		t.Errorf("mode file after a changed site file: %v", env)
	}
	readOnly, _ := s.Mode("read-only")
	if err := st.Write(s, readOnly); err != nil {
		t.Fatal(err)
	}
	gone := parseSite(t, "exec = [\"/bin/app\"]\n[[listen]]\naddress = \"127.0.0.1:1\"\n")
	if r, err := st.Refresh(gone); r != RefreshedKept || err != nil {
		t.Fatalf("Refresh of a mode the site file lost = %v, %v", r, err)
	}
	if data, _, _ := readBounded(st.EnvPath("karl"), MaxEnvFile); !strings.Contains(string(data), `READ_ONLY="1"`) {
		t.Errorf("the recorded environment was not kept:\n%s", data)
	}
}

// RecordedMode reads back every kind of mode as its file renders it, so
// that a mode the site file lost is known as the site ran it.
func TestRecordedMode(t *testing.T) {
	st := Store{Dir: t.TempDir()}
	s := parseSite(t, "exec = [\"/bin/app\"]\n[[listen]]\naddress = \"127.0.0.1:1\"\n"+
		"[modes.read-only]\nenvironment = { READ_ONLY = \"1\", A_FIRST = \"x=y\" }\n"+
		"[modes.closed]\nserve = \"maintenance\"\npage = \"/srv/p.html\"\nstatic_dir = \"/srv/static\"\nretry_after = \"5m\"\n")
	for _, m := range s.Modes {
		if err := st.Write(s, m); err != nil {
			t.Fatal(err)
		}
		got, err := st.RecordedMode("karl")
		if err != nil || !reflect.DeepEqual(got, m) {
			t.Errorf("RecordedMode after writing %+v = %+v, %v", m, got, err)
		}
	}
}

// Lock files that are named pipes neither hang a status (Busy) nor a
// change (the site's lock, the mode lock): they are opened without
// blocking, and flocked all the same.
func TestLockFilesThatArePipes(t *testing.T) {
	st := Store{Dir: t.TempDir()}
	s, err := site.ParseNamed("/etc/sitectl/sites/karl.toml", "karl", []byte("exec = [\"/bin/app\"]\n[[listen]]\naddress = \"127.0.0.1:8080\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := st.siteDir("karl"); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{st.paths().LockFile("karl"), st.paths().ModeLockFile("karl")} {
		if err := syscall.Mkfifo(p, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan error, 1)
	go func() {
		if st.Busy("karl") {
			done <- errors.New("busy with no switch running")
			return
		}
		l, err := st.LockSite(s, false)
		if err != nil {
			done <- err
			return
		}
		defer l.Unlock()
		m, _ := s.Mode(s.DefaultMode)
		done <- st.Write(s, m)
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("still waiting after 5s")
	}
}
