package activation

import (
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// Start puts every child in a process group of its own, whatever
// SysProcAttr the caller filled in: a child that asked for a session of
// its own (which makes it the leader of a group of its own too) starts,
// and one given the Pgid of another group is still stopped, SIGKILL
// included, instead of holding Stop forever.
func TestChildrenOwnGroupWhateverSysProcAttr(t *testing.T) {
	var c Children
	c.Grace = 300 * time.Millisecond
	first := exec.Command("sleep", "60")
	if err := c.Start(first, nil); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	sessionReady, joinedReady := filepath.Join(dir, "session-ready"), filepath.Join(dir, "joined-ready")
	session := exec.Command("sh", "-c", "trap '' TERM; : > "+sessionReady+"; while :; do sleep 0.05; done")
	session.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := c.Start(session, nil); err != nil {
		t.Fatalf("Start with Setsid: %v", err)
	}
	joined := exec.Command("sh", "-c", "trap '' TERM; : > "+joinedReady+"; while :; do sleep 0.05; done")
	joined.SysProcAttr = &syscall.SysProcAttr{Pgid: first.Process.Pid}
	if err := c.Start(joined, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { joined.Process.Kill(); session.Process.Kill() })
	first.Process.Kill()
	waitForFiles(t, sessionReady, joinedReady) // the shells have set their traps
	stopped := make(chan int, 1)
	go func() { stopped <- c.Stop() }()
	select {
	case killed := <-stopped:
		if killed != 2 {
			t.Errorf("killed %d children, want the two that ignore SIGTERM", killed)
		}
	case <-time.After(c.Grace + 5*time.Second):
		t.Fatal("Stop still waits for a child it could not signal")
	}
}

// A child that moved itself to another process group is still signalled.
func TestChildrenStopChildThatLeftItsGroup(t *testing.T) {
	if _, err := exec.LookPath("perl"); err != nil {
		t.Skip("needs perl to call setpgid in the child")
	}
	var c Children
	c.Grace = 300 * time.Millisecond
	// Into the test's own group (same session), ignoring SIGTERM.
	cmd := exec.Command("perl", "-e", `$| = 1; $SIG{TERM} = "IGNORE"; setpgrp(0, getpgrp(getppid())) or die; print "moved\n"; sleep 60`)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(cmd, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	buf := make([]byte, 6)
	if n, err := out.Read(buf); err != nil || string(buf[:n]) != "moved\n" {
		t.Fatalf("the child did not change its group: %q %v", buf[:n], err)
	}
	stopped := make(chan int, 1)
	go func() { stopped <- c.Stop() }()
	select {
	case killed := <-stopped:
		if killed != 1 {
			t.Errorf("killed %d children, want 1", killed)
		}
	case <-time.After(c.Grace + 5*time.Second):
		t.Fatal("Stop still waits for a child that left its process group")
	}
}
