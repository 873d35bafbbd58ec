package flow

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sitectl/sitectl/internal/control"
	"github.com/sitectl/sitectl/internal/launcher"
	"github.com/sitectl/sitectl/internal/modes"
	"github.com/sitectl/sitectl/internal/site"
	"github.com/sitectl/sitectl/internal/sitecheck"
	"github.com/sitectl/sitectl/internal/units"
)

// fakeSystemd plays systemd: a restart starts the service in whatever mode
// the mode file records, and modes listed in failing do not come up. A
// reload is an overlap site's handover: the launcher (the main PID) stays,
// a new generation (gen) serves, and a failing mode leaves the old
// generation serving. The serving process's environment is the mode file
// as it was at its start, and it is old enough to have settled unless the
// test says otherwise.
type fakeSystemd struct {
	store    modes.Store
	site     string
	failing  map[string]bool
	pid, gen int
	// stopped are the processes stopped with all of their session.
	stopped   map[int]bool
	state     string
	restarts  []string // the mode of each restart
	reloads   []string // the mode of each reload
	resets    int
	notLoaded bool
	unitsErr  error
	onUnits   func(f *fakeSystemd) // called before each read of the unit
	env       map[int][]string     // the environment of each process
	age       time.Duration        // how long every process has run
	nRestarts int
	sockets   control.Unit // the state of the site's socket
	// socketStates overrides sockets for the socket units it names.
	socketStates map[string]string
	// how the last main process ended
	exitCode, exitStatus int
	// brokenFile: the site file as it is fails to start in every mode
	// (a module name mistyped), until a PinBack goes back.
	brokenFile bool
	// socketRestarts are the socket units restarted, stops the units
	// stopped; with socketFails a socket unit's restart fails and leaves
	// it failed.
	socketRestarts, stops []string
	socketFails           bool
	// others are units besides the site's service and sockets, by name
	// (those of what its file no longer declares); a stop makes one
	// inactive unless it is in stuck.
	others map[string]control.Unit
	stuck  map[string]bool
	// reloading: a reload job runs (the unit is "reloading").
	reloading bool
	// prepare, when set, is the site file that sitectl prepare renders
	// the recorded mode's file from at each restart, as the service's
	// ExecStartPre does.
	prepare *site.Site
}

func (f *fakeSystemd) started(pid int) {
	vars, err := f.store.ReadEnv(f.site)
	if err != nil { // what prepare records for a site without a mode
		vars = []site.EnvVar{{Name: "SITE_MODE", Value: "normal"}}
	}
	var env []string
	for _, v := range vars {
		env = append(env, v.Name+"="+v.Value)
	}
	f.env[pid] = env
}

func (f *fakeSystemd) Restart(ctx context.Context, unit string) error {
	if strings.HasSuffix(unit, ".socket") {
		f.socketRestarts = append(f.socketRestarts, unit)
		if f.socketFails {
			f.socketStates = map[string]string{unit: "failed"}
			return &control.JobError{Verb: "restart", Unit: unit, Result: "failed"}
		}
		return nil
	}
	mode, _, _ := f.store.Current(f.site)
	f.restarts = append(f.restarts, mode)
	if f.prepare != nil {
		if _, err := f.store.Refresh(f.prepare); err != nil {
			return err
		}
	}
	f.pid += 10
	f.gen = f.pid
	f.started(f.pid)
	if f.failing[mode] || f.brokenFile {
		f.state = "failed"
		return &control.JobError{Verb: "restart", Unit: unit, Result: "failed"}
	}
	f.state = "active"
	return nil
}

func (f *fakeSystemd) Reload(ctx context.Context, unit string) error {
	mode, _, _ := f.store.Current(f.site)
	f.reloads = append(f.reloads, mode)
	if f.failing[mode] {
		return &control.JobError{Verb: "reload", Unit: unit, Result: "failed"}
	}
	f.gen = 1000 + len(f.reloads)
	f.started(f.gen)
	return nil
}

func (f *fakeSystemd) Stop(ctx context.Context, unit string) error {
	f.stops = append(f.stops, unit)
	if u, ok := f.others[unit]; ok && !f.stuck[unit] {
		u.ActiveState, u.SubState = "inactive", "dead"
		f.others[unit] = u
	}
	if unit == "site-"+f.site+".service" {
		f.state = "inactive"
	}
	return nil
}

