package launcher

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sitectl/sitectl/internal/procfs"
)

// Each file of a thread is read up to its own limit: a children list may
// be long, a stat, syscall or schedstat line is short, and one longer than
// its limit is not read.
func TestThreadFileLimits(t *testing.T) {
	proc := t.TempDir()
	dir := filepath.Join(proc, "10", "task", "10")
	os.MkdirAll(dir, 0o755)
	children := strings.Repeat("4194303 ", 1000)
	write(t, filepath.Join(dir, "children"), children)
	write(t, filepath.Join(dir, "stat"), "10 (a) S 1 10 10"+strings.Repeat(" 0", procfs.MaxStat/2))
	write(t, filepath.Join(dir, "syscall"), "232"+strings.Repeat(" 0x7ffd", maxThreadLine/6))
	write(t, filepath.Join(dir, "schedstat"), "1000 2000 3\n")
	if got, err := threadFile(proc, 10, "10", "children"); err != nil || got != children {
		t.Errorf("children of 1000 pids: %d bytes, %v", len(got), err)
	}
	if got, err := threadFile(proc, 10, "10", "schedstat"); err != nil || got != "1000 2000 3\n" {
		t.Errorf("schedstat: %q, %v", got, err)
	}
	for _, name := range []string{"stat", "syscall"} {
		if got, err := threadFile(proc, 10, "10", name); err == nil {
			t.Errorf("a %s over the limit was read: %d bytes", name, len(got))
		}
	}
	write(t, filepath.Join(dir, "children"), strings.Repeat("4194303 ", maxPidList/8+1))
	if got, err := threadFile(proc, 10, "10", "children"); err == nil {
		t.Errorf("children over the limit were read: %d bytes", len(got))
	}
}
