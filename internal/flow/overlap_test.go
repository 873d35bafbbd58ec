package flow

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sitectl/sitectl/internal/control"
	"github.com/sitectl/sitectl/internal/launcher"
	"github.com/sitectl/sitectl/internal/modes"
	"github.com/sitectl/sitectl/internal/site"
)

func overlapSite(t *testing.T, extra string) *site.Site {
	t.Helper()
	s, err := site.Parse("/etc/sitectl/sites/karl.toml", []byte(`exec = ["/bin/app"]
readiness = "notify"
handoff = "overlap"
`+extra+`
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

// A switch of a running overlap site is a reload of its unit: the launcher
// (the main PID) stays, nothing restarts, and the mode is recorded.
func TestOverlapSwitchHandsOverInsideTheUnit(t *testing.T) {
	e, f := newEnv(t)
	s := overlapSite(t, "")
	rep, err := SwitchMode(context.Background(), e, s, "read-only", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(f.restarts) != 0 || strings.Join(f.reloads, ",") != "read-only" || rep.MainPID != 100 || rep.Result != modes.ResultOK {
		t.Errorf("restarts %v, reloads %v, report %+v", f.restarts, f.reloads, rep)
	}
	// A reload in the same mode renders the mode file afresh too.
	if _, err := Reload(context.Background(), e, s, time.Minute); err != nil || strings.Join(f.reloads, ",") != "read-only,read-only" {
		t.Errorf("reload: %v, reloads %v", err, f.reloads)
	}
	// sitectl restart is a full restart, even with overlap.
	if _, err := Restart(context.Background(), e, s, time.Minute); err != nil || len(f.restarts) != 1 {
		t.Errorf("restart: %v, restarts %v", err, f.restarts)
	}
}

// A failed handover leaves the old generation serving: the mode file is
// put back, and nothing is restarted.
func TestOverlapFailureKeepsTheOldGeneration(t *testing.T) {
	e, f := newEnv(t, "broken")
	s := overlapSite(t, "")
	rep, err := SwitchMode(context.Background(), e, s, "broken", Options{})
	if !errors.Is(err, ErrRolledBack) {
		t.Fatalf("err = %v, want ErrRolledBack", err)
	}
	if len(f.restarts) != 0 || rep.Result != modes.ResultRolledBack || rep.MainPID != 100 || !strings.Contains(rep.Reason, `reload of site-karl.service ended with result "failed"`) {
		t.Errorf("restarts %v, report %+v", f.restarts, rep)
	}
	if cur, _, _ := e.Store.Current("karl"); cur != "normal" {
		t.Errorf("recorded mode %q after the rollback", cur)
	}
}

// The launcher itself died during the handover: the rollback restarts the
// unit in the previous mode.
func TestOverlapRollbackRestartsWhenTheLauncherIsGone(t *testing.T) {
	e, f := newEnv(t, "broken")
	s := overlapSite(t, "")
	reloaded := false
	f.onUnits = func(f *fakeSystemd) {
		if len(f.reloads) > 0 && !reloaded {
			reloaded, f.state = true, "failed"
		}
	}
	rep, err := SwitchMode(context.Background(), e, s, "broken", Options{})
	if !errors.Is(err, ErrRolledBack) || strings.Join(f.restarts, ",") != "normal" || rep.MainPID != 110 {
		t.Fatalf("err %v, restarts %v, report %+v", err, f.restarts, rep)
	}
}

// A stopped overlap site is simply started.
func TestOverlapStoppedSiteIsStarted(t *testing.T) {
	e, f := newEnv(t)
	f.state = "inactive"
	if _, err := SwitchMode(context.Background(), e, overlapSite(t, ""), "read-only", Options{}); err != nil {
		t.Fatal(err)
	}
	if len(f.reloads) != 0 || strings.Join(f.restarts, ",") != "read-only" {
		t.Errorf("reloads %v, restarts %v", f.reloads, f.restarts)
	}
}

// A new launcher after the reload (systemd restarted the unit) is a
// failure: the handover did not happen inside the unit.
func TestOverlapLauncherChanged(t *testing.T) {
	e, f := newEnv(t)
	f.onUnits = func(f *fakeSystemd) {
		if len(f.reloads) > 0 && f.pid == 100 {
			f.pid = 555
			f.started(555)
		}
	}
	_, err := SwitchMode(context.Background(), e, overlapSite(t, ""), "read-only", Options{})
	if !errors.Is(err, ErrRolledBack) || !strings.Contains(err.Error(), "the launcher of site-karl.service changed during the reload (main PID 100, now 555)") {
		t.Fatalf("err = %v", err)
	}
}

// A mode whose probe fails is rolled back, with either handoff.
func TestProbeFailureRollsBack(t *testing.T) {
	for _, s := range []*site.Site{testSite(t), overlapSite(t, "")} {
		e, f := newEnv(t)
		s.Probe = &site.Probe{Path: "/", Status: 200, Timeout: time.Second}
		e.Probe = func(ctx context.Context, s *site.Site, m site.Mode) error {
			if m.Name == "read-only" {
				return errors.New("GET /: status 500, want 200")
			}
			return nil
		}
		rep, err := SwitchMode(context.Background(), e, s, "read-only", Options{})
		if !errors.Is(err, ErrRolledBack) || !strings.Contains(rep.Reason, "status 500") {
			t.Errorf("handoff %s: err %v, report %+v, restarts %v, reloads %v", s.Handoff, err, rep, f.restarts, f.reloads)
		}
	}
}

// A probe is cut short as soon as the service stops running: the reason is
// the service, not the probe's timeout.
func TestProbeCutShortWhenTheServiceDies(t *testing.T) {
	e, f := newEnv(t)
	s := testSite(t)
	s.Probe = &site.Probe{Path: "/", Status: 200, Timeout: time.Hour}
	var probing atomic.Bool
	e.Probe = func(ctx context.Context, s *site.Site, m site.Mode) error {
		if m.Name != "read-only" {
			return nil
		}
		probing.Store(true)
		<-ctx.Done()
		return ctx.Err()
	}
	f.onUnits = func(f *fakeSystemd) {
		if probing.CompareAndSwap(true, false) {
			f.state = "failed"
		}
	}
	rep, err := SwitchMode(context.Background(), e, s, "read-only", Options{})
	if !errors.Is(err, ErrRolledBack) || !strings.Contains(rep.Reason, "stopped running while it was being verified") {
		t.Fatalf("err %v, report %+v", err, rep)
	}
}

// A maintenance mode is verified on the maintenance server's health path,
// through the site's own listener.
func TestVerifyThroughTheListener(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	paths := make(chan string, 10)
	go http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		paths <- r.URL.Path
		if r.URL.Path != "/.sitectl/health" {
			w.WriteHeader(503)
		}
	}))
	defer ln.Close()
	s := testSite(t)
	s.Listeners[0].Address = ln.Addr().String()
	e := &Env{}
	verify := e.verifyListener
	if err := verify(context.Background(), s, site.Mode{Name: "maintenance", Serve: site.ServeMaintenance}); err != nil {
		t.Fatal(err)
	}
	if p := <-paths; p != "/.sitectl/health" {
		t.Errorf("verified on %s", p)
	}
	s.Probe = &site.Probe{Path: "/app", Status: 200, Timeout: 300 * time.Millisecond}
	if err := verify(context.Background(), s, site.Mode{Name: "normal", Serve: site.ServeApp}); err == nil || !strings.Contains(err.Error(), "verification failed for 300ms: GET http://"+ln.Addr().String()+"/app: status 503, want 200") {
		t.Fatalf("err = %v", err)
	}
	if err := verify(context.Background(), &site.Site{Name: "x", Probe: s.Probe}, site.Mode{}); err == nil {
		t.Error("a site without listeners verified")
	}
	if err := verify(context.Background(), &site.Site{Name: "x"}, site.Mode{Serve: site.ServeApp}); err != nil {
		t.Errorf("a mode without a probe: %v", err)
	}
	// With DialTCP (the state service, which has no network of its own),
	// every attempt connects through it.
	var dialed []string
	e.DialTCP = func(ctx context.Context, addr string) (net.Conn, error) {
		dialed = append(dialed, addr)
		return (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	}
	if err := verify(context.Background(), s, site.Mode{Name: "maintenance", Serve: site.ServeMaintenance}); err != nil || len(dialed) != 1 || dialed[0] != ln.Addr().String() {
		t.Errorf("through DialTCP: %v, dialed %v", err, dialed)
	}
}

// Failures to read systemd or to write state end the switch with the
// error. Before the switch is recorded (how it comes up is decided
// first), nothing is written; a switch recorded as begun is closed in the
// history.
func TestSystemdAndStateFailures(t *testing.T) {
	e, f := newEnv(t)
	s := testSite(t)
	f.unitsErr = control.ErrUnavailable
	if _, err := SwitchMode(context.Background(), e, s, "normal", Options{}); !errors.Is(err, control.ErrUnavailable) {
		t.Errorf("same mode, systemd unreachable: %v", err)
	}
	o := overlapSite(t, "")
	if _, err := SwitchMode(context.Background(), e, o, "read-only", Options{}); !errors.Is(err, control.ErrUnavailable) {
		t.Errorf("overlap, systemd unreachable: %v", err)
	}
	st, _ := e.Store.ReadState("karl")
	if st.Pending != nil || len(st.History) != 0 {
		t.Errorf("a switch that never began is in the history: %+v", st)
	}
	f.unitsErr, f.notLoaded = nil, true
	if _, err := SwitchMode(context.Background(), e, s, "read-only", Options{}); !errors.Is(err, ErrRollbackFailed) || !strings.Contains(err.Error(), "site-karl.service is not loaded") {
		t.Errorf("unit not loaded: %v", err)
	}
	f.notLoaded = false
	e.Writer = failingWriter{e.Writer}
	if _, err := SwitchMode(context.Background(), e, s, "broken", Options{}); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Errorf("mode not recordable: %v", err)
	}
}

// failingWriter cannot record a mode.
type failingWriter struct{ modes.Writer }

func (w failingWriter) SetMode(s *site.Site, mode string) error { return errors.New("disk full") }

// A switch out of a mode the site file no longer has that fails is rolled
// back to that mode as the site ran it, from its mode file: the site file
// lost the mode, the site did not. Without the mode file's word there is
// nothing to bring back.
func TestRollbackToAModeThatIsGone(t *testing.T) {
	e, _ := newEnv(t, "broken")
	s := testSite(t)
	if _, err := SwitchMode(context.Background(), e, s, "read-only", Options{}); err != nil {
		t.Fatal(err)
	}
	s2, _ := site.Parse(s.File, []byte("exec = [\"/bin/app\"]\nreadiness = \"notify\"\n[[listen]]\naddress = \"127.0.0.1:8080\"\n[modes.broken]\nenvironment = { BROKEN = \"1\" }\n"))
	rep, err := SwitchMode(context.Background(), e, s2, "broken", Options{})
	if !errors.Is(err, ErrRolledBack) || rep.Result != modes.ResultRolledBack || len(rep.Warnings) != 1 || !strings.Contains(rep.Warnings[0], "the site runs mode read-only again, which /etc/sitectl/sites/karl.toml no longer has") {
		t.Fatalf("err = %v, report %+v", err, rep)
	}
	env, _ := os.ReadFile(e.Store.EnvPath("karl"))
	if !strings.Contains(string(env), `SITE_MODE="read-only"`) || !strings.Contains(string(env), `READ_ONLY="1"`) {
		t.Errorf("mode file after the rollback:\n%s", env)
	}

	// A mode file that does not say how the mode ran.
	if err := os.WriteFile(e.Store.EnvPath("karl"), []byte("SITE_MODE=read-only\nSITECTL_MODE_VARS=READ_ONLY\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = SwitchMode(context.Background(), e, s2, "broken", Options{})
	if !errors.Is(err, ErrRollbackFailed) || !strings.Contains(err.Error(), `the previous mode "read-only" is no longer in /etc/sitectl/sites/karl.toml, and its environment is not known`) {
		t.Fatalf("err = %v", err)
	}
}

// A reload in the same mode (a new release) whose new generation took
// over and then failed its checks is not rolled back by finding it
// serving the mode: the site is restarted in the previous mode, and the
// failed generation no longer serves.
func TestRollbackIsNotTheFailedGeneration(t *testing.T) {
	e, f := newEnv(t)
	s := overlapSite(t, "")
	s.Probe = &site.Probe{Path: "/healthz", Status: 200, Timeout: time.Second}
	e.Probe = func(context.Context, *site.Site, site.Mode) error {
		if f.gen > 1000 { // the new generation serves
			return errors.New("GET /healthz: status 500, want 200")
		}
		return nil
	}
	rep, err := Reload(context.Background(), e, s, time.Minute)
	if !errors.Is(err, ErrRolledBack) || rep.Result != modes.ResultRolledBack {
		t.Fatalf("report %+v, %v", rep, err)
	}
	if len(f.restarts) != 1 || f.gen > 1000 {
		t.Errorf("restarts %v; generation %d serves, want the failed one gone", f.restarts, f.gen)
	}
}

// hungReload is systemd with a reload job that runs until the switch gives
// up: the launcher is still starting the new generation.
type hungReload struct{ *fakeSystemd }

func (h hungReload) Reload(ctx context.Context, unit string) error {
	h.reloads = append(h.reloads, "hung")
	h.reloading = true
	<-ctx.Done()
	return fmt.Errorf("reload of %s did not finish in time: %w", unit, ctx.Err())
}

// A handover still under way when the switch runs out of time is
// abandoned: the launcher is asked (again, while the reload has not reached
// it) to keep the new generation from taking over, and the old generation,
// still serving the previous mode, is the rollback: no cold restart, and
// the reason says how far the new generation had come. That holds whether
// the reload job ends within the rollback's time or is still stopping the
// new generation (a server slow to stop).
func TestOverlapTimeoutAbandonsTheHandover(t *testing.T) {
	for _, jobEnds := range []bool{true, false} {
		e, f := newEnv(t)
		e.Systemd = hungReload{f}
		var asked []int
		e.AbandonLauncher = func(ctx context.Context, s *site.Site, serving int) (string, error) {
			asked = append(asked, serving)
			if len(asked) == 1 {
				return "", launcher.ErrNoReload
			}
			f.reloading = !jobEnds
			return "generation 2 will not take over: it had not said READY=1; it is being stopped", nil
		}
		s := overlapSite(t, "")
		rep, err := SwitchMode(context.Background(), e, s, "read-only", Options{Timeout: 3 * time.Second})
		if !errors.Is(err, ErrRolledBack) || rep.Result != modes.ResultRolledBack || rep.MainPID != 100 {
			t.Fatalf("job ends %v: err %v, report %+v", jobEnds, err, rep)
		}
		if len(f.restarts) != 0 || len(asked) != 2 || asked[0] != 100 || asked[1] != 100 {
			t.Errorf("job ends %v: restarts %v; abandons asked for the generation with pid %v, want 100 twice", jobEnds, f.restarts, asked)
		}
		if !strings.Contains(rep.Reason, "did not finish in time") || !strings.Contains(rep.Reason, "generation 2 will not take over: it had not said READY=1") {
			t.Errorf("job ends %v: reason %q", jobEnds, rep.Reason)
		}
		if cur, _, _ := e.Store.Current("karl"); cur != "normal" {
			t.Errorf("job ends %v: recorded mode %q after the rollback", jobEnds, cur)
		}
	}
}

// A handover that cannot be abandoned (the launcher does not answer) is no
// rollback while the unit still reloads: the switch does not say the old
// generation serves.
func TestOverlapTimeoutNotAbandoned(t *testing.T) {
	e, f := newEnv(t)
	e.Systemd = hungReload{f}
	e.AbandonLauncher = func(ctx context.Context, s *site.Site, serving int) (string, error) {
		return "", errors.New("cannot reach the launcher")
	}
	rep, err := SwitchMode(context.Background(), e, overlapSite(t, ""), "read-only", Options{Timeout: 3 * time.Second})
	if errors.Is(err, ErrRolledBack) || rep.Result == modes.ResultRolledBack {
		t.Fatalf("err %v, report %+v", err, rep)
	}
}

// failingBack is a Writer whose writes of the mode file fail once the
// first one is done: the state directory filled up (or went read-only)
// during the change, between recording the new mode and putting the
// previous one back.
type failingBack struct {
	modes.Writer
	wrote *int
}

func (w failingBack) SetMode(s *site.Site, mode string) error {
	if *w.wrote++; *w.wrote > 1 {
		return errors.New("no space left on device")
	}
	return w.Writer.SetMode(s, mode)
}

// A failed handover whose previous mode cannot be recorded again leaves
// the old generation serving all the same: the report says that it
// serves, with its PID, not that the site is down, and that the mode
// file still records the mode that did not come up, which its next start
// would run. The site is not as it was (ErrModeNotPutBack: exit 5).
func TestOverlapRollbackWhoseModeFileCannotBePutBack(t *testing.T) {
	e, f := newEnv(t, "broken")
	wrote := 0
	e.Writer = failingBack{e.Writer, &wrote}
	s := overlapSite(t, "")
	rep, err := SwitchMode(context.Background(), e, s, "broken", Options{})
	if !errors.Is(err, ErrModeNotPutBack) || errors.Is(err, ErrRolledBack) || errors.Is(err, ErrRollbackFailed) || rep.Result != modes.ResultRolledBack {
		t.Fatalf("err = %v, report %+v; want the previous mode serving, not recorded", err, rep)
	}
	if len(f.restarts) != 0 || rep.MainPID != 100 {
		t.Errorf("restarts %v, main PID %d: the old generation serves, and nothing is restarted", f.restarts, rep.MainPID)
	}
	for _, want := range []string{"serves mode normal again", "records mode broken", "no space left on device"} {
		if !strings.Contains(rep.Reason, want) || !strings.Contains(err.Error(), want) {
			t.Errorf("reason %q, error %q: want %q in both", rep.Reason, err, want)
		}
	}
}
