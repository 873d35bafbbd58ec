// Package procfs reads what sitectl needs to know of a process from /proc:
// the environment it started with, and how long it has been running. Both
// are read as root for processes of other users (a site's dynamic user).
package procfs

import (
	"bytes"
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

// maxEnviron bounds what Environ reads: the kernel's limit on the
// arguments and environment of an exec is a quarter of the stack limit,
// 2 MiB by default.
const maxEnviron = 4 << 20

// Environ returns the environment process pid started with: what its exec
// got, "NAME=value" each, in order.
func Environ(pid int) ([]string, error) {
	data, err := readBounded(filepath.Join(Root, strconv.Itoa(pid), "environ"), maxEnviron)
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
func Age(pid int) (time.Duration, error) {
	data, err := readBounded(filepath.Join(Root, strconv.Itoa(pid), "stat"), 4096)
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

func readBounded(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err == nil && int64(len(data)) > limit {
		err = fmt.Errorf("%s is larger than %d bytes", path, limit)
	}
	return data, err
}
