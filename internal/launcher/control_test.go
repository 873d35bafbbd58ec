package launcher

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

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
		{err: ErrStopping},
	}
	go func() {
		for _, r := range results {
			req := <-l.requests
			req.reply <- r
		}
	}()
	for _, r := range results {
		err := Reload(dir, nil, nil)
		switch {
		case r.err == nil && err != nil:
			t.Errorf("a handover read back as %v", err)
		case r.err != nil && (err == nil || err.Error() != oneLine(r.err.Error())):
			t.Errorf("failure %q read back as %v", r.err, err)
		}
	}
	close(done) // the launcher is gone: a request is answered at once
	if err := Reload(dir, nil, nil); !errors.Is(err, ErrStopping) {
		t.Errorf("reload after the launcher ended: %v", err)
	}
	if err := Reload(filepath.Join(dir, "nowhere"), nil, nil); err == nil || !strings.Contains(err.Error(), "cannot reach the launcher") {
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

// A status request tells which generation serves and which drain, with
// their pids and modes, at any moment: after the start, during a reload
// (answered while the launcher waits for the new generation), after the
// handover, and after a failed reload (with its reason).
func TestStatusTellsWhoServes(t *testing.T) {
	h := newHarness(t, "ready", "wait-file:"+filepath.Join(os.TempDir(), "never"), "ready", "die")
	h.spec = func(s *Spec) { s.StartTimeout = patience }
	h.run()
	ask := func() Status {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), patience)
		defer cancel()
		st, err := AskStatus(ctx, h.dir)
		if err != nil {
			t.Fatalf("status: %v", err)
		}
		return st
	}
	st := ask()
	first := h.pidOf(1)
	if st.Serving == nil || st.Serving.Ready.IsZero() || st.Serving.Ready.After(time.Now()) {
		t.Fatalf("after the start: %+v: no time it was ready", st)
	}
	serving := *st.Serving
	serving.Ready = time.Time{}
	if serving != (GenerationStatus{Generation: 1, PID: first, Mode: "m-ready"}) || len(st.Draining) != 0 || st.Last != "" {
		t.Fatalf("after the start: %+v", st)
	}

	// Generation 2 waits for a file that never comes: while the launcher
	// waits for it, status still answers, generation 1 serving.
	reloaded := make(chan error, 1)
	go func() { reloaded <- Reload(h.dir, nil, nil) }()
	h.pidOf(2)
	if st := ask(); st.Serving == nil || st.Serving.PID != first {
		t.Fatalf("during a reload: %+v", st)
	}
	h.sigs <- syscall.SIGHUP // ignored while a reload runs
	syscall.Kill(h.pidOf(2), syscall.SIGKILL)
	if err := <-reloaded; err == nil {
		t.Fatal("the reload of a killed generation succeeded")
	}
	if st := ask(); st.Serving == nil || st.Serving.PID != first || !strings.Contains(st.Last, "generation 2 exited before it was ready") {
		t.Fatalf("after a failed reload: %+v", st)
	}

	if err := Reload(h.dir, nil, nil); err != nil {
		t.Fatal(err)
	}
	st = ask()
	if st.Serving == nil || st.Serving.Generation != 3 || st.Serving.PID != h.pidOf(3) || st.Last != "" {
		t.Fatalf("after the handover: %+v", st)
	}
	if len(st.Draining) == 1 && st.Draining[0].PID != first {
		t.Fatalf("draining: %+v", st.Draining)
	}
	h.waitGone(first)
	h.waitFor("log: generation 1 drained and exited")
	if st := ask(); len(st.Draining) != 0 {
		t.Fatalf("after generation 1 exited: %+v", st)
	}
	if err := h.stop(); err != nil {
		t.Fatal(err)
	}
}
