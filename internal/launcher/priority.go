package launcher

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sitectl/sitectl/internal/cgroup"
	"github.com/sitectl/sitectl/internal/procfs"
)

// A reload's new generation starts at idle priority (start_priority =
// "idle"; idleStart says how): its cold start, typically seconds of CPU importing the app, then
// runs only on CPU time that the serving generation and the other sites on
// the host do not want, so a reload costs its neighbours nothing. Once it is
// ready it must serve at normal priority, but nothing inside the unit can
// raise a priority back: the site's user has no RLIMIT_NICE (systemd cannot
// grant it where it lacks CAP_SYS_RESOURCE) and no capability. Root's side
// of the reload can: `sitectl launch SITE --reload` (ExecReload=+) asks for
// the reload with "reload-promote", and the launcher answers "promote PID"
// when the generation whose main process is PID is ready (or has started
// for Config.PromoteAfter); root's side promotes every thread of that process and
// its descendants (Promote) and says "promoted: ..." or "failed: ...", and a
// failed promotion fails the reload. A reload without root's side (SIGHUP,
// or a launcher of an older sitectl) starts at normal priority.

// envStartIdle tells a generation's shim that it is an idle start: with
// startedIdle the launcher started it at idle priority, which the app
// inherits (as do its threads and children), and the shim sets its
// autogroup if the launcher could not; with lowerIdle (a launcher of an
// older sitectl) the shim puts itself at idle priority before it execs the
// app.
const envStartIdle = "SITECTL_START_IDLE"

const (
	startedIdle = "started"
	lowerIdle   = "1"
)

// defaultPromoteAfter is Config.PromoteAfter's default: a generation still
// not ready after this long is promoted anyway, so that on a host that is
// busy all the time an idle start delays a reload by at most this much.
const defaultPromoteAfter = 5 * time.Second

// idleStart is how an idle start lowers a generation's threads: a policy,
// a scheduler slice (sched_attr.sched_runtime; 0: the kernel's) and
// whether their nice value goes to idleNice.
type idleStart struct {
	policy uint32
	slice  time.Duration
	nice   bool
}

// idleSlice is the slice of an idle start's threads outside a cpu cgroup.
// With SCHED_BATCH it also marks them for root's promotion (an app that
// sets its own slice to exactly this is not expected).
const idleSlice = 100 * time.Microsecond

// idleNice is the nice value of an idle start's threads outside a cpu
// cgroup.
const idleNice = 19

var (
	// idleInCgroup is for tasks in a cgroup with the cpu controller: the
	// generation shares its unit's group with the serving one, and a
	// serving worker that wakes preempts a SCHED_IDLE task at once.
	idleInCgroup = idleStart{unix.SCHED_IDLE, 0, false}
	// idleOutsideCgroup is for tasks outside one: grouped by session
	// (autogroups; see autogroup.go), where the autogroup at nice 19 does
	// what SCHED_IDLE does in a cgroup and SCHED_IDLE does harm, or,
	// with autogroups off, all in one group, where nice 19 does. Beside
	// two busy loops in their own session at autogroup nice 19, the WSGI
	// app's p99 was 6.4-10.5 ms with the loops under SCHED_IDLE (7 runs of
	// 2,000 requests) and 4.9-6.8 ms under SCHED_BATCH with this slice
	// (4.3-5.9 ms beside nothing; go run ./test/idlecost): a CPU that runs
	// only SCHED_IDLE tasks counts as idle when the kernel places a waking
	// task, but a task of another group preempts them only as a group, so
	// the wakeup waits. SCHED_BATCH keeps the generation's own wakeups
	// from preempting anyone, and the short slice ends the run-to-parity
	// protection of its group (whose slice is its tasks' shortest), so
	// that a serving worker that wakes on its CPU need not wait for the
	// next timer tick (the 3-4 ms waits of docs/overlap.md).
	idleOutsideCgroup = idleStart{unix.SCHED_BATCH, idleSlice, true}
)

// startIdleSelf puts every thread of the calling process at the idle
// start's priority (idleStartFor) and its session's autogroup at nice 19
// (autogroup.go). Threads and processes started later inherit both.
func startIdleSelf() error {
	if err := eachThread(os.Getpid(), idleStartFor(os.Getpid()).apply); err != nil {
		return fmt.Errorf("cannot start at idle priority: %w", err)
	}
	return startIdleAutogroup()
}

