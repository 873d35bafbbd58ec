package sandbox

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

const (
	// namePrefix prefixes both the cgroup directory and the host work dir.
	namePrefix = "sitectl-sandbox-"
	// workBase is where host work dirs live. Not /tmp: see the package doc.
	workBase = "/var/tmp"
)

// cgroup2Root returns the cgroup2 hierarchy the sandboxes are created in:
// /sys/fs/cgroup on a pure cgroup2 host, /sys/fs/cgroup/unified on a hybrid
// one.
func cgroup2Root() (string, error) {
	const unified = "/sys/fs/cgroup/unified"
	var st unix.Statfs_t
	if err := unix.Statfs("/sys/fs/cgroup", &st); err != nil {
		return "", fmt.Errorf("%w: cannot inspect /sys/fs/cgroup: %w", ErrHostNotSupported, err)
	}
	if st.Type == unix.CGROUP2_SUPER_MAGIC {
		return "/sys/fs/cgroup", nil
	}
	if err := unix.Statfs(unified, &st); err == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
		return unified, nil
	}
	return "", fmt.Errorf("%w: no cgroup2 hierarchy: /sys/fs/cgroup is not cgroup2 and no cgroup2 is mounted at %s "+
		"(systemd 252 needs a cgroup2 hierarchy to own; on a cgroup v1 host run: mkdir -p %[2]s && mount -t cgroup2 cgroup2 %[2]s)",
		ErrHostNotSupported, unified)
}

// enableControllers delegates every controller available in dir to its
// children, best effort. It matters on pure cgroup2 hosts only; on a hybrid
// host the cgroup2 hierarchy has (almost) no controllers.
func enableControllers(dir string) {
	b, err := os.ReadFile(filepath.Join(dir, "cgroup.controllers"))
	if err != nil {
		return
	}
	for _, c := range strings.Fields(string(b)) {
		_ = os.WriteFile(filepath.Join(dir, "cgroup.subtree_control"), []byte("+"+c), 0)
	}
}

// cgroupPopulated reports whether any process is left in dir or below.
func cgroupPopulated(dir string) (bool, error) {
	b, err := os.ReadFile(filepath.Join(dir, "cgroup.events"))
	if err != nil {
		return false, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "populated "); ok {
			return strings.TrimSpace(v) != "0", nil
		}
	}
	return false, fmt.Errorf("no populated field in %s/cgroup.events", dir)
}

// killCgroup kills every process in dir and below and waits until the cgroup
// is empty or timeout passes.
func killCgroup(dir string, timeout time.Duration) error {
	if populated, err := cgroupPopulated(dir); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	} else if !populated {
		return nil
	}
	if err := os.WriteFile(filepath.Join(dir, "cgroup.kill"), []byte("1"), 0); err != nil {
		// Kernels before 5.14 have no cgroup.kill: kill what is listed.
		killListed(dir)
	}
	deadline := time.Now().Add(timeout)
	for {
		populated, err := cgroupPopulated(dir)
		if err != nil || !populated {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("processes are still alive in cgroup %s %v after SIGKILL", dir, timeout)
		}
		killListed(dir)
		time.Sleep(20 * time.Millisecond)
	}
}

// killListed sends SIGKILL to every pid in cgroup.procs of dir and below.
func killListed(dir string) {
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		b, _ := os.ReadFile(filepath.Join(p, "cgroup.procs"))
		for f := range strings.FieldsSeq(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil && pid > 0 {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		return nil
	})
}

// removeCgroupTree removes dir and all cgroups below it, deepest first,
// retrying while the kernel still reports them busy.
func removeCgroupTree(dir string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		var dirs []string
		err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					return nil
				}
				return err
			}
			if d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("listing cgroup %s: %w", dir, err)
		}
		if len(dirs) == 0 {
			return nil
		}
		// WalkDir visits parents before children; reversed, children come
		// first, which is the only order rmdir accepts on cgroupfs.
		slices.Reverse(dirs)
		var last error
		for _, d := range dirs {
			if err := os.Remove(d); err != nil && !errors.Is(err, fs.ErrNotExist) {
				last = err
			}
		}
		if last == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("removing cgroup %s: %w", dir, last)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// procStat returns the state (field 3 of /proc/pid/stat) and start time
// (field 22, clock ticks since boot) of pid. Pid and start time together
// identify a process across pid reuse.
func procStat(pid int) (state string, start uint64, err error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return "", 0, err
	}
	// The command name is in parentheses and may contain anything.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return "", 0, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); start time is field 22.
	if len(f) < 20 {
		return "", 0, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	start, err = strconv.ParseUint(f[19], 10, 64)
	return f[0], start, err
}

// procComm returns /proc/pid/comm without the newline.
func procComm(pid int) string {
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
	return strings.TrimSpace(string(b))
}

// childrenOf returns the direct children of pid.
func childrenOf(pid int) []int {
	var out []int
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	if err == nil {
		for f := range strings.FieldsSeq(string(b)) {
			if c, err := strconv.Atoi(f); err == nil {
				out = append(out, c)
			}
		}
		return out
	}
	// Kernels without CONFIG_PROC_CHILDREN: scan /proc for the parent pid.
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		c, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if f := statFields(c); len(f) > 1 && f[1] == strconv.Itoa(pid) {
			out = append(out, c)
		}
	}
	return out
}

// statFields returns the fields of /proc/PID/stat after the command name
// (state, ppid, pgrp, ...), or nil once the process is gone.
func statFields(pid int) []string {
	st, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return nil
	}
	i := bytes.LastIndexByte(st, ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(string(st[i+1:]))
}

// processGone reports whether pid no longer exists (a zombie counts as
// existing).
func processGone(pid int) bool {
	return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}

// killGroupExceptLeader sends SIGKILL to every process in process group
// pgid except its leader (pid pgid) and returns how many it signalled.
func killGroupExceptLeader(pgid int) int {
	n := 0
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == pgid {
			continue
		}
		if f := statFields(pid); len(f) > 2 && f[2] == strconv.Itoa(pgid) {
			if syscall.Kill(pid, syscall.SIGKILL) == nil {
				n++
			}
		}
	}
	return n
}

// procPPID returns the parent pid of pid, or 0.
func procPPID(pid int) int {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 2 {
		return 0
	}
	ppid, _ := strconv.Atoi(f[1])
	return ppid
}
