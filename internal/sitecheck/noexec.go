package sitecheck

import (
	"io/fs"
	"strings"

	"golang.org/x/sys/unix"
)

// mountRefused is what the kernel's refusal of a program on a noexec
// mount says.
const mountRefused = "(permission denied, noexec)"

// namespace is what the check knows of a unit's mount namespace: the
// paths it mounts noexec (NoExecPaths=), and whether it mounts anything
// of its own over the host's (then the host's noexec mounts are no
// reason: the program may be on another mount there).
type namespace struct {
	noExec []string
	unsure bool
}

// noExec says why the kernel would refuse to run p, which is on a file
// system mounted noexec in the unit's namespace (permission denied, for
// the program and for a #! interpreter alike), or "".
func (h Host) noExec(p string, ns namespace) string {
	if ns.unsure {
		return "" // ExecPaths= may allow what NoExecPaths= forbids, a bind mount put another file system there
	}
	real := p
	if h.EvalSymlinks != nil {
		if r, err := h.EvalSymlinks(p); err == nil {
			real = r
		}
	}
	for _, d := range ns.noExec {
		if d == "/" || real == d || strings.HasPrefix(real, strings.TrimSuffix(d, "/")+"/") {
			return "is on a path the unit mounts noexec (NoExecPaths=" + d + "): the kernel runs no program from there " + mountRefused
		}
	}
	if h.NoExec == nil {
		return ""
	}
	if noexec, err := h.NoExec(p); err == nil && noexec {
		return "is on a file system mounted noexec on this host: the kernel runs no program from it " + mountRefused + "; mount it exec, or install the program elsewhere"
	}
	return ""
}

// noExecMount tells whether the file system p is on (its symlinks
// followed) is mounted noexec.
func noExecMount(p string) (bool, error) {
	var sfs unix.Statfs_t
	if err := unix.Statfs(p, &sfs); err != nil {
		return false, &fs.PathError{Op: "statfs", Path: p, Err: err}
	}
	return sfs.Flags&unix.ST_NOEXEC != 0, nil
}
