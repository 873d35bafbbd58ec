// Package cgroup reads the cgroup v2 hierarchy: which cgroup a process is
// in, and which processes a cgroup holds.
package cgroup

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/sitectl/sitectl/internal/procfs"
)

// hierarchyDirs are where the cgroup v2 hierarchy may be mounted; tests
// point them elsewhere.
var hierarchyDirs = []string{"/sys/fs/cgroup", "/sys/fs/cgroup/unified"}

// hierarchyRoot is where the cgroup v2 hierarchy is mounted: /sys/fs/cgroup on a
// unified host, /sys/fs/cgroup/unified on a hybrid one.
func hierarchyRoot() (string, error) {
	for _, dir := range hierarchyDirs {
		if _, err := os.Stat(filepath.Join(dir, "cgroup.procs")); err == nil {
			return dir, nil
		}
	}
	return "", errors.New("no cgroup v2 hierarchy is mounted at /sys/fs/cgroup or /sys/fs/cgroup/unified")
}

// Of returns the cgroup v2 path of a process ("/system.slice/x.service").
func Of(pid int) (string, error) {
	name := "/proc/self/cgroup"
	if pid > 0 {
		name = fmt.Sprintf("/proc/%d/cgroup", pid)
	}
	f, err := os.Open(name)
	if err != nil {
		return "", fmt.Errorf("cannot read the cgroup of process %d: %w", pid, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if p, ok := strings.CutPrefix(sc.Text(), "0::"); ok {
			return p, nil
		}
	}
	return "", fmt.Errorf("process %d is in no cgroup v2 group", pid)
}

// maxControllersFile bounds a read of cgroup.controllers: a dozen short
// names on one line.
const maxControllersFile = 4096

// Controllers lists the controllers enabled in the cgroup of a process
// (its cgroup.controllers): "cpu" among them means its tasks are scheduled
// as that cgroup's group.
func Controllers(pid int) ([]string, error) {
	path, err := Of(pid)
	if err != nil {
		return nil, err
	}
	root, err := hierarchyRoot()
	if err != nil {
		return nil, err
	}
	b, err := procfs.ReadBounded(filepath.Join(root, path, "cgroup.controllers"), maxControllersFile)
	if err != nil {
		return nil, fmt.Errorf("cannot read the controllers of cgroup %s: %w", path, err)
	}
	return strings.Fields(string(b)), nil
}

// maxProcs bounds how many processes Procs lists: more is an error, as
// is a cgroup.procs file longer than maxProcs pids of 7 digits (pid_max is
// at most 2^22), a line each.
const maxProcs = 1 << 17

const maxProcsFile = maxProcs * int64(len("4194304\n")) // 1 MiB

// Procs lists the processes in the cgroup at path (as Of returns it) and in
// all of its descendants.
func Procs(path string) ([]int, error) {
	root, err := hierarchyRoot()
	if err != nil {
		return nil, err
	}
	var pids []int
	err = filepath.WalkDir(filepath.Join(root, path), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // a child cgroup went away while we walked
			}
			return err
		}
		if !d.IsDir() {
			return nil
		}
		data, err := procfs.ReadBounded(filepath.Join(p, "cgroup.procs"), maxProcsFile)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		for _, f := range strings.Fields(string(data)) {
			if pid, err := strconv.Atoi(f); err == nil {
				pids = append(pids, pid)
			}
		}
		if len(pids) > maxProcs {
			return fmt.Errorf("more than %d processes", maxProcs)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("cannot list the processes of cgroup %s: %w", path, err)
	}
	return pids, nil
}

// maxComm bounds a read of /proc/PID/comm: at most 16 bytes (64 for a
// kernel thread) and a newline.
const maxComm = 256

// Comm is a process's command name, or "?" once it is gone (or its comm
// file is larger than a command name can be).
func Comm(pid int) string {
	b, err := procfs.ReadBounded(filepath.Join(procfs.Root, strconv.Itoa(pid), "comm"), maxComm)
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(b))
}
