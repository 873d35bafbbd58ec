package activation

import (
	"errors"
	"net"
	"os"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// systemd splits a notification into fields at "\n" and at "\r", ignores a
// STATUS= that is not valid UTF-8 and a datagram that holds a NUL byte or
// is longer than 4096 bytes. Status must send one valid field whatever the
// text, so that text from outside (an error, a request path) cannot end
// the status and assign another field such as WATCHDOG_USEC= or STOPPING=.
func TestStatusIsOneFieldSystemdAccepts(t *testing.T) {
	conn := notifySocket(t)
	for _, text := range []string{
		"up\rWATCHDOG_USEC=1",
		"up\r\nSTOPPING=1",
		"bad byte \xff here",
		"nul \x00 here",
		"escape \x1b[2J here",
		strings.Repeat("long status ", 1000),
	} {
		if sent, err := Status(text); !sent || err != nil {
			t.Fatalf("Status(%.30q) = (%v, %v), want (true, nil)", text, sent, err)
		}
		buf := make([]byte, 64<<10) // larger than systemd's, to see what was sent
		conn.SetReadDeadline(time.Now().Add(time.Second))
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		got := string(buf[:n])
		if !strings.HasPrefix(got, "STATUS=") || strings.ContainsAny(got, "\r\n\x00\x1b") ||
			!utf8.ValidString(got) || len(got) > notifyMax {
			t.Errorf("Status(%.30q) sent %.80q (%d bytes): systemd would not take it as one STATUS= field", text, got, len(got))
		}
	}
}

// A notification systemd would ignore is refused, not reported as sent.
func TestNotifyRefusesWhatSystemdIgnores(t *testing.T) {
	notifySocket(t)
	for name, msg := range map[string]string{
		"too long": "STATUS=" + strings.Repeat("x", 5000),
		"NUL byte": "READY=1\x00",
	} {
		if sent, err := Notify(msg); sent || err == nil {
			t.Errorf("%s: Notify = (%v, %v), want (false, error)", name, sent, err)
		}
	}
	if sent, err := Notify("STATUS=" + strings.Repeat("x", notifyMax-len("STATUS="))); !sent || err != nil {
		t.Errorf("a %d-byte message: Notify = (%v, %v), want (true, nil)", notifyMax, sent, err)
	}
}

// A service manager that does not read its socket (busy, stuck) must not
// hold the caller of Notify for ever: a datagram to a full queue waits
// for room, and Notify gives up after notifyTimeout with an error that
// says so.
func TestNotifyGivesUpOnAFullQueue(t *testing.T) {
	conn := notifySocket(t)
	defer func(d time.Duration) { notifyTimeout = d }(notifyTimeout)
	notifyTimeout = 200 * time.Millisecond
	// Fill the queue from another sender until a write would wait.
	filler, err := net.DialUnix("unixgram", nil, conn.LocalAddr().(*net.UnixAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer filler.Close()
	for i := 0; ; i++ {
		filler.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
		if _, err := filler.Write([]byte("STATUS=filling")); errors.Is(err, os.ErrDeadlineExceeded) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		if i > 100000 {
			t.Fatal("the socket's queue never filled")
		}
	}
	start := time.Now()
	done := make(chan error, 1)
	go func() {
		sent, err := Notify("READY=1")
		if sent {
			err = errors.New("reported as sent")
		}
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, os.ErrDeadlineExceeded) || !strings.Contains(err.Error(), "did not take") {
			t.Errorf("Notify to a full queue: %v, want a deadline error that says so", err)
		}
		if waited := time.Since(start); waited < notifyTimeout {
			t.Errorf("Notify gave up after %s, before its %s", waited, notifyTimeout)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Notify to a full queue still waits after 10 s")
	}
	// Room again: the next notification goes through.
	buf := make([]byte, 4096)
	for {
		conn.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		if _, err := conn.Read(buf); err != nil {
			break
		}
	}
	if sent, err := Notify("READY=1"); !sent || err != nil {
		t.Errorf("Notify once the queue drained: (%v, %v)", sent, err)
	}
}
