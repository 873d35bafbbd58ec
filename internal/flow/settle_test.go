package flow

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sitectl/sitectl/internal/control"
	"github.com/sitectl/sitectl/internal/launcher"
	"github.com/sitectl/sitectl/internal/modes"
	"github.com/sitectl/sitectl/internal/procfs"
	"github.com/sitectl/sitectl/internal/site"
)

// settleEnv is newEnv with a clock that advances 100ms with every look at
// the unit, and processes whose age is counted on that clock from their
// start.
func settleEnv(t *testing.T, s *site.Site) (*Env, *fakeSystemd, *int) {
	e, f := newEnv(t)
	clock, reads := time.Unix(0, 0), 0
	born := map[int]time.Time{}
	e.Now = func() time.Time { return clock }
	f.onUnits = func(*fakeSystemd) { clock = clock.Add(100 * time.Millisecond); reads++ }
	e.Age = func(pid int) (time.Duration, error) {
		if _, ok := born[pid]; !ok {
			born[pid] = clock
		}
		return clock.Sub(born[pid]), nil
	}
	s.SettleTime = 300 * time.Millisecond
	return e, f, &reads
}

// A switch watches the new main process until it has run for the settle
// time, counted from its own start; one that has run longer already (a
// slow start) is watched only for half the settle time after it is ready.
func TestSettleWaitsOutTheRestOnly(t *testing.T) {
	s := testSite(t)
	e, f, reads := settleEnv(t, s)
	if _, err := SwitchMode(context.Background(), e, s, "read-only", Options{}); err != nil {
		t.Fatal(err)
	}
	if *reads < 4 {
		t.Errorf("the unit was looked at %d times in a settle time of 3 looks", *reads)
	}
	e.Age = func(int) (time.Duration, error) { return time.Minute, nil }
	*reads = 0
	if _, err := SwitchMode(context.Background(), e, s, "normal", Options{}); err != nil {
		t.Fatal(err)
	}
	if *reads > 3 {
		t.Errorf("a process that started a minute ago was watched for %d looks", *reads)
	}
	if len(f.restarts) != 2 {
		t.Errorf("restarts %v", f.restarts)
	}
}

// An app that says READY=1 and exits soon after: the switch is rolled
// back, with the exit status of the main process in the reason.
func TestCrashAfterReadyRollsBack(t *testing.T) {
	s := testSite(t)
	e, f, reads := settleEnv(t, s)
	crashAt, tick := -1, f.onUnits
	f.onUnits = func(f *fakeSystemd) {
		if tick(f); *reads == crashAt {
			f.state, f.pid = "activating", 0 // auto-restart: Restart=on-failure
			f.exitCode, f.exitStatus = 1, 1
		}
	}
	crashAt = 3
	rep, err := SwitchMode(context.Background(), e, s, "read-only", Options{})
	if !errors.Is(err, ErrRolledBack) || !strings.Contains(rep.Reason, "site-karl.service stopped running") ||
		!strings.Contains(rep.Reason, "after it was ready: its main process exited with status 1") {
		t.Fatalf("err %v, report %+v", err, rep)
	}
	if got := strings.Join(f.restarts, ","); got != "read-only,normal" {
		t.Errorf("restarts %s", got)
	}
	st, _ := e.Store.ReadState("karl")
	if h := st.History[len(st.History)-1]; h.Result != modes.ResultRolledBack || !strings.Contains(h.Reason, "exited with status 1") {
		t.Errorf("history %+v", h)
	}
}

// An app whose start took longer than the settle time (a busy host) and
// that exits soon after READY=1 is still caught: the watch lasts half the
// settle time after the service was ready.
func TestSlowStartIsWatchedAfterReady(t *testing.T) {
	s := testSite(t)
	e, f, reads := settleEnv(t, s)
	e.Age = func(int) (time.Duration, error) { return time.Minute, nil }
	tick := f.onUnits
	f.onUnits = func(f *fakeSystemd) {
		if tick(f); *reads == 3 { // 200ms after the restart job ended
			f.state, f.pid = "activating", 0
			f.exitCode, f.exitStatus = 1, 1
		}
	}
	rep, err := SwitchMode(context.Background(), e, s, "read-only", Options{})
	if !errors.Is(err, ErrRolledBack) || !strings.Contains(rep.Reason, "its main process exited with status 1") {
		t.Fatalf("err %v, report %+v", err, rep)
	}
}