func (f *fakeSystemd) ResetFailed(ctx context.Context, unit string) error { f.resets++; return nil }

func (f *fakeSystemd) UnitsByName(ctx context.Context, names ...string) ([]control.Unit, error) {
	if f.onUnits != nil {
		f.onUnits(f)
	}
	if f.unitsErr != nil {
		return nil, f.unitsErr
	}
	if f.notLoaded {
		return nil, nil
	}
	state, sub := f.state, "running"
	switch {
	case f.state != "active":
		sub = "failed"
	case f.reloading:
		state, sub = "reloading", "reload"
	}
	return []control.Unit{{Name: names[0], LoadState: "loaded", ActiveState: state, SubState: sub, MainPID: f.pid, NRestarts: f.nRestarts,
		ExecMainCode: f.exitCode, ExecMainStatus: f.exitStatus}}, nil
}

func (f *fakeSystemd) States(ctx context.Context, names ...string) ([]control.Unit, error) {
	if f.unitsErr != nil {
		return nil, f.unitsErr
	}
	if _, ok := f.others[names[0]]; ok {
		var out []control.Unit
		for _, n := range names {
			out = append(out, f.others[n])
		}
		return out, nil
	}
	u := f.sockets
	u.Name = names[0]
	if st, ok := f.socketStates[names[0]]; ok {
		u.ActiveState = st
	}
	return []control.Unit{u}, nil
}

func (f *fakeSystemd) environ(pid int) ([]string, error) {
	env, ok := f.env[pid]
	if !ok {
		return nil, fmt.Errorf("no process %d", pid)
	}
	return env, nil
}

func (f *fakeSystemd) launcher(ctx context.Context, s *site.Site) (launcher.Status, error) {
	return launcher.Status{Serving: &launcher.GenerationStatus{Generation: 1, PID: f.gen}}, nil
}

