package launcher

import (
	"bufio"
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sitectl/sitectl/internal/paths"
	"golang.org/x/sys/unix"
)

// These tests promote real processes: they need CAP_SYS_NICE (root), as
// root's side of ExecReload= has.
func needNice(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("these tests raise scheduling priorities: run them as root")
	}
}

// ownNice is this process's nice value (a CI may run tests at another
// than 0).
func ownNice(t *testing.T) int32 {
	t.Helper()
	attr, err := unix.SchedGetAttr(0, 0)
	if err != nil {
		t.Fatal(err)
	}
	return attr.Nice
}

func policyOf(t *testing.T, pid int) uint32 {
	t.Helper()
	attr, err := unix.SchedGetAttr(pid, 0)
	if err != nil {
		t.Fatalf("policy of pid %d: %v", pid, err)
	}
	return attr.Policy
}

// recordingPromoter promotes as root's side does (this test process is the
// launcher's main process) and records the pids it was asked for.
type recordingPromoter struct {
	mu   sync.Mutex
	pids []int
	fail error
}

func (r *recordingPromoter) promote(pid int) (string, error) {
	r.mu.Lock()
	r.pids = append(r.pids, pid)
	r.mu.Unlock()
	if r.fail != nil {
		return "", r.fail
	}
	did, err := Promote("/proc", os.Getpid(), pid)
	return did.String(), err
}

func (r *recordingPromoter) asked() []int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]int(nil), r.pids...)
}

// A reload whose caller can promote starts the new generation, and the
// worker it forks, under SCHED_IDLE, and the generation serves at normal
// priority: root's side promoted the whole tree once it was ready, before
// the handover. The first generation (the service's start) starts at normal
// priority.
func TestReloadStartsIdleAndIsPromotedWhenReady(t *testing.T) {
	needNice(t)
	h := newHarness(t, "ready", "ready,worker")
	h.cfg.StartIdle = true
	h.run()
	if p := h.report(1)["policy"]; p != "0" {
		t.Fatalf("the first generation started with policy %s, want 0 (SCHED_NORMAL)", p)
	}
	// Each generation is a session, so an autogroup, of its own.
	wantAutogroup := func(want string) string {
		if _, err := os.Stat("/proc/self/autogroup"); err != nil {
			return "none" // a kernel without autogroups
		}
		return want
	}
	if a := h.report(1)["autogroup"]; a != wantAutogroup("0") {
		t.Fatalf("the first generation started with its autogroup at nice %s, want %s", a, wantAutogroup("0"))
	}
	r := &recordingPromoter{}
	if err := Reload(h.dir, os.Getpid(), nil, r.promote); err != nil {
		t.Fatal(err)
	}
	second := h.pids(2)
	// SCHED_BATCH with a short slice where sessions are scheduling
	// groups (this project's hosts), SCHED_IDLE in a cpu cgroup.
	way := idleStartFor(second[0])
	wantNice := "0"
	if way.nice {
		wantNice = strconv.Itoa(idleNice)
	}
	if rep := h.report(2); rep["policy"] != strconv.Itoa(int(way.policy)) || way.slice != 0 && rep["slice"] != strconv.Itoa(int(way.slice)) || rep["nice"] != wantNice {
		t.Fatalf("the reload's generation started with policy %s, slice %s ns, nice %s; want %+v, nice %s", rep["policy"], rep["slice"], rep["nice"], way, wantNice)
	}
	// SCHED_IDLE inside a session's autogroup at nice 0 still takes its
	// group's full share from the other sessions (autogroup.go).
	if a := h.report(2)["autogroup"]; a != wantAutogroup("19") {
		t.Fatalf("the reload's generation started with its autogroup at nice %s, want %s", a, wantAutogroup("19"))
	}
	if got := r.asked(); len(got) != 1 || got[0] != second[0] {
		t.Fatalf("promotion asked for %v, want once for generation 2's pid %d", got, second[0])
	}
	for _, pid := range second {
		if p := policyOf(t, pid); p != unix.SCHED_NORMAL {
			t.Errorf("pid %d of generation 2 serves with policy %d, want SCHED_NORMAL", pid, p)
		}
		// The launcher here is this test: its nice value is the
		// generation's after the promotion.
		if attr, err := unix.SchedGetAttr(pid, 0); err != nil || attr.Runtime == uint64(idleSlice) || attr.Nice != ownNice(t) {
			t.Errorf("pid %d of generation 2 serves with the idle start's slice or nice %d, want %d (%v)", pid, attr.Nice, ownNice(t), err)
		}
		if nice, ok, err := autogroupNice("/proc", pid); err != nil || ok && nice != 0 {
			t.Errorf("pid %d of generation 2 serves in an autogroup at nice %d (%v), want 0", pid, nice, err)
		}
	}
	log := h.waitFor("log: generation 2 promoted since it is ready")
	if !strings.Contains(log, "to normal priority") {
		t.Errorf("the journal does not say what was promoted: %q", log)
	}
	h.waitFor("log: started generation 2 (pid ")
	if !strings.Contains(h.log(), "at idle priority") {
		t.Errorf("the journal does not say generation 2 started at idle priority:\n%s", h.log())
	}
	if err := h.stop(); err != nil {
		t.Fatal(err)
	}
}

