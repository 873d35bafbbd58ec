package launcher

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// fakeSteering records the launcher's flips and quiesces.
type fakeSteering struct {
	mu       sync.Mutex
	calls    []string
	failNext bool // the next steer fails
}

func (f *fakeSteering) steer(side int) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failNext {
		f.failNext = false
		f.calls = append(f.calls, fmt.Sprintf("steer %d failed", side))
		return errors.New("setsockopt refused")
	}
	f.calls = append(f.calls, fmt.Sprintf("steer %d", side))
	return nil
}

func (f *fakeSteering) quiesce(_ context.Context, side int) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, fmt.Sprintf("quiesce %d", side))
	return nil
}

func (f *fakeSteering) log() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// warmHarness is a harness whose site has two sockets of one address,
// side 0 (listener 0, "http") and side 1 (listener 1, "http"), steered by
// a fake.
func warmHarness(t *testing.T, keep time.Duration, starts ...string) (*harness, *fakeSteering) {
	h := newHarness(t, starts...)
	ln, err := net.Listen("tcp", "127.0.0.1:0") // never connected to
	if err != nil {
		t.Fatal(err)
	}
	f, _ := ln.(*net.TCPListener).File()
	ln.Close()
	t.Cleanup(func() { f.Close() })
	h.cfg.Listeners = append(h.cfg.Listeners, f)
	h.cfg.Names = append(h.cfg.Names, "http")
	h.cfg.KeepPrevious = keep
	fake := &fakeSteering{}
	h.cfg.standby = func(context.Context, []*os.File) (*standby, error) {
		return &standby{steer: fake, sides: [2]map[int]bool{{0: true}, {1: true}}}, nil
	}
	return h, fake
}

func wantCalls(t *testing.T, fake *fakeSteering, want ...string) {
	t.Helper()
	if got := fake.log(); !slices.Equal(got, want) {
		t.Errorf("steering calls %q, want %q", got, want)
	}
}