func testSite(t *testing.T) *site.Site {
	t.Helper()
	s, err := site.Parse("/etc/sitectl/sites/karl.toml", []byte(`exec = ["/bin/app"]
readiness = "notify"
[[listen]]
address = "127.0.0.1:8080"
[modes.read-only]
environment = { READ_ONLY = "1" }
[modes.broken]
environment = { BROKEN = "1" }
`))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func newEnv(t *testing.T, failing ...string) (*Env, *fakeSystemd) {
	st := modes.Store{Dir: t.TempDir()}
	f := &fakeSystemd{store: st, site: "karl", failing: map[string]bool{}, pid: 100, gen: 100, state: "active",
		env: map[int][]string{100: {"SITE_MODE=normal"}}, age: time.Hour, sockets: control.Unit{ActiveState: "active", SubState: "listening"}}
	for _, m := range failing {
		f.failing[m] = true
	}
	// The processes are made up: every pid the launcher names is taken
	// as its generation (TestServingPIDNotTheLaunchersIsRefused checks
	// real ones).
	checked := generationOf
	generationOf = func(int, int) error { return nil }
	t.Cleanup(func() { generationOf = checked })
	return &Env{Store: st, Writer: modes.Local{Store: st, UID: 1000, PID: 4242}, Systemd: f,
		Journal:  func(string, time.Time) []string { return []string{"app: boom"} },
		Environ:  f.environ,
		Age:      func(int) (time.Duration, error) { return f.age, nil },
		Launcher: f.launcher,
		SessionStopped: func(_ context.Context, pid int) (bool, error) {
			return f.stopped[pid], nil
		},
	}, f
}

func TestSwitchRecordsModeAndHistory(t *testing.T) {
	e, f := newEnv(t)
	s := testSite(t)
	rep, err := SwitchMode(context.Background(), e, s, "read-only", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.From != "normal" || rep.To != "read-only" || rep.Result != modes.ResultOK || !rep.Changed || rep.MainPID != f.pid {
		t.Errorf("report %+v", rep)
	}
	if cur, _, _ := e.Store.Current("karl"); cur != "read-only" {
		t.Errorf("recorded mode %q", cur)
	}
	env, _ := os.ReadFile(e.Store.EnvPath("karl"))
	if !strings.Contains(string(env), `READ_ONLY="1"`) || !strings.Contains(string(env), `SITE_MODE="read-only"`) {
		t.Errorf("mode file:\n%s", env)
	}
	st, _ := e.Store.ReadState("karl")
	if st.PreviousMode != "normal" || st.Pending != nil || len(st.History) != 1 || st.History[0].Result != modes.ResultOK || st.History[0].UID != 1000 {
		t.Errorf("state %+v", st)
	}
	if f.resets != 1 {
		t.Errorf("the start-rate limit was reset %d times, want once before the restart", f.resets)
	}
}

func TestFailedModeRollsBack(t *testing.T) {
	e, f := newEnv(t, "broken")
	s := testSite(t)
	if _, err := SwitchMode(context.Background(), e, s, "read-only", Options{}); err != nil {
		t.Fatal(err)
	}
	rep, err := SwitchMode(context.Background(), e, s, "broken", Options{})
	if !errors.Is(err, ErrRolledBack) {
		t.Fatalf("err = %v, want ErrRolledBack", err)
	}
	if rep.Result != modes.ResultRolledBack || rep.Changed || len(rep.Journal) != 1 || !strings.Contains(rep.Reason, `ended with result "failed"`) {
		t.Errorf("report %+v", rep)
	}
	if got := strings.Join(f.restarts, ","); got != "read-only,broken,read-only" {
		t.Errorf("restarts in modes %s", got)
	}
	if cur, _, _ := e.Store.Current("karl"); cur != "read-only" {
		t.Errorf("after the rollback the site is recorded in %q", cur)
	}
	st, _ := e.Store.ReadState("karl")
	last := st.History[len(st.History)-1]
	if last.From != "read-only" || last.To != "broken" || last.Result != modes.ResultRolledBack || st.PreviousMode != "normal" {
		t.Errorf("state %+v", st)
	}
}

func TestRollbackThatFailsToo(t *testing.T) {
	e, _ := newEnv(t, "broken", "normal")
	rep, err := SwitchMode(context.Background(), e, testSite(t), "broken", Options{})
	if !errors.Is(err, ErrRollbackFailed) {
		t.Fatalf("err = %v, want ErrRollbackFailed", err)
	}
	if rep.MainPID != 0 {
		t.Errorf("a service whose start failed has main PID %d in the report", rep.MainPID)
	}
	// Neither mode serves: the switch changed nothing that was seen to
	// work (the CLI keeps the copy that ran only after a change).
	if rep.Changed {
		t.Errorf("a switch whose rollback failed says changed: %+v", rep)
	}
	st, _ := e.Store.ReadState("karl")
	if st.History[0].Result != modes.ResultRollbackFailed || st.Pending != nil {
		t.Errorf("state %+v", st)
	}
}

// A probe that fails in every mode (its path mistyped in the site file)
// fails the rollback too, but the service runs: the report has its PID,
// so that the operator is not told the site is down.
func TestRollbackFailedWithTheServiceRunning(t *testing.T) {
	e, f := newEnv(t)
	e.Probe = func(context.Context, *site.Site, site.Mode) error {
		return errors.New("GET /helthz: status 404, want 200")
	}
	s := testSite(t)
	s.Probe = &site.Probe{Path: "/helthz", Status: 200, Timeout: time.Second}
	rep, err := SwitchMode(context.Background(), e, s, "read-only", Options{Timeout: MinTimeout(s.SettleTime)})
	if !errors.Is(err, ErrRollbackFailed) || rep.MainPID == 0 || rep.MainPID != f.pid || rep.Changed {
		t.Errorf("err = %v, main PID %d (the service's is %d), changed %v", err, rep.MainPID, f.pid, rep.Changed)
	}
}

func TestSameModeIsANoOpUnlessForced(t *testing.T) {
	e, f := newEnv(t)
	s := testSite(t)
	rep, err := SwitchMode(context.Background(), e, s, "normal", Options{})
	if err != nil || rep.Changed || len(f.restarts) != 0 {
		t.Fatalf("rep %+v err %v restarts %v", rep, err, f.restarts)
	}
	rep, err = SwitchMode(context.Background(), e, s, "normal", Options{Force: true})
	if err != nil || !rep.Changed || len(f.restarts) != 1 {
		t.Fatalf("forced: rep %+v err %v restarts %v", rep, err, f.restarts)
	}
}

func TestInterruptedSwitchIsClosedByTheNext(t *testing.T) {
	e, _ := newEnv(t)
	s := testSite(t)
	// A sitectl killed after recording its intent and the new mode file.
	if err := e.Store.WriteState("karl", modes.State{Pending: &modes.Pending{From: "normal", To: "read-only", PID: 4242}}); err != nil {
		t.Fatal(err)
	}
	m, _ := s.Mode("read-only")
	if err := e.Store.Write(s, m); err != nil {
		t.Fatal(err)
	}
	if cur, _ := Current(e.Store, s); cur != "read-only" {
		t.Fatalf("current %q", cur)
	}
	if _, err := SwitchMode(context.Background(), e, s, "normal", Options{}); err != nil {
		t.Fatal(err)
	}
	st, _ := e.Store.ReadState("karl")
	if len(st.History) != 2 || st.History[0].Result != modes.ResultInterrupted || st.History[1].Result != modes.ResultOK || st.Pending != nil {
		t.Fatalf("history %+v", st.History)
	}
}

func TestUnknownModeChangesNothing(t *testing.T) {
	e, f := newEnv(t)
	_, err := SwitchMode(context.Background(), e, testSite(t), "nope", Options{})
	if !errors.Is(err, ErrModeNotFound) {
		t.Fatalf("err = %v", err)
	}
	entries, _ := os.ReadDir(e.Store.Dir)
	if len(entries) != 0 || len(f.restarts) != 0 {
		t.Fatalf("state written (%d entries) or restarts (%v) for an unknown mode", len(entries), f.restarts)
	}
}

func TestRollbackNeedsAPreviousMode(t *testing.T) {
	e, _ := newEnv(t)
	s := testSite(t)
	if _, err := Rollback(context.Background(), e, s, time.Minute, false); !errors.Is(err, ErrNoPrevious) {
		t.Fatalf("err = %v", err)
	}
	SwitchMode(context.Background(), e, s, "read-only", Options{})
	rep, err := Rollback(context.Background(), e, s, time.Minute, false)
	if err != nil || rep.To != "normal" {
		t.Fatalf("rollback: %+v %v", rep, err)
	}
}

func TestStateFilesStayWhole(t *testing.T) {
	e, _ := newEnv(t)
	s := testSite(t)
	for i := 0; i < 5; i++ {
		SwitchMode(context.Background(), e, s, []string{"read-only", "normal"}[i%2], Options{})
	}
	dir := filepath.Dir(e.Store.EnvPath("karl"))
	entries, _ := os.ReadDir(dir)
	for _, en := range entries {
		if strings.Contains(en.Name(), ".tmp-") {
			t.Errorf("temporary file left behind: %s", en.Name())
		}
	}
}

func TestModeApplied(t *testing.T) {
	st := modes.Store{Dir: t.TempDir()}
	s := testSite(t)
	running := control.Unit{ActiveState: "active", SubState: "running", Since: time.Now()}
	if !ModeApplied(st, "karl", running) {
		t.Error("a running site without a mode file does not run its default mode")
	}
	if ModeApplied(st, "karl", control.Unit{ActiveState: "inactive", SubState: "dead"}) {
		t.Error("a stopped site runs its mode")
	}
	m, _ := s.Mode("read-only")
	if err := st.Write(s, m); err != nil {
		t.Fatal(err)
	}
	// The mode was recorded when the file last changed, by its change
	// time too (CurrentSince): a time taken here and set as its mtime
	// would lie before the ctime the write (or the Chtimes) left, as soon
	// as the clock ticks between the two.
	_, _, recorded, err := st.CurrentSince("karl")
	if err != nil || recorded.IsZero() {
		t.Fatalf("CurrentSince: %v %v", recorded, err)
	}
	for since, want := range map[time.Time]bool{recorded.Add(-time.Second): false, recorded: true, recorded.Add(time.Second): true, {}: false} {
		u := running
		u.Since = since
		if got := ModeApplied(st, "karl", u); got != want {
			t.Errorf("started %v after the mode was recorded: applied %v, want %v", since.Sub(recorded), got, want)
		}
	}
}

// A timeout that leaves less time to come up, or to roll back, than the
// site's settle_time could never show either: a failed change would end
// "the rollback failed too" (exit 5) while the previous mode serves.
// Refused before anything is done, with the least timeout that works.
func TestTimeoutShorterThanSettleTime(t *testing.T) {
	e, f := newEnv(t)
	s := testSite(t)
	// settle_time itself leaves too little to come up; twice the settle
	// time comes up in its 60% but leaves 80% of it for a rollback.
	for _, timeout := range []time.Duration{s.SettleTime, 2 * s.SettleTime, MinTimeout(s.SettleTime) - time.Second} {
		_, err := Restart(context.Background(), e, s, timeout)
		if !errors.Is(err, ErrBadTimeout) || !strings.Contains(err.Error(), "nothing was done") ||
			!strings.Contains(err.Error(), fmt.Sprintf("give at least %v", MinTimeout(s.SettleTime))) || len(f.restarts) != 0 {
			t.Errorf("timeout %v, settle_time %v: %v, restarts %v", timeout, s.SettleTime, err, f.restarts)
		}
	}
	if st, _ := e.Store.ReadState("karl"); len(st.History) != 0 || st.Pending != nil {
		t.Errorf("recorded: %+v", st)
	}
	if _, err := Restart(context.Background(), e, s, MinTimeout(s.SettleTime)); err != nil || len(f.restarts) != 1 {
		t.Errorf("timeout = MinTimeout: %v, restarts %v", err, f.restarts)
	}
	for _, settle := range []time.Duration{time.Millisecond, time.Second, 50 * time.Second, 90 * time.Minute} {
		m := MinTimeout(settle)
		if back := m - m*6/10; back <= settle || m%time.Second != 0 || m > settle*10/4+3*time.Second {
			t.Errorf("MinTimeout(%v) = %v leaves %v for a rollback", settle, m, back)
		}
	}
}

// A timeout longer than a day is refused before anything is done. One
// large enough (500000h) made the 60% for coming up overflow to a
// deadline already past: the change was recorded, the restart failed at
// once, and the "rollback" restarted the site.
func TestTimeoutLongerThanADay(t *testing.T) {
	e, f := newEnv(t)
	s := testSite(t)
	for _, timeout := range []time.Duration{MaxTimeout + time.Second, 500000 * time.Hour, time.Duration(1<<63 - 1)} {
		_, err := SwitchMode(context.Background(), e, s, "read-only", Options{Timeout: timeout})
		if !errors.Is(err, ErrBadTimeout) || !strings.Contains(err.Error(), "nothing was done") || len(f.restarts) != 0 {
			t.Errorf("timeout %v: %v, restarts %v", timeout, err, f.restarts)
		}
	}
	if st, _ := e.Store.ReadState("karl"); len(st.History) != 0 || st.Pending != nil {
		t.Errorf("recorded: %+v", st)
	}
	if _, err := SwitchMode(context.Background(), e, s, "read-only", Options{Timeout: MaxTimeout}); err != nil || len(f.restarts) != 1 {
		t.Errorf("timeout = MaxTimeout: %v, restarts %v", err, f.restarts)
	}
}

// A rollback to a previous mode the site file no longer has changes
// nothing and says which mode it is and how to switch instead, cold or
// warm.
func TestRollbackToAPreviousModeTheFileNoLongerHas(t *testing.T) {
	e, f := newEnv(t)
	s := testSite(t)
	for _, m := range []string{"read-only", "normal"} {
		if _, err := SwitchMode(context.Background(), e, s, m, Options{}); err != nil {
			t.Fatal(err)
		}
	}
	s.Modes = slices.DeleteFunc(s.Modes, func(m site.Mode) bool { return m.Name == "read-only" })
	for _, cold := range []bool{false, true} {
		_, err := Rollback(context.Background(), e, s, time.Minute, cold)
		if !errors.Is(err, ErrModeNotFound) || !strings.Contains(err.Error(), "site karl: a rollback goes back to mode read-only, which /etc/sitectl/sites/karl.toml no longer has (it has: broken, maintenance, normal); nothing was done: `sitectl mode karl MODE`") {
			t.Errorf("cold %v: %v", cold, err)
		}
	}
	if len(f.restarts) != 2 {
		t.Errorf("restarts %v", f.restarts)
	}
	if st, _ := e.Store.ReadState("karl"); len(st.History) != 2 || st.Pending != nil {
		t.Errorf("a refused rollback was recorded: %+v", st)
	}
}

// A site in a mode its file no longer has is not restarted; the error
// says how to leave that mode.
func TestRestartInAModeTheFileNoLongerHas(t *testing.T) {
	e, f := newEnv(t)
	s := testSite(t)
	if _, err := SwitchMode(context.Background(), e, s, "read-only", Options{}); err != nil {
		t.Fatal(err)
	}
	s.Modes = slices.DeleteFunc(s.Modes, func(m site.Mode) bool { return m.Name == "read-only" })
	for _, do := range []func(context.Context, *Env, *site.Site, time.Duration) (Report, error){Restart, Reload} {
		_, err := do(context.Background(), e, s, time.Minute)
		if !errors.Is(err, ErrModeNotFound) || !strings.Contains(err.Error(), "site karl is in mode read-only, which /etc/sitectl/sites/karl.toml no longer has") ||
			!strings.Contains(err.Error(), "`sitectl mode karl normal`") {
			t.Errorf("%v", err)
		}
	}
	if len(f.restarts) != 1 {
		t.Errorf("restarts %v", f.restarts)
	}
}

// sitectl check warns of a settle_time from which CheckTimeout refuses
// every timeout a change may have, and of no shorter one.
func TestCheckWarnsOfASettleTimeNoChangeOutlasts(t *testing.T) {
	for _, settle := range []time.Duration{time.Second, 9*time.Hour + 35*time.Minute + 59*time.Second + 999*time.Millisecond, 9*time.Hour + 36*time.Minute, 10 * time.Hour, 24 * time.Hour} {
		text := fmt.Sprintf("exec = [\"/bin/true\"]\nsettle_time = %q\n[[listen]]\naddress = \"127.0.0.1:1\"\n", settle)
		s, err := site.ParseNamed("/etc/sitectl/sites/karl.toml", "karl", []byte(text))
		if err != nil {
			t.Fatalf("settle_time %s: %v", settle, err)
		}
		refused := CheckTimeout(s, MaxTimeout) != nil
		warned := false
		for _, w := range sitecheck.Warnings(sitecheck.OS, s, []byte(text), 0o640, units.Options{}) {
			if strings.Contains(w.Msg, "settle_time") {
				warned = true
				if w.Line != 2 {
					t.Errorf("settle_time %s: the warning is on line %d, want 2: %v", settle, w.Line, w)
				}
			}
		}
		if refused != warned {
			t.Errorf("settle_time %s: every change refused: %v; sitectl check warns: %v", settle, refused, warned)
		}
	}
}

// fullDisk is a Writer that cannot write the state (a full /var/lib).
type fullDisk struct{ modes.Writer }

func (fullDisk) Begin(*site.Site, string, string) error {
	return errors.New("cannot write /var/lib/sitectl/sites/karl/state.json: no space left on device")
}

// A change whose intent cannot be recorded (a full disk) is not begun,
// and the error says that nothing was done.
func TestUnrecordableChangeIsNotBegun(t *testing.T) {
	e, f := newEnv(t)
	e.Writer = fullDisk{e.Writer}
	_, err := SwitchMode(context.Background(), e, testSite(t), "read-only", Options{})
	if err == nil || !strings.Contains(err.Error(), "site karl: the change could not be recorded before it began; nothing was done: cannot write") {
		t.Fatalf("err = %v", err)
	}
	if len(f.restarts)+len(f.stops)+len(f.reloads) != 0 {
		t.Errorf("something was done: restarts %v, stops %v, reloads %v", f.restarts, f.stops, f.reloads)
	}
}