// systemd restarting the service by itself while it settles fails the
// switch too.
func TestAutomaticRestartWhileSettlingRollsBack(t *testing.T) {
	s := testSite(t)
	e, f, reads := settleEnv(t, s)
	tick := f.onUnits
	f.onUnits = func(f *fakeSystemd) {
		if tick(f); *reads == 2 {
			f.nRestarts++
			f.pid++
		}
	}
	rep, err := SwitchMode(context.Background(), e, s, "read-only", Options{})
	if !errors.Is(err, ErrRolledBack) || !strings.Contains(rep.Reason, "systemd restarted it 1 times") {
		t.Fatalf("err %v, report %+v", err, rep)
	}
}

// The process that serves must run the mode in its environment: a wrong
// SITE_MODE or a missing variable of the mode fails the switch, and the
// message says which variables were found wrong.
func TestWrongServedModeRollsBack(t *testing.T) {
	for _, c := range []struct {
		env  []string
		want string
	}{
		{[]string{"SITE_MODE=normal", "READ_ONLY=1"}, `in its environment SITE_MODE differs from the mode file`},
		{[]string{"SITE_MODE=read-only"}, `in its environment READ_ONLY is unset`},
	} {
		for _, s := range []*site.Site{testSite(t), overlapSite(t, "")} {
			e, f := newEnv(t)
			environ := e.Environ
			e.Environ = func(pid int) ([]string, error) {
				if pid == f.gen && len(f.restarts)+len(f.reloads) == 1 {
					return c.env, nil
				}
				return environ(pid)
			}
			rep, err := SwitchMode(context.Background(), e, s, "read-only", Options{})
			if !errors.Is(err, ErrRolledBack) || !strings.Contains(rep.Reason, "the serving process (pid ") ||
				!strings.Contains(rep.Reason, "does not run mode read-only: "+c.want) {
				t.Errorf("handoff %s, environment %q: err %v, report %+v", s.Handoff, c.env, err, rep)
			}
			if cur, _, _ := e.Store.Current("karl"); cur != "normal" {
				t.Errorf("recorded %s after the rollback", cur)
			}
		}
	}
}

// An overlap site whose new generation dies after the handover: the
// launcher reports no serving generation, and why; the rollback restarts
// the unit in the previous mode.
func TestOverlapGenerationDiesWhileSettling(t *testing.T) {
	s := overlapSite(t, "")
	e, f, _ := settleEnv(t, s)
	e.Launcher = func(ctx context.Context, s *site.Site) (launcher.Status, error) {
		if len(f.reloads) == 1 && len(f.restarts) == 0 {
			return launcher.Status{Last: "generation 2 exited without being asked: exit status 1"}, nil
		}
		return f.launcher(ctx, s)
	}
	rep, err := SwitchMode(context.Background(), e, s, "read-only", Options{})
	if !errors.Is(err, ErrRolledBack) || !strings.Contains(rep.Reason, "no generation of site-karl.service serves: generation 2 exited without being asked: exit status 1") {
		t.Fatalf("err %v, report %+v", err, rep)
	}
	if got := strings.Join(f.restarts, ","); got != "normal" {
		t.Errorf("restarts %s: the rollback did not restart the previous mode", got)
	}
}

// Someone stops the site's socket during the switch: whether their stop
// cancelled sitectl's restart or came after it, sitectl starts nothing
// (no rollback), records the previous mode again and says so.
func TestStoppedByOperatorStaysStopped(t *testing.T) {
	for _, when := range []string{"cancels the restart", "during verification"} {
		e, f := newEnv(t)
		s := testSite(t)
		s.Probe = &site.Probe{Path: "/", Status: 200, Timeout: time.Second}
		if when == "cancels the restart" {
			e.Systemd = cancelling{f}
		}
		e.Probe = func(ctx context.Context, s *site.Site, m site.Mode) error {
			if m.Name == "read-only" {
				f.sockets.Job, f.state = "stop", "deactivating"
				return errors.New("connection refused")
			}
			return nil
		}
		rep, err := SwitchMode(context.Background(), e, s, "read-only", Options{})
		if !errors.Is(err, ErrStopped) || rep.Result != modes.ResultStopped || !strings.Contains(err.Error(), "site-karl.socket has a stop job") {
			t.Fatalf("%s: err %v, report %+v", when, err, rep)
		}
		if len(f.restarts) > 1 {
			t.Errorf("%s: restarts %v: the stop was undone", when, f.restarts)
		}
		if cur, _, _ := e.Store.Current("karl"); cur != "normal" {
			t.Errorf("%s: recorded %s", when, cur)
		}
		st, _ := e.Store.ReadState("karl")
		if h := st.History[len(st.History)-1]; h.Result != modes.ResultStopped || st.Pending != nil {
			t.Errorf("%s: state %+v", when, st)
		}
	}
}