// After a reload the previous generation stays warm (running, keep-alive
// off, on its own side, which gets no new connections); a rollback flips
// back to it, turns its keep-alive on, and drains the newer one once its
// side is quiet.
func TestWarmRollback(t *testing.T) {
	h, fake := warmHarness(t, time.Hour, "keepalive", "keepalive")
	h.run()
	if r := h.report(1); r["listen_fds"] != "1" {
		t.Errorf("generation 1 got %s sockets, want its side's one", r["listen_fds"])
	}
	if err := Reload(h.dir, os.Getpid(), nil, nil); err != nil {
		t.Fatalf("reload: %v", err)
	}
	h.waitFor("generation 1 (pid ")
	h.waitFor("stays warm until")
	wantCalls(t, fake, "steer 1")
	if r := h.report(2); r["listen_fds"] != "1" {
		t.Errorf("generation 2 got %s sockets, want its side's one", r["listen_fds"])
	}
	if ka := readFile(t, h.dir, "keepalive-1"); ka != "0" {
		t.Errorf("the warm generation's keep-alive is %q, want 0 (off)", ka)
	}
	st, err := AskStatus(context.Background(), h.dir, os.Getpid())
	if err != nil || st.Warm == nil || st.Warm.Generation != 1 || st.Serving.Generation != 2 || !st.Warm.Until.After(st.Warm.Since) {
		t.Fatalf("status %+v %v, want generation 2 serving and 1 warm", st, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	answer, err := Rollback(ctx, h.dir, os.Getpid(), 0)
	if err != nil || !strings.HasPrefix(answer, "generation 1 serves again in mode m-keepalive, flipped in ") {
		t.Fatalf("rollback: %q, %v", answer, err)
	}
	h.waitFor("log: generation 2 drained and exited")
	wantCalls(t, fake, "steer 1", "steer 0", "quiesce 1")
	if ka := readFile(t, h.dir, "keepalive-1"); ka != "1" {
		t.Errorf("keep-alive of the generation rolled back to is %q, want 1 (on)", ka)
	}
	if ka := readFile(t, h.dir, "keepalive-2"); ka != "0" {
		t.Errorf("keep-alive of the generation rolled back from is %q, want 0 (off) before it drains", ka)
	}
	if gone(h.pids(1)[0]) {
		t.Fatal("generation 1 is gone; it was to serve again")
	}
	if _, err := Rollback(ctx, h.dir, os.Getpid(), 0); err == nil || !strings.Contains(err.Error(), "no warm generation (generation 2 was rolled back from)") {
		t.Errorf("a second rollback: %v", err)
	}
	if err := h.stop(); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, dir, name string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// A rollback with no generation warm fails with the reason, and changes
// nothing.
func TestRollbackWithoutWarm(t *testing.T) {
	h, fake := warmHarness(t, time.Hour, "ready")
	h.run()
	_, err := Rollback(context.Background(), h.dir, os.Getpid(), 0)
	if err == nil || !strings.Contains(err.Error(), "no warm generation (none kept yet)") {
		t.Fatalf("rollback: %v", err)
	}
	wantCalls(t, fake)
	if err := h.stop(); err != nil {
		t.Fatal(err)
	}
}

// The warm generation drains by itself once keep_previous ran out; a
// rollback then says so.
func TestWarmExpires(t *testing.T) {
	h, fake := warmHarness(t, 10*time.Millisecond, "ready", "ready")
	h.run()
	if err := Reload(h.dir, os.Getpid(), nil, nil); err != nil {
		t.Fatalf("reload: %v", err)
	}
	h.waitFor("log: warm generation 1 drains: keep_previous 10ms ran out")
	h.waitFor("notify: STATUS=mode m-ready, generation 2, 1 draining")
	h.waitFor("log: generation 1 drained and exited")
	wantCalls(t, fake, "steer 1", "quiesce 0")
	_, err := Rollback(context.Background(), h.dir, os.Getpid(), 0)
	if err == nil || !strings.Contains(err.Error(), "no warm generation (generation 1 was drained: keep_previous 10ms ran out)") {
		t.Fatalf("rollback: %v", err)
	}
	if err := h.stop(); err != nil {
		t.Fatal(err)
	}
}

// A warm generation that dies is reported, and a rollback then fails with
// that reason (sitectl rollback goes cold).
func TestWarmGenerationDies(t *testing.T) {
	h, _ := warmHarness(t, time.Hour, "ready", "ready")
	h.run()
	if err := Reload(h.dir, os.Getpid(), nil, nil); err != nil {
		t.Fatalf("reload: %v", err)
	}
	h.waitFor("stays warm until")
	syscall.Kill(h.pids(1)[0], syscall.SIGKILL)
	h.waitFor("log: warm generation 1 exited: signal: killed")
	_, err := Rollback(context.Background(), h.dir, os.Getpid(), 0)
	if err == nil || !strings.Contains(err.Error(), "no warm generation (warm generation 1 exited: signal: killed)") {
		t.Fatalf("rollback: %v", err)
	}
	if err := h.stop(); err != nil {
		t.Fatal(err)
	}
}

// The next reload drains the warm generation first (it holds the side the
// new one needs), and a reload whose flip fails discards the new
// generation and leaves the serving one serving.
func TestWarmReloadRetiresAndFlipFails(t *testing.T) {
	h, fake := warmHarness(t, time.Hour, "ready")
	h.run()
	if err := Reload(h.dir, os.Getpid(), nil, nil); err != nil {
		t.Fatalf("reload: %v", err)
	}
	if err := Reload(h.dir, os.Getpid(), nil, nil); err != nil {
		t.Fatalf("second reload: %v", err)
	}
	h.waitFor("log: warm generation 1 drains: a reload needs its side")
	h.waitFor("log: generation 1 drained and exited")
	wantCalls(t, fake, "steer 1", "quiesce 0", "steer 0")
	fake.mu.Lock()
	fake.failNext = true
	fake.mu.Unlock()
	err := Reload(h.dir, os.Getpid(), nil, nil)
	if err == nil || !strings.Contains(err.Error(), "setsockopt refused") {
		t.Fatalf("reload with a failing flip: %v", err)
	}
	h.waitFor("log: generation 4 stopped")
	h.waitFor("last reload failed: cannot steer new connections to side 1: setsockopt refused")
	// systemd was told the reload began (RELOADING=1): it must be told it
	// ended, or the unit stays "reloading" until its start timeout.
	// Generation 2, drained for the reload, may still be draining then
	// ("generation 3, 1 draining; last reload failed: ...").
	events := h.log()
	last := strings.LastIndex(events, "notify: RELOADING=1")
	ready := regexp.MustCompile(`notify: READY=1\nSTATUS=mode m-ready, generation 3(, 1 draining)?; last reload failed: cannot steer new connections to side 1: setsockopt refused`)
	if last < 0 || !ready.MatchString(events[last:]) {
		t.Errorf("no READY=1 after the failed flip's RELOADING=1; events:\n%s", events)
	}
	st, _ := AskStatus(context.Background(), h.dir, os.Getpid())
	if st.Serving == nil || st.Serving.Generation != 3 || st.Warm != nil {
		t.Errorf("after a failed flip: %+v, want 3 serving, none warm (2 was drained for the reload)", st)
	}
	if err := h.stop(); err != nil {
		t.Fatal(err)
	}
}

// reuseListener is a plain TCP listener with SO_REUSEPORT on addr, as a
// socket unit with ReusePort=yes makes them, as a file.
func reuseListener(t *testing.T, addr string) *os.File {
	t.Helper()
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		c.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, 0xf /* SO_REUSEPORT */, 1) })
		return serr
	}}
	lc.SetMultipathTCP(false)
	ln, err := lc.Listen(context.Background(), "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	f, err := ln.(*net.TCPListener).File()
	ln.Close()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// newStandby pairs the two sockets of an address, verifies their order
// and gives side 0 the first; a listener without a twin means no standby,
// with the reason.
func TestNewStandby(t *testing.T) {
	a := reuseListener(t, "127.0.0.1:0")
	la, err := net.FileListener(a)
	if err != nil {
		t.Fatal(err)
	}
	addr := la.Addr().String()
	la.Close()
	b := reuseListener(t, addr)
	st, err := newStandby(context.Background(), []*os.File{a, b})
	if err != nil {
		t.Fatalf("newStandby: %v", err)
	}
	if st.serving != 0 || st.shared || !st.sides[0][0] || !st.sides[1][1] || len(st.sides[0]) != 1 || len(st.sides[1]) != 1 {
		t.Errorf("standby %+v", st)
	}
	lone := reuseListener(t, "127.0.0.1:0")
	if _, err := newStandby(context.Background(), []*os.File{a, b, lone}); err == nil || !strings.Contains(err.Error(), "listener 2") || !strings.Contains(err.Error(), "has no second socket") {
		t.Errorf("a listener without a twin: %v", err)
	}
}

// A generation warm a second time (rolled back to, then replaced again)
// stays warm for keep_previous from its second handover: the timer of its
// first warm spell, which the rollback ended, does not drain it early.
func TestWarmAgainKeepsItsOwnTime(t *testing.T) {
	const keep = 2 * time.Second
	h, _ := warmHarness(t, keep, "ready")
	h.run()
	if err := Reload(h.dir, os.Getpid(), nil, nil); err != nil {
		t.Fatalf("reload: %v", err)
	}
	st, _ := AskStatus(context.Background(), h.dir, os.Getpid())
	if st.Warm == nil || st.Warm.Generation != 1 {
		t.Fatalf("status %+v, want generation 1 warm", st)
	}
	firstUntil := st.Warm.Until
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	if _, err := Rollback(ctx, h.dir, os.Getpid(), 0); err != nil {
		t.Fatalf("rollback: %v", err)
	}
	time.Sleep(keep / 2)
	if err := Reload(h.dir, os.Getpid(), nil, nil); err != nil {
		t.Fatalf("second reload: %v", err)
	}
	st, _ = AskStatus(context.Background(), h.dir, os.Getpid())
	if st.Warm == nil || st.Warm.Generation != 1 || !st.Warm.Until.After(firstUntil.Add(keep/4)) {
		t.Fatalf("status %+v, want generation 1 warm again, until well after %s", st, firstUntil)
	}
	time.Sleep(time.Until(firstUntil.Add(300 * time.Millisecond)))
	st, _ = AskStatus(context.Background(), h.dir, os.Getpid())
	if st.Warm == nil || st.Warm.Generation != 1 {
		t.Errorf("status %+v before its second keep_previous ran out, want generation 1 still warm; events:\n%s", st, h.log())
	}
	if err := h.stop(); err != nil {
		t.Fatal(err)
	}
}

// A rollback whose asker gave up while it waited for a reload (its time
// ran out, and sitectl then said so and went on) is not done afterwards:
// flipping back then would undo that reload, which nobody asked to undo,
// after sitectl reported what it did instead.
func TestRollbackGivenUpIsNotDone(t *testing.T) {
	goOn := filepath.Join(t.TempDir(), "go-on")
	h, fake := warmHarness(t, time.Hour, "ready", "ready", "wait-file:"+goOn)
	h.run()
	if err := Reload(h.dir, os.Getpid(), nil, nil); err != nil {
		t.Fatalf("reload: %v", err)
	}
	reloaded := make(chan error, 1)
	go func() { reloaded <- Reload(h.dir, os.Getpid(), nil, nil) }()
	h.waitFor("started generation 3")
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if answer, err := Rollback(ctx, h.dir, os.Getpid(), 0); err == nil {
		t.Fatalf("a rollback while a reload runs answered %q before its time ran out", answer)
	}
	os.WriteFile(goOn, nil, 0o644)
	if err := <-reloaded; err != nil {
		t.Fatalf("second reload: %v", err)
	}
	// The rollback given up on would come right after the reload.
	time.Sleep(300 * time.Millisecond)
	st, _ := AskStatus(context.Background(), h.dir, os.Getpid())
	if st.Serving == nil || st.Serving.Generation != 3 || st.Warm == nil || st.Warm.Generation != 2 {
		t.Errorf("status %+v, want generation 3 serving and 2 warm; events:\n%s", st, h.log())
	}
	wantCalls(t, fake, "steer 1", "quiesce 0", "steer 0")
	if err := h.stop(); err != nil {
		t.Fatal(err)
	}
}

// A rollback names the warm generation its asker checked. One that waited
// for a reload meanwhile finds the generation that reload replaced warm
// instead, and flips to nothing: a flip to that one would undo the
// reload, not what the asker meant to undo, and sitectl, checking the
// mode alone, would report the generation it checked serving again.
func TestRollbackToAGenerationNoLongerWarm(t *testing.T) {
	goOn := filepath.Join(t.TempDir(), "go-on")
	h, fake := warmHarness(t, time.Hour, "ready", "ready", "wait-file:"+goOn)
	h.run()
	if err := Reload(h.dir, os.Getpid(), nil, nil); err != nil {
		t.Fatalf("reload: %v", err)
	}
	st, _ := AskStatus(context.Background(), h.dir, os.Getpid())
	if st.Warm == nil || st.Warm.Generation != 1 {
		t.Fatalf("status %+v, want generation 1 warm", st)
	}
	checked := st.Warm.PID
	reloaded := make(chan error, 1)
	go func() { reloaded <- Reload(h.dir, os.Getpid(), nil, nil) }()
	h.waitFor("started generation 3")
	type result struct {
		answer string
		err    error
	}
	rolled := make(chan result, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), patience)
		defer cancel()
		answer, err := Rollback(ctx, h.dir, os.Getpid(), checked)
		rolled <- result{answer, err}
	}()
	time.Sleep(200 * time.Millisecond) // the rollback waits for the reload
	os.WriteFile(goOn, nil, 0o644)
	if err := <-reloaded; err != nil {
		t.Fatalf("second reload: %v", err)
	}
	r := <-rolled
	if r.err == nil || !strings.Contains(r.err.Error(), fmt.Sprintf("no warm generation with pid %d: generation 2", checked)) {
		t.Errorf("rollback to pid %d, no longer warm: %q, %v", checked, r.answer, r.err)
	}
	st, _ = AskStatus(context.Background(), h.dir, os.Getpid())
	if st.Serving == nil || st.Serving.Generation != 3 || st.Warm == nil || st.Warm.Generation != 2 {
		t.Fatalf("status %+v, want generation 3 serving and 2 warm; events:\n%s", st, h.log())
	}
	wantCalls(t, fake, "steer 1", "quiesce 0", "steer 0")
	// The one warm now, named, is flipped back to.
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	if answer, err := Rollback(ctx, h.dir, os.Getpid(), st.Warm.PID); err != nil || !strings.HasPrefix(answer, "generation 2 serves again") {
		t.Errorf("rollback to the warm generation: %q, %v", answer, err)
	}
	if err := h.stop(); err != nil {
		t.Fatal(err)
	}
}
