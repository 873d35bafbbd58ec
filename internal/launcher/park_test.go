package launcher

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestThreadState(t *testing.T) {
	for stat, want := range map[string]byte{
		"42 (uwsgi) T 1 42 42 0 -1":         'T',
		"42 (a) b) (c) S 1 2 3":             'S',
		"7 (python3 -m gunicorn) R 1 7 7 0": 'R',
		"42 (x)":                            0,
		"garbage":                           0,
	} {
		if got := threadState(stat); got != want {
			t.Errorf("threadState(%q) = %q, want %q", stat, got, want)
		}
	}
}

func TestWaitingAndPendingFromProc(t *testing.T) {
	if len(waitSyscalls) == 0 {
		t.Skip("no system call table for this architecture: parking is off")
	}
	proc := t.TempDir()
	thread := func(pid, tid int, syscallLine string) {
		dir := filepath.Join(proc, strconv.Itoa(pid), "task", strconv.Itoa(tid))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		write(t, filepath.Join(dir, "syscall"), syscallLine)
	}
	thread(10, 10, "232 0x5 0x7ffd 0x1 0xffffffff 0x0 0x0 0x7ffd 0x7f00\n") // epoll_wait
	thread(11, 11, "23 0x9 0x7ffd 0x0 0x0 0x7ffd 0x0 0x7ffd 0x7f00\n")      // select
	thread(11, 12, "202 0x7f 0x80 0x0 0x0 0x0 0x0 0x7ffd 0x7f00\n")         // futex, not the main thread
	thread(12, 12, "288 0x3 0x0 0x0 0x80800 0x0 0x0 0x7ffd 0x7f00\n")       // accept4: may carry a connection
	thread(13, 13, "-1 0x7ffd 0x7f00\n")                                    // in user space
	thread(14, 14, "running\n")
	thread(16, 16, "202 0x7f 0x80 0x0 0x0 0x0 0x0 0x7ffd 0x7f00\n") // futex in the main thread
	for pid, want := range map[int]bool{10: true, 11: true, 12: false, 13: false, 14: false, 15: false, 16: false} {
		if got, err := waiting(proc, pid); got != want || err != nil {
			t.Errorf("waiting(pid %d) = %v, %v; want %v", pid, got, err, want)
		}
	}

	status := func(pid int, shd, sig string) {
		write(t, filepath.Join(proc, strconv.Itoa(pid), "status"),
			"Name:\tuwsgi\nState:\tT (stopped)\nSigQ:\t1/1000\nSigPnd:\t"+sig+"\nShdPnd:\t"+shd+"\nSigBlk:\t0000000000000000\n")
	}
	status(10, "0000000000000001", "0000000000000000") // SIGHUP sent to the process
	status(11, "0000000000000000", "0000000000004000") // SIGTERM sent to the thread
	status(12, "0000000000000000", "0000000000000000")
	// A status too large to be one is unreadable, as that of a process
	// that is gone: nothing to wait for.
	write(t, filepath.Join(proc, "13", "status"), "Name:\tuwsgi\nSigPnd:\t0000000000000000\nShdPnd:\t0000000000000000\n"+strings.Repeat("Groups:\t1\n", maxProcStatus/9))
	for pid, want := range map[int]bool{10: true, 11: true, 12: false, 13: true, 99: true} {
		if got := signalPending(proc, pid); got != want {
			t.Errorf("signalPending(pid %d) = %v, want %v", pid, got, want)
		}
	}
}

// helperMaster starts a worker (a `sleep`, parked in clock_nanosleep), says
// "ready PID", and on SIGTERM reports the worker's state as it passes the
// signal on, then how the worker ended.
func helperMaster() {
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	w := exec.Command("sleep", "60")
	if err := w.Start(); err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	fmt.Println("ready", w.Process.Pid)
	<-term
	stat, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", w.Process.Pid))
	fmt.Printf("worker state at SIGTERM %c\n", threadState(string(stat)))
	w.Process.Signal(syscall.SIGTERM)
	fmt.Println("worker ended", w.Wait())
	os.Exit(0)
}

// A real worker waiting in a sleep is parked: it is stopped when its master
// passes the stop on, and runs again to take it.
func TestDrainParkedStopsWaitingWorkers(t *testing.T) {
	if len(waitSyscalls) == 0 {
		t.Skip("no system call table for this architecture: parking is off")
	}
	master := exec.Command(os.Args[0], "-test.run=^$")
	master.Env = append(os.Environ(), "LAUNCHER_TEST_HELPER=master")
	out, err := master.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := master.Start(); err != nil {
		t.Fatal(err)
	}
	defer master.Process.Kill()
	lines := bufio.NewScanner(out)
	if !lines.Scan() || !strings.HasPrefix(lines.Text(), "ready ") {
		t.Fatalf("helper: %q", lines.Text())
	}
	worker, _ := strconv.Atoi(strings.TrimPrefix(lines.Text(), "ready "))
	for end := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if len(tree("/proc", worker)) == 1 {
			if ok, _ := waiting("/proc", worker); ok {
				break
			}
		}
		if time.Now().After(end) {
			t.Fatal("the worker never showed as waiting in its sleep")
		}
	}
	start := time.Now()
	if n := drainParked("/proc", master.Process.Pid, defaultPark); n != 1 {
		t.Fatalf("parked %d workers, want 1", n)
	}
	took := time.Since(start)
	var got []string
	for lines.Scan() {
		got = append(got, lines.Text())
	}
	master.Wait()
	want := []string{"worker state at SIGTERM T", "worker ended signal: terminated"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("the master reported\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	t.Logf("parked, stopped and continued in %s", took)
}