// cancelling is systemd where someone's stop of the socket cancels the
// restart job.
type cancelling struct{ *fakeSystemd }

func (c cancelling) Restart(ctx context.Context, unit string) error {
	c.restarts = append(c.restarts, "cancelled")
	c.sockets.Job, c.state = "stop", "deactivating"
	return errors.New(`restart of site-karl.service ended with result "canceled"`)
}

// A serving generation that is gone before its environment could be read
// (it exited right after READY=1) is reported as what systemd says
// happened, not as an unreadable /proc file.
func TestServingProcessGoneIsExplained(t *testing.T) {
	s := overlapSite(t, "")
	e, f := newEnv(t)
	environ := e.Environ
	e.Environ = func(pid int) ([]string, error) {
		if len(f.reloads) == 1 && len(f.restarts) == 0 {
			f.state = "deactivating" // the launcher stops: its generation died
			return nil, fmt.Errorf("cannot read the environment of process %d: %w", pid, fs.ErrNotExist)
		}
		return environ(pid)
	}
	rep, err := SwitchMode(context.Background(), e, s, "read-only", Options{})
	if !errors.Is(err, ErrRolledBack) || !strings.Contains(rep.Reason, "site-karl.service stopped running") ||
		strings.Contains(rep.Reason, "cannot read the environment") {
		t.Fatalf("err %v, report %+v", err, rep)
	}
}

// slowStop is systemd while an overlap site's launcher stops the
// generations still draining after its serving one died: the service
// stays active, with the same main process, for a while.
type slowStop struct {
	*fakeSystemd
	calls, activeFor int
}

func (f *slowStop) UnitsByName(ctx context.Context, names ...string) ([]control.Unit, error) {
	f.calls++
	if f.calls == f.activeFor {
		f.state = "deactivating"
	}
	return f.fakeSystemd.UnitsByName(ctx, names...)
}

// The serving process is gone but the launcher takes 3 s to stop: the
// report still says how the service stopped, not only that the launcher
// could not be asked; whether that shows when the switch first asks which
// generation serves, or while it watches the generation settle.
func TestSlowLauncherStopIsExplained(t *testing.T) {
	for _, answered := range []int{0, 1} {
		s := overlapSite(t, `drain_timeout = "5s"`)
		e, f, _ := settleEnv(t, s)
		slow := &slowStop{fakeSystemd: f, activeFor: 1 << 30}
		e.Systemd = slow
		launcherStatus := e.Launcher
		asked := 0
		e.Launcher = func(ctx context.Context, s *site.Site) (launcher.Status, error) {
			if len(f.reloads) == 1 && len(f.restarts) == 0 {
				if asked++; asked > answered {
					if slow.activeFor == 1<<30 {
						slow.activeFor = slow.calls + 30 // 3 s of polls from now
					}
					return launcher.Status{}, errors.New("no answer from the launcher: connection reset by peer")
				}
			}
			return launcherStatus(ctx, s)
		}
		rep, err := SwitchMode(context.Background(), e, s, "read-only", Options{})
		if !errors.Is(err, ErrRolledBack) || !strings.Contains(rep.Reason, "site-karl.service stopped running") {
			t.Errorf("launcher answered %d times: err %v, report %+v", answered, err, rep)
		}
	}
}

// A probe answered after the settle time is not repeated: the settle
// then only looks once more that the same process still runs. One
// answered before it is, even if it began after the process was ready.
func TestSettledProbeIsNotRepeated(t *testing.T) {
	for _, c := range []struct {
		settle time.Duration
		took   time.Duration // how long the probe took to be answered
		probes int
	}{{300 * time.Millisecond, 0, 2}, {time.Millisecond, 0, 1}, {300 * time.Millisecond, 400 * time.Millisecond, 1}} {
		s := testSite(t)
		s.Probe = &site.Probe{Path: "/", Status: 200, Timeout: time.Second}
		e, _, _ := settleEnv(t, s)
		s.SettleTime = c.settle
		e.Age = func(int) (time.Duration, error) { return time.Minute, nil }
		environ, tick := e.Environ, e.Now
		clock := time.Duration(0)
		e.Now = func() time.Time { return tick().Add(clock) }
		e.Environ = func(pid int) ([]string, error) { clock += time.Millisecond; return environ(pid) }
		probes := 0
		e.Probe = func(context.Context, *site.Site, site.Mode) error { probes++; clock += c.took; return nil }
		if _, err := SwitchMode(context.Background(), e, s, "read-only", Options{}); err != nil {
			t.Fatal(err)
		}
		if probes != c.probes {
			t.Errorf("settle time %v, probe answered after %v: %d probes, want %d", c.settle, c.took, probes, c.probes)
		}
	}
}

