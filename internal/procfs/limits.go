package procfs

import (
	"bytes"
	"fmt"
	"math"
	"path/filepath"
	"strconv"
)

// maxLimits bounds what OpenFilesLimit reads: /proc/PID/limits is 16
// lines of under 80 characters.
const maxLimits = 8 << 10

// OpenFilesLimit is the soft limit on open files (RLIMIT_NOFILE) of process
// pid, as /proc/PID/limits gives it; "unlimited" is math.MaxUint64.
func OpenFilesLimit(pid int) (uint64, error) {
	path := filepath.Join(Root, strconv.Itoa(pid), "limits")
	data, err := ReadBounded(path, maxLimits)
	if err != nil {
		return 0, err
	}
	soft, err := parseOpenFiles(data)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	return soft, nil
}

// parseOpenFiles reads the soft limit of the "Max open files" line of a
// /proc/PID/limits: "Max open files   SOFT   HARD   files".
func parseOpenFiles(data []byte) (uint64, error) {
	for _, line := range bytes.Split(data, []byte("\n")) {
		rest, ok := bytes.CutPrefix(line, []byte("Max open files"))
		if !ok {
			continue
		}
		f := bytes.Fields(rest)
		if len(f) < 2 {
			break
		}
		if string(f[0]) == "unlimited" {
			return math.MaxUint64, nil
		}
		n, err := strconv.ParseUint(string(f[0]), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("the open-file limit %q is not a number", f[0])
		}
		return n, nil
	}
	return 0, fmt.Errorf("no \"Max open files\" line")
}
