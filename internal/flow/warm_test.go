package flow

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/sitectl/sitectl/internal/launcher"
	"github.com/sitectl/sitectl/internal/modes"
	"github.com/sitectl/sitectl/internal/site"
)

// warmEnv is an overlap site with keep_previous switched from normal to
// read-only (a handover: generation 1001 serves), whose launcher keeps the
// previous generation (pid 100, mode normal) warm until flipped is set.
func warmEnv(t *testing.T) (*Env, *fakeSystemd, *site.Site, *[]string) {
	e, f := newEnv(t)
	s := overlapSite(t, `keep_previous = "10m"`)
	if _, err := SwitchMode(context.Background(), e, s, "read-only", Options{}); err != nil {
		t.Fatal(err)
	}
	var asked []string
	flipped := false
	e.Launcher = func(ctx context.Context, s *site.Site) (launcher.Status, error) {
		if flipped {
			return launcher.Status{Serving: &launcher.GenerationStatus{Generation: 1, PID: 100, Mode: "normal"}, NoWarm: "generation 2 was rolled back from"}, nil
		}
		return launcher.Status{Serving: &launcher.GenerationStatus{Generation: 2, PID: f.gen, Mode: "read-only"},
			Warm: &launcher.WarmStatus{GenerationStatus: launcher.GenerationStatus{Generation: 1, PID: 100, Mode: "normal"}}}, nil
	}
	e.RollbackLauncher = func(ctx context.Context, s *site.Site) (string, error) {
		asked = append(asked, "rollback")
		flipped = true
		return "generation 1 serves again in mode normal, flipped in 1.2ms", nil
	}
	return e, f, s, &asked
}

// A rollback of a site with a warm generation records its mode and asks
// the launcher for the flip: nothing restarts or reloads.
func TestWarmRollbackFlips(t *testing.T) {
	e, f, s, asked := warmEnv(t)
	rep, err := Rollback(context.Background(), e, s, time.Minute, false)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Rollback != "warm" || rep.From != "read-only" || rep.To != "normal" || rep.Result != modes.ResultOK || rep.MainPID != 100 || rep.NoWarm != "" {
		t.Errorf("report %+v", rep)
	}
	if strings.Join(*asked, ",") != "rollback" || len(f.restarts) != 0 || strings.Join(f.reloads, ",") != "read-only" {
		t.Errorf("asked %v, restarts %v, reloads %v: want one flip and nothing else", *asked, f.restarts, f.reloads)
	}
	st, _ := e.Store.ReadState("karl")
	if cur, _, _ := e.Store.Current("karl"); cur != "normal" || st.PreviousMode != "read-only" || st.Pending != nil {
		t.Errorf("recorded mode %q, state %+v", cur, st)
	}
	if last := st.History[len(st.History)-1]; last.Result != modes.ResultOK || last.Reason != "warm rollback: the generation kept warm serves again" {
		t.Errorf("history %+v: sitectl's words, not the launcher's", last)
	}
}