// A promotion that fails fails the reload: the new generation would serve
// under SCHED_IDLE, starved whenever the host is busy. It is discarded and
// the old one keeps serving.
func TestFailedPromotionFailsTheReload(t *testing.T) {
	needNice(t)
	h := newHarness(t, "ready")
	h.cfg.StartIdle = true
	h.run()
	r := &recordingPromoter{fail: errors.New("operation not permitted")}
	err := Reload(h.dir, os.Getpid(), nil, r.promote)
	if err == nil || !strings.Contains(err.Error(), "cannot promote generation 2 to normal priority: operation not permitted") {
		t.Fatalf("reload with a failing promotion: %v", err)
	}
	h.waitGone(h.pidOf(2))
	st, err := AskStatus(context.Background(), h.dir, os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if st.Serving == nil || st.Serving.Generation != 1 {
		t.Fatalf("after the failed promotion: %+v", st)
	}
	if err := h.stop(); err != nil {
		t.Fatal(err)
	}
}

// Without a caller that can promote (a SIGHUP, a root side of an older
// sitectl) or with start_priority = "normal", a generation starts at normal
// priority and nobody is asked to promote it.
func TestNoPromotionStartsAtNormalPriority(t *testing.T) {
	needNice(t)
	for _, c := range []struct {
		name  string
		idle  bool
		offer bool
	}{{"no promoter", true, false}, {"start_priority normal", false, true}} {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t, "ready")
			h.cfg.StartIdle = c.idle
			h.run()
			r := &recordingPromoter{}
			var promote func(int) (string, error)
			if c.offer {
				promote = r.promote
			}
			if err := Reload(h.dir, os.Getpid(), nil, promote); err != nil {
				t.Fatal(err)
			}
			if p := h.report(2)["policy"]; p != "0" {
				t.Errorf("generation 2 started with policy %s, want 0", p)
			}
			if got := r.asked(); len(got) != 0 {
				t.Errorf("promotion asked for %v", got)
			}
			if err := h.stop(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// An idle start is bounded: a generation still not ready after
// PromoteAfter is promoted anyway, and becomes ready at normal priority.
func TestIdleStartIsPromotedAfterAWhile(t *testing.T) {
	needNice(t)
	gate := filepath.Join(t.TempDir(), "ready")
	h := newHarness(t, "ready", "wait-file:"+gate)
	h.cfg.StartIdle, h.cfg.PromoteAfter = true, 50*time.Millisecond
	h.run()
	r := &recordingPromoter{}
	reloaded := make(chan error, 1)
	go func() { reloaded <- Reload(h.dir, os.Getpid(), nil, r.promote) }()
	h.waitFor("log: generation 2 promoted since it is still starting after 50ms")
	if p := policyOf(t, h.pidOf(2)); p != unix.SCHED_NORMAL {
		t.Fatalf("generation 2 has policy %d after its promotion, want SCHED_NORMAL", p)
	}
	os.WriteFile(gate, nil, 0o644)
	if err := <-reloaded; err != nil {
		t.Fatal(err)
	}
	if got := r.asked(); len(got) != 1 {
		t.Errorf("promotion asked %d times, want once", len(got))
	}
	if err := h.stop(); err != nil {
		t.Fatal(err)
	}
}

// Root's side promotes only what the launcher may ask for: descendants of
// the main process in its cgroup, never the main process itself nor
// anything else on the host.
func TestPromoteOnlyTheLaunchersProcesses(t *testing.T) {
	needNice(t)
	child := exec.Command("sleep", "60")
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { child.Process.Kill(); child.Wait() }()
	pid := child.Process.Pid
	if _, err := setSched(pid, unix.SCHED_IDLE, 0, keepNice); err != nil {
		t.Fatal(err)
	}
	for _, other := range []int{1, os.Getpid()} {
		if _, err := Promote("/proc", os.Getpid(), other); err == nil || !strings.Contains(err.Error(), "is not a generation of the launcher") {
			t.Errorf("promoting pid %d: %v", other, err)
		}
	}
	if _, err := Promote("/proc", 1, pid); err == nil {
		t.Error("a process was promoted for a main process it does not descend from")
	}
	if p := policyOf(t, pid); p != unix.SCHED_IDLE {
		t.Fatalf("refused promotions changed the policy to %d", p)
	}
	did, err := Promote("/proc", os.Getpid(), pid)
	if err != nil || did.Threads != 1 || did.Processes != 1 {
		t.Fatalf("promotion: %+v, %v", did, err)
	}
	if p := policyOf(t, pid); p != unix.SCHED_NORMAL {
		t.Fatalf("after the promotion: policy %d", p)
	}
	if did, err := Promote("/proc", os.Getpid(), pid); err != nil || did.Threads != 0 {
		t.Fatalf("promoting again: %+v, %v", did, err)
	}
}

// A launcher of an older sitectl, still running after an upgrade, does not
// know "reload-promote": root's side asks again with "reload". A
// launcher's "promote" that root's side cannot carry out is answered
// "failed: ...".
func TestReloadPromoteFallsBackAndAnswers(t *testing.T) {
	dir := t.TempDir()
	ln, err := net.Listen("unix", filepath.Join(dir, paths.ControlSocket))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	verbs := make(chan string, 4)
	answers := make(chan string, 4)
	go func() {
		promoting := 0
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			r := bufio.NewReader(c)
			line, _ := r.ReadString('\n')
			verbs <- strings.TrimSpace(line)
			switch strings.TrimSpace(line) {
			case "reload-promote":
				if promoting++; promoting == 1 { // the first time: an old launcher
					c.Write([]byte("failed: unknown request\n"))
					break
				}
				c.Write([]byte("promote 1\n"))
				a, _ := r.ReadString('\n')
				answers <- a
				c.Write([]byte("failed: cannot promote generation 2 to normal priority: " + strings.TrimSpace(strings.TrimPrefix(a, "failed: ")) + "\n"))
			case "reload":
				c.Write([]byte("ok: generation 2 serves in mode normal\n"))
			}
			c.Close()
		}
	}()
	refuse := func(int) (string, error) { return "", errors.New("pid 1 is not a generation of the launcher (pid 7)") }
	if err := Reload(dir, os.Getpid(), nil, refuse); err != nil {
		t.Fatalf("reload through an old launcher: %v", err)
	}
	if a, b := <-verbs, <-verbs; a != "reload-promote" || b != "reload" {
		t.Fatalf("verbs %q, %q; want reload-promote, then reload", a, b)
	}
	err = Reload(dir, os.Getpid(), nil, refuse)
	if err == nil || !strings.Contains(err.Error(), "pid 1 is not a generation of the launcher") {
		t.Fatalf("reload whose promotion was refused: %v", err)
	}
	if a := <-answers; a != "failed: pid 1 is not a generation of the launcher (pid 7)\n" {
		t.Fatalf("root's side answered %q", a)
	}
}

// A cgroup file too large to be one is not read.
func TestSameCgroupOfTooLargeFiles(t *testing.T) {
	proc := t.TempDir()
	for _, pid := range []string{"10", "11"} {
		os.MkdirAll(filepath.Join(proc, pid), 0o755)
	}
	big := "0::/system.slice/x.service\n" + strings.Repeat("1:name=x:/\n", maxCgroupFile/11)
	write(t, filepath.Join(proc, "10", "cgroup"), big)
	write(t, filepath.Join(proc, "11", "cgroup"), big)
	if err := sameCgroup(proc, 10, 11); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("sameCgroup of cgroup files over the limit: %v", err)
	}
	write(t, filepath.Join(proc, "10", "cgroup"), "0::/system.slice/x.service\n")
	write(t, filepath.Join(proc, "11", "cgroup"), "0::/system.slice/x.service\n")
	if err := sameCgroup(proc, 10, 11); err != nil {
		t.Errorf("sameCgroup: %v", err)
	}
}

// CheckGeneration, which root's side runs on any pid a launcher names,
// accepts the launcher's descendants in its cgroup, and nothing else: not
// the launcher itself, not a process beside it, not a descendant that
// left its cgroup.
func TestCheckGeneration(t *testing.T) {
	start := func() int {
		cmd := exec.Command("sleep", "60")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		return cmd.Process.Pid
	}
	child, beside := start(), start()
	if err := CheckGeneration("/proc", os.Getpid(), child); err != nil {
		t.Errorf("a child of the launcher: %v", err)
	}
	for _, c := range [][2]int{{beside, child}, {os.Getpid(), os.Getpid()}, {os.Getpid(), 0}, {0, child}} {
		if err := CheckGeneration("/proc", c[0], c[1]); err == nil || !strings.Contains(err.Error(), "is not a generation of the launcher") {
			t.Errorf("pid %d of launcher %d: %v", c[1], c[0], err)
		}
	}
	p := fakeProc{t, t.TempDir()}
	p.set(10, []int{11}, 1)
	p.set(11, nil, 1)
	write(t, filepath.Join(p.dir, "10", "cgroup"), "0::/sitectl.slice/site-a.service\n")
	write(t, filepath.Join(p.dir, "11", "cgroup"), "0::/sitectl.slice/site-b.service\n")
	if err := CheckGeneration(p.dir, 10, 11); err == nil || !strings.Contains(err.Error(), "pid 11 is not in the launcher's cgroup") {
		t.Errorf("a descendant in another cgroup: %v", err)
	}
}

// Root's side of a promotion moves SCHED_IDLE threads only: a thread of
// another policy (SCHED_BATCH the app chose, or, on a pid reused between
// the walk and the change, another process's real-time thread) is left
// as it is.
func TestPromoteChangesOnlyIdleThreads(t *testing.T) {
	needNice(t)
	child := exec.Command("sleep", "60")
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { child.Process.Kill(); child.Wait() }()
	pid := child.Process.Pid
	if _, err := setSched(pid, unix.SCHED_BATCH, 0, keepNice); err != nil {
		t.Fatal(err)
	}
	did, err := Promote("/proc", os.Getpid(), pid)
	if err != nil || did.Threads != 0 {
		t.Errorf("promotion of a SCHED_BATCH process: %+v, %v", did, err)
	}
	if p := policyOf(t, pid); p != unix.SCHED_BATCH {
		t.Errorf("after the promotion: policy %d, want SCHED_BATCH (%d)", p, unix.SCHED_BATCH)
	}
}

func TestParseAutogroup(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int
		err  bool
	}{
		{"/autogroup-1234 nice 0\n", 0, false},
		{"/autogroup-7 nice 19\n", 19, false},
		{"/autogroup-7 nice -5", -5, false},
		{"/autogroup-7 nice 20\n", 0, true},
		{"/autogroup-7 nice x\n", 0, true},
		{"autogroup-7 nice 1\n", 0, true},
		{"/autogroup-7 nice\n", 0, true},
		{"", 0, true},
	} {
		got, err := parseAutogroup([]byte(c.in))
		if (err != nil) != c.err || got != c.want {
			t.Errorf("parseAutogroup(%q) = %d, %v; want %d, error %v", c.in, got, err, c.want, c.err)
		}
	}
}