// idleStartInShim is the shim's part of an idle start (envStartIdle).
func idleStartInShim() error {
	switch os.Getenv(envStartIdle) {
	case lowerIdle:
		return startIdleSelf()
	case startedIdle:
		// Unless already promoted: a promotion raised the autogroup too.
		attr, err := unix.SchedGetAttr(0, 0)
		if err != nil || !isIdleStart(attr) {
			return err
		}
		return startIdleAutogroup()
	}
	return nil
}

// idleStartFor is the idle start for pid: idleInCgroup where its cgroup
// has the cpu controller, else (or when that cannot be read)
// idleOutsideCgroup, which does no harm in a cgroup either.
func idleStartFor(pid int) idleStart {
	if cpu, err := cpuInCgroup(pid); err == nil && cpu {
		return idleInCgroup
	}
	return idleOutsideCgroup
}

// cpuInCgroup says whether pid's cgroup has the cpu controller; tests
// replace it.
var cpuInCgroup = func(pid int) (bool, error) {
	c, err := cgroup.Controllers(pid)
	return slices.Contains(c, "cpu"), err
}

// set puts one thread at this idle start's priority and says whether
// that changed it.
func (w idleStart) set(tid int) (bool, error) {
	nice := keepNice
	if w.nice {
		nice = idleNice
	}
	return setSched(tid, w.policy, w.slice, nice)
}

// apply puts one thread at this idle start's priority.
func (w idleStart) apply(tid int) error {
	_, err := w.set(tid)
	return err
}

// keepNice, as setSched's nice, keeps the thread's nice value.
const keepNice = 100

// setSched sets the scheduling policy of one thread to policy, its slice
// to slice (0: the kernel's) and its nice value to nice (keepNice: kept),
// keeping its flags. changed says whether any of them changed.
func setSched(tid int, policy uint32, slice time.Duration, nice int) (changed bool, err error) {
	attr, err := unix.SchedGetAttr(tid, 0)
	if err != nil {
		return false, err
	}
	if nice == keepNice {
		nice = int(attr.Nice)
	}
	// The kernel reports a fair thread's slice, its own or the default.
	if attr.Policy == policy && (slice == 0 || attr.Runtime == uint64(slice)) && int(attr.Nice) == nice {
		return false, nil
	}
	attr.Policy, attr.Priority, attr.Runtime, attr.Nice = policy, 0, uint64(slice), int32(nice)
	return true, unix.SchedSetAttr(tid, attr, 0)
}

// isIdleStart says whether attr is an idle start's (idleInCgroup,
// idleOutsideCgroup).
func isIdleStart(attr *unix.SchedAttr) bool {
	return attr.Policy == unix.SCHED_IDLE || attr.Policy == unix.SCHED_BATCH && attr.Runtime == uint64(idleSlice)
}

// promoteThread moves one thread of an idle start to SCHED_NORMAL with the
// kernel's slice, and says whether it did. A SCHED_IDLE thread keeps its
// nice value; one of idleOutsideCgroup gets nice, the launcher's, from
// which its generation started. A thread of any other policy is left as
// it is: SCHED_BATCH the app chose, or a real-time thread of another
// process that took a pid of the tree Promote walked after it exited.
func promoteThread(tid, nice int) (bool, error) {
	attr, err := unix.SchedGetAttr(tid, 0)
	if err != nil || !isIdleStart(attr) {
		return false, err
	}
	if attr.Policy == unix.SCHED_BATCH {
		attr.Nice = int32(nice)
	}
	attr.Policy, attr.Priority, attr.Runtime = unix.SCHED_NORMAL, 0, 0
	return true, unix.SchedSetAttr(tid, attr, 0)
}

// Promotion is what Promote did.
type Promotion struct {
	Threads, Processes int
	// Autogroup: the generation's autogroup went back to nice 0.
	Autogroup bool
}

func (p Promotion) String() string {
	s := fmt.Sprintf("%d threads of %d processes to normal priority", p.Threads, p.Processes)
	if p.Autogroup {
		s += ", their autogroup to nice 0"
	}
	return s
}

// maxPromoteRounds bounds the passes that change something, over a
// generation that keeps forking idle children while it is promoted or a
// process that keeps starting threads while its priority changes.
const maxPromoteRounds = 5

// settlePause is how long settle waits before the pass that confirms that
// nothing is left to change. A thread or process being created copies its
// creator's priority before it shows in /proc: a pass that lists threads
// while one is on its way misses it, and the one after it at once can miss
// it too when its creator (just changed, or at idle priority until then)
// has not run since. Seen on a busy host: 1 in some 1,200 yields left a
// thread at normal priority (go test -count=400 -run TestYield beside four
// busy loops).
const settlePause = 5 * time.Millisecond

