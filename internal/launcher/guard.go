package launcher

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// Guard keeps the site's app out of the launcher's process: it marks the
// launcher not dumpable (PR_SET_DUMPABLE 0). The launcher runs as the
// site's user, as its generations do, and the kernel lets a process of the
// same user that is dumpable be traced, its memory read and written
// (/proc/PID/mem, process_vm_writev, even where the unit's seccomp filter
// refuses ptrace itself) and its file descriptors taken (pidfd_getfd),
// unless Yama says otherwise, which Debian does not by default. Through
// it the app would become the service's main process in all but name:
// the control socket that root's side trusts because the launcher
// listens on it (dialControl), the answers root takes as the launcher's,
// and the notifications systemd takes only from the main process
// (NotifyAccess=main: EXTEND_TIMEOUT_USEC= stretches a stop without end).
// A process that is not dumpable is reachable that way only with
// CAP_SYS_PTRACE, which the unit has not; root's side, which reads the
// launcher's /proc files, has it. The launcher's own access to its
// generations (their /proc/PID/syscall, see park.go) is unchanged: each
// generation is a new program (exec), dumpable again.
func Guard() error {
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		return fmt.Errorf("cannot keep the app out of the launcher (PR_SET_DUMPABLE): %w", err)
	}
	return nil
}
