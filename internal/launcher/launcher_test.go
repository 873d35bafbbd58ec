package launcher

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sitectl/sitectl/internal/site"
)

// patience bounds every wait of these tests. The tests wait for events,
// never for a time: this is only how long a broken launcher may hang one.
const patience = 60 * time.Second

// harness runs a launcher whose generations are this test binary (see
// helperGeneration), and records what it tells systemd and the journal.
type harness struct {
	t    *testing.T
	dir  string // runtime directory and generation reports
	cfg  Config
	sigs chan os.Signal
	done chan error // Run's result

	mu     sync.Mutex
	starts []string // GEN_START of each next generation; the last repeats
	spec   func(*Spec)
	events []string // notifications and log lines, in order
	more   chan struct{}
}

func newHarness(t *testing.T, starts ...string) *harness {
	dir, err := os.MkdirTemp("", "launcher-")
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, dir: dir, sigs: make(chan os.Signal, 4), starts: starts, more: make(chan struct{}, 1), spec: func(*Spec) {}}
	ln, err := net.Listen("tcp", "127.0.0.1:0") // a stand-in for the site's socket: never connected to
	if err != nil {
		t.Fatal(err)
	}
	f, _ := ln.(*net.TCPListener).File()
	ln.Close()
	h.cfg = Config{
		Site: "karl", Argv: []string{"app"}, Listeners: []*os.File{f}, Names: []string{"http"},
		RuntimeDir: dir, Shim: []string{os.Args[0]}, Signals: h.sigs, Prepare: h.prepare,
		Notify: func(s string) { h.record("notify: " + s) },
		Logf:   func(format string, args ...any) { h.record("log: " + fmt.Sprintf(format, args...)) },
		Quiet:  Quiet{Max: -1},
	}
	t.Cleanup(func() {
		h.killAll()
		f.Close()
		os.RemoveAll(dir)
	})
	return h
}

func (h *harness) prepare(mode []site.EnvVar) (Spec, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	start := h.starts[0]
	if len(h.starts) > 1 {
		h.starts = h.starts[1:]
	}
	if start == "prepare-fails" {
		return Spec{}, errors.New("the site file is broken")
	}
	name := "m-" + start
	for _, v := range mode {
		if v.Name == "SITE_MODE" {
			name = v.Value
		}
	}
	spec := Spec{Env: append(os.Environ(), "LAUNCHER_TEST_HELPER=generation", "GEN_START="+start, "GEN_REPORT="+h.dir, "SITE_MODE="+name),
		Mode: name, Readiness: site.ReadinessNotify, StartTimeout: patience}
	h.spec(&spec)
	return spec, nil
}

func (h *harness) record(e string) {
	h.mu.Lock()
	h.events = append(h.events, e)
	h.mu.Unlock()
	select {
	case h.more <- struct{}{}:
	default:
	}
}

// run starts the launcher and waits until its first generation serves.
func (h *harness) run() {
	h.done = make(chan error, 1)
	go func() { h.done <- Run(context.Background(), h.cfg) }()
	h.waitFor("notify: READY=1")
}

// waitFor waits for an event that contains s, and returns it.
func (h *harness) waitFor(s string) string {
	h.t.Helper()
	end := time.After(patience)
	for {
		h.mu.Lock()
		for _, e := range h.events {
			if strings.Contains(e, s) {
				h.mu.Unlock()
				return e
			}
		}
		h.mu.Unlock()
		select {
		case <-h.more:
		case err := <-h.done:
			h.done <- err
			h.t.Fatalf("the launcher ended (%v) before %q; events:\n%s", err, s, h.log())
		case <-end:
			h.t.Fatalf("no %q; events:\n%s", s, h.log())
		}
	}
}

func (h *harness) log() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return strings.Join(h.events, "\n")
}

// stop sends SIGTERM and returns Run's result.
func (h *harness) stop() error {
	h.sigs <- syscall.SIGTERM
	return h.result()
}

func (h *harness) result() error {
	select {
	case err := <-h.done:
		h.done <- err
		return err
	case <-time.After(patience):
		h.t.Fatalf("the launcher did not end; events:\n%s", h.log())
		return nil
	}
}

