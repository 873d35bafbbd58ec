// Package procfs reads what sitectl needs to know of a process from /proc:
// the environment it started with, and how long it has been running. Both
// are read as root for processes of other users (a site's dynamic user).
package procfs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Root is where /proc is mounted; tests point it elsewhere.
var Root = "/proc"

// MaxEnviron bounds what Environ reads of /proc/PID/environ: the kernel's
// limit on the arguments and environment of an exec is a quarter of the
// stack limit, 2 MiB by default.
const MaxEnviron = 4 << 20

// MaxStat bounds a read of /proc/PID/stat: some 50 numbers and a command
// name of at most 16 bytes (64 for a kernel thread).
const MaxStat = 4 << 10

// Environ returns the environment process pid started with: what its exec
// got, "NAME=value" each, in order. It is read from the process's memory
// (ReadMemoryBounded), bounded in time as in size.
func Environ(pid int) ([]string, error) {
	data, err := ReadMemoryBounded(filepath.Join(Root, strconv.Itoa(pid), "environ"), MaxEnviron)
	if err != nil {
		return nil, fmt.Errorf("cannot read the environment of process %d: %w", pid, err)
	}
	var env []string
	for _, kv := range bytes.Split(data, []byte{0}) {
		if len(kv) > 0 {
			env = append(env, string(kv))
		}
	}
	return env, nil
}

// clockTicks is USER_HZ, the unit of the times in /proc/PID/stat: 100 on
// every Linux architecture sitectl runs on.
const clockTicks = 100

// Age is how long process pid has been running: since its fork, not its
// last exec.
func Age(pid int) (time.Duration, error) { return AgeIn(Root, pid) }

// AgeIn is Age of a process under the proc mount proc.
func AgeIn(proc string, pid int) (time.Duration, error) {
	data, err := ReadBounded(filepath.Join(proc, strconv.Itoa(pid), "stat"), MaxStat)
	if err != nil {
		return 0, fmt.Errorf("cannot read the start time of process %d: %w", pid, err)
	}
	start, err := startTicks(data)
	if err != nil {
		return 0, fmt.Errorf("cannot read the start time of process %d: %w", pid, err)
	}
	var now unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &now); err != nil {
		return 0, fmt.Errorf("cannot read the clock: %w", err)
	}
	return time.Duration(now.Nano()) - time.Duration(start)*time.Second/clockTicks, nil
}

// Exited tells whether process pid has exited and waits to be reaped (a
// zombie, state Z, or X as it is being reaped): its environ reads empty
// then, and stays so until its parent reaps it.
func Exited(pid int) (bool, error) {
	st, err := State(pid)
	return st == "Z" || st == "X", err
}

// State is the state of process pid, field 3 of /proc/PID/stat: R
// running, S sleeping, D waiting for I/O, T stopped by a signal, t stopped
// by a debugger, Z zombie, X dead, and others.
func State(pid int) (string, error) {
	f, err := statFields(pid)
	if err != nil {
		return "", fmt.Errorf("cannot read the state of process %d: %w", pid, err)
	}
	return f[0], nil
}

// statFields is /proc/PID/stat from field 3 (state) on, at least 4 of
// them. The command name (field 2) may hold spaces and parentheses, so
// the fields are counted after its last ')'.
func statFields(pid int) ([]string, error) {
	data, err := ReadBounded(filepath.Join(Root, strconv.Itoa(pid), "stat"), MaxStat)
	if err != nil {
		return nil, err
	}
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return nil, fmt.Errorf("%.40q is not a stat line", data)
	}
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 4 {
		return nil, fmt.Errorf("%.40q is not a stat line", data)
	}
	return f, nil
}

// Stopped tells whether a state is a stopped process's: by a signal
// (SIGSTOP, SIGTSTP) or by a debugger.
func Stopped(state string) bool { return state == "T" || state == "t" }

// SessionStopped tells whether process sid and every other process of its
// session are stopped (Stopped): then nothing of it runs, and nothing of
// it answers a request until it is continued. A service's main process
// leads a session (systemd starts it so), and so does each generation of
// an overlap site. It reads every process's stat only when sid itself is
// stopped, and stops with ctx's error once ctx is done.
func SessionStopped(ctx context.Context, sid int) (bool, error) {
	st, err := State(sid)
	if err != nil || !Stopped(st) {
		return false, err
	}
	entries, err := os.ReadDir(Root)
	if err != nil {
		return false, fmt.Errorf("cannot list the processes: %w", err)
	}
	for i, e := range entries {
		if err := ctx.Err(); err != nil {
			return false, err
		}
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == sid || i > maxProcs {
			continue
		}
		f, err := statFields(pid)
		if err != nil || f[3] != strconv.Itoa(sid) {
			continue // not of the session, or it exited meanwhile
		}
		if !Stopped(f[0]) && f[0] != "Z" && f[0] != "X" {
			return false, nil
		}
	}
	return true, nil
}