// Root's side of a promotion sets the generation's autogroup back from an
// idle start's nice 19 to 0, and leaves one at any other value as it is
// (the app's own choice).
func TestPromoteRaisesTheIdleAutogroup(t *testing.T) {
	needNice(t)
	if _, err := os.Stat("/proc/self/autogroup"); err != nil {
		t.Fatalf("this test needs a kernel with autogroups (CONFIG_SCHED_AUTOGROUP): %v", err)
	}
	for _, c := range []struct {
		start, want int
		raised      bool
	}{{idleAutogroupNice, 0, true}, {5, 5, false}, {0, 0, false}} {
		child := exec.Command("sleep", "60")
		child.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		if err := child.Start(); err != nil {
			t.Fatal(err)
		}
		pid := child.Process.Pid
		if err := setAutogroupNice("/proc", pid, c.start); err != nil {
			t.Fatal(err)
		}
		did, err := Promote("/proc", os.Getpid(), pid)
		nice, _, nerr := autogroupNice("/proc", pid)
		child.Process.Kill()
		child.Wait()
		if err != nil || nerr != nil || nice != c.want || did.Autogroup != c.raised {
			t.Errorf("autogroup at nice %d, promoted: %+v, %v; now nice %d (%v), want %d", c.start, did, err, nice, nerr, c.want)
		}
		if c.raised && !strings.Contains(did.String(), "autogroup to nice 0") {
			t.Errorf("the promotion does not say it raised the autogroup: %q", did)
		}
	}
}

