package flow

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sitectl/sitectl/internal/modes"
	"github.com/sitectl/sitectl/internal/site"
)

// killedAfterRecording leaves site s as a sitectl killed (kill -9, the OOM
// killer, a power loss) right after it recorded a switch to mode to leaves
// it: the switch pending, the mode file recording to, and the process
// that served before still serving.
func killedAfterRecording(t *testing.T, e *Env, s *site.Site, to string) {
	t.Helper()
	from, err := Current(e.Store, s)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Writer.Begin(s, from, to); err != nil {
		t.Fatal(err)
	}
	if err := e.Writer.SetMode(s, to); err != nil {
		t.Fatal(err)
	}
}

// The next change after a switch cut short rolls back, if it fails, to
// the mode last shown to serve, not to the mode the killed switch
// recorded and never showed to serve: a restart (or the same switch asked
// again) of a site whose old process still serves must not end with the
// site down.
func TestChangeAfterAKilledSwitchRollsBackToTheVerifiedMode(t *testing.T) {
	for _, next := range []string{"restart", "mode"} {
		t.Run(next, func(t *testing.T) {
			e, f := newEnv(t, "broken")
			s := testSite(t)
			if _, err := SwitchMode(context.Background(), e, s, "read-only", Options{}); err != nil {
				t.Fatal(err)
			}
			killedAfterRecording(t, e, s, "broken")
			var rep Report
			var err error
			if next == "restart" {
				rep, err = Restart(context.Background(), e, s, 0)
			} else {
				rep, err = SwitchMode(context.Background(), e, s, "broken", Options{})
			}
			if !errors.Is(err, ErrRolledBack) {
				t.Fatalf("err = %v, want a rollback to read-only, the mode last shown to serve", err)
			}
			if rep.From != "read-only" || rep.To != "broken" || rep.Result != modes.ResultRolledBack || rep.MainPID != f.pid {
				t.Errorf("report %+v", rep)
			}
			if got := strings.Join(f.restarts, ","); got != "read-only,broken,read-only" {
				t.Errorf("restarts in modes %s, want read-only,broken,read-only", got)
			}
			if cur, _, _ := e.Store.Current("karl"); cur != "read-only" {
				t.Errorf("recorded mode %q after the rollback, want read-only", cur)
			}
			st, _ := e.Store.ReadState("karl")
			h := st.History
			if st.Pending != nil || len(h) != 3 || h[1].Result != modes.ResultInterrupted || h[2].From != "read-only" || h[2].To != "broken" || h[2].Result != modes.ResultRolledBack ||
				st.VerifiedMode != "read-only" || st.PreviousMode != "normal" {
				t.Errorf("state %+v", st)
			}
		})
	}
}

// Switching to the mode last shown to serve after a switch cut short
// records it again, even when its process still serves: the mode file
// records the mode of the killed switch, which the next start would run.
func TestSwitchBackAfterAKilledSwitchRecordsTheMode(t *testing.T) {
	e, f := newEnv(t)
	s := testSite(t)
	killedAfterRecording(t, e, s, "read-only")
	// The process that served before serves on, in mode normal.
	rep, err := SwitchMode(context.Background(), e, s, "normal", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if cur, _, _ := e.Store.Current("karl"); cur != "normal" {
		t.Errorf("recorded mode %q, want normal (report %+v, restarts %v)", cur, rep, f.restarts)
	}
	st, _ := e.Store.ReadState("karl")
	if st.Pending != nil || len(st.History) != 2 || st.History[0].Result != modes.ResultInterrupted || st.History[1].Result != modes.ResultOK {
		t.Errorf("state %+v", st)
	}
}

// A warm rollback whose sitectl was killed after it recorded the warm
// generation's mode, before the launcher flipped, is asked again and the
// launcher refuses: the mode that serves is recorded, not the mode of the
// flip that never happened, which the site's next start would run.
func TestWarmRollbackAfterAKilledFlipRecordsWhatServes(t *testing.T) {
	e, f, s, _ := warmEnv(t)
	killedAfterRecording(t, e, s, "normal")
	e.RollbackLauncher = func(ctx context.Context, s *site.Site) (string, error) {
		return "", errors.New("no warm generation (it just exited)")
	}
	e.Launcher = orServing(e.Launcher, f)
	rep, err := Rollback(context.Background(), e, s, time.Minute, false)
	t.Logf("report %+v, %v; reloads %v, restarts %v", rep, err, f.reloads, f.restarts)
	env, _ := f.environ(f.gen)
	cur, _, _ := e.Store.Current("karl")
	if !slices.Contains(env, "SITE_MODE="+cur) {
		t.Errorf("the mode file records mode %s, the serving generation runs %v", cur, env)
	}
	st, _ := e.Store.ReadState("karl")
	if st.Pending != nil {
		t.Errorf("state %+v", st)
	}
}
