package sandbox

import (
	"errors"
	"fmt"
	"os"
	"syscall"

	"github.com/sitectl/sitectl/internal/procfs"
)

// ErrReloadIgnored: systemd answered a daemon-reload that it did not do.
var ErrReloadIgnored = errors.New("systemd did not reload")

// ReloadMark identifies the sandbox's generator directory, which systemd
// removes and makes anew on every daemon-reload that gets past
// serializing its state. Take one before a reload and pass it to
// CheckReloaded after.
func (s *Sandbox) ReloadMark() (string, error) {
	var st syscall.Stat_t
	p := fmt.Sprintf("/proc/%d/root/run/systemd/generator", s.pid)
	if err := syscall.Stat(p, &st); err != nil {
		return "", fmt.Errorf("the sandbox's generator directory: %w", err)
	}
	return fmt.Sprintf("%d:%d:%d", st.Ino, st.Ctim.Sec, st.Ctim.Nsec), nil
}

// CheckReloaded tells whether systemd really reloaded since mark was
// taken. systemd 252 gives a reload up when PID 1 cannot duplicate every
// descriptor it holds, keeps its units as they were, and still answers
// systemctl daemon-reload as done: 10,000 listening sockets under the
// open-file limit of 20,000 that this project's containers give PID 1 are
// enough. The error says so, with PID 1's limit and what it holds.
func (s *Sandbox) CheckReloaded(mark string) error {
	now, err := s.ReloadMark()
	if err != nil {
		return err
	}
	if now != mark {
		return nil
	}
	limit := "?"
	if n, err := procfs.OpenFilesLimit(s.pid); err == nil {
		limit = fmt.Sprint(n)
	}
	held := "?"
	if es, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", s.pid)); err == nil {
		held = fmt.Sprint(len(es))
	}
	return fmt.Errorf("%w: daemon-reload exited 0 but systemd did not run its generators or reload any unit (PID 1 holds %s descriptors, its open-file limit is %s: it must duplicate each to reload)", ErrReloadIgnored, held, limit)
}
