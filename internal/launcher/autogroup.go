package launcher

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sitectl/sitectl/internal/procfs"
)

// SCHED_IDLE alone does not keep an idle start off the CPU its neighbours
// want on a host whose tasks are not in a cgroup with the cpu controller
// (this project's hosts: cgroup v2 without it). There the kernel schedules
// each session as a group of its own (autogroup, kernel.sched_autogroup_enabled
// = 1, the default of Debian's and most distributions' kernels), and the
// group competes with the others at the weight of its nice value, whatever
// the policy of the tasks inside it. A generation is a session of its own
// (startProcess), so its import, under SCHED_IDLE, still took an equal share
// from the serving generation and the neighbour sites. Measured with two
// Python processes burning 2 ms per request against three busy loops (p90 of
// the requests; 2 ms alone): busy loops under SCHED_IDLE in their own
// sessions 8.3 ms, under SCHED_IDLE with their autogroups at nice 19 2.1 ms.
// So an idle start also sets its autogroup to nice 19, which an
// unprivileged process may do (only a lower nice needs privilege), and root's
// side of the promotion sets it back to 0. A generation told to drain gets
// its autogroup at nice 19 with its threads (drainPriority). Where the
// tasks are in a cpu cgroup, autogroups are not used and the setting
// changes nothing. Since then the idle start's threads outside a cpu cgroup
// are no longer under SCHED_IDLE at all, which does harm beside autogroups
// (idleOutsideCgroup in priority.go).

// idleAutogroupNice is the nice value of an idle start's autogroup.
const idleAutogroupNice = 19

// autogroupRetry bounds how long an idle start retries setting its
// autogroup: the kernel lets a process without CAP_SYS_ADMIN change an
// autogroup's nice value once per 100 ms, host-wide (EAGAIN otherwise).
var autogroupRetry = 300 * time.Millisecond

// maxAutogroupFile bounds a read of /proc/PID/autogroup: one short line,
// "/autogroup-N nice K".
const maxAutogroupFile = 256

// parseAutogroup reads the nice value out of /proc/PID/autogroup's line.
func parseAutogroup(b []byte) (int, error) {
	f := strings.Fields(string(b))
	if len(f) != 3 || !strings.HasPrefix(f[0], "/autogroup-") || f[1] != "nice" {
		return 0, fmt.Errorf("unexpected autogroup line %q", b)
	}
	n, err := strconv.Atoi(f[2])
	if err != nil || n < -20 || n > 19 {
		return 0, fmt.Errorf("unexpected autogroup nice value in %q", b)
	}
	return n, nil
}

// autogroupNice is the nice value of the autogroup pid is in (proc:
// /proc). ok is false where the kernel has no autogroups, and where pid
// is in none of its own: a process of PID 1's session that never called
// setsid (a CI runner's, a container's) is in the kernel's default group,
// whose file is empty and whose nice value cannot be set.
func autogroupNice(proc string, pid int) (nice int, ok bool, err error) {
	b, err := procfs.ReadBounded(filepath.Join(proc, strconv.Itoa(pid), "autogroup"), maxAutogroupFile)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	if len(strings.TrimSpace(string(b))) == 0 {
		return 0, false, nil
	}
	n, err := parseAutogroup(b)
	return n, err == nil, err
}

// setAutogroupNice sets the nice value of the autogroup pid is in,
// retrying while the kernel's rate limit refuses it (EAGAIN) for up to
// autogroupRetry.
func setAutogroupNice(proc string, pid, nice int) error {
	deadline := time.Now().Add(autogroupRetry)
	for {
		err := writeAutogroupNice(proc, pid, nice)
		if !errors.Is(err, unix.EAGAIN) || time.Now().After(deadline) {
			return err
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func writeAutogroupNice(proc string, pid, nice int) error {
	return os.WriteFile(filepath.Join(proc, strconv.Itoa(pid), "autogroup"), []byte(strconv.Itoa(nice)), 0)
}

// lowerStartAutogroup is the launcher's part of an idle start: it sets the
// autogroup of pid, a generation's shim that has just made its session, to
// idleAutogroupNice, once, without waiting: the launcher must not wait for
// the kernel's rate limit, and the shim sets it itself if this could not
// (startIdleAutogroup). Without it the shim's own start, 20-30 ms of CPU
// in the first moments of every reload, ran in a group of its own at nice
// 0, beside the sitectl command, systemd and root's side of the reload.
func lowerStartAutogroup(proc string, pid int) {
	if _, ok, err := autogroupNice(proc, pid); err == nil && ok {
		writeAutogroupNice(proc, pid, idleAutogroupNice)
	}
}

// startIdleAutogroup sets the calling process's autogroup (its session's:
// the generation's) to idleAutogroupNice, unless the launcher did. A kernel
// without autogroups has nothing to set.
func startIdleAutogroup() error {
	if _, err := changeAutogroup("/proc", os.Getpid(), func(now int) bool { return now != idleAutogroupNice }, idleAutogroupNice); err != nil {
		return fmt.Errorf("cannot set this generation's autogroup to nice %d: %w", idleAutogroupNice, err)
	}
	return nil
}

// promoteAutogroup is root's side of a promotion for the autogroup of pid
// (the generation's main process, its session's leader): back to nice 0
// if it is at the idle start's nice value. It says whether it changed it.
func promoteAutogroup(proc string, pid int) (bool, error) {
	changed, err := changeAutogroup(proc, pid, func(nice int) bool { return nice == idleAutogroupNice }, 0)
	if err != nil {
		return false, fmt.Errorf("cannot set the autogroup of pid %d to nice 0: %w", pid, err)
	}
	return changed, nil
}

// drainAutogroup sets the autogroup of a draining generation (pid, its
// session's leader) to drainPriority, unless it is there already.
func drainAutogroup(proc string, pid int) error {
	_, err := changeAutogroup(proc, pid, func(nice int) bool { return nice < drainPriority }, drainPriority)
	return err
}

// changeAutogroup sets the autogroup of pid to nice if its nice value now
// is one that change accepts, and says whether it did. A process that
// exited (before or meanwhile), or a kernel without autogroups, has
// nothing to change.
func changeAutogroup(proc string, pid int, change func(now int) bool, nice int) (bool, error) {
	now, ok, err := autogroupNice(proc, pid)
	if err == nil && (!ok || !change(now)) {
		return false, nil
	}
	if err == nil {
		err = setAutogroupNice(proc, pid, nice)
	}
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ESRCH) {
		return false, nil
	}
	return err == nil, err
}