// A generation told to drain gets its autogroup at nice 19 with its
// threads: a nice value counts only inside the generation's own session
// otherwise, and its exit would take a whole group's share from the
// generation that now serves.
func TestDrainingGenerationsAutogroupIsLowered(t *testing.T) {
	if _, err := os.Stat("/proc/self/autogroup"); err != nil {
		t.Fatalf("this test needs a kernel with autogroups (CONFIG_SCHED_AUTOGROUP): %v", err)
	}
	h := newHarness(t, "ready,drain:3s", "ready")
	h.run()
	first := h.pids(1)[0]
	if nice, _, err := autogroupNice("/proc", first); err != nil || nice != 0 {
		t.Fatalf("generation 1 serves in an autogroup at nice %d (%v), want 0", nice, err)
	}
	if err := Reload(h.dir, os.Getpid(), nil, nil); err != nil {
		t.Fatal(err)
	}
	h.waitFor("drains at nice")
	nice := -1
	for end := time.Now().Add(2 * time.Second); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		if nice, _, _ = autogroupNice("/proc", first); nice == drainPriority {
			break
		}
	}
	if nice != drainPriority {
		t.Errorf("generation 1 drains in an autogroup at nice %d, want %d", nice, drainPriority)
	}
	if nice, _, err := autogroupNice("/proc", h.pids(2)[0]); err != nil || nice != 0 {
		t.Errorf("generation 2 serves in an autogroup at nice %d (%v), want 0", nice, err)
	}
	if err := h.stop(); err != nil {
		t.Fatal(err)
	}
}