// report is what generation n wrote about itself.
func (h *harness) report(n int) map[string]string {
	h.t.Helper()
	path := filepath.Join(h.dir, "gen-"+strconv.Itoa(n))
	end := time.Now().Add(patience)
	for {
		data, err := os.ReadFile(path)
		if err == nil && strings.HasSuffix(string(data), "\n") {
			out := map[string]string{}
			for _, f := range strings.Fields(string(data)) {
				k, v, _ := strings.Cut(f, "=")
				out[k] = v
			}
			return out
		}
		if time.Now().After(end) {
			h.t.Fatalf("generation %d wrote no report; events:\n%s", n, h.log())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// pidOf is the pid of generation n, as the launcher logged it.
func (h *harness) pidOf(n int) int {
	h.t.Helper()
	e := h.waitFor(fmt.Sprintf("log: started generation %d (pid ", n))
	var pid int
	fmt.Sscanf(e[strings.Index(e, "(pid "):], "(pid %d)", &pid)
	return pid
}

// pids of generation n: its main process and its helpers.
func (h *harness) pids(n int) []int {
	r := h.report(n)
	var out []int
	for _, p := range append([]string{r["pid"]}, strings.Split(r["helpers"], ",")...) {
		if pid, err := strconv.Atoi(p); err == nil {
			out = append(out, pid)
		}
	}
	return out
}

// killAll kills whatever the generations left, whatever the test did.
func (h *harness) killAll() {
	entries, _ := os.ReadDir(h.dir)
	for _, e := range entries {
		if n, ok := strings.CutPrefix(e.Name(), "gen-"); ok {
			i, _ := strconv.Atoi(n)
			for _, pid := range h.pids(i) {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
	if h.done != nil {
		select {
		case h.sigs <- syscall.SIGTERM:
		default:
		}
	}
}

// gone tells whether a process has exited (a zombie counts as exited).
func gone(pid int) bool {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	return err != nil || threadState(string(stat)) == 'Z'
}

func (h *harness) waitGone(pids ...int) {
	h.t.Helper()
	end := time.Now().Add(patience)
	for _, pid := range pids {
		for !gone(pid) {
			if time.Now().After(end) {
				h.t.Fatalf("process %d is still there; events:\n%s", pid, h.log())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// The first generation gets its sockets (LISTEN_PID its own, the probe
// socket after the site's), says READY=1, passes its probe and serves; a
// SIGTERM stops it and Run returns nil.
func TestFirstGenerationServesAndStops(t *testing.T) {
	h := newHarness(t, "ready")
	h.spec = func(s *Spec) { s.Probe = &site.Probe{Path: "/", Status: 200, Timeout: patience} }
	h.run()
	if status := h.waitFor("notify: READY=1"); !strings.Contains(status, "STATUS=mode m-ready, generation 1") {
		t.Errorf("status %q", status)
	}
	r := h.report(1)
	if r["listen_pid"] != r["pid"] || r["listen_fds"] != "2" || r["names"] != "http:sitectl-probe" || r["generation"] != "1" {
		t.Errorf("generation 1 got %v", r)
	}
	if err := h.stop(); err != nil {
		t.Fatalf("Run after SIGTERM: %v", err)
	}
	h.waitFor("notify: STOPPING=1")
	h.waitFor("log: generation 1 exited: status 0")
	h.waitGone(h.pids(1)...)
}

// A reload starts generation 2 beside 1, hands over once 2 is ready, and 1
// drains at the lowest priority and exits; ExecReload= learns "ok".
func TestReloadHandsOver(t *testing.T) {
	h := newHarness(t, "ready", "ready")
	h.run()
	if err := Reload(h.dir, os.Getpid(), nil, nil); err != nil {
		t.Fatalf("reload: %v", err)
	}
	h.waitFor("STATUS=mode m-ready, generation 2")
	h.waitFor(fmt.Sprintf("generation 1 (pid %d) drains at nice %d", h.pids(1)[0], drainPriority))
	h.waitFor("log: generation 1 drained and exited: status 0")
	h.waitGone(h.pids(1)...)
	if err := h.stop(); err != nil {
		t.Fatal(err)
	}
}

// A new generation that dies before it is ready is reported, and the old
// one keeps serving; the next reload works.
func TestNewGenerationDies(t *testing.T) {
	h := newHarness(t, "ready", "die", "ready")
	h.run()
	err := Reload(h.dir, os.Getpid(), nil, nil)
	if err == nil || err.Error() != "generation 2 exited before it was ready: exit status 3" {
		t.Fatalf("reload: %v", err)
	}
	h.waitFor("STATUS=mode m-ready, generation 1; last reload failed: generation 2 exited before it was ready")
	if gone(h.pids(1)[0]) {
		t.Fatal("generation 1 is gone")
	}
	if err := Reload(h.dir, os.Getpid(), nil, nil); err != nil {
		t.Fatalf("the reload after a failed one: %v", err)
	}
	h.waitFor("STATUS=mode m-ready, generation 3")
	if err := h.stop(); err != nil {
		t.Fatal(err)
	}
}

// A new generation that is not ready by its start deadline is stopped.
func TestStartDeadlinePasses(t *testing.T) {
	h := newHarness(t, "ready", "silent")
	h.run()
	h.spec = func(s *Spec) { s.StartTimeout = 200 * time.Millisecond }
	err := Reload(h.dir, os.Getpid(), nil, nil)
	if err == nil || err.Error() != "generation 2 was not ready within 200ms" {
		t.Fatalf("reload: %v", err)
	}
	// Stopped by its SIGTERM, or before it could take it (a slow start):
	// either way it is gone.
	h.waitFor("log: generation 2 stopped: ")
	h.waitGone(h.pidOf(2))
	if gone(h.pids(1)[0]) {
		t.Fatal("generation 1 is gone")
	}
	if err := h.stop(); err != nil {
		t.Fatal(err)
	}
}

// A probe that never passes fails the reload at the deadline.
func TestProbeFails(t *testing.T) {
	h := newHarness(t, "ready", "ready")
	h.run()
	// Without READY=1 to wait for, the probe runs from the start, and
	// fails when the start deadline ends it, whenever that is.
	h.spec = func(s *Spec) {
		s.Readiness = site.ReadinessNone
		s.StartTimeout = 300 * time.Millisecond
		s.Probe = &site.Probe{Path: "/", Status: 204, Timeout: time.Second}
	}
	err := Reload(h.dir, os.Getpid(), nil, nil)
	if err == nil || !strings.HasPrefix(err.Error(), "generation 2 failed its probe: GET http://generation/: ") {
		t.Fatalf("reload: %v", err)
	}
	if err := h.stop(); err != nil {
		t.Fatal(err)
	}
}

// SIGTERM while a new generation starts: the reload ends with "the site is
// stopping", both generations stop, and Run returns nil.
func TestStopDuringReload(t *testing.T) {
	h := newHarness(t, "ready", "silent")
	h.run()
	reloaded := make(chan error, 1)
	go func() { reloaded <- Reload(h.dir, os.Getpid(), nil, nil) }()
	h.report(2)              // generation 2 runs
	h.sigs <- syscall.SIGHUP // a reload is under way: ignored
	h.sigs <- syscall.SIGTERM
	if err := <-reloaded; err == nil || err.Error() != "the site is stopping" {
		t.Fatalf("reload: %v", err)
	}
	if err := h.result(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	h.waitGone(append(h.pids(1), h.pids(2)...)...)
}

// The serving generation dies while its successor starts: the successor
// takes over as soon as it is ready, and the launcher keeps running.
func TestOldGenerationDiesDuringReload(t *testing.T) {
	go1 := filepath.Join(os.TempDir(), fmt.Sprintf("launcher-go-%d", os.Getpid()))
	defer os.Remove(go1)
	h := newHarness(t, "ready", "wait-file:"+go1)
	h.run()
	reloaded := make(chan error, 1)
	go func() { reloaded <- Reload(h.dir, os.Getpid(), nil, nil) }()
	h.report(2)
	old := h.pids(1)[0]
	syscall.Kill(old, syscall.SIGKILL)
	h.waitFor("log: generation 1 exited while generation 2 started: signal: killed")
	os.WriteFile(go1, nil, 0o644)
	if err := <-reloaded; err != nil {
		t.Fatalf("reload: %v", err)
	}
	h.waitFor("STATUS=mode m-wait-file:" + go1 + ", generation 2")
	if err := h.stop(); err != nil {
		t.Fatal(err)
	}
}

// The serving generation dies and its successor does not come up: no
// generation serves, and Run says so.
func TestNoGenerationServes(t *testing.T) {
	h := newHarness(t, "ready", "silent")
	h.run()
	h.spec = func(s *Spec) { s.StartTimeout = time.Hour }
	reloaded := make(chan error, 1)
	go func() { reloaded <- Reload(h.dir, os.Getpid(), nil, nil) }()
	h.report(2)
	syscall.Kill(h.pids(1)[0], syscall.SIGKILL)
	h.waitFor("log: generation 1 exited while generation 2 started")
	syscall.Kill(h.pids(2)[0], syscall.SIGKILL)
	err := <-reloaded
	if err == nil || !strings.Contains(err.Error(), "generation 2 exited before it was ready: signal: killed; and the serving generation died meanwhile") {
		t.Fatalf("reload: %v", err)
	}
	if err := h.result(); !errors.Is(err, errServingDied) {
		t.Fatalf("Run: %v, want errServingDied", err)
	}
}

// The serving generation dies on its own: the launcher ends with an error,
// so that systemd restarts the unit.
func TestServingGenerationDies(t *testing.T) {
	h := newHarness(t, "ready")
	h.run()
	syscall.Kill(h.pids(1)[0], syscall.SIGKILL)
	if err := h.result(); err == nil || err.Error() != "generation 1 exited without being asked: signal: killed" {
		t.Fatalf("Run: %v", err)
	}
	h.waitFor("STATUS=generation 1 exited: signal: killed")
}

// SIGHUP reloads as the control socket does.
func TestSIGHUPReloads(t *testing.T) {
	h := newHarness(t, "ready", "ready")
	h.run()
	h.sigs <- syscall.SIGHUP
	h.waitFor("log: SIGHUP: ok: generation 2 serves in mode m-ready")
	if err := h.stop(); err != nil {
		t.Fatal(err)
	}
}

// A generation without readiness or probe is ready once it kept running
// for the settle time; a ready generation that takes over waits until it
// is quiet.
func TestSettleAndQuiet(t *testing.T) {
	h := newHarness(t, "silent", "silent")
	h.cfg.Settle = 50 * time.Millisecond
	h.cfg.Quiet = Quiet{}
	h.spec = func(s *Spec) { s.Readiness = site.ReadinessNone }
	h.run()
	if err := Reload(h.dir, os.Getpid(), nil, nil); err != nil {
		t.Fatalf("reload: %v", err)
	}
	h.waitFor("STATUS=mode m-silent, generation 2")
	if err := h.stop(); err != nil {
		t.Fatal(err)
	}
}

// A reload carries the mode to reload into, as ExecReload='s root side read
// it from the mode file; a reload without one keeps the serving mode, and a
// reload into a mode that fails to come up leaves the old mode serving.
func TestReloadIntoAMode(t *testing.T) {
	h := newHarness(t, "ready", "ready", "ready", "die", "ready")
	h.cfg.Mode = []site.EnvVar{{Name: "SITE_MODE", Value: "normal"}}
	h.run()
	h.waitFor("STATUS=mode normal, generation 1")
	if err := Reload(h.dir, os.Getpid(), []byte("# a mode file\nSITE_MODE=\"read-only\"\nX=\"a \\\"b\\\"\"\n"), nil); err != nil {
		t.Fatalf("reload into read-only: %v", err)
	}
	h.waitFor("STATUS=mode read-only, generation 2")
	if err := Reload(h.dir, os.Getpid(), nil, nil); err != nil {
		t.Fatalf("reload: %v", err)
	}
	h.waitFor("STATUS=mode read-only, generation 3")
	if err := Reload(h.dir, os.Getpid(), []byte("SITE_MODE=\"maintenance\"\n"), nil); err == nil {
		t.Fatal("a generation that died was taken")
	}
	if err := Reload(h.dir, os.Getpid(), nil, nil); err != nil {
		t.Fatalf("reload after a failed one: %v", err)
	}
	h.waitFor("STATUS=mode read-only, generation 5")
	for _, bad := range []string{"reload 99999999\n", "reload -1\n", "reload 5\nA=\"b", "reload 4\n\"x\n\n", "restart\n"} {
		c, err := net.Dial("unix", filepath.Join(h.dir, "control.sock"))
		if err != nil {
			t.Fatal(err)
		}
		c.Write([]byte(bad))
		c.(*net.UnixConn).CloseWrite()
		buf := make([]byte, 200)
		n, _ := c.Read(buf)
		c.Close()
		if !strings.HasPrefix(string(buf[:n]), "failed: ") {
			t.Errorf("request %q answered %q", bad, buf[:n])
		}
	}
	if err := h.stop(); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(h.log(), "generation 6") {
		t.Errorf("a bad request started a generation:\n%s", h.log())
	}
}

// The seam: a generation that cannot be started, and a spec that cannot
// be made, are errors that say so.
func TestStartAndPrepareFailures(t *testing.T) {
	h := newHarness(t, "ready")
	h.cfg.Start = func(Command) (Process, error) { return nil, errors.New("no such program") }
	if err := Run(context.Background(), h.cfg); err == nil || err.Error() != "cannot start generation 1: no such program" {
		t.Fatalf("Run: %v", err)
	}
	h.waitFor("notify: STATUS=the first generation did not come up: cannot start generation 1")

	h = newHarness(t, "ready", "prepare-fails")
	h.run()
	if err := Reload(h.dir, os.Getpid(), nil, nil); err == nil || err.Error() != "cannot prepare generation 2: the site file is broken" {
		t.Fatalf("reload: %v", err)
	}
	if err := h.stop(); err != nil {
		t.Fatal(err)
	}
}

// A stop before the first generation is ready stops it, and is no error.
func TestStopBeforeTheFirstIsReady(t *testing.T) {
	h := newHarness(t, "silent")
	h.done = make(chan error, 1)
	go func() { h.done <- Run(context.Background(), h.cfg) }()
	h.report(1)
	if err := h.stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	h.waitGone(h.pids(1)...)
}

// The release directory is named by whoever deploys: its name goes into
// STATUS= escaped, so that it cannot end the field and send systemd
// fields of its own (a watchdog that kills the launcher, another main
// PID), nor carry escape sequences to systemctl status.
func TestReleaseNameCannotAddNotifyFields(t *testing.T) {
	release := filepath.Join(t.TempDir(), "r2\nWATCHDOG_USEC=1500000\nMAINPID=1\x1b]0;pwned\a")
	if err := os.Mkdir(release, 0o755); err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, "ready")
	h.spec = func(s *Spec) { s.Dir = release }
	h.run()
	status := h.waitFor("notify: READY=1")
	if err := h.stop(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(status, `r2 WATCHDOG_USEC=1500000 MAINPID=1\x1b]0;pwned\x07`) {
		t.Errorf("status %q does not name the release, escaped", status)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, e := range h.events {
		if !strings.HasPrefix(e, "notify: ") {
			continue
		}
		for _, field := range strings.Split(strings.TrimPrefix(e, "notify: "), "\n") {
			name, _, _ := strings.Cut(field, "=")
			if name == "WATCHDOG_USEC" || name == "MAINPID" || strings.ContainsAny(field, "\x1b\a") {
				t.Errorf("a notification carries %q: %q", field, e)
			}
		}
	}
}

// A probe is retried for the site's probe timeout, not until the start
// deadline: a generation that answers with the wrong status fails its
// start with that answer as soon as the probe timeout has passed.
func TestProbeTimeoutBoundsTheProbe(t *testing.T) {
	h := newHarness(t, "ready", "ready")
	h.run()
	h.spec = func(s *Spec) {
		s.StartTimeout = patience
		s.Probe = &site.Probe{Path: "/", Status: 204, Timeout: 300 * time.Millisecond}
	}
	start := time.Now()
	err := Reload(h.dir, os.Getpid(), nil, nil)
	if err == nil || !strings.HasPrefix(err.Error(), "generation 2 failed its probe: GET http://generation/: status 200, want 204") {
		t.Fatalf("reload: %v", err)
	}
	// Far less than the start deadline (patience), with room for a
	// loaded host.
	if took := time.Since(start); took > patience/3 {
		t.Errorf("the reload failed after %s, with a probe timeout of 300ms", took)
	}
	h.waitFor("log: generation 2 stopped: ")
	if gone(h.pids(1)[0]) {
		t.Fatal("generation 1 is gone")
	}
	if err := h.stop(); err != nil {
		t.Fatal(err)
	}
}
