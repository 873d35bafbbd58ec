package sdnotify

import (
	"fmt"
	"net"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// Message is one notification, with the pid the kernel vouches for.
type Message struct {
	PID    int
	Fields map[string]string // READY=1 → Fields["READY"] == "1"
}

// Socket receives notifications. Credentials are passed with every
// datagram (SO_PASSCRED), so a message is only taken from the process it
// claims to come from; a datagram without them is dropped.
type Socket struct {
	Path string
	conn *net.UnixConn
}

// Listen opens a notification socket at path, replacing a stale one.
func Listen(path string) (*Socket, error) {
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
	return &Socket{Path: path, conn: conn}, nil
}

// Read delivers notifications until the socket is closed.
func (s *Socket) Read(out chan<- Message) {
	buf := make([]byte, 4096)
	oob := make([]byte, unix.CmsgSpace(unix.SizeofUcred))
	for {
		nb, noob, _, _, err := s.conn.ReadMsgUnix(buf, oob)
		if err != nil {
			return
		}
		if m, ok := parse(buf[:nb], oob[:noob]); ok {
			out <- m
		}
	}
}

// parse reads one datagram: newline-separated KEY=VALUE assignments and
// the sender's credentials.
func parse(data, oob []byte) (Message, bool) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil || len(msgs) == 0 {
		return Message{}, false
	}
	cred, err := unix.ParseUnixCredentials(&msgs[0])
	if err != nil {
		return Message{}, false
	}
	fields := map[string]string{}
	for _, line := range strings.Split(string(data), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			fields[k] = v
		}
	}
	return Message{PID: int(cred.Pid), Fields: fields}, true
}

// Close closes the socket and removes it.
func (s *Socket) Close() {
	s.conn.Close()
	os.Remove(s.Path)
}
