package sandbox

import (
	"bytes"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// console is a pseudo-terminal whose slave is bind-mounted over the
// sandbox's /dev/console. Everything systemd prints to its console (boot
// status, emergency messages) is copied into a log file.
type console struct {
	master *os.File
	slave  *os.File // kept open so reads on master do not fail with EIO before systemd opens it
	path   string   // slave path on the host, e.g. /dev/pts/3
	done   chan struct{}
}

func openConsole(logPath string) (*console, error) {
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, fmt.Errorf("opening a pseudo-terminal for the sandbox console: %w", err)
	}
	var n uint32
	var ioctlErr error
	// SyscallConn instead of Fd: Fd would switch the file to blocking mode,
	// and Close could then no longer interrupt the copying goroutine.
	rc, err := master.SyscallConn()
	if err == nil {
		err = rc.Control(func(fd uintptr) {
			if ioctlErr = unix.IoctlSetPointerInt(int(fd), unix.TIOCSPTLCK, 0); ioctlErr != nil {
				return
			}
			n, ioctlErr = unix.IoctlGetUint32(int(fd), unix.TIOCGPTN)
		})
	}
	if err == nil {
		err = ioctlErr
	}
	if err != nil {
		master.Close()
		return nil, fmt.Errorf("setting up the sandbox console pseudo-terminal: %w", err)
	}
	path := fmt.Sprintf("/dev/pts/%d", n)
	slave, err := os.OpenFile(path, os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		master.Close()
		return nil, fmt.Errorf("opening sandbox console %s: %w", path, err)
	}
	logFile, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		slave.Close()
		master.Close()
		return nil, fmt.Errorf("creating console log: %w", err)
	}
	c := &console{master: master, slave: slave, path: path, done: make(chan struct{})}
	go func() {
		defer close(c.done)
		defer logFile.Close()
		_, _ = io.Copy(crStripper{logFile}, master)
	}()
	return c, nil
}

// close stops copying; call it once systemd is gone.
func (c *console) close() {
	if c == nil {
		return
	}
	c.slave.Close()
	c.master.Close()
	<-c.done
}

// crStripper drops the carriage returns a terminal's ONLCR adds.
type crStripper struct{ w io.Writer }

func (s crStripper) Write(p []byte) (int, error) {
	if _, err := s.w.Write(bytes.ReplaceAll(p, []byte("\r"), nil)); err != nil {
		return 0, err
	}
	return len(p), nil
}