// The warm generation is probed through the listener after the flip, as
// any switch is: one that does not answer is no rollback. The launcher
// drained the newer generation at the flip, so the site is restarted cold
// in the mode rolled back to, and the report says why.
func TestWarmRollbackIsProbed(t *testing.T) {
	e, f, s, _ := warmEnv(t)
	s.Probe = &site.Probe{Path: "/healthz", Status: 200, Timeout: time.Second}
	probed := 0
	e.Probe = func(context.Context, *site.Site, site.Mode) error {
		if probed++; probed == 1 {
			return errors.New("GET /healthz: connection refused")
		}
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rep, err := Rollback(ctx, e, s, MinTimeout(s.SettleTime), false)
	if err != nil || probed < 2 || rep.Rollback != "cold" || rep.Result != modes.ResultOK || rep.From != "read-only" || rep.To != "normal" || rep.MainPID != f.pid ||
		!strings.HasPrefix(rep.NoWarm, "the warm generation did not serve after the flip: GET /healthz: connection refused") {
		t.Fatalf("probed %d times; report %+v, %v", probed, rep, err)
	}
	if strings.Join(f.restarts, ",") != "normal" {
		t.Errorf("restarts %v, want one in mode normal", f.restarts)
	}
	st, _ := e.Store.ReadState("karl")
	h := st.History
	if cur, _, _ := e.Store.Current("karl"); cur != "normal" || len(h) < 2 || h[len(h)-2].Result != modes.ResultRollbackFailed || h[len(h)-1].Result != modes.ResultOK || st.Pending != nil {
		t.Errorf("mode %s, history %+v", cur, h)
	}

	// When the cold restart does not serve either, that is what it says.
	e, _, s, _ = warmEnv(t)
	s.Probe = &site.Probe{Path: "/healthz", Status: 200, Timeout: time.Second}
	e.Probe = func(context.Context, *site.Site, site.Mode) error {
		return errors.New("GET /healthz: connection refused")
	}
	rep, err = Rollback(ctx, e, s, MinTimeout(s.SettleTime), false)
	if rep.Result != modes.ResultRollbackFailed || rep.Rollback != "cold" || !errors.Is(err, ErrRollbackFailed) {
		t.Errorf("neither warm nor cold serves: report %+v, %v", rep, err)
	}
}

// With no warm generation, --cold, or a flip the launcher refuses, the
// rollback is today's cold one, and the report says why.
func TestWarmRollbackGoesCold(t *testing.T) {
	cases := map[string]struct {
		setup  func(e *Env)
		cold   bool
		noWarm string
	}{
		"none warm": {func(e *Env) {
			e.Launcher = func(ctx context.Context, s *site.Site) (launcher.Status, error) {
				return launcher.Status{Serving: &launcher.GenerationStatus{Generation: 2}, NoWarm: "warm generation 1 exited: signal: killed"}, nil
			}
		}, false, "no warm generation (warm generation 1 exited: signal: killed)"},
		"--cold": {func(e *Env) {}, true, "--cold given"},
		"refused": {func(e *Env) {
			e.RollbackLauncher = func(ctx context.Context, s *site.Site) (string, error) {
				return "", errors.New("no warm generation (it just exited)")
			}
		}, false, "no warm generation (it just exited)"},
		"unreachable": {func(e *Env) {
			e.Launcher = func(ctx context.Context, s *site.Site) (launcher.Status, error) {
				return launcher.Status{}, errors.New("cannot reach the launcher: connection refused")
			}
		}, false, "cannot reach the launcher: connection refused"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			e, f, s, asked := warmEnv(t)
			c.setup(e)
			e.Launcher = orServing(e.Launcher, f)
			rep, err := Rollback(context.Background(), e, s, time.Minute, c.cold)
			if err != nil {
				t.Fatal(err)
			}
			if rep.Rollback != "cold" || rep.NoWarm != c.noWarm || rep.To != "normal" || rep.Result != modes.ResultOK {
				t.Errorf("report %+v", rep)
			}
			if c.cold && len(*asked) != 0 {
				t.Errorf("--cold asked the launcher: %v", *asked)
			}
			if strings.Join(f.reloads, ",") != "read-only,normal" {
				t.Errorf("reloads %v, want the cold handover to normal", f.reloads)
			}
			st, _ := e.Store.ReadState("karl")
			if cur, _, _ := e.Store.Current("karl"); cur != "normal" || st.PreviousMode != "read-only" {
				t.Errorf("recorded mode %q, state %+v", cur, st)
			}
		})
	}
}

// orServing answers the cold rollback's own questions (which generation
// serves, after its handover) as the fake systemd says, once a status was
// asked for the warm attempt.
func orServing(first func(context.Context, *site.Site) (launcher.Status, error), f *fakeSystemd) func(context.Context, *site.Site) (launcher.Status, error) {
	asked := false
	return func(ctx context.Context, s *site.Site) (launcher.Status, error) {
		if !asked {
			asked = true
			return first(ctx, s)
		}
		return f.launcher(ctx, s)
	}
}

// On a keep_previous site whose last change was a reload in one mode (a
// new release), with no warm generation left, a rollback does not switch
// to the mode before an older switch, which would leave the release
// serving: it says so and does nothing, unless --cold.
func TestColdRollbackAfterASameModeReloadIsRefused(t *testing.T) {
	e, f, s, _ := warmEnv(t)
	e.Launcher = orServing(func(ctx context.Context, s *site.Site) (launcher.Status, error) {
		return launcher.Status{Serving: &launcher.GenerationStatus{Generation: 3}, NoWarm: "warm generation 2 was drained after keep_previous"}, nil
	}, f)
	if _, err := Reload(context.Background(), e, s, time.Minute); err != nil {
		t.Fatal(err)
	}
	reloads := len(f.reloads)
	rep, err := Rollback(context.Background(), e, s, time.Minute, false)
	if !errors.Is(err, ErrNoPrevious) || !strings.Contains(err.Error(), "the last change was a reload in mode read-only") || rep.Result != "" {
		t.Fatalf("report %+v, %v", rep, err)
	}
	if len(f.reloads) != reloads || len(f.restarts) != 0 {
		t.Errorf("changed the site: reloads %v, restarts %v", f.reloads, f.restarts)
	}
	if rep, err := Rollback(context.Background(), e, s, time.Minute, true); err != nil || rep.To != "normal" || rep.Rollback != "cold" {
		t.Errorf("--cold: %+v, %v", rep, err)
	}
}