// startTicks is field 22 of /proc/PID/stat, starttime: clock ticks since
// boot. The command name (field 2) may hold spaces and parentheses, so the
// fields are counted after its last ')'.
func startTicks(stat []byte) (int64, error) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("%.40q is not a stat line", stat)
	}
	f := strings.Fields(string(stat[i+1:])) // field 3 (state) onwards
	if len(f) < 20 {
		return 0, fmt.Errorf("%.40q is not a stat line", stat)
	}
	return strconv.ParseInt(f[19], 10, 64)
}

// ReadBounded reads a file of at most limit bytes: a /proc or cgroup file,
// whose size stat does not tell. A larger file is an error, after reading
// no more than limit+1 bytes of it, and no data is returned with an error:
// a caller that takes an error for "unknown" never parses a truncated file.
func ReadBounded(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, limit)
	}
	return data, nil
}

// MemoryReadWait bounds ReadMemoryBounded. A variable for tests.
var MemoryReadWait = 5 * time.Second

// ErrSlowRead is a read that ReadMemoryBounded gave up waiting for.
var ErrSlowRead = errors.New("no answer in time")

// ReadMemoryBounded is ReadBounded of a /proc file that the kernel fills
// from a process's memory (environ, cmdline, smaps_rollup), given up after
// MemoryReadWait with ErrSlowRead. Such a read waits for the process's
// memory map lock and for its pages, which the process can hold up, by
// accident or on purpose: a page of a network file system that hangs, a
// file system in user space or a userfaultfd that the process serves
// itself. The read goes on in the background until the kernel ends it,
// and what it returns then is dropped.
func ReadMemoryBounded(path string, limit int64) ([]byte, error) {
	type result struct {
		data []byte
		err  error
	}
	done := make(chan result, 1)
	go func() {
		data, err := ReadBounded(path, limit)
		done <- result{data, err}
	}()
	timer := time.NewTimer(MemoryReadWait)
	defer timer.Stop()
	select {
	case r := <-done:
		return r.data, r.err
	case <-timer.C:
		return nil, fmt.Errorf("%s: %w within %v (the process holds up reads of its memory)", path, ErrSlowRead, MemoryReadWait)
	}
}

// maxProcs bounds how many processes SessionPSS looks at.
const maxProcs = 1 << 20

// SessionPSS is the memory of the processes of session sid: the sum of
// their proportional set sizes (Pss in /proc/PID/smaps_rollup), in bytes,
// and how many processes it summed. A generation of an overlap site is a
// session of its own (its main process's pid), which its workers keep.
// It reads the stat of every process on the host, and stops with ctx's
// error once ctx is done.
func SessionPSS(ctx context.Context, sid int) (bytes int64, procs int, err error) {
	entries, err := os.ReadDir(Root)
	if err != nil {
		return 0, 0, fmt.Errorf("cannot list the processes: %w", err)
	}
	for i, e := range entries {
		if err := ctx.Err(); err != nil {
			return 0, 0, err
		}
		pid, err := strconv.Atoi(e.Name())
		if err != nil || i > maxProcs {
			continue
		}
		if s, err := session(pid); err != nil || s != sid {
			continue
		}
		pss, err := rollupPSS(pid)
		if err != nil {
			continue // it exited meanwhile
		}
		bytes += pss
		procs++
	}
	if procs == 0 {
		return 0, 0, fmt.Errorf("no process of session %d", sid)
	}
	return bytes, procs, nil
}

// session is field 6 of /proc/PID/stat.
func session(pid int) (int, error) {
	f, err := statFields(pid)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(f[3])
}

// rollupPSS is the Pss line of /proc/PID/smaps_rollup, in bytes.
func rollupPSS(pid int) (int64, error) {
	data, err := ReadMemoryBounded(filepath.Join(Root, strconv.Itoa(pid), "smaps_rollup"), 16<<10)
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "Pss:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no Pss in the smaps_rollup of process %d", pid)
}
