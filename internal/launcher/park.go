package launcher

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sitectl/sitectl/internal/procfs"
)

// Telling a generation to drain races its workers. uWSGI 2.0's worker
// leaves at once when told to stop between requests (gracefully_kill: exit
// unless in_request), and marks itself in a request only after accept()
// returned: a stop that lands in between drops a connection the worker has
// just taken off the shared queue, and the visitor gets a reset. With
// overlap this window is open all the time, since the old generation keeps
// accepting beside the new one until it is told to stop; uWSGI's own chain
// reload has the same race.
//
// So the launcher stops the old generation's workers (SIGSTOP) while each
// is parked in a wait (epoll, select, poll, a sleep: see waitSyscalls), tells the
// generation to drain, waits until the stop signal its server passes on is
// pending at every parked worker, and only then lets them run (SIGCONT): a
// parked worker sees the signal before it can accept anything. A worker
// that does not park soon (it is busy with a request, which a graceful stop
// lets finish anyway) is left running. All waits are short and bounded, and
// every stopped process is continued whatever happens.

// errCannotInspect ends the parking when the kernel does not show a
// worker's system call (no ptrace access to it).
var errCannotInspect = errors.New("cannot read the system call of a worker")

// parkTimings bound the parking: how long to wait for a stopped process to
// show as stopped, how often to try to catch a busy worker parked, and how
// long to wait for the server to pass the stop on.
type parkTimings struct {
	stopped  time.Duration
	attempts int
	retry    time.Duration
	pending  time.Duration
}

var defaultPark = parkTimings{stopped: 50 * time.Millisecond, attempts: 20, retry: 2 * time.Millisecond, pending: time.Second}

// drainParked sends SIGTERM to a generation's main process with its workers
// parked (see above), and returns how many workers were parked.
func drainParked(proc string, root int, t parkTimings) int {
	var parked []int
	defer func() {
		for _, pid := range parked {
			syscall.Kill(pid, syscall.SIGCONT)
		}
	}()
	if len(waitSyscalls) > 0 {
		for _, pid := range tree(proc, root) {
			if pid == root {
				continue
			}
			ok, err := parkWorker(proc, pid, t)
			if err != nil {
				break
			}
			if ok {
				parked = append(parked, pid)
			}
		}
	}
	syscall.Kill(root, syscall.SIGTERM)
	end := time.Now().Add(t.pending)
	for _, pid := range parked {
		for !signalPending(proc, pid) && processAlive(proc, root) && time.Now().Before(end) {
			time.Sleep(time.Millisecond)
		}
	}
	return len(parked)
}

// parkWorker stops a worker while it waits, and tells whether it did; a
// worker that is not caught waiting is left running.
func parkWorker(proc string, pid int, t parkTimings) (bool, error) {
	for range t.attempts {
		if syscall.Kill(pid, syscall.SIGSTOP) != nil {
			return false, nil // gone
		}
		if waitStopped(proc, pid, t.stopped) {
			ok, err := waiting(proc, pid)
			if ok || err != nil {
				if err != nil {
					syscall.Kill(pid, syscall.SIGCONT)
				}
				return ok, err
			}
		}
		syscall.Kill(pid, syscall.SIGCONT)
		time.Sleep(t.retry)
	}
	return false, nil
}

// waitStopped waits until every thread of pid is stopped.
func waitStopped(proc string, pid int, limit time.Duration) bool {
	end := time.Now().Add(limit)
	for {
		if allStopped(proc, pid) {
			return true
		}
		if time.Now().After(end) {
			return false
		}
		time.Sleep(200 * time.Microsecond)
	}
}

func allStopped(proc string, pid int) bool {
	tids := threads(proc, pid)
	for _, tid := range tids {
		data, err := threadFile(proc, pid, tid, "stat")
		if err != nil || threadState(data) != 'T' {
			return false
		}
	}
	return len(tids) > 0
}

// waiting tells whether every thread of pid is inside one of waitSyscalls
// (or, for threads other than the main one, a futex).
func waiting(proc string, pid int) (bool, error) {
	tids := threads(proc, pid)
	for _, tid := range tids {
		data, err := threadFile(proc, pid, tid, "syscall")
		if errors.Is(err, os.ErrPermission) {
			return false, errCannotInspect
		}
		if err != nil {
			return false, nil
		}
		nr, ok := syscallNumber(data)
		if !ok || !(waitSyscalls[nr] || nr == futexSyscall && tid != strconv.Itoa(pid)) {
			return false, nil
		}
	}
	return len(tids) > 0, nil
}

// syscallNumber parses /proc/PID/task/TID/syscall: "NR ARGS... SP PC" in a
// system call, "-1 SP PC" outside one, "running" when not stopped.
func syscallNumber(line string) (int, bool) {
	f := strings.Fields(line)
	if len(f) == 0 {
		return 0, false
	}
	nr, err := strconv.Atoi(f[0])
	return nr, err == nil && nr >= 0
}

// threadState is the state letter of a /proc stat line ("pid (comm) S ...";
// comm may hold spaces and parentheses).
func threadState(stat string) byte {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 || i+2 >= len(stat) {
		return 0
	}
	return stat[i+2]
}

// maxProcStatus bounds a read of /proc/PID/status: some 60 short lines,
// but its Groups line may list up to NGROUPS_MAX (65536) groups.
const maxProcStatus = 1 << 20

// signalPending tells whether a signal waits for pid (process-wide or for
// its main thread).
func signalPending(proc string, pid int) bool {
	data, err := procfs.ReadBounded(filepath.Join(proc, strconv.Itoa(pid), "status"), maxProcStatus)
	if err != nil {
		return true // gone (or too large to read): nothing to wait for
	}
	for _, line := range strings.Split(string(data), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if ok && (k == "ShdPnd" || k == "SigPnd") {
			if n, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64); err == nil && n != 0 {
				return true
			}
		}
	}
	return false
}

func processAlive(proc string, pid int) bool {
	_, err := os.Stat(filepath.Join(proc, strconv.Itoa(pid)))
	return err == nil
}
