package launcher

import (
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sitectl/sitectl/internal/paths"
)

// What serveControl answers, Reload reads back: nil for a handover, the
// reason for a failure, on a real socket.
func TestControlProtocolRoundTrip(t *testing.T) {
	dir := t.TempDir()
	ln, err := net.Listen("unix", filepath.Join(dir, paths.ControlSocket))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	l := &launcher{requests: make(chan request)}
	done := make(chan struct{})
	go l.serveControl(ln, done)
	results := []reloadResult{
		{handover: handover{n: 7, mode: "read-only"}},
		{err: fmt.Errorf("generation 8 exited before it was ready: %w", errors.New("exit status 1\nwith a second line"))},
		{err: errStopping},
	}
	go func() {
		for _, r := range results {
			req := <-l.requests
			req.reply <- r
		}
	}()
	for _, r := range results {
		err := Reload(dir)
		switch {
		case r.err == nil && err != nil:
			t.Errorf("a handover read back as %v", err)
		case r.err != nil && (err == nil || err.Error() != oneLine(r.err.Error())):
			t.Errorf("failure %q read back as %v", r.err, err)
		}
	}
	close(done) // the launcher is gone: a request is answered at once
	if err := Reload(dir); err == nil || err.Error() != errStopping.Error() {
		t.Errorf("reload after the launcher ended: %v", err)
	}
	if err := Reload(filepath.Join(dir, "nowhere")); err == nil || !strings.Contains(err.Error(), "cannot reach the launcher") {
		t.Errorf("no launcher: %v", err)
	}
	c, _ := net.Dial("unix", filepath.Join(dir, paths.ControlSocket))
	c.Write([]byte("restart\n"))
	buf := make([]byte, 100)
	n, _ := c.Read(buf)
	if got := string(buf[:n]); got != "failed: unknown request\n" {
		t.Errorf("unknown request answered %q", got)
	}
	if err := parseReply("garbage"); err == nil {
		t.Error("an answer that is neither ok nor failed was taken")
	}
}
