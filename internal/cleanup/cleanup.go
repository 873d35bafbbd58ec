// Package cleanup is what runs after a site's main process has exited
// (ExecStopPost=): it stops the processes the app left behind in the unit's
// cgroup, gives them time to release what they hold, and then runs the
// site's cleanup hooks. Whatever still runs afterwards gets systemd's final
// SIGKILL.
package cleanup

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/sitectl/sitectl/internal/cgroup"
)

// Options for one cleanup run. Zero values mean defaults.
type Options struct {
	// Unit is the unit Run must run in (site-NAME.service): it stops
	// every other process of its own cgroup, so anywhere else (an
	// operator's shell, another unit, a container's root cgroup) it
	// would stop what is not the site's. Required.
	Unit    string
	Hooks   [][]string
	Timeout time.Duration // for the leftovers to exit, and for each hook; default 10s
	// Budget is how long systemd lets the cleanup run (TimeoutStopSec=,
	// which bounds ExecStopPost= too); 0: no bound. The wait for the
	// leftovers and each hook get their Timeout only where it fits, so
	// that every hook runs and the record is written before systemd's
	// SIGKILL ends the cleanup.
	Budget time.Duration
	Logf   func(format string, args ...any)
	// Started is called once Run knows it runs in its unit, before it
	// does anything: the record that a cleanup began, which tells a
	// cleanup that systemd killed (TimeoutStopSec=) from one that ran to
	// its end. Nil: not called.
	Started func()
	// Poll is how often the cgroup is looked at while waiting; default 50ms.
	Poll time.Duration
}

// Report says what a cleanup found and did.
type Report struct {
	Leftovers    []int    // processes found after the main process exited
	Remaining    []int    // still there after the timeout (systemd kills them)
	HooksRun     int      // hooks that ran
	HookFailures []string // one line per failed hook
	// HookLeftovers are processes that appeared in the cgroup while the
	// hooks ran and still run after them (a hook's daemon): systemd's
	// final SIGKILL ends them. They are in Remaining too.
	HookLeftovers []int
	// ListError is why the cgroup's processes could not be listed: the
	// leftovers and what remains are then not known. The hooks run all
	// the same.
	ListError string
}

// result is the one-word result of a cleanup, as the journal records it.
func (r Report) result() string {
	if r.ListError != "" {
		return ResultListFailed
	}
	if len(r.HookFailures) > 0 {
		return ResultHookFailed
	}
	return ResultOK
}

// The results of a cleanup, as its record has them.
const (
	ResultOK         = "ok"
	ResultHookFailed = "hook-failed"
	// ResultListFailed: the cgroup's processes could not be listed (the
	// hooks ran).
	ResultListFailed = "listing-failed"
	// ResultFailed: the cleanup failed before it ran its hooks (its
	// cgroup could not be read).
	ResultFailed = "failed"
	// ResultStarted is the record a cleanup writes first. As the last
	// record of a site it is a cleanup with no result yet: it runs now,
	// or it was killed (TimeoutStopSec=) or died before it wrote one.
	ResultStarted = "started"
	// ResultRunning and ResultUnfinished are what status makes of a last
	// record that is ResultStarted: the service runs its cleanup now
	// (stop-post), or it does not and the cleanup ended without a
	// result.
	ResultRunning    = "running"
	ResultUnfinished = "unfinished"
)

// ErrNotInUnit is Run's error outside the unit it is for.
var ErrNotInUnit = errors.New("not in the unit it cleans up")

// The cgroup of a process and the processes of a cgroup; variables for
// tests.
var (
	cgroupOf    = cgroup.Of
	cgroupProcs = cgroup.Procs
)

// inUnit checks that group, a cgroup path, is unit's own: systemd runs
// ExecStopPost= in the cgroup of its service, named after it.
func inUnit(group, unit string) error {
	if unit != "" && path.Base(group) == unit {
		return nil
	}
	return fmt.Errorf("%w: sitectl cleanup stops every other process of its cgroup, and runs only as the ExecStopPost= of %s, in its cgroup; this process is in the cgroup %q, so nothing was done", ErrNotInUnit, unit, group)
}

