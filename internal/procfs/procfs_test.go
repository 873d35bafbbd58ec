package procfs

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// A child's environment reads back as it was given; a process started
// just now is young, and grows older.
func TestEnvironAndAge(t *testing.T) {
	cmd := exec.Command("sleep", "30")
	cmd.Env = []string{"SITE_MODE=read-only", "A=with spaces and = signs", "EMPTY="}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	// Start returns once the child is forked; until it has exec'd sleep,
	// its environment is not yet the one it was given.
	env, err := Environ(cmd.Process.Pid)
	for end := time.Now().Add(10 * time.Second); err == nil && !slices.Equal(env, cmd.Env) && time.Now().Before(end); {
		time.Sleep(10 * time.Millisecond)
		env, err = Environ(cmd.Process.Pid)
	}
	if err != nil || !slices.Equal(env, cmd.Env) {
		t.Fatalf("Environ = %q, %v; want %q", env, err, cmd.Env)
	}
	age, err := Age(cmd.Process.Pid)
	if err != nil || age < 0 || age > time.Minute {
		t.Fatalf("Age of a process started just now = %s, %v", age, err)
	}
	self, err := Age(os.Getpid())
	if err != nil || self < age {
		t.Fatalf("Age of this test (started before the child) = %s, %v; the child's %s", self, err, age)
	}
	if _, err := Environ(1 << 30); err == nil {
		t.Error("the environment of a process that does not exist was read")
	}
}

func TestStartTicks(t *testing.T) {
	for line, want := range map[string]int64{
		"1234 (a) b) c) S 1 1234 1234 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 98765 1 2 3\n": 98765,
		"7 (sh) R 1 7 7 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 42 0 0\n":                          42,
	} {
		if got, err := startTicks([]byte(line)); got != want || err != nil {
			t.Errorf("%q: %d, %v; want %d", line, got, err, want)
		}
	}
	for _, bad := range []string{"", "1 (x", "1 (x) S 1 2"} {
		if _, err := startTicks([]byte(bad)); err == nil {
			t.Errorf("%q was read", bad)
		}
	}
}

// SessionPSS sums the processes of one session, and only those.
func TestSessionPSS(t *testing.T) {
	dir := t.TempDir()
	proc := func(pid, sid int, pss string) {
		p := filepath.Join(dir, strconv.Itoa(pid))
		os.Mkdir(p, 0o755)
		os.WriteFile(filepath.Join(p, "stat"), []byte(fmt.Sprintf("%d (a b) S 1 %d %d 0 -1", pid, sid, sid)), 0o644)
		os.WriteFile(filepath.Join(p, "smaps_rollup"), []byte("00400000-7ffd r--p 00000000 00:00 0 [rollup]\nRss: 9000 kB\nPss:                1024 kB\n"+pss), 0o644)
	}
	proc(10, 10, "")
	proc(11, 10, "")
	proc(12, 12, "")
	os.Mkdir(filepath.Join(dir, "self"), 0o755)
	old := Root
	Root = dir
	defer func() { Root = old }()
	n, procs, err := SessionPSS(context.Background(), 10)
	if err != nil || n != 2048<<10 || procs != 2 {
		t.Errorf("SessionPSS(10) = %d, %d, %v; want 2 MiB of 2 processes", n, procs, err)
	}
	if _, _, err := SessionPSS(context.Background(), 99); err == nil {
		t.Error("SessionPSS of a session with no process: no error")
	}
	Root = old
	sid, _ := unix.Getsid(0)
	if n, procs, err := SessionPSS(context.Background(), sid); err != nil || n <= 0 || procs < 1 {
		t.Errorf("SessionPSS of this test's session = %d, %d, %v", n, procs, err)
	}
}

// SessionPSS reads every process on the host: a status that is cancelled,
// or out of time, stops it.
func TestSessionPSSHonoursItsContext(t *testing.T) {
	dir := t.TempDir()
	for pid := 10; pid < 20; pid++ {
		p := filepath.Join(dir, strconv.Itoa(pid))
		os.Mkdir(p, 0o755)
		os.WriteFile(filepath.Join(p, "stat"), []byte(fmt.Sprintf("%d (a) S 1 10 10 0 -1", pid)), 0o644)
		os.WriteFile(filepath.Join(p, "smaps_rollup"), []byte("Pss: 4 kB\n"), 0o644)
	}
	old := Root
	Root = dir
	defer func() { Root = old }()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if n, procs, err := SessionPSS(ctx, 10); !errors.Is(err, context.Canceled) || n != 0 || procs != 0 {
		t.Errorf("SessionPSS with a cancelled context = %d, %d, %v; want %v", n, procs, err, context.Canceled)
	}
}

