package journal

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"golang.org/x/sys/unix"
)

// listen binds a unixgram socket at a new path and points Send at it.
func listen(t *testing.T) (path string, fd int) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "socket")
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 1); err != nil {
		t.Fatal(err)
	}
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		t.Fatal(err)
	}
	old := socket
	socket = path
	t.Cleanup(func() { socket = old })
	return path, fd
}

func TestSend(t *testing.T) {
	_, fd := listen(t)
	if err := Send(PriInfo, "hello", map[string]string{"SITECTL_SITE": "karl", "SITECTL_HOOK_FAILURES": "a\nb"}); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	n, _, err := unix.Recvfrom(fd, buf, unix.MSG_DONTWAIT)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"MESSAGE=hello\n", "PRIORITY=6\n", "SITECTL_SITE=karl\n", "SITECTL_HOOK_FAILURES\n"} {
		if !strings.Contains(string(buf[:n]), want) {
			t.Errorf("record %q has no %q", buf[:n], want)
		}
	}
}

// A journald whose queue is full does not hold the sender: Send gives up
// after sendTimeout, and the caller falls back.
func TestSendToAFullQueueFails(t *testing.T) {
	path, _ := listen(t)
	// Fill the receiver's queue: nonblocking writers of their own until a
	// fresh one cannot write a single datagram either (a writer's own
	// send buffer may fill before the receiver's queue does).
	for i := 0; ; i++ {
		if i == 1000 {
			t.Fatal("cannot fill the socket's queue")
		}
		w, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { unix.Close(w) })
		if err := unix.Connect(w, &unix.SockaddrUnix{Name: path}); err != nil {
			t.Fatal(err)
		}
		sent := 0
		for {
			err = unix.Send(w, []byte("x"), 0)
			if err != nil {
				break
			}
			sent++
		}
		if !errors.Is(err, unix.EAGAIN) {
			t.Fatal(err)
		}
		if sent == 0 {
			break
		}
	}
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- Send(PriErr, "lost", nil) }()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("Send to a full queue succeeded")
		}
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("Send to a full queue: %v, want a timeout", err)
		}
		t.Logf("after %s: %v", time.Since(start).Round(time.Millisecond), err)
	case <-time.After(3 * time.Second):
		t.Fatal("Send to a full queue still blocks after 3s")
	}
}

// A message too long for one datagram is cut, and says so, rather than
// failing with EMSGSIZE: a record of a site file's mistakes once took the
// generator's journal logging down for every other site.
func TestSendCutsALongMessage(t *testing.T) {
	_, fd := listen(t)
	for _, msg := range []string{strings.Repeat("é", 600<<10), strings.Repeat("x\n", 200<<10)} {
		if err := Send(PriErr, msg, map[string]string{"SYSLOG_IDENTIFIER": "sitectl-generator"}); err != nil {
			t.Fatalf("a message of %d bytes: %v", len(msg), err)
		}
		buf := make([]byte, 2<<20)
		n, _, err := unix.Recvfrom(fd, buf, unix.MSG_DONTWAIT)
		if err != nil {
			t.Fatal(err)
		}
		rec := string(buf[:n])
		if n > maxRecord || !strings.Contains(rec, fmt.Sprintf("…(cut: %d bytes in all)", len(msg))) || !strings.Contains(rec, "SYSLOG_IDENTIFIER=sitectl-generator\n") {
			t.Errorf("a record of %d bytes: %.100q…%q", n, rec, rec[max(0, n-200):])
		}
		if line, _, _ := strings.Cut(rec, "\n"); strings.HasPrefix(line, "MESSAGE=") && !utf8.ValidString(line) {
			t.Errorf("the message was cut inside a character")
		}
	}
}