// Run cleans up the cgroup this process runs in, which must be
// opts.Unit's.
func Run(ctx context.Context, opts Options) (Report, error) {
	if opts.Timeout == 0 {
		opts.Timeout = 10 * time.Second
	}
	if opts.Poll == 0 {
		opts.Poll = 50 * time.Millisecond
	}
	if opts.Logf == nil {
		opts.Logf = func(string, ...any) {}
	}
	var rep Report
	group, err := cgroupOf(0)
	if err != nil {
		return rep, err
	}
	if err := inUnit(group, opts.Unit); err != nil {
		return rep, err
	}
	if opts.Started != nil {
		opts.Started()
	}
	b := budget{end: time.Now().Add(opts.Budget - budgetReserve), bounded: opts.Budget > 0}
	others := func() ([]int, error) {
		pids, err := cgroupProcs(group)
		if err != nil && rep.ListError == "" {
			rep.ListError = err.Error()
		}
		return slices.DeleteFunc(pids, func(p int) bool { return p == os.Getpid() }), err
	}
	// A failed listing stops no process, but the site's own cleanup (its
	// hooks: locks removed, deregistered) runs all the same, and the
	// record says the listing failed.
	rep.Leftovers, err = others()
	switch {
	case err != nil:
		opts.Logf("the processes left behind are not known: %v; the cleanup hooks run all the same, and systemd's SIGKILL ends what still runs", err)
	case len(rep.Leftovers) == 0:
		opts.Logf("no processes were left behind")
	default:
		opts.Logf("%d processes were left behind: %s; sending SIGTERM", len(rep.Leftovers), describe(rep.Leftovers))
		signaled := map[int]bool{}
		terminate(rep.Leftovers, signaled)
		wait := b.share(opts.Timeout, len(opts.Hooks)+1)
		if wait < opts.Timeout {
			opts.Logf("the left-behind processes get %s, not %s: systemd gives the cleanup %s (TimeoutStopSec=) and %d hooks follow", wait.Round(time.Millisecond), opts.Timeout, opts.Budget, len(opts.Hooks))
		}
		deadline := time.Now().Add(wait)
		for {
			rep.Remaining, err = others()
			// A process forked since the last look (a leftover's
			// child, a daemon's second fork) is left behind too: it
			// gets its SIGTERM and the rest of the wait, not
			// systemd's SIGKILL alone.
			if late := terminate(rep.Remaining, signaled); len(late) > 0 {
				opts.Logf("%d more processes appeared: %s; sending SIGTERM", len(late), describe(late))
				rep.Leftovers = append(rep.Leftovers, late...)
			}
			if err != nil || len(rep.Remaining) == 0 || time.Now().After(deadline) {
				break
			}
			time.Sleep(opts.Poll)
		}
		switch {
		case err != nil:
			opts.Logf("the left-behind processes could no longer be listed: %v; whether they exited is not known, systemd's SIGKILL ends what still runs", err)
		case len(rep.Remaining) == 0:
			opts.Logf("all left-behind processes exited")
		default:
			opts.Logf("%d processes still run after %s: %s; systemd will SIGKILL them", len(rep.Remaining), wait.Round(time.Millisecond), describe(rep.Remaining))
		}
	}
	for i, hook := range opts.Hooks {
		rep.HooksRun++
		if msg := runHook(ctx, hook, b.share(opts.Timeout, len(opts.Hooks)-i)); msg != "" {
			rep.HookFailures = append(rep.HookFailures, msg)
			opts.Logf("cleanup hook failed: %s", msg)
		} else {
			opts.Logf("cleanup hook %s succeeded", strings.Join(hook, " "))
		}
	}
	if len(opts.Hooks) > 0 {
		rep.hookLeftovers(others, opts.Logf)
	}
	return rep, nil
}

// hookLeftovers looks at the cgroup once the hooks ran: what still runs
// there is what systemd's final SIGKILL ends, the leftovers that outlived
// their wait and what the hooks left behind (a daemon a hook started), which
// the record counts apart.
func (r *Report) hookLeftovers(others func() ([]int, error), logf func(string, ...any)) {
	after, err := others()
	if err != nil {
		logf("the processes left after the cleanup hooks are not known: %v", err)
		return
	}
	r.Remaining = after
	if r.ListError != "" {
		// Without the first listing, what the app left cannot be told
		// from what the hooks left.
		return
	}
	before := r.Leftovers
	r.HookLeftovers = nil
	for _, pid := range after {
		if !slices.Contains(before, pid) {
			r.HookLeftovers = append(r.HookLeftovers, pid)
		}
	}
	if len(r.HookLeftovers) > 0 {
		logf("the cleanup hooks left %d processes running: %s; systemd will SIGKILL them", len(r.HookLeftovers), describe(r.HookLeftovers))
	}
}

// budgetReserve is what the cleanup keeps of its budget for what follows
// its waits: the record it sends, and the unit's next ExecStopPost=.
const budgetReserve = time.Second

// budget is the time left to a cleanup before systemd ends it.
type budget struct {
	end     time.Time
	bounded bool
}

// share is what a wait whose own limit is limit gets when it is the first
// of n still to come: limit, or its even share of the time left if that
// is less (at least a tenth of a second).
func (b budget) share(limit time.Duration, n int) time.Duration {
	if !b.bounded || n < 1 {
		return limit
	}
	return max(min(limit, time.Until(b.end)/time.Duration(n)), 100*time.Millisecond)
}

// terminate sends SIGTERM to each of pids not in signaled yet, and
// records it there; it returns those it signaled. SIGCONT follows, as
// systemd's own stop sends it: a stopped process (SIGSTOP, SIGTSTP)
// keeps a handled SIGTERM pending, and would get to release nothing
// before systemd's SIGKILL.
func terminate(pids []int, signaled map[int]bool) []int {
	var sent []int
	for _, pid := range pids {
		if signaled[pid] {
			continue
		}
		signaled[pid] = true
		sent = append(sent, pid)
		_ = syscall.Kill(pid, syscall.SIGTERM)
		_ = syscall.Kill(pid, syscall.SIGCONT)
	}
	return sent
}

func runHook(ctx context.Context, argv []string, timeout time.Duration) string {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	cmd.WaitDelay = time.Second
	err := cmd.Run()
	switch {
	case ctx.Err() == context.DeadlineExceeded:
		return fmt.Sprintf("%s: did not finish within %s and was killed", strings.Join(argv, " "), timeout)
	case err != nil:
		return fmt.Sprintf("%s: %v", strings.Join(argv, " "), err)
	}
	return ""
}

func describe(pids []int) string {
	parts := make([]string, len(pids))
	for i, p := range pids {
		parts[i] = fmt.Sprintf("%d (%s)", p, cgroup.Comm(p))
	}
	return strings.Join(parts, ", ")
}