// A process in the kernel's default autogroup (PID 1's session, never
// setsid: a CI runner's tests, a container's processes) reads an empty
// /proc/PID/autogroup and has no nice value to change: a promotion, an
// idle start and a drain leave it alone instead of failing.
func TestDefaultAutogroupHasNothingToChange(t *testing.T) {
	proc := t.TempDir()
	if err := os.MkdirAll(filepath.Join(proc, "42"), 0o755); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(proc, "42", "autogroup")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := autogroupNice(proc, 42); ok || err != nil {
		t.Errorf("an empty autogroup file: ok %v, %v; want no autogroup", ok, err)
	}
	if changed, err := promoteAutogroup(proc, 42); changed || err != nil {
		t.Errorf("promoting the default autogroup: %v, %v", changed, err)
	}
	if err := drainAutogroup(proc, 42); err != nil {
		t.Errorf("draining in the default autogroup: %v", err)
	}
	if b, _ := os.ReadFile(file); len(b) != 0 {
		t.Errorf("the default autogroup's file was written: %q", b)
	}
	// The real one, where this host's PID 1 is in it.
	if b, err := os.ReadFile("/proc/1/autogroup"); err == nil && len(b) == 0 {
		if _, ok, err := autogroupNice("/proc", 1); ok || err != nil {
			t.Errorf("pid 1's autogroup: ok %v, %v; want none", ok, err)
		}
	}
}

