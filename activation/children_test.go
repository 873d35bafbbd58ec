package activation

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestChildrenStopGracefullyThenKill(t *testing.T) {
	dir := t.TempDir()
	marker := filepath.Join(dir, "released")
	politeReady, stubbornReady := filepath.Join(dir, "polite-ready"), filepath.Join(dir, "stubborn-ready")
	var c Children
	c.Grace = 500 * time.Millisecond
	// One child releases its resource on SIGTERM; one ignores SIGTERM.
	polite := exec.Command("sh", "-c", "trap 'echo done > "+marker+"; exit 0' TERM; : > "+politeReady+"; while :; do sleep 0.05; done")
	stubborn := exec.Command("sh", "-c", "trap '' TERM; : > "+stubbornReady+"; while :; do sleep 0.05; done")
	exits := make(chan error, 2)
	for _, cmd := range []*exec.Cmd{polite, stubborn} {
		if err := c.Start(cmd, func(err error) { exits <- err }); err != nil {
			t.Fatal(err)
		}
	}
	waitForFiles(t, politeReady, stubbornReady) // the shells have set their traps
	if c.Len() != 2 {
		t.Fatalf("%d children running, want 2", c.Len())
	}
	start := time.Now()
	killed := c.Stop()
	took := time.Since(start)
	if killed != 1 {
		t.Errorf("killed %d children, want the one that ignores SIGTERM", killed)
	}
	if took < 450*time.Millisecond || took > 3*time.Second {
		t.Errorf("Stop took %s, want about the grace of 500ms", took)
	}
	if b, err := os.ReadFile(marker); err != nil || strings.TrimSpace(string(b)) != "done" {
		t.Errorf("the polite child did not release its resource: %q %v", b, err)
	}
	if c.Len() != 0 {
		t.Errorf("%d children left", c.Len())
	}
	for i := 0; i < 2; i++ {
		<-exits
	}
	if err := c.Start(exec.Command("true"), nil); err != ErrStopped {
		t.Errorf("Start after Stop: %v, want ErrStopped", err)
	}
}

// A child whose output goes to a bytes.Buffer (copied through a pipe) and
// that leaves a process of a session of its own holding that pipe, out of
// reach of Stop's signals, does not hold Stop beyond the grace and
// childWaitDelay.
func TestChildrenStopWithOutputHeldOpen(t *testing.T) {
	var c Children
	c.Grace = 500 * time.Millisecond
	var out bytes.Buffer
	dir := t.TempDir()
	pidFile, ready := filepath.Join(dir, "pid"), filepath.Join(dir, "ready")
	cmd := exec.Command("sh", "-c", "setsid sleep 60 & echo $! > "+pidFile+"; echo started; : > "+ready+"; while :; do sleep 0.05; done")
	cmd.Stdout = &out
	t.Cleanup(func() {
		if b, err := os.ReadFile(pidFile); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
	exited := make(chan error, 1)
	if err := c.Start(cmd, func(err error) { exited <- err }); err != nil {
		t.Fatal(err)
	}
	waitForFiles(t, ready) // the shell started the sleep and wrote its line
	start := time.Now()
	stopped := make(chan struct{})
	go func() { c.Stop(); close(stopped) }()
	limit := c.Grace + childWaitDelay + time.Second
	select {
	case <-stopped:
		if took := time.Since(start); took > limit {
			t.Errorf("Stop took %s, want at most %s", took, limit)
		}
	case <-time.After(limit + 2*time.Second):
		t.Fatalf("Stop still waits after %s for a pipe another session holds", limit+2*time.Second)
	}
	if err := <-exited; err == nil {
		t.Error("the child killed by SIGTERM exited without an error")
	}
	if got := out.String(); got != "started\n" {
		t.Errorf("the child's output %q, want what it wrote before it was stopped", got)
	}
}

// waitForFiles waits until every one of files exists: a child started
// under a loaded host may take far longer than usual to get there.
func waitForFiles(t *testing.T, files ...string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for _, f := range files {
		for {
			if _, err := os.Stat(f); err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s did not appear within 10s", f)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}
