package activation

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"
)

// rawConn is one HTTP/1.1 client connection, read and written by hand so
// that the test sees exactly when the server closes it.
type rawConn struct {
	c net.Conn
	r *bufio.Reader
}

func dialRaw(t *testing.T, addr string) *rawConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawConn{c, bufio.NewReader(c)}
}

func (rc *rawConn) send(t *testing.T, path string) {
	t.Helper()
	if _, err := io.WriteString(rc.c, "GET "+path+" HTTP/1.1\r\nHost: test\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
}

// response reads one response and tells whether the server said it closes
// the connection after it.
func (rc *rawConn) response(t *testing.T) (closing bool) {
	t.Helper()
	rc.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(rc.r, nil)
	if err != nil {
		t.Fatalf("no response: %v", err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.Close
}

// closed tells whether the server closed the connection (EOF) rather than
// keeping it open for another request.
func (rc *rawConn) closed(t *testing.T) bool {
	t.Helper()
	rc.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err := rc.r.ReadByte()
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		return false
	}
	return err == io.EOF || err != nil && strings.Contains(err.Error(), "reset")
}

// Keep-alive switched off by the signal: an idle kept-alive connection is
// closed at once, a busy one after its response, a new one after its one
// request; the server keeps serving. Switched on again: connections are
// kept alive. Each switch is reported through NOTIFY_SOCKET.
func TestSwitchKeepAlivesBySignal(t *testing.T) {
	notify := notifySocket(t)
	release := make(chan struct{})
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/block" {
			<-release
		}
		io.WriteString(w, "ok")
	})}
	stop, err := SwitchKeepAlives(srv, syscall.SIGUSR2)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	if got := readNotify(t, notify, 5*time.Second); got != "X_SITECTL_KEEPALIVE_SIGNAL=12\nX_SITECTL_KEEPALIVE=1" {
		t.Fatalf("announcement: %q", got)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	defer srv.Close()
	addr := ln.Addr().String()

	idle := dialRaw(t, addr)
	idle.send(t, "/")
	if idle.response(t) {
		t.Fatal("keep-alive is off before any signal")
	}
	busy := dialRaw(t, addr)
	busy.send(t, "/block")

	syscall.Kill(syscall.Getpid(), syscall.SIGUSR2)
	if got := readNotify(t, notify, 5*time.Second); got != "X_SITECTL_KEEPALIVE=0" {
		t.Fatalf("after the first signal: %q", got)
	}
	if !idle.closed(t) {
		t.Fatal("the idle kept-alive connection stayed open with keep-alive off")
	}
	close(release)
	if !busy.response(t) || !busy.closed(t) {
		t.Fatal("the busy connection was kept alive after its response")
	}
	fresh := dialRaw(t, addr)
	fresh.send(t, "/")
	if !fresh.response(t) || !fresh.closed(t) {
		t.Fatal("a new connection was kept alive while keep-alive is off")
	}

	syscall.Kill(syscall.Getpid(), syscall.SIGUSR2)
	if got := readNotify(t, notify, 5*time.Second); got != "X_SITECTL_KEEPALIVE=1" {
		t.Fatalf("after the second signal: %q", got)
	}
	again := dialRaw(t, addr)
	for range 2 {
		again.send(t, "/")
		if again.response(t) {
			t.Fatal("keep-alive stayed off after the second signal")
		}
	}
	stop()
	stop() // idempotent
}

func TestSwitchKeepAlivesNeedsAServer(t *testing.T) {
	if _, err := SwitchKeepAlives(nil, syscall.SIGUSR2); err == nil {
		t.Fatal("no error for a nil server")
	}
}

// A signal that would kill or stop the program when the launcher sends it
// to switch keep-alive is refused, and nothing is announced.
func TestSwitchKeepAlivesRefusesStopSignals(t *testing.T) {
	notify := notifySocket(t)
	for _, sig := range []syscall.Signal{syscall.SIGKILL, syscall.SIGSTOP, syscall.SIGTERM, syscall.SIGINT, 0, 99} {
		stop, err := SwitchKeepAlives(&http.Server{}, sig)
		if err == nil {
			stop()
			t.Errorf("SwitchKeepAlives(%v) installed the switch", sig)
		}
	}
	notify.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if n, err := notify.Read(make([]byte, 4096)); err == nil {
		t.Errorf("a refused switch was announced (%d bytes)", n)
	}
}