// A generation kept warm since before the site file changed its mode's
// environment runs an older version of the mode: the rollback does not
// flip to it (which would serve that version, then fail its check and
// restart the site), but hands over cold, and says why.
func TestWarmRollbackSkipsAnOlderVersionOfTheMode(t *testing.T) {
	e, f, s, asked := warmEnv(t)
	for i := range s.Modes {
		if s.Modes[i].Name == "normal" {
			s.Modes[i].Environment = []site.EnvVar{{Name: "SHOP_DB", Value: "new"}}
		}
	}
	f.env[100] = []string{"SITE_MODE=normal", "SHOP_DB=old"}
	e.Launcher = orServing(e.Launcher, f)
	rep, err := Rollback(context.Background(), e, s, time.Minute, false)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Rollback != "cold" || rep.Result != modes.ResultOK || rep.To != "normal" ||
		rep.NoWarm != "the warm generation runs an older version of mode normal than the site file has (the serving process (pid 100) does not run mode normal: in its environment SHOP_DB differs from the mode file)" {
		t.Errorf("report %+v", rep)
	}
	if len(*asked) != 0 || len(f.restarts) != 0 || strings.Join(f.reloads, ",") != "read-only,normal" {
		t.Errorf("asked %v, restarts %v, reloads %v: want no flip, and a handover to normal", *asked, f.restarts, f.reloads)
	}
	if st, _ := e.Store.ReadState("karl"); len(st.History) != 2 || st.History[1].Result != modes.ResultOK {
		t.Errorf("history %+v: want the switch and one rollback, ok", st.History)
	}
}

// A warm rollback that served but whose history could not be written (a
// full state directory) says so as any such change does: the site
// changed, the result is what was observed, and the reason and the error
// (ErrNotRecorded) say what the history lacks. A bare write error would
// read as a change that failed and did nothing.
func TestWarmRollbackWhoseHistoryCouldNotBeWritten(t *testing.T) {
	e, _, s, asked := warmEnv(t)
	e.Writer = failingFinish{e.Writer}
	rep, err := Rollback(context.Background(), e, s, time.Minute, false)
	if strings.Join(*asked, ",") != "rollback" {
		t.Fatalf("asked %v: want one flip", *asked)
	}
	if !errors.Is(err, ErrNotRecorded) || rep.Result != modes.ResultOK || rep.Rollback != "warm" || !rep.Changed ||
		!strings.Contains(rep.Reason, "the site serves in mode normal, but its history could not be written") ||
		!strings.Contains(rep.Reason, "no space left on device") {
		t.Fatalf("report %+v, %v", rep, err)
	}
}

// setModeFailsAfter fails every SetMode after the first n.
type setModeFailsAfter struct {
	modes.Writer
	n *int
}

func (w setModeFailsAfter) SetMode(s *site.Site, mode string) error {
	if *w.n <= 0 {
		return errors.New("no space left on device")
	}
	*w.n--
	return w.Writer.SetMode(s, mode)
}

// A flip the launcher refuses leaves the previous mode serving; when the
// mode file cannot be put back to it either, the error says that the
// file records the warm generation's mode, which the next start would
// run (ErrModeNotPutBack, exit 5), not that nothing changed.
func TestRefusedFlipWhoseModeCannotBePutBack(t *testing.T) {
	e, _, s, _ := warmEnv(t)
	one := 1
	e.Writer = setModeFailsAfter{e.Writer, &one}
	e.RollbackLauncher = func(ctx context.Context, s *site.Site) (string, error) {
		return "", errors.New("generation 1 is no longer warm")
	}
	rep, err := Rollback(context.Background(), e, s, time.Minute, false)
	if !errors.Is(err, ErrModeNotPutBack) || !strings.Contains(err.Error(), "records mode normal") || rep.From != "read-only" || rep.To != "normal" {
		t.Fatalf("report %+v, %v", rep, err)
	}
	if cur, _, _ := e.Store.Current("karl"); cur != "normal" {
		t.Errorf("recorded mode %q: the test's disk did not fail as meant", cur)
	}
}

