package dialer

import (
	"bufio"
	"context"
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The dialer connects and hands the connection over: what the client
// writes on it reaches the listener, and the answer comes back. A refused
// connection and a bad request are answered with why.
func TestDialHandsOverTheConnection(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "dial.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, ln, t.Logf) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()

	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer tcp.Close()
	go func() {
		c, err := tcp.Accept()
		if err != nil {
			return
		}
		line, _ := bufio.NewReader(c).ReadString('\n')
		io.WriteString(c, "echo "+line)
		c.Close()
	}()
	dctx, dcancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer dcancel()
	c, err := Dial(dctx, sock, tcp.Addr().String())
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	io.WriteString(c, "hello\n")
	got, _ := io.ReadAll(c)
	c.Close()
	if string(got) != "echo hello\n" {
		t.Errorf("through the dialed connection: %q", got)
	}

	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := closed.Addr().String()
	closed.Close()
	if _, err := Dial(dctx, sock, addr); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Errorf("a refused connection: %v", err)
	}
	for _, bad := range []string{"localhost:80", "[fe80::1%lo]:80", "127.0.0.1:0"} {
		if _, err := Dial(dctx, sock, bad); err == nil || !strings.Contains(err.Error(), "is not an IP address and port") {
			t.Errorf("%s: %v", bad, err)
		}
	}
	if _, err := Dial(dctx, filepath.Join(t.TempDir(), "none"), addr); err == nil || !strings.Contains(err.Error(), "cannot reach sitectl's dialer") {
		t.Errorf("no dialer: %v", err)
	}
}

func TestParseRequest(t *testing.T) {
	if r, err := parseRequest("tcp [::1]:8080 5000\n"); err != nil || r.addr.String() != "[::1]:8080" || r.timeout != 5*time.Second {
		t.Errorf("%+v %v", r, err)
	}
	for _, bad := range []string{"", "udp 127.0.0.1:1 5", "tcp 127.0.0.1:1", "tcp 127.0.0.1:1 0", "tcp 127.0.0.1:1 99999999", "tcp example.com:80 5"} {
		if _, err := parseRequest(bad); err == nil {
			t.Errorf("%q was taken", bad)
		}
	}
}
