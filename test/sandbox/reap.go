package sandbox

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// ownerOf parses the owner pid out of a sandbox id "<pid>-<random>-<name>".
func ownerOf(id string) (int, bool) {
	pidStr, _, ok := strings.Cut(id, "-")
	if !ok {
		return 0, false
	}
	pid, err := strconv.Atoi(pidStr)
	return pid, err == nil && pid > 0
}

// ownerAlive reports whether the process that created the sandbox with this
// id still exists. A zombie counts as gone (a SIGKILLed test binary can stay
// a zombie for a while when the host's init reaps lazily). The start time
// recorded in the work dir guards against pid reuse.
func ownerAlive(pid int, workDir string) bool {
	if pid == ownerPID {
		return true
	}
	state, start, err := procStat(pid)
	if err != nil || state == "Z" || state == "X" {
		return false
	}
	b, err := os.ReadFile(filepath.Join(workDir, "owner"))
	if err != nil {
		return true // cannot tell; the pid exists, so leave it alone
	}
	var recPID int
	var recStart uint64
	if _, err := fmt.Sscanf(string(b), "%d %d", &recPID, &recStart); err != nil || recPID != pid {
		return true
	}
	return recStart == start
}

// ReapStale removes what sandboxes of dead processes left behind: it kills
// whatever still runs in /sys/fs/cgroup[/unified]/sitectl-sandbox-* cgroups
// whose owning process is gone, removes those cgroups depth-first, and
// removes their /var/tmp/sitectl-sandbox-* work dirs. Sandboxes of living
// processes (including this one) are left alone, as are entries whose name
// does not carry an owner pid. Boot calls it once per process.
func ReapStale(log io.Writer) error {
	if log == nil {
		log = io.Discard
	}
	var errs []error
	reaped := map[string]bool{}
	if root, err := cgroup2Root(); err == nil {
		ents, err := os.ReadDir(root)
		if err != nil {
			errs = append(errs, fmt.Errorf("listing %s: %w", root, err))
		}
		for _, e := range ents {
			if !e.IsDir() || !strings.HasPrefix(e.Name(), namePrefix) {
				continue
			}
			id := strings.TrimPrefix(e.Name(), namePrefix)
			cg := filepath.Join(root, e.Name())
			work := filepath.Join(workBase, e.Name())
			pid, ok := ownerOf(id)
			if !ok {
				fmt.Fprintf(log, "sandbox: leaving %s alone: its name carries no owner pid\n", cg)
				continue
			}
			if ownerAlive(pid, work) {
				continue
			}
			fmt.Fprintf(log, "sandbox: removing stale sandbox cgroup %s (owner pid %d is gone)\n", cg, pid)
			if err := killCgroup(cg, 10*time.Second); err != nil {
				errs = append(errs, err)
				continue
			}
			if err := removeCgroupTree(cg, 5*time.Second); err != nil {
				errs = append(errs, err)
				continue
			}
			if err := os.RemoveAll(work); err != nil {
				errs = append(errs, fmt.Errorf("removing %s: %w", work, err))
			}
			reaped[e.Name()] = true
		}
	}
	dirs, _ := filepath.Glob(filepath.Join(workBase, namePrefix+"*"))
	for _, work := range dirs {
		base := filepath.Base(work)
		if reaped[base] {
			continue
		}
		fi, err := os.Lstat(work)
		if err != nil || !fi.IsDir() {
			continue
		}
		pid, ok := ownerOf(strings.TrimPrefix(base, namePrefix))
		if !ok || ownerAlive(pid, work) {
			continue
		}
		fmt.Fprintf(log, "sandbox: removing stale work dir %s (owner pid %d is gone)\n", work, pid)
		if err := os.RemoveAll(work); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("removing %s: %w", work, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("reaping stale sandboxes: %w", err)
	}
	return nil
}
