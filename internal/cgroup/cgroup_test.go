package cgroup

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/sitectl/sitectl/internal/procfs"
)

// fakeHierarchy points the cgroup hierarchy at a temporary directory.
func fakeHierarchy(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	write(t, filepath.Join(root, "cgroup.procs"), "1\n")
	old := hierarchyDirs
	hierarchyDirs = []string{root}
	t.Cleanup(func() { hierarchyDirs = old })
	return root
}

func write(t *testing.T, path, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// pids is a cgroup.procs of n pids from first.
func pids(first, n int) string {
	var b strings.Builder
	for pid := first; pid < first+n; pid++ {
		b.WriteString(strconv.Itoa(pid) + "\n")
	}
	return b.String()
}

// Procs lists a cgroup and its descendants, up to maxProcs processes: a
// fork bomb's cgroup.procs is not read whole.
func TestProcs(t *testing.T) {
	root := fakeHierarchy(t)
	unit := filepath.Join(root, "system.slice", "x.service")
	write(t, filepath.Join(unit, "cgroup.procs"), "10\n11\n")
	write(t, filepath.Join(unit, "sub", "cgroup.procs"), "12\n")
	got, err := Procs("/system.slice/x.service")
	if slices.Sort(got); err != nil || !slices.Equal(got, []int{10, 11, 12}) {
		t.Errorf("Procs = %v, %v; want [10 11 12]", got, err)
	}

	write(t, filepath.Join(unit, "sub", "cgroup.procs"), strings.Repeat("4194303\n", int(maxProcsFile/8)+1))
	if got, err := Procs("/system.slice/x.service"); err == nil {
		t.Errorf("a cgroup.procs over %d bytes was read: %d processes", maxProcsFile, len(got))
	}
	// Each file within its limit, but more than maxProcs together.
	write(t, filepath.Join(unit, "sub", "cgroup.procs"), pids(1000, maxProcs-1))
	if got, err := Procs("/system.slice/x.service"); err == nil {
		t.Errorf("more than %d processes were listed: %d", maxProcs, len(got))
	}
}

// A comm file longer than a command name is not one.
func TestComm(t *testing.T) {
	old := procfs.Root
	procfs.Root = t.TempDir()
	defer func() { procfs.Root = old }()
	write(t, filepath.Join(procfs.Root, "10", "comm"), "uwsgi\n")
	write(t, filepath.Join(procfs.Root, "11", "comm"), strings.Repeat("x", maxComm+1))
	for pid, want := range map[int]string{10: "uwsgi", 11: "?", 12: "?"} {
		if got := Comm(pid); got != want {
			t.Errorf("Comm(%d) = %q, want %q", pid, got, want)
		}
	}
}

// Controllers reads the cgroup.controllers of the process's own cgroup.
func TestControllers(t *testing.T) {
	root := fakeHierarchy(t)
	path, err := Of(0)
	if err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(root, path, "cgroup.controllers"), "cpuset cpu io memory pids\n")
	if got, err := Controllers(0); err != nil || !slices.Equal(got, []string{"cpuset", "cpu", "io", "memory", "pids"}) {
		t.Errorf("Controllers = %q, %v", got, err)
	}
	write(t, filepath.Join(root, path, "cgroup.controllers"), "\n")
	if got, err := Controllers(0); err != nil || len(got) != 0 {
		t.Errorf("Controllers of a cgroup without any = %q, %v", got, err)
	}
	os.Remove(filepath.Join(root, path, "cgroup.controllers"))
	if got, err := Controllers(0); err == nil {
		t.Errorf("Controllers without the file = %q, no error", got)
	}
}
