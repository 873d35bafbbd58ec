package sdnotify

import (
	"bytes"
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

// maxMessage is the largest notification taken, as systemd's.
const maxMessage = 4096

// Read delivers notifications until the socket is closed. A datagram
// systemd would ignore is dropped, as systemd drops it: one longer than
// maxMessage, which the kernel cuts to the buffer's size (MSG_TRUNC), and
// one that holds a NUL byte. Its first 4096 bytes taken as a message
// would act on half of it: "READY=1" cut from the end of a long STATUS=,
// X_SITECTL_KEEPALIVE_SIGNAL=15 cut to 1 (SIGHUP).
func (s *Socket) Read(out chan<- Message) {
	buf := make([]byte, maxMessage)
	oob := make([]byte, unix.CmsgSpace(unix.SizeofUcred))
	for {
		nb, noob, flags, _, err := s.conn.ReadMsgUnix(buf, oob)
		if err != nil {
			return
		}
		if flags&unix.MSG_TRUNC != 0 || bytes.IndexByte(buf[:nb], 0) >= 0 {
			continue
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