// An overlap site's launcher watched its new generation from when it was
// ready until it took over: that time counts toward the half settle time
// a slow start is watched for, so a generation the launcher saw ready
// longer ago than that is only probed, not watched again. One the
// launcher says nothing about, or says was ready after the switch saw it
// running (a clock set back), is watched the half settle time from the
// switch's own look.
func TestOverlapSettleCountsTheLaunchersWatch(t *testing.T) {
	looks := func(ready func(now time.Time) time.Time) int {
		s := overlapSite(t, "")
		e, f, reads := settleEnv(t, s)
		e.Age = func(int) (time.Duration, error) { return time.Minute, nil } // a slow start
		e.Launcher = func(ctx context.Context, s *site.Site) (launcher.Status, error) {
			st, err := f.launcher(ctx, s)
			st.Serving.Ready = ready(e.now())
			return st, err
		}
		*reads = 0
		if _, err := SwitchMode(context.Background(), e, s, "read-only", Options{}); err != nil {
			t.Fatal(err)
		}
		return *reads
	}
	notSaid := looks(func(time.Time) time.Time { return time.Time{} })
	earlier := looks(func(now time.Time) time.Time { return now.Add(-200 * time.Millisecond) })
	ahead := looks(func(now time.Time) time.Time { return now.Add(200 * time.Millisecond) })
	if earlier >= notSaid {
		t.Errorf("ready 200ms before the switch looked (settle time 300ms): %d looks at the unit, as many as without the launcher's word (%d)", earlier, notSaid)
	}
	if ahead != notSaid {
		t.Errorf("a launcher's ready time after the switch's own: %d looks, want %d as without it", ahead, notSaid)
	}
}

// realGenerationOf is generationOf as root's side runs it, on /proc;
// newEnv replaces it for the made-up processes of the other tests.
var realGenerationOf = generationOf

// startProcess starts a process that sleeps, with environment env, and
// kills it when the test ends.
func startProcess(t *testing.T, env ...string) int {
	t.Helper()
	cmd := exec.Command("sleep", "60")
	cmd.Env = env
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd.Process.Pid
}

// The launcher runs as the site's user, and the site's app can answer on
// its control socket: a status that names as serving a process that is
// not one of the launcher's (another site's, whose environment holds its
// secrets) fails the switch before root reads anything of that process.
// One of the launcher's own is verified as before.
func TestServingPIDNotTheLaunchersIsRefused(t *testing.T) {
	for _, c := range []struct {
		name  string
		other bool // the launcher is another process than the generation's parent
	}{{"another site's process", true}, {"a generation of the launcher", false}} {
		t.Run(c.name, func(t *testing.T) {
			e, f := newEnv(t)
			generationOf = realGenerationOf
			s := overlapSite(t, "")
			gen := startProcess(t, "SITE_MODE=read-only", "READ_ONLY=1", "DATABASE_URL=postgres://b:TOPSECRET@db/b")
			f.pid = os.Getpid() // the test is the launcher, gen its generation
			if c.other {
				f.pid = startProcess(t) // a launcher that gen does not descend from
			}
			launcherPID := f.pid
			var read []int
			e.Environ = func(pid int) ([]string, error) {
				read = append(read, pid)
				if pid == gen {
					return procfs.Environ(pid)
				}
				return f.environ(pid)
			}
			e.Launcher = func(ctx context.Context, s *site.Site) (launcher.Status, error) {
				if len(f.restarts) > 0 { // the rollback's fresh start asks nothing
					return f.launcher(ctx, s)
				}
				return launcher.Status{Serving: &launcher.GenerationStatus{Generation: 2, PID: gen}}, nil
			}
			rep, err := SwitchMode(context.Background(), e, s, "read-only", Options{})
			if !c.other {
				if err != nil || !slices.Contains(read, gen) {
					t.Fatalf("a generation of the launcher: err %v, report %+v, environments read %v", err, rep, read)
				}
				return
			}
			want := fmt.Sprintf("says pid %d serves, which is not one of its generations: pid %d is not a generation of the launcher (pid %d)", gen, gen, launcherPID)
			if !errors.Is(err, ErrRolledBack) || !strings.Contains(rep.Reason, want) {
				t.Errorf("err %v, report %+v; want %q in the reason", err, rep, want)
			}
			if slices.Contains(read, gen) || strings.Contains(rep.Reason, "TOPSECRET") {
				t.Errorf("the environment of pid %d, not the launcher's, was read (%v): %q", gen, read, rep.Reason)
			}
		})
	}
}

