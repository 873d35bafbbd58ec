package launcher

import (
	"os"
	"path/filepath"
	"strconv"
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

// threadFile reads one /proc file of one thread of pid.
func threadFile(proc string, pid int, tid, name string) (string, error) {
	data, err := os.ReadFile(filepath.Join(proc, strconv.Itoa(pid), "task", tid, name))
	return string(data), err
}
