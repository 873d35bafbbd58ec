package launcher

import (
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// notification is one sd_notify datagram a generation sent, with the pid
// the kernel vouches for.
type notification struct {
	pid    int
	fields map[string]string
}

// notifySocket is the socket the launcher's generations send READY=1 to.
// Credentials are passed with every datagram, so a message is only taken
// from the generation it claims to come from.
type notifySocket struct {
	path string
	conn *net.UnixConn
}

func listenNotify(path string) (*notifySocket, error) {
	os.Remove(path)
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return nil, fmt.Errorf("cannot open the notify socket: %w", err)
	}
	raw, err := conn.SyscallConn()
	if err != nil {
		conn.Close()
		return nil, err
	}
	var serr error
	raw.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_PASSCRED, 1) })
	if serr != nil {
		conn.Close()
		return nil, fmt.Errorf("cannot ask for credentials on the notify socket: %w", serr)
	}
	return &notifySocket{path: path, conn: conn}, nil
}

// read delivers notifications until the socket is closed.
func (n *notifySocket) read(out chan<- notification) {
	buf := make([]byte, 4096)
	oob := make([]byte, unix.CmsgSpace(unix.SizeofUcred))
	for {
		nb, noob, _, _, err := n.conn.ReadMsgUnix(buf, oob)
		if err != nil {
			return
		}
		msgs, err := unix.ParseSocketControlMessage(oob[:noob])
		if err != nil || len(msgs) == 0 {
			continue
		}
		cred, err := unix.ParseUnixCredentials(&msgs[0])
		if err != nil {
			continue
		}
		fields := map[string]string{}
		for _, line := range strings.Split(string(buf[:nb]), "\n") {
			if k, v, ok := strings.Cut(line, "="); ok {
				fields[k] = v
			}
		}
		out <- notification{pid: int(cred.Pid), fields: fields}
	}
}

func (n *notifySocket) close() {
	n.conn.Close()
	os.Remove(n.path)
}

func clockGettime(ts *syscall.Timespec) error {
	var t unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &t); err != nil {
		return err
	}
	ts.Sec, ts.Nsec = t.Sec, t.Nsec
	return nil
}
