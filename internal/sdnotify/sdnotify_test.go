package sdnotify_test

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/sitectl/sitectl/activation"
	"github.com/sitectl/sitectl/internal/sdnotify"
)

// What package activation sends arrives whole, from the pid that sent it.
func TestActivationToSocket(t *testing.T) {
	s, err := sdnotify.Listen(filepath.Join(t.TempDir(), "notify.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	msgs := make(chan sdnotify.Message, 4)
	go s.Read(msgs)
	t.Setenv("NOTIFY_SOCKET", s.Path)
	if sent, err := activation.Reloading(); !sent || err != nil {
		t.Fatalf("Reloading: %v %v", sent, err)
	}
	if sent, err := activation.Status("starting\nsecond line"); !sent || err != nil {
		t.Fatalf("Status: %v %v", sent, err)
	}
	for _, check := range []func(sdnotify.Message) bool{
		func(m sdnotify.Message) bool {
			usec, err := strconv.ParseInt(m.Fields["MONOTONIC_USEC"], 10, 64)
			now, _ := sdnotify.MonotonicUsec()
			return m.Fields["RELOADING"] == "1" && err == nil && usec > 0 && usec <= now
		},
		func(m sdnotify.Message) bool { return m.Fields["STATUS"] == "starting second line" },
	} {
		select {
		case m := <-msgs:
			if m.PID != os.Getpid() || !check(m) {
				t.Errorf("received %+v from pid %d (this is %d)", m.Fields, m.PID, os.Getpid())
			}
		case <-time.After(10 * time.Second):
			t.Fatal("nothing received")
		}
	}
}

func TestReloadingMessage(t *testing.T) {
	m, err := sdnotify.Reloading()
	if err != nil || !strings.HasPrefix(m, "RELOADING=1\nMONOTONIC_USEC=") {
		t.Fatalf("%q %v", m, err)
	}
}

// STATUS= is one field whatever the text: no newline ends it, no control
// character reaches a terminal.
func TestStatusIsOneField(t *testing.T) {
	for in, want := range map[string]string{
		"mode normal, generation 2":         "STATUS=mode normal, generation 2",
		"r2\nWATCHDOG_USEC=1\tx":            "STATUS=r2 WATCHDOG_USEC=1 x",
		"\x1b]0;pwned\a\x1b[2J\x7f\u0085 é": `STATUS=\x1b]0;pwned\x07\x1b[2J\x7f\x85 é`,
		"bad \xff utf-8":                    "STATUS=bad \uFFFD utf-8",
	} {
		if got := sdnotify.Status(in); got != want {
			t.Errorf("Status(%q) = %q, want %q", in, got, want)
		}
	}
}

// A long text (a reload's error, say) makes a field of at most StatusMax
// bytes, cut after a whole character: the READY=1 the launcher sends with
// it stays within the 4096 bytes systemd takes in one notification.
func TestStatusIsBounded(t *testing.T) {
	for _, text := range []string{strings.Repeat("x", 10000), strings.Repeat("é", 3000), strings.Repeat("\x01", 3000)} {
		st := sdnotify.Status(text)
		if len(st) > sdnotify.StatusMax || !strings.HasSuffix(st, "…") || !utf8.ValidString(st) {
			t.Errorf("Status of %d bytes: %d bytes, ends %q", len(text), len(st), st[max(0, len(st)-8):])
		}
		if msg := "READY=1\nRELOADING=1\nMONOTONIC_USEC=18446744073709551615\n" + st; len(msg) > 4096 {
			t.Errorf("a notification with it is %d bytes", len(msg))
		}
	}
	// Escapes are cut whole: 4 bytes each.
	if st := strings.TrimSuffix(strings.TrimPrefix(sdnotify.Status(strings.Repeat("\x01", 3000)), "STATUS="), "…"); len(st)%4 != 0 || !strings.HasSuffix(st, `\x01`) {
		t.Errorf("an escape was cut: ends %q", st[max(0, len(st)-8):])
	}
	if st := sdnotify.Status("short"); st != "STATUS=short" {
		t.Errorf("Status(short) = %q", st)
	}
}

// A datagram systemd ignores is not taken either: one longer than 4096
// bytes, which the kernel cuts (so that a field at the cut would read as
// another: X_SITECTL_KEEPALIVE_SIGNAL=15 as 1, SIGHUP), and one that
// holds a NUL byte. The message after them is the first received.
func TestDatagramsSystemdIgnoresAreDropped(t *testing.T) {
	s, err := sdnotify.Listen(filepath.Join(t.TempDir(), "notify.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	msgs := make(chan sdnotify.Message, 4)
	go s.Read(msgs)
	field := "X_SITECTL_KEEPALIVE_SIGNAL="
	pad := "STATUS=" + strings.Repeat("x", 4096-len("STATUS=")-1-len(field)-1) + "\n"
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: s.Path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, d := range []string{pad + field + "15", "READY=1\x00", "X_LAST=1"} {
		if _, err := conn.Write([]byte(d)); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case m := <-msgs:
		if m.Fields["X_LAST"] != "1" {
			t.Errorf("received a message first with X_SITECTL_KEEPALIVE_SIGNAL=%q, X_LAST=%q; want X_LAST=1, after two datagrams systemd ignores",
				m.Fields["X_SITECTL_KEEPALIVE_SIGNAL"], m.Fields["X_LAST"])
		}
	case <-time.After(10 * time.Second):
		t.Fatal("nothing received")
	}
}