// A served mode that is not the mode switched to is reported by the names
// of the variables that differ or are unset, never by their values: the
// reason goes to the deployer, the history and the journal, and the values
// are the site's secrets (or, read from a process that is not the site's,
// another site's).
func TestServedModeMismatchNamesNoValues(t *testing.T) {
	m := site.Mode{Name: "read-only", Environment: []site.EnvVar{
		{Name: "API_KEY", Value: "mode-key-secret"},
		{Name: "DATABASE_URL", Value: "postgres://karl:mode-secret@db/karl"},
		{Name: "READ_ONLY", Value: "1"},
	}}
	env := []string{"SITE_MODE=process-mode-secret", "API_KEY=process-key-secret", "DATABASE_URL=postgres://b:TOPSECRET@db/b"}
	err := servedModeMismatch(env, m, 42)
	want := "the serving process (pid 42) does not run mode read-only: in its environment SITE_MODE, API_KEY, DATABASE_URL differ from the mode file; READ_ONLY is unset"
	if err == nil {
		t.Fatal("a process in another mode was taken for mode read-only")
	}
	if err.Error() != want {
		t.Errorf("mismatch: %v\nwant %s", err, want)
	}
	for _, secret := range []string{"process-mode-secret", "process-key-secret", "TOPSECRET", "mode-key-secret", "mode-secret", `"1"`} {
		if strings.Contains(err.Error(), secret) {
			t.Errorf("the message shows the value %q: %v", secret, err)
		}
	}
	if err := servedModeMismatch([]string{"SITE_MODE=read-only", "API_KEY=mode-key-secret", "DATABASE_URL=postgres://karl:mode-secret@db/karl", "READ_ONLY=1", "OTHER=x"}, m, 42); err != nil {
		t.Errorf("the mode's own environment: %v", err)
	}
}

// The launcher's ready time comes over its socket without a monotonic
// reading; the time the settle counts from must keep the one of the
// switch's own ready time, or a clock stepped back during the settle
// lengthens it by the step (time.Time.Sub falls back on the wall clock
// when either side lacks a monotonic reading).
func TestWatchedFromKeepsTheMonotonicClock(t *testing.T) {
	ready := time.Now()
	launcherReady := ready.Add(-time.Second).Round(0) // as decoded from JSON
	got := watchedFrom(ready, launcherReady)
	if !got.Equal(launcherReady) {
		t.Errorf("watchedFrom = %v, want the launcher's %v", got, launcherReady)
	}
	if !strings.Contains(got.String(), " m=") {
		t.Errorf("watchedFrom = %v has no monotonic reading: a clock step during the settle would move it", got)
	}
}

// A switch to a mode without a probe is not shown to serve by a process
// that is stopped with its whole session: it rolls back. One process of
// it that runs, or a stop that cannot be read, is no reason.
func TestStoppedProcessDoesNotServe(t *testing.T) {
	e, f := newEnv(t)
	s := testSite(t)
	old := f.pid
	e.SessionStopped = func(_ context.Context, pid int) (bool, error) { return pid != old, nil } // every new process
	rep, err := SwitchMode(context.Background(), e, s, "read-only", Options{Timeout: time.Minute})
	if !errors.Is(err, ErrRollbackFailed) || rep.Changed || !strings.Contains(rep.Reason, "is stopped, with every process of its session") {
		t.Fatalf("report %+v, %v; want a rollback that says the process is stopped", rep, err)
	}
	e.SessionStopped = func(context.Context, int) (bool, error) { return true, errors.New("cannot read") }
	if rep, err := SwitchMode(context.Background(), e, s, "read-only", Options{Timeout: time.Minute}); err != nil || rep.Result != modes.ResultOK {
		t.Errorf("a stop that cannot be read: report %+v, %v; want ok", rep, err)
	}
}
