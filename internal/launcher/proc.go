package launcher

import (
	"os"
	"path/filepath"
	"strconv"

	"github.com/sitectl/sitectl/internal/procfs"
)

// procRoot is where the launcher reads processes; tests use a fake tree.
const procRoot = "/proc"

// threads lists the thread ids of pid under proc; none when it is gone.
func threads(proc string, pid int) []string {
	entries, err := os.ReadDir(filepath.Join(proc, strconv.Itoa(pid), "task"))
	if err != nil {
		return nil
	}
	tids := make([]string, 0, len(entries))
	for _, e := range entries {
		tids = append(tids, e.Name())
	}
	return tids
}

// maxThreadLine bounds a read of a thread's syscall or schedstat: one line
// of at most nine numbers.
const maxThreadLine = 1 << 10

// maxPidList bounds a read of a list of pids (a thread's children): a pid
// has at most 7 digits (pid_max is at most 2^22), so this is 128 Ki pids.
const maxPidList = 1 << 20

// threadFile reads one /proc file of one thread of pid: stat, syscall,
// schedstat or children. A file larger than its bound is an error.
func threadFile(proc string, pid int, tid, name string) (string, error) {
	limit := int64(maxThreadLine)
	switch name {
	case "stat":
		limit = procfs.MaxStat
	case "children":
		limit = maxPidList
	}
	data, err := procfs.ReadBounded(filepath.Join(proc, strconv.Itoa(pid), "task", tid, name), limit)
	return string(data), err
}