// settle runs pass, which changes the priority of the threads it finds and
// says how many it changed, until a pass that follows a pause of
// settlePause changes nothing, or maxPromoteRounds passes have changed
// something. It returns how many threads the passes changed in all.
func settle(pass func() (int, error)) (int, error) {
	total, confirming := 0, false
	for rounds := 0; rounds < maxPromoteRounds; {
		n, err := pass()
		total += n
		switch {
		case err != nil:
			return total, err
		case n > 0:
			rounds, confirming = rounds+1, false
		case confirming:
			return total, nil
		default:
			confirming = true
			time.Sleep(settlePause)
		}
	}
	return total, nil
}

// Promote is root's side of a promotion: it moves every thread of pid and
// its descendants that is at an idle start's priority (promoteThread) to
// SCHED_NORMAL, at the launcher's nice value where the idle start lowered
// it, and pid's autogroup from the idle start's nice 19 back to 0.
// pid must be a descendant of mainPID (the launcher: the service's main
// process, $MAINPID of ExecReload=) and in the same cgroup, so that a
// launcher, which runs as the site's user, can have nothing but its own
// site's processes promoted, and never above normal nor above the
// launcher's own priority (which its user can lower, not raise). It passes over the
// tree until a pass finds no idle thread (settle), since a process forked
// during a pass from a thread not yet promoted is idle too.
func Promote(proc string, mainPID, pid int) (Promotion, error) {
	var done Promotion
	if err := CheckGeneration(proc, mainPID, pid); err != nil {
		return done, err
	}
	// The autogroup first: until it is back, the promoted threads still
	// get the CPU only as a group at nice 19.
	raised, err := promoteAutogroup(proc, pid)
	if err != nil {
		return done, err
	}
	done.Autogroup = raised
	// The generation started from the launcher with its nice value.
	launcher, err := unix.SchedGetAttr(mainPID, 0)
	if err != nil {
		return done, fmt.Errorf("cannot read the launcher's priority: %w", err)
	}
	seen := map[int]bool{}
	n, err := settle(func() (int, error) {
		n := 0
		for _, p := range tree(proc, pid) {
			for _, t := range threads(proc, p) {
				tid, err := strconv.Atoi(t)
				if err != nil {
					continue
				}
				changed, err := promoteThread(tid, int(launcher.Nice))
				switch {
				case errors.Is(err, unix.ESRCH):
				case err != nil:
					return n, fmt.Errorf("cannot promote thread %d of pid %d: %w", tid, p, err)
				case changed:
					n++
					if !seen[p] {
						seen[p] = true
						done.Processes++
					}
				}
			}
		}
		return n, nil
	})
	done.Threads = n
	return done, err
}

// CheckGeneration checks that pid, as a launcher named it (to be promoted,
// or in its status), is one of its processes: a descendant of mainPID (the
// launcher, the service's main process) other than mainPID itself, in the
// same cgroup, under proc (/proc). A launcher runs as the site's user, and
// the site's app can answer on its control socket: root's side reads or
// changes a process it names only after this check, so that it can be
// made to touch nothing but its own site's processes.
func CheckGeneration(proc string, mainPID, pid int) error {
	if mainPID <= 0 || pid <= 0 || pid == mainPID || !slices.Contains(tree(proc, mainPID), pid) {
		return fmt.Errorf("pid %d is not a generation of the launcher (pid %d)", pid, mainPID)
	}
	return sameCgroup(proc, mainPID, pid)
}

// maxCgroupFile bounds a read of /proc/PID/cgroup: a line per hierarchy
// (one with cgroup v2 alone, some 15 on a hybrid host), each path shorter
// than PATH_MAX.
const maxCgroupFile = 64 << 10

// sameCgroup checks that pid is in mainPID's cgroup.
func sameCgroup(proc string, mainPID, pid int) error {
	want, err := procfs.ReadBounded(filepath.Join(proc, strconv.Itoa(mainPID), "cgroup"), maxCgroupFile)
	if err != nil {
		return fmt.Errorf("cannot read the launcher's cgroup: %w", err)
	}
	got, err := procfs.ReadBounded(filepath.Join(proc, strconv.Itoa(pid), "cgroup"), maxCgroupFile)
	if err != nil {
		return fmt.Errorf("cannot read the cgroup of pid %d: %w", pid, err)
	}
	if !bytes.Equal(want, got) {
		return fmt.Errorf("pid %d is not in the launcher's cgroup", pid)
	}
	return nil
}
