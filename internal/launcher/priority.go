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

	"github.com/sitectl/sitectl/internal/procfs"
)

// A reload's new generation starts under SCHED_IDLE (start_priority =
// "idle"): its cold start, typically seconds of CPU importing the app, then
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

// envStartIdle asks a generation's shim to put itself under SCHED_IDLE
// before it execs the app, which inherits the policy (as do its threads and
// children).
const envStartIdle = "SITECTL_START_IDLE"

// defaultPromoteAfter is Config.PromoteAfter's default: a generation still
// not ready after this long is promoted anyway, so that on a host that is
// busy all the time an idle start delays a reload by at most this much.
const defaultPromoteAfter = 5 * time.Second

// startIdleSelf puts every thread of the calling process under SCHED_IDLE,
// keeping each one's nice value, and its session's autogroup at nice 19
// (autogroup.go). Threads started later inherit the policy of the thread
// that starts them.
func startIdleSelf() error {
	tids := threads("/proc", os.Getpid())
	if len(tids) == 0 {
		return errors.New("cannot list the threads of this process")
	}
	for _, t := range tids {
		tid, err := strconv.Atoi(t)
		if err != nil {
			continue
		}
		if _, err := setPolicy(tid, unix.SCHED_IDLE); err != nil && !errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("cannot start at idle priority: %w", err)
		}
	}
	return startIdleAutogroup()
}

// setPolicy sets the scheduling policy of one thread to policy (SCHED_IDLE
// or SCHED_NORMAL), keeping its nice value and flags. changed says whether
// it had another policy before.
func setPolicy(tid int, policy uint32) (changed bool, err error) {
	attr, err := unix.SchedGetAttr(tid, 0)
	if err != nil {
		return false, err
	}
	if attr.Policy == policy {
		return false, nil
	}
	attr.Policy = policy
	attr.Priority = 0
	return true, unix.SchedSetAttr(tid, attr, 0)
}

// promoteThread moves one thread from SCHED_IDLE to SCHED_NORMAL, keeping
// its nice value, and says whether it did. A thread of any other policy is
// left as it is: SCHED_BATCH the app chose, or a real-time thread of
// another process that took a pid of the tree Promote walked after it
// exited.
func promoteThread(tid int) (bool, error) {
	attr, err := unix.SchedGetAttr(tid, 0)
	if err != nil || attr.Policy != unix.SCHED_IDLE {
		return false, err
	}
	attr.Policy = unix.SCHED_NORMAL
	attr.Priority = 0
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

// maxPromoteRounds bounds Promote's passes over a generation that keeps
// forking idle children while it is promoted.
const maxPromoteRounds = 5

// Promote is root's side of a promotion: it moves every SCHED_IDLE thread
// of pid and its descendants to SCHED_NORMAL, keeping their nice values,
// and pid's autogroup from the idle start's nice 19 back to 0.
// pid must be a descendant of mainPID (the launcher: the service's main
// process, $MAINPID of ExecReload=) and in the same cgroup, so that a
// launcher, which runs as the site's user, can have nothing but its own
// site's processes promoted, and never above normal. It passes over the
// tree until a pass finds no idle thread, since a process forked during a
// pass from a thread not yet promoted is idle too.
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
	seen := map[int]bool{}
	for range maxPromoteRounds {
		n := 0
		for _, p := range tree(proc, pid) {
			for _, t := range threads(proc, p) {
				tid, err := strconv.Atoi(t)
				if err != nil {
					continue
				}
				changed, err := promoteThread(tid)
				switch {
				case errors.Is(err, unix.ESRCH):
				case err != nil:
					return done, fmt.Errorf("cannot promote thread %d of pid %d: %w", tid, p, err)
				case changed:
					n++
					if !seen[p] {
						seen[p] = true
						done.Processes++
					}
				}
			}
		}
		done.Threads += n
		if n == 0 {
			return done, nil
		}
	}
	return done, nil
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
