package launcher

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sitectl/sitectl/internal/procfs"
)

// A draining generation that ignores SIGTERM, with a worker and a daemon
// (a process that left its session and was reparented) that ignore it too:
// after the drain timeout every one of them gets SIGTERM, after the stop
// timeout SIGKILL, and the status line says so once it is gone.
func TestFailsafeKillsEveryProcessOfADrainingGeneration(t *testing.T) {
	h := newHarness(t, "ignore-term,worker,daemon", "ready")
	h.cfg.DrainTimeout, h.cfg.StopTimeout = 200*time.Millisecond, 200*time.Millisecond
	h.cfg.Invocation = fmt.Sprintf("test-%d-%d", os.Getpid(), time.Now().UnixNano())
	h.spec = func(s *Spec) { s.Env = append(s.Env, "INVOCATION_ID="+h.cfg.Invocation) }
	h.run()
	old := h.pids(1)
	if len(old) != 3 {
		t.Fatalf("generation 1 runs %v, want its main process, a worker and a daemon", old)
	}
	if err := Reload(h.dir, os.Getpid(), nil, nil); err != nil {
		t.Fatalf("reload: %v", err)
	}
	h.waitFor("log: generation 1 did not exit within the drain timeout (200ms): SIGTERM to its 3 processes")
	h.waitFor("log: generation 1 still runs 3 processes after the stop timeout (200ms): SIGKILL")
	h.waitFor("log: generation 1 was killed after the drain timeout")
	h.waitFor("STATUS=mode m-ready, generation 2; generation 1 was killed after the drain timeout")
	h.waitGone(old...)
	if gone(h.pids(2)[0]) {
		t.Fatal("the serving generation was killed too")
	}
	if err := h.stop(); err != nil {
		t.Fatal(err)
	}
}

func TestGenerationMembers(t *testing.T) {
	id := generationID{n: 2, root: 100, rootAlive: true, invocation: "inv"}
	procs := []procInfo{
		{pid: 100, ppid: 50, sid: 100, generation: "2", invocation: "inv"},  // the main process
		{pid: 101, ppid: 100, sid: 100},                                     // a worker (environment unreadable)
		{pid: 102, ppid: 100, sid: 102},                                     // a child in a session of its own
		{pid: 103, ppid: 102, sid: 102},                                     // its child
		{pid: 104, ppid: 1, sid: 104, generation: "2", invocation: "inv"},   // a daemon
		{pid: 105, ppid: 1, sid: 105, generation: "2", invocation: "other"}, // another unit's generation 2
		{pid: 200, ppid: 50, sid: 200, generation: "3", invocation: "inv"},  // the serving generation
		{pid: 201, ppid: 200, sid: 100, generation: "3"},                    // its worker, sid reused
		{pid: 300, ppid: 1, sid: 300},                                       // anything else
		{pid: 50, ppid: 1, sid: 50},                                         // the launcher
	}
	if got, want := id.members(procs), []int{100, 101, 102, 103, 104}; !slices.Equal(got, want) {
		t.Errorf("members %v, want %v", got, want)
	}
	// Once the main process is gone its pid may be reused: no tree, and no
	// marker without an invocation id.
	id.rootAlive, id.invocation = false, ""
	if got, want := id.members(procs), []int{100, 101}; !slices.Equal(got, want) {
		t.Errorf("members after the main process exited, without an invocation: %v, want %v", got, want)
	}
}

func TestReadProc(t *testing.T) {
	proc := t.TempDir()
	dir := filepath.Join(proc, "42")
	os.MkdirAll(dir, 0o755)
	write(t, filepath.Join(dir, "stat"), "42 (a (b) c) S 7 42 40 0 -1 4194560\n")
	write(t, filepath.Join(dir, "environ"), "PATH=/bin\x00SITE_GENERATION=3\x00INVOCATION_ID=abc\x00")
	p, ok := readProc(proc, 42)
	if !ok || p != (procInfo{pid: 42, ppid: 7, sid: 40, generation: "3", invocation: "abc"}) {
		t.Errorf("readProc = %+v, %v", p, ok)
	}
	if _, ok := readProc(proc, 43); ok {
		t.Error("a process that is gone was read")
	}
	// This very process, through the real /proc.
	self, ok := readProc("/proc", os.Getpid())
	if !ok || self.ppid != os.Getppid() {
		t.Errorf("readProc(self) = %+v, %v; parent %d", self, ok, os.Getppid())
	}
}

// Files larger than /proc makes them are not read: an environment past
// procfs.MaxEnviron is one that cannot be read (no markers: the process is
// still found by its session), a stat past procfs.MaxStat a process that
// is gone.
func TestReadProcOfTooLargeFiles(t *testing.T) {
	proc := t.TempDir()
	dir := filepath.Join(proc, "42")
	os.MkdirAll(dir, 0o755)
	write(t, filepath.Join(dir, "stat"), "42 (a) S 7 42 40 0 -1 4194560\n")
	write(t, filepath.Join(dir, "environ"), "SITE_GENERATION=3\x00INVOCATION_ID=abc\x00X="+strings.Repeat("x", procfs.MaxEnviron)+"\x00")
	p, ok := readProc(proc, 42)
	if !ok || p != (procInfo{pid: 42, ppid: 7, sid: 40}) {
		t.Errorf("readProc with an environment over the limit = %+v, %v; want it read without markers", p, ok)
	}
	write(t, filepath.Join(dir, "stat"), "42 (a) S 7 42 40 0 -1 4194560"+strings.Repeat(" 0", procfs.MaxStat/2)+"\n")
	if p, ok := readProc(proc, 42); ok {
		t.Errorf("a stat over the limit was read: %+v", p)
	}
}

// The failsafe lists the processes of the launcher's cgroup, its
// service's; in the root cgroup, which holds every cgroup of the host, it
// lists /proc instead of walking them all.
func TestUniverse(t *testing.T) {
	defer func(of func(int) (string, error), procs func(string) ([]int, error)) {
		cgroupOf, cgroupProcs = of, procs
	}(cgroupOf, cgroupProcs)
	walked := ""
	cgroupProcs = func(group string) ([]int, error) {
		walked = group
		return []int{42, 43}, nil
	}
	l := &launcher{}

	cgroupOf = func(int) (string, error) { return "/system.slice/site-shop.service", nil }
	if got := l.universe(); !slices.Equal(got, []int{42, 43}) || walked != "/system.slice/site-shop.service" {
		t.Errorf("in a service's cgroup: universe %v, walked %q", got, walked)
	}

	walked = ""
	cgroupOf = func(int) (string, error) { return "/", nil }
	got := l.universe()
	if walked != "" {
		t.Errorf("in the root cgroup, the failsafe walked the cgroup %q", walked)
	}
	if !slices.Contains(got, os.Getpid()) {
		t.Errorf("in the root cgroup: universe %v lacks this process (%d)", got, os.Getpid())
	}
}