// An idle start's generation is born at the idle start's priority (it
// inherits it from the launcher's thread that starts it: a promotion can
// come before the shim has run, and nothing lowers it again afterwards),
// and is in an autogroup at nice 19 as soon as the launcher's Start
// returns; the child here, sleep, never lowers itself. A normal start's
// is left as the launcher is, and the launcher is unchanged.
func TestIdleStartIsBornIdle(t *testing.T) {
	needNice(t) // root: the kernel's rate limit on autogroup changes does not apply
	if _, err := os.Stat("/proc/self/autogroup"); err != nil {
		t.Fatalf("this test needs a kernel with autogroups (CONFIG_SCHED_AUTOGROUP): %v", err)
	}
	self, err := unix.SchedGetAttr(0, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, idle := range []bool{true, false} {
		proc, err := startProcess(Command{Argv: []string{"sleep", "60"}, Idle: idle})
		if err != nil {
			t.Fatal(err)
		}
		nice, ok, err := autogroupNice("/proc", proc.Pid())
		attr, aerr := unix.SchedGetAttr(proc.Pid(), 0)
		proc.Signal(syscall.SIGKILL)
		proc.Wait()
		want := 0
		if idle {
			want = idleAutogroupNice
		}
		if err != nil || !ok || nice != want {
			t.Errorf("started with Idle %v: its autogroup is at nice %d (own autogroup: %v, %v), want %d", idle, nice, ok, err, want)
		}
		way := idleStartFor(os.Getpid())
		wantPolicy, wantNice := way.policy, self.Nice
		if way.nice {
			wantNice = idleNice
		}
		if !idle {
			wantPolicy, wantNice = self.Policy, self.Nice
		}
		if aerr != nil || attr.Policy != wantPolicy || attr.Nice != wantNice || idle && way.slice != 0 && attr.Runtime != uint64(way.slice) {
			t.Errorf("started with Idle %v: policy %d, nice %d, slice %d ns (%v); want policy %d, nice %d, %+v", idle, attr.Policy, attr.Nice, attr.Runtime, aerr, wantPolicy, wantNice, way)
		}
	}
	if now, err := unix.SchedGetAttr(0, 0); err != nil || now.Policy != self.Policy || now.Nice != self.Nice {
		t.Errorf("the starting thread's priority stayed with the launcher: %+v, %v", now, err)
	}
}

// A launcher of an older sitectl starts the shim at normal priority and
// asks it to lower itself (envStartIdle=1): the new shim still does.
func TestShimLowersItselfForAnOlderLauncher(t *testing.T) {
	needNice(t)
	h := newHarness(t, "ready")
	h.cfg.StartIdle = true
	h.cfg.Start = func(c Command) (Process, error) {
		for i, kv := range c.Env {
			if kv == envStartIdle+"="+startedIdle {
				c.Env[i] = envStartIdle + "=" + lowerIdle
			}
		}
		c.Idle = false
		return startProcess(c)
	}
	h.run()
	r := &recordingPromoter{}
	if err := Reload(h.dir, os.Getpid(), nil, r.promote); err != nil {
		t.Fatal(err)
	}
	way := idleStartFor(h.pids(2)[0])
	if rep := h.report(2); rep["policy"] != strconv.Itoa(int(way.policy)) || way.slice != 0 && rep["slice"] != strconv.Itoa(int(way.slice)) {
		t.Errorf("the reload's generation started with policy %s, slice %s ns; want %+v", rep["policy"], rep["slice"], way)
	}
	if err := h.stop(); err != nil {
		t.Fatal(err)
	}
}

// An idle start uses SCHED_IDLE in a cgroup with the cpu controller, and
// elsewhere, or where that cannot be read, SCHED_BATCH with a short slice
// at nice 19.
func TestIdleStartForTheHostsScheduling(t *testing.T) {
	for _, c := range []struct {
		name string
		cpu  bool
		err  error
		want idleStart
	}{
		{"no cpu controller", false, nil, idleOutsideCgroup},
		{"cpu controller", true, nil, idleInCgroup},
		{"cgroup unreadable", false, errors.New("no cgroup"), idleOutsideCgroup},
	} {
		old := cpuInCgroup
		cpuInCgroup = func(pid int) (bool, error) {
			if pid != 42 {
				t.Errorf("asked for the cgroup of pid %d, want 42", pid)
			}
			return c.cpu, c.err
		}
		if got := idleStartFor(42); got != c.want {
			t.Errorf("%s: idleStartFor = %+v, want %+v", c.name, got, c.want)
		}
		cpuInCgroup = old
	}
	if idleOutsideCgroup.policy != unix.SCHED_BATCH || idleOutsideCgroup.slice != idleSlice || !idleOutsideCgroup.nice {
		t.Errorf("idleOutsideCgroup = %+v", idleOutsideCgroup)
	}
}

// Root's side promotes the threads of either idle start, to SCHED_NORMAL
// with the kernel's slice, those of idleOutsideCgroup at the launcher's
// nice value, and no SCHED_BATCH thread of another slice.
func TestPromoteMovesEitherIdleStart(t *testing.T) {
	needNice(t)
	for _, c := range []struct {
		policy   uint32
		slice    time.Duration
		nice     int
		promoted bool
		wantNice int
	}{
		{unix.SCHED_BATCH, idleSlice, idleNice, true, int(ownNice(t))}, // the launcher's: this test's
		{unix.SCHED_IDLE, 0, 7, true, 7},
		{unix.SCHED_BATCH, 2 * idleSlice, 5, false, 5},
	} {
		child := exec.Command("sleep", "60")
		if err := child.Start(); err != nil {
			t.Fatal(err)
		}
		pid := child.Process.Pid
		// The nice value first: the kernel keeps a SCHED_IDLE thread's.
		if _, err := setSched(pid, unix.SCHED_NORMAL, 0, c.nice); err != nil {
			t.Fatal(err)
		}
		if _, err := setSched(pid, c.policy, c.slice, keepNice); err != nil {
			t.Fatal(err)
		}
		did, err := Promote("/proc", os.Getpid(), pid)
		attr, aerr := unix.SchedGetAttr(pid, 0)
		child.Process.Kill()
		child.Wait()
		if err != nil || aerr != nil || (did.Threads == 1) != c.promoted {
			t.Errorf("policy %d, slice %s: promoted %+v, %v (%v)", c.policy, c.slice, did, err, aerr)
			continue
		}
		want := unix.SCHED_NORMAL
		if !c.promoted {
			want = int(c.policy)
		}
		if attr.Policy != uint32(want) || int(attr.Nice) != c.wantNice || c.promoted && attr.Runtime == uint64(idleSlice) {
			t.Errorf("policy %d, slice %s, nice %d: after the promotion policy %d, slice %d ns, nice %d; want policy %d, nice %d",
				c.policy, c.slice, c.nice, attr.Policy, attr.Runtime, attr.Nice, want, c.wantNice)
		}
	}
}

// settle passes again after a pass that changed nothing, once, after a
// pause: a thread on its way when that pass listed them (here: the third
// pass's one) is changed too. Passes that keep changing something are
// bounded, and an error ends the passes.
func TestSettle(t *testing.T) {
	for _, tc := range []struct {
		name          string
		changes       []int
		total, passes int
		err           bool
	}{
		{"a thread on its way during the first quiet pass", []int{2, 0, 1, 0, 0}, 3, 5, false},
		{"nothing to change", []int{0, 0}, 0, 2, false},
		{"changes until the bound", []int{1, 1, 1, 1, 1, 1, 1}, maxPromoteRounds, maxPromoteRounds, false},
		{"quiet passes between changes count once", []int{1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1}, maxPromoteRounds, 2*maxPromoteRounds - 1, false},
		{"an error", []int{1, -1, 0}, 1, 2, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			passes := 0
			total, err := settle(func() (int, error) {
				n := tc.changes[passes]
				passes++
				if n < 0 {
					return 0, errors.New("no such thread")
				}
				return n, nil
			})
			if total != tc.total || passes != tc.passes || (err != nil) != tc.err {
				t.Errorf("settle: %d changed in %d passes, error %v; want %d in %d, error %v", total, passes, err, tc.total, tc.passes, tc.err)
			}
		})
	}
}
