package launcher

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// helperYield yields (Yield), starts a thread, waits for Yield's pass in
// the background, prints the priority of every thread and its autogroup's nice value ("yielded"), restores
// (Restore) and prints them again ("restored").
func helperYield() {
	y, err := Yield()
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	// A thread started after Yield inherits its priority.
	started := make(chan struct{})
	go func() {
		runtime.LockOSThread()
		close(started)
		select {}
	}()
	<-started
	// The pass that lowers a thread Yield's own pass missed.
	<-y.confirmed
	printPriorities("yielded")
	if err := y.Restore(); err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	printPriorities("restored")
	os.Exit(0)
}

func printPriorities(phase string) {
	for _, t := range threads("/proc", os.Getpid()) {
		tid, _ := strconv.Atoi(t)
		attr, err := unix.SchedGetAttr(tid, 0)
		if err != nil {
			continue
		}
		fmt.Printf("%s thread %d %d %d\n", phase, attr.Policy, attr.Nice, attr.Runtime)
	}
	if n, ok, err := autogroupNice("/proc", os.Getpid()); err == nil && ok {
		fmt.Printf("%s autogroup %d\n", phase, n)
	}
}

// runYieldHelper runs helperYield, in a session of its own if setsid, and
// returns its lines by phase.
func runYieldHelper(t *testing.T, setsid bool) map[string][]string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "LAUNCHER_TEST_HELPER=yield")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: setsid}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the helper failed: %v: %s", err, out)
	}
	lines := map[string][]string{}
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		phase, rest, _ := strings.Cut(l, " ")
		lines[phase] = append(lines[phase], rest)
	}
	if len(lines["yielded"]) < 2 || len(lines["restored"]) < 2 {
		t.Fatalf("the helper printed %q", out)
	}
	return lines
}

// A sitectl command run from somebody else's session (a shell's) puts
// each of its threads, and those it starts later, under SCHED_IDLE, leaves
// the session's autogroup alone, and takes its priority back.
func TestYieldInSomebodyElsesSession(t *testing.T) {
	needNice(t)
	nice := ownNice(t)
	lines := runYieldHelper(t, false)
	for _, l := range lines["yielded"] {
		if strings.HasPrefix(l, "thread ") && !strings.HasPrefix(l, fmt.Sprintf("thread %d %d ", unix.SCHED_IDLE, nice)) {
			t.Errorf("a thread of the yielding process: %s; want policy %d (SCHED_IDLE), nice %d", l, unix.SCHED_IDLE, nice)
		}
	}
	checkRestored(t, lines, nice)
	if ag := autogroupLines(lines); ag["yielded"] != ag["restored"] {
		t.Errorf("the caller's autogroup changed: %v", ag)
	}
}

// A unit's process, which leads its own session, gets an idle start's
// priority and its autogroup at nice 19, and takes both back.
func TestYieldInItsOwnSession(t *testing.T) {
	needNice(t)
	nice := ownNice(t)
	lines := runYieldHelper(t, true)
	way := idleStartFor(os.Getpid())
	wantNice := nice
	if way.nice {
		wantNice = idleNice
	}
	for _, l := range lines["yielded"] {
		f := strings.Fields(l)
		if f[0] != "thread" {
			continue
		}
		if f[1] != strconv.Itoa(int(way.policy)) || f[2] != strconv.Itoa(int(wantNice)) || way.slice != 0 && f[3] != strconv.Itoa(int(way.slice)) {
			t.Errorf("a thread of the yielding process: %s; want %+v", l, way)
		}
	}
	checkRestored(t, lines, nice)
	ag := autogroupLines(lines)
	if _, ok, err := autogroupNice("/proc", os.Getpid()); err != nil || !ok {
		t.Logf("no autogroups here (%v): the autogroup is not checked", err)
		return
	}
	if ag["yielded"] != "autogroup 19" || ag["restored"] != "autogroup 0" {
		t.Errorf("the process's own autogroup: %v; want nice 19 yielded, 0 restored", ag)
	}
}

func checkRestored(t *testing.T, lines map[string][]string, nice int32) {
	t.Helper()
	for _, l := range lines["restored"] {
		f := strings.Fields(l)
		if f[0] == "thread" && (f[1] != strconv.Itoa(unix.SCHED_NORMAL) || f[2] != strconv.Itoa(int(nice))) {
			t.Errorf("a thread after Restore: %s; want policy %d (SCHED_NORMAL), nice %d", l, unix.SCHED_NORMAL, nice)
		}
	}
}

func autogroupLines(lines map[string][]string) map[string]string {
	ag := map[string]string{}
	for phase, ls := range lines {
		for _, l := range ls {
			if strings.HasPrefix(l, "autogroup ") {
				ag[phase] = l
			}
		}
	}
	return ag
}

// A process that chose another policy (chrt) is left as it is.
func TestYieldLeavesAChosenPolicy(t *testing.T) {
	needNice(t)
	done := make(chan error)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		// This thread only: Yield reads the calling thread's policy.
		attr, err := unix.SchedGetAttr(0, 0)
		if err != nil {
			done <- err
			return
		}
		was := *attr
		attr.Policy = unix.SCHED_BATCH
		if err := unix.SchedSetAttr(0, attr, 0); err != nil {
			done <- err
			return
		}
		y, err := Yield()
		if err == nil && y.lowered {
			err = fmt.Errorf("Yield lowered a process whose policy is SCHED_BATCH")
		}
		unix.SchedSetAttr(0, &was, 0)
		done <- err
	}()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
