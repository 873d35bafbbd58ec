package launcher

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// A sitectl command that changes a site spends its CPU, some 20-40 ms of
// it (most in the start of a Go program), in the first moments of the
// change, beside the site's serving processes and every other site's; so
// does root's side of a reload (ExecReload=+) and the reload unit's
// `sitectl touched`. Side by side on the benchmark's gunicorn site, the
// requests that arrived in the first 0.25 s of a warm rollback, which
// starts no process, were slower than the steady p99 for 12-26 % of them
// with those commands at normal priority, and 7-9 % in an experiment where
// they yielded for their whole run (test/bench/notes.md). Yield puts the
// calling process's threads where a visitor's request preempts them;
// Yielded.Restore takes the priority back when the command's verification
// of what it changed fails or takes long, so that a busy host cannot
// starve a probe into a false failure.

// Yielded is the priority a process gave up with Yield.
type Yielded struct {
	pid  int
	nice int
	way  idleStart
	// autogroup: Yield lowered the autogroup of the process's own
	// session from autogroupWas.
	autogroup    bool
	autogroupWas int
	// mu guards lowered, which Restore clears: the pass that confirms
	// Yield's changes a thread only while it holds mu and lowered holds.
	mu      sync.Mutex
	lowered bool
	// confirmed is closed when that pass is done or has nothing to do.
	confirmed chan struct{}
}

// Yield puts every thread of the calling process at idle priority and
// returns what it gave up. A process that leads its own session (a unit's
// process: root's side of a reload, `sitectl touched`) gets an idle start's
// priority (idleStartFor) and its session's autogroup at nice 19; one in
// somebody else's session (sitectl run from a shell, by Ansible) gets
// SCHED_IDLE on its threads alone: its session's autogroup is the caller's
// to set. A process whose policy is not SCHED_NORMAL (chrt) is left as it
// is. Threads the process starts later inherit the priority; one that
// Go's runtime was starting while Yield passed over the threads is
// lowered by a pass in the background after settlePause, so that the
// command does not wait for it.
func Yield() (*Yielded, error) {
	y := &Yielded{pid: os.Getpid(), confirmed: make(chan struct{})}
	attr, err := unix.SchedGetAttr(0, 0)
	if err != nil {
		close(y.confirmed)
		return y, fmt.Errorf("cannot read this process's priority: %w", err)
	}
	if attr.Policy != unix.SCHED_NORMAL {
		close(y.confirmed)
		return y, nil
	}
	y.nice = int(attr.Nice)
	y.way = idleStart{unix.SCHED_IDLE, 0, false}
	if sid, err := unix.Getsid(0); err == nil && sid == y.pid {
		y.way = idleStartFor(y.pid)
		// Once, without waiting for the kernel's rate limit (EAGAIN).
		if now, ok, err := autogroupNice("/proc", y.pid); err == nil && ok && now < idleAutogroupNice {
			if writeAutogroupNice("/proc", y.pid, idleAutogroupNice) == nil {
				y.autogroup, y.autogroupWas = true, now
			}
		}
	}
	y.lowered = true
	_, err = y.pass(y.way.set)
	go y.confirm()
	return y, err
}

// raise puts one thread back at SCHED_NORMAL and the nice value Yield
// found.
func (y *Yielded) raise(tid int) (bool, error) {
	return setSched(tid, unix.SCHED_NORMAL, 0, y.nice)
}

// pass runs set on every thread of the process and says how many it
// changed.
func (y *Yielded) pass(set func(tid int) (bool, error)) (int, error) {
	n := 0
	err := eachThread(y.pid, func(tid int) error {
		c, err := set(tid)
		if c {
			n++
		}
		return err
	})
	return n, err
}

// errRestored ends the pass that confirms Yield's once Restore began.
var errRestored = errors.New("the priority was taken back")

// confirm is Yield's pass in the background: it lowers what Yield's own
// pass missed (settle). It changes a thread only while Restore has not
// begun, and holds mu only for that thread, so that Restore, on a busy
// host where this pass runs at idle priority, waits for one thread at most.
func (y *Yielded) confirm() {
	defer close(y.confirmed)
	time.Sleep(settlePause)
	_, _ = settle(func() (int, error) {
		return y.pass(func(tid int) (bool, error) {
			y.mu.Lock()
			defer y.mu.Unlock()
			if !y.lowered {
				return false, errRestored
			}
			return y.way.set(tid)
		})
	})
}

// Restore puts the threads of the process back at SCHED_NORMAL with the
// nice value they had, and its autogroup back, if Yield lowered them.
// Leaving SCHED_IDLE or nice 19 needs CAP_SYS_NICE (or an RLIMIT_NICE
// that systemd rarely grants): a command without it keeps yielding.
// Restore does its work once.
func (y *Yielded) Restore() error {
	if y == nil {
		return nil
	}
	y.mu.Lock()
	lowered := y.lowered
	y.lowered = false
	y.mu.Unlock()
	if !lowered {
		return nil
	}
	var errs []error
	if y.autogroup {
		errs = append(errs, writeAutogroupNice("/proc", y.pid, y.autogroupWas))
	}
	// A thread started during a pass from one not yet restored is idle
	// too (settle).
	_, err := settle(func() (int, error) { return y.pass(y.raise) })
	errs = append(errs, err)
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("cannot take back this process's priority: %w", err)
	}
	return nil
}

// eachThread runs set on every thread of pid; a thread that has exited
// meanwhile is no error.
func eachThread(pid int, set func(tid int) error) error {
	tids := threads("/proc", pid)
	if len(tids) == 0 {
		return fmt.Errorf("cannot list the threads of pid %d", pid)
	}
	for _, t := range tids {
		tid, err := strconv.Atoi(t)
		if err != nil {
			continue
		}
		if err := set(tid); err != nil && !errors.Is(err, unix.ESRCH) {
			return err
		}
	}
	return nil
}