// A flip the launcher answered ok after which another generation than the
// warm one serves (a reload begun meanwhile by systemctl reload, or an app
// answering on the launcher's socket) is not a warm rollback: the site
// runs the mode, but not the generation kept warm (the old release), and
// the history must not say that it serves again.
func TestWarmRollbackChecksTheWarmGenerationServes(t *testing.T) {
	e, f, s, asked := warmEnv(t)
	f.env[101] = []string{"SITE_MODE=normal"}
	flipped := false
	e.RollbackLauncher = func(ctx context.Context, s *site.Site) (string, error) {
		*asked = append(*asked, "rollback")
		flipped = true
		return "generation 1 serves again in mode normal, flipped in 1.2ms", nil
	}
	warm := e.Launcher
	e.Launcher = func(ctx context.Context, s *site.Site) (launcher.Status, error) {
		if flipped {
			return launcher.Status{Serving: &launcher.GenerationStatus{Generation: 3, PID: 101, Mode: "normal"}}, nil
		}
		return warm(ctx, s)
	}
	e.Launcher = orServingAfter(e.Launcher, f, &flipped)
	rep, err := Rollback(context.Background(), e, s, time.Minute, false)
	if strings.Join(*asked, ",") != "rollback" {
		t.Fatalf("asked %v: want one flip", *asked)
	}
	if rep.Rollback == "warm" || !strings.Contains(rep.NoWarm, "pid 101") {
		t.Errorf("report %+v, %v: want no warm rollback, and why", rep, err)
	}
	st, _ := e.Store.ReadState("karl")
	for _, h := range st.History {
		if h.Reason == "warm rollback: the generation kept warm serves again" {
			t.Errorf("history %+v says the warm generation serves", st.History)
		}
	}
}

// orServingAfter answers as first until the warm attempt's status after
// the flip was asked, then as the fake systemd says (the cold restart).
func orServingAfter(first func(context.Context, *site.Site) (launcher.Status, error), f *fakeSystemd, flipped *bool) func(context.Context, *site.Site) (launcher.Status, error) {
	after := 0
	return func(ctx context.Context, s *site.Site) (launcher.Status, error) {
		if *flipped {
			if after++; after > 1 {
				return f.launcher(ctx, s)
			}
		}
		return first(ctx, s)
	}
}

// A reload sitectl did not record (a touch of the reload trigger after the
// release symlink moved, systemctl reload) and no warm generation left: a
// rollback does not switch to the mode before the last switch, which
// would keep that release serving (in maintenance, say): it says so and
// does nothing, unless --cold. A generation ready before the last change
// recorded is that change's.
func TestColdRollbackAfterAnUnrecordedReloadIsRefused(t *testing.T) {
	for _, c := range []struct {
		name    string
		after   time.Duration
		refused bool
	}{{"reloaded since", time.Minute, true}, {"the change's own", -time.Second, false}} {
		e, f, s, _ := warmEnv(t)
		st, _ := e.Store.ReadState("karl")
		ready := st.ChangedAt.Add(c.after)
		// The warm attempt's status and the rollback's look at what
		// serves, then the fake systemd's answers for the cold switch.
		calls := 0
		e.Launcher = func(ctx context.Context, s *site.Site) (launcher.Status, error) {
			if calls++; calls <= 2 {
				return launcher.Status{Serving: &launcher.GenerationStatus{Generation: 3, PID: f.gen, Mode: "read-only", Ready: ready},
					NoWarm: "warm generation 1 was drained after keep_previous"}, nil
			}
			return f.launcher(ctx, s)
		}
		restarts, reloads := len(f.restarts), len(f.reloads)
		rep, err := Rollback(context.Background(), e, s, time.Minute, false)
		if !c.refused {
			if err != nil || rep.To != "normal" || rep.Rollback != "cold" {
				t.Errorf("%s: %+v, %v", c.name, rep, err)
			}
			continue
		}
		if !errors.Is(err, ErrNoPrevious) || !strings.Contains(err.Error(), "after the last change sitectl recorded") || rep.Result != "" {
			t.Fatalf("%s: report %+v, %v", c.name, rep, err)
		}
		if len(f.restarts) != restarts || len(f.reloads) != reloads {
			t.Errorf("%s: changed the site: reloads %v, restarts %v", c.name, f.reloads, f.restarts)
		}
		calls = 2
		if rep, err := Rollback(context.Background(), e, s, time.Minute, true); err != nil || rep.To != "normal" || rep.Rollback != "cold" {
			t.Errorf("%s: --cold: %+v, %v", c.name, rep, err)
		}
	}
}

// A mode without a probe is verified by the environment of the process
// that serves and by that process running: a warm generation stopped with
// its whole session (SIGSTOP while it waited) answers nothing after the
// flip, and the rollback goes cold instead of saying it serves.
func TestWarmRollbackOfAStoppedGeneration(t *testing.T) {
	e, f, s, asked := warmEnv(t)
	f.stopped = map[int]bool{100: true}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rep, err := Rollback(ctx, e, s, MinTimeout(s.SettleTime), false)
	if err != nil || rep.Rollback != "cold" || rep.Result != modes.ResultOK || rep.To != "normal" ||
		!strings.Contains(rep.NoWarm, "the serving process (pid 100) of site-karl.service is stopped, with every process of its session") {
		t.Fatalf("report %+v, %v", rep, err)
	}
	if strings.Join(*asked, ",") != "rollback" || strings.Join(f.restarts, ",") != "normal" {
		t.Errorf("asked %v, restarts %v: want the flip, then one cold restart in mode normal", *asked, f.restarts)
	}
}
