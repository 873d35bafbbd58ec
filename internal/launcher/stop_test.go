package launcher

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The serving generation dies on its own while generation 1, which
// ignores SIGTERM, drains: systemd is not stopping the unit, so nothing
// but the failsafe bounds the launcher's stop. Generation 1 gets SIGKILL
// after its drain and stop timeouts, and Run ends, so that systemd can
// restart the unit.
func TestServingDiesWhileAStubbornGenerationDrains(t *testing.T) {
	h := newHarness(t, "ignore-term", "ready")
	// Long enough that the serving generation is dead before the failsafe
	// armed at the handover runs out: stopAll is what must take it.
	h.cfg.DrainTimeout, h.cfg.StopTimeout = 2*time.Second, 200*time.Millisecond
	h.run()
	if err := Reload(h.dir, os.Getpid(), nil, nil); err != nil {
		t.Fatalf("reload: %v", err)
	}
	h.waitFor("drains at nice")
	stopsStubborn(h)
}

// Likewise with generation 1 kept warm: a warm generation has no failsafe
// until the stop arms one.
func TestServingDiesWhileAStubbornGenerationIsWarm(t *testing.T) {
	h, _ := warmHarness(t, time.Hour, "ignore-term", "ready")
	h.cfg.DrainTimeout, h.cfg.StopTimeout = 200*time.Millisecond, 200*time.Millisecond
	h.run()
	if err := Reload(h.dir, os.Getpid(), nil, nil); err != nil {
		t.Fatalf("reload: %v", err)
	}
	h.waitFor("stays warm until")
	stopsStubborn(h)
}

// stopsStubborn kills the serving generation 2, and checks that Run ends
// within the drain and stop timeouts (and some slack), having sent SIGKILL
// to generation 1, which ignores SIGTERM.
func stopsStubborn(h *harness) {
	h.t.Helper()
	stubborn := h.pids(1)
	syscall.Kill(h.pids(2)[0], syscall.SIGKILL)
	var err error
	select {
	case err = <-h.done:
		h.done <- err
	case <-time.After(h.cfg.DrainTimeout + h.cfg.StopTimeout + 2*time.Second):
		h.t.Fatalf("the launcher still waits for generation 1 after its drain and stop timeouts; events:\n%s", h.log())
	}
	if err == nil || err.Error() != "generation 2 exited without being asked: signal: killed" {
		h.t.Errorf("Run: %v", err)
	}
	events := h.log()
	stopping := strings.Index(events, "log: stopping: 1 generations drain")
	killed := strings.Index(events, "log: generation 1 still runs 1 processes after the stop timeout (200ms): SIGKILL")
	if stopping < 0 || killed < stopping {
		h.t.Errorf("generation 1 was not sent SIGKILL while the launcher stopped; events:\n%s", events)
	}
	h.waitFor("log: generation 1 exited: signal: killed")
	h.waitGone(stubborn...)
}

// A stop while generation 1 still drains after a handover sends SIGTERM
// to generation 2, which serves, and not again to 1: it was told at the
// handover, and a second SIGTERM is what a server takes for "stop now"
// (activation.Serve closes the connections still in flight). 1 drains to
// its end, within the failsafe armed at the handover.
func TestStopDoesNotSignalADrainingGenerationAgain(t *testing.T) {
	h := newHarness(t, "ready,drain:1s", "ready,drain:100ms")
	h.cfg.DrainTimeout, h.cfg.StopTimeout = 5*time.Second, time.Second
	h.run()
	if err := Reload(h.dir, os.Getpid(), nil, nil); err != nil {
		t.Fatalf("reload: %v", err)
	}
	h.waitFor("drains at nice")
	// Once generation 1 has taken its SIGTERM: a second one sent before
	// would merge with it.
	terms1 := filepath.Join(h.dir, "terms-1")
	for end := time.Now().Add(patience); ; time.Sleep(5 * time.Millisecond) {
		if _, err := os.Stat(terms1); err == nil {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("generation 1 did not take its SIGTERM; events:\n%s", h.log())
		}
	}
	if err := h.stop(); err != nil {
		t.Fatalf("Run after SIGTERM: %v", err)
	}
	h.waitFor("log: generation 1 exited: status 0")
	h.waitFor("log: generation 2 exited: status 0")
	for n, want := range map[int]string{1: "SIGTERM\n", 2: "SIGTERM\n"} {
		got, _ := os.ReadFile(filepath.Join(h.dir, "terms-"+strconv.Itoa(n)))
		if string(got) != want {
			t.Errorf("generation %d got %q, want %q; events:\n%s", n, got, want, h.log())
		}
	}
}

// A generation whose main process exited during the wait for quiet is not
// handed the site: the watch finds no process of it and would say it
// settled, and its exit may reach the launcher's queue after that
// sample, or wait there beside it (the next event taken is a random one
// of those ready). Here it has not reached the queue yet.
func TestDeadGenerationDoesNotTakeOver(t *testing.T) {
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	g := &generation{n: 2, pid: cmd.Process.Pid, exited: make(chan struct{})}
	close(g.exited)
	tick := make(chan time.Time, 1)
	tick <- time.Now()
	var logged []string
	l := &launcher{current: &generation{n: 1, pid: os.Getpid()}, exits: make(chan *generation),
		cfg: Config{Logf: func(f string, a ...any) { logged = append(logged, fmt.Sprintf(f, a...)) }}}
	s := &startup{l: l, g: g, quietTick: tick, watch: newQuietWatch(Quiet{}, g.pid, os.Getpid())}
	done, err := s.step()
	if !done || err == nil || !strings.Contains(err.Error(), "generation 2 exited before it took over") {
		t.Errorf("a sample after the generation exited: done %v, %v; logged %q", done, err, logged)
	}
}

// A new generation whose main process dies before it is ready, leaving a
// worker that ignores SIGTERM, is discarded with its worker: the worker
// holds the shared listeners and would take visitors for a generation
// that never served until the unit stopped. It gets SIGTERM at once and
// SIGKILL after the stop timeout; generation 1 serves on.
func TestDiscardedGenerationLeavesNothingRunning(t *testing.T) {
	h := newHarness(t, "ready", "worker,ignore-term,die-late")
	h.cfg.StopTimeout = 300 * time.Millisecond
	h.run()
	err := Reload(h.dir, os.Getpid(), nil, nil)
	if err == nil || !strings.Contains(err.Error(), "generation 2 exited before it was ready") {
		t.Fatalf("reload: %v", err)
	}
	pids := h.pids(2)
	if len(pids) != 2 {
		t.Fatalf("generation 2's processes: %v", pids)
	}
	h.waitFor("log: generation 2 left 1 processes running after its main process exited: SIGTERM")
	h.waitFor("log: generation 2, which did not take over, was killed after the stop timeout")
	h.waitGone(pids[1])
	if st, _ := AskStatus(context.Background(), h.dir, os.Getpid()); st.Serving == nil || st.Serving.Generation != 1 {
		t.Errorf("after the failed reload: %+v, want generation 1 serving", st)
	}
	if err := h.stop(); err != nil {
		t.Fatal(err)
	}
}
