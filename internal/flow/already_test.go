package flow

import (
	"context"
	"strings"
	"testing"

	"github.com/sitectl/sitectl/internal/modes"
	"github.com/sitectl/sitectl/internal/site"
)

// recordMode writes the mode file of s in mode, as a switch does before
// its restart.
func recordMode(t *testing.T, e *Env, s *site.Site, mode string) {
	t.Helper()
	m, ok := s.Mode(mode)
	if !ok {
		t.Fatalf("no mode %s", mode)
	}
	if err := e.Store.Write(s, m); err != nil {
		t.Fatal(err)
	}
}

// A sitectl killed after it recorded the intent and the new mode file left
// the switch open: the same switch again restarts and verifies the site,
// whichever mode the old process serves (it was killed before the restart,
// or after it but before it finished), and closes the open one.
func TestAlreadyInModeNotWithAPendingSwitch(t *testing.T) {
	for _, serving := range []string{"normal", "read-only"} {
		t.Run("serving "+serving, func(t *testing.T) {
			e, f := newEnv(t)
			s := testSite(t)
			if err := e.Store.WriteState("karl", modes.State{Pending: &modes.Pending{Kind: modes.KindMode, From: "normal", To: "read-only", PID: 4242}}); err != nil {
				t.Fatal(err)
			}
			recordMode(t, e, s, serving)
			f.started(100) // the old process, started in mode serving
			recordMode(t, e, s, "read-only")

			rep, err := SwitchMode(context.Background(), e, s, "read-only", Options{})
			if err != nil {
				t.Fatal(err)
			}
			if strings.HasPrefix(rep.Reason, "already") || !rep.Changed || rep.Result != modes.ResultOK || rep.MainPID != 110 {
				t.Errorf("report %+v, want a restart (main PID 110)", rep)
			}
			if got := strings.Join(f.restarts, ","); got != "read-only" {
				t.Errorf("restarts in modes %q, want read-only", got)
			}
			st, _ := e.Store.ReadState("karl")
			if st.Pending != nil || len(st.History) != 2 || st.History[0].Result != modes.ResultInterrupted || st.History[1].Result != modes.ResultOK {
				t.Errorf("state %+v", st)
			}
		})
	}
}

// With no switch open, a mode file that records the mode is not enough:
// a serving process that started in another mode is switched again, a
// plain site by a restart, an overlap site by a handover to a new
// generation.
func TestAlreadyInModeNotWhenTheProcessServesAnother(t *testing.T) {
	for _, overlap := range []bool{false, true} {
		t.Run(map[bool]string{false: "restart", true: "overlap"}[overlap], func(t *testing.T) {
			e, f := newEnv(t)
			s := testSite(t)
			if overlap {
				s = overlapSite(t, "")
			}
			recordMode(t, e, s, "read-only") // the old process 100 serves normal

			rep, err := SwitchMode(context.Background(), e, s, "read-only", Options{})
			if err != nil {
				t.Fatal(err)
			}
			if strings.HasPrefix(rep.Reason, "already") || !rep.Changed || rep.Result != modes.ResultOK {
				t.Errorf("report %+v, want a switch", rep)
			}
			switched := f.restarts
			if overlap {
				switched = f.reloads
			}
			if got := strings.Join(switched, ","); got != "read-only" || len(f.restarts)+len(f.reloads) != 1 {
				t.Errorf("restarts %v, reloads %v, want one in read-only", f.restarts, f.reloads)
			}
			if !strings.Contains(strings.Join(f.env[f.gen], " "), "SITE_MODE=read-only") {
				t.Errorf("serving process %d has %v", f.gen, f.env[f.gen])
			}
			st, _ := e.Store.ReadState("karl")
			if st.Pending != nil || len(st.History) != 1 || st.History[0].Result != modes.ResultOK {
				t.Errorf("state %+v", st)
			}
		})
	}
}

// With no switch open and a serving process (an overlap site's serving
// generation) that started in the recorded mode, the switch is done at
// once, as before: nothing restarts and nothing is written.
func TestAlreadyInModeWhenTheProcessServesIt(t *testing.T) {
	for _, overlap := range []bool{false, true} {
		t.Run(map[bool]string{false: "restart", true: "overlap"}[overlap], func(t *testing.T) {
			e, f := newEnv(t)
			s := testSite(t)
			serving := 100
			if overlap {
				s = overlapSite(t, "")
				serving = 300 // the launcher's generation; the launcher is 100
				f.gen = serving
			}
			recordMode(t, e, s, "read-only")
			f.started(serving)

			rep, err := SwitchMode(context.Background(), e, s, "read-only", Options{})
			if err != nil {
				t.Fatal(err)
			}
			want := Report{Site: "karl", From: "read-only", To: "read-only", Result: modes.ResultOK, MainPID: 100, Reason: "already in mode read-only"}
			if rep.Site != want.Site || rep.From != want.From || rep.To != want.To || rep.Result != want.Result || rep.MainPID != want.MainPID || rep.Reason != want.Reason || rep.Changed {
				t.Errorf("report %+v, want %+v", rep, want)
			}
			if len(f.restarts)+len(f.reloads)+f.resets != 0 {
				t.Errorf("restarts %v, reloads %v, resets %d", f.restarts, f.reloads, f.resets)
			}
			if st, _ := e.Store.ReadState("karl"); st.Pending != nil || len(st.History) != 0 {
				t.Errorf("state %+v", st)
			}
		})
	}
}

// A maintenance mode whose settings the site file changed since its
// server started (another page, static directory or Retry-After) is not
// the mode the file has: the switch to it restarts the server, as a
// switch to an app mode whose variables changed does, instead of saying
// "already in mode" while visitors get the old page. So is a mode the
// file now serves with the app while the maintenance server runs it.
func TestAlreadyInModeNotWhenMaintenanceSettingsChanged(t *testing.T) {
	for name, edit := range map[string]string{
		"retry_after": "[modes.maintenance]\nserve = \"maintenance\"\nretry_after = \"10m\"\n",
		"page":        "[modes.maintenance]\nserve = \"maintenance\"\npage = \"/srv/karl/down.html\"\n",
		"static_dir":  "[modes.maintenance]\nserve = \"maintenance\"\nstatic_dir = \"/srv/karl/static\"\n",
		"serve":       "[modes.maintenance]\nenvironment = { DOWN = \"1\" }\n",
	} {
		t.Run(name, func(t *testing.T) {
			e, f := newEnv(t)
			s := testSite(t)
			recordMode(t, e, s, "maintenance")
			f.started(100) // the maintenance server, as the file had it
			if name == "serve" {
				f.env[100] = append(f.env[100], "DOWN=1")
			}
			edited, err := site.Parse("/etc/sitectl/sites/karl.toml", []byte("exec = [\"/bin/app\"]\nreadiness = \"notify\"\n[[listen]]\naddress = \"127.0.0.1:8080\"\n"+edit))
			if err != nil {
				t.Fatal(err)
			}
			f.prepare = edited
			e.Probe = func(context.Context, *site.Site, site.Mode) error { return nil }
			rep, err := SwitchMode(context.Background(), e, edited, "maintenance", Options{})
			if err != nil {
				t.Fatal(err)
			}
			if strings.HasPrefix(rep.Reason, "already") || !rep.Changed || len(f.restarts) != 1 {
				t.Errorf("report %+v, restarts %v; want a restart into the edited mode", rep, f.restarts)
			}
		})
	}
}