// ReadBounded reads a file up to its limit, and nothing of a larger one,
// which it reads no further than the limit: not even an endless one.
func TestReadBounded(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	const limit = 1 << 10
	data := bytes.Repeat([]byte("x"), limit)
	write := func(data []byte) {
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(data)
	if got, err := ReadBounded(path, limit); err != nil || !bytes.Equal(got, data) {
		t.Errorf("a file of the limit: %d bytes, %v", len(got), err)
	}
	write(append(data, 'x'))
	if got, err := ReadBounded(path, limit); err == nil || got != nil {
		t.Errorf("a file of the limit and a byte: %d bytes, %v; want an error and nothing", len(got), err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := ReadBounded("/dev/zero", limit)
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Error("/dev/zero was read")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("ReadBounded of /dev/zero did not end")
	}
	if _, err := ReadBounded(filepath.Join(t.TempDir(), "none"), limit); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a file that does not exist: %v, want fs.ErrNotExist", err)
	}
}

// A process that exited and is not reaped yet is Exited (its environ reads
// empty then); a running one is not.
func TestExited(t *testing.T) {
	cmd := exec.Command("sh", "-c", "exit 0")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	if exited, err := Exited(os.Getpid()); err != nil || exited {
		t.Errorf("this test: exited %v, %v", exited, err)
	}
	exited, err := Exited(cmd.Process.Pid)
	for end := time.Now().Add(10 * time.Second); err == nil && !exited && time.Now().Before(end); {
		time.Sleep(10 * time.Millisecond)
		exited, err = Exited(cmd.Process.Pid)
	}
	if err != nil || !exited {
		t.Errorf("a child that exited, not waited for: exited %v, %v", exited, err)
	}
	// Its environment reads empty (Linux 6.1), or not at all (6.18).
	if env, err := Environ(cmd.Process.Pid); len(env) != 0 || err != nil && !errors.Is(err, syscall.ESRCH) {
		t.Errorf("its environment: %q, %v; want it empty or ESRCH", env, err)
	}
}

// A session is stopped when its leader and every other process of it are
// (a zombie runs nothing either); one running process of it, or a running
// leader, is not; processes of other sessions do not count.
func TestSessionStopped(t *testing.T) {
	dir := t.TempDir()
	proc := func(pid, sid int, state string) {
		p := filepath.Join(dir, strconv.Itoa(pid))
		os.Mkdir(p, 0o755)
		os.WriteFile(filepath.Join(p, "stat"), []byte(fmt.Sprintf("%d (a) b) %s 1 %d %d 0 -1", pid, state, sid, sid)), 0o644)
	}
	proc(10, 10, "T") // leader and workers stopped, one of them a zombie
	proc(11, 10, "T")
	proc(12, 10, "Z")
	proc(20, 20, "T") // a stopped leader, one worker running
	proc(21, 20, "T")
	proc(22, 20, "S")
	proc(30, 30, "S") // a running leader, its worker traced
	proc(31, 30, "t")
	proc(40, 40, "t") // a traced leader alone, beside other sessions
	os.Mkdir(filepath.Join(dir, "self"), 0o755)
	old := Root
	Root = dir
	defer func() { Root = old }()
	for sid, want := range map[int]bool{10: true, 20: false, 30: false, 40: true} {
		if got, err := SessionStopped(context.Background(), sid); err != nil || got != want {
			t.Errorf("SessionStopped(%d) = %v, %v; want %v", sid, got, err, want)
		}
	}
	if got, err := SessionStopped(context.Background(), 99); err == nil || got {
		t.Errorf("SessionStopped of a process that is not there = %v, %v; want an error", got, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if got, err := SessionStopped(ctx, 10); !errors.Is(err, context.Canceled) || got {
		t.Errorf("SessionStopped with a cancelled context = %v, %v; want %v", got, err, context.Canceled)
	}
}

// On the real /proc: a child in a session of its own is stopped by
// SIGSTOP, with its own child, and runs again after SIGCONT.
func TestSessionStoppedBySignal(t *testing.T) {
	// The shell says "forked" once its child is there.
	cmd := exec.Command("sh", "-c", "sleep 60 & echo forked; wait")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); cmd.Wait() }()
	if line, err := bufio.NewReader(out).ReadString('\n'); line != "forked\n" {
		t.Fatalf("the shell said %q, %v", line, err)
	}
	pid := cmd.Process.Pid
	wait := func(want bool) {
		t.Helper()
		got, err := SessionStopped(context.Background(), pid)
		for end := time.Now().Add(10 * time.Second); err == nil && got != want && time.Now().Before(end); {
			time.Sleep(10 * time.Millisecond)
			got, err = SessionStopped(context.Background(), pid)
		}
		if err != nil || got != want {
			t.Errorf("SessionStopped(%d) = %v, %v; want %v", pid, got, err, want)
		}
	}
	wait(false)
	syscall.Kill(pid, syscall.SIGSTOP) // the shell alone: its sleep runs on
	time.Sleep(50 * time.Millisecond)
	wait(false)
	syscall.Kill(-pid, syscall.SIGSTOP) // the whole session
	wait(true)
	if st, err := State(pid); err != nil || !Stopped(st) {
		t.Errorf("State(%d) = %q, %v; want stopped", pid, st, err)
	}
	syscall.Kill(-pid, syscall.SIGCONT)
	wait(false)
}

// A read of a process's memory that does not end (here a FIFO nobody
// writes; in life a page the process holds up) is given up after
// MemoryReadWait, with ErrSlowRead, instead of hanging its reader:
// sitectl's switch, status or the launcher's failsafe.
func TestEnvironReadIsBoundedInTime(t *testing.T) {
	dir := t.TempDir()
	os.Mkdir(filepath.Join(dir, "7"), 0o755)
	fifo := filepath.Join(dir, "7", "environ")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	// Let the blocked open end once the test is over.
	defer func() {
		if f, err := os.OpenFile(fifo, os.O_WRONLY|unix.O_NONBLOCK, 0); err == nil {
			f.Close()
		}
	}()
	old, oldWait := Root, MemoryReadWait
	Root, MemoryReadWait = dir, 100*time.Millisecond
	defer func() { Root, MemoryReadWait = old, oldWait }()
	done := make(chan error, 1)
	start := time.Now()
	go func() {
		_, err := Environ(7)
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, ErrSlowRead) {
			t.Errorf("Environ of a process whose memory does not answer: %v; want ErrSlowRead", err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("it took %v", d)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Environ of a process whose memory does not answer has not returned after 10s")
	}
}
