package launcher

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
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
		err := Reload(dir, os.Getpid(), nil, nil)
		switch {
		case r.err == nil && err != nil:
			t.Errorf("a handover read back as %v", err)
		case r.err != nil && (err == nil || err.Error() != oneLine(r.err.Error())):
			t.Errorf("failure %q read back as %v", r.err, err)
		}
	}
	close(done) // the launcher is gone: a request is answered at once
	if err := Reload(dir, os.Getpid(), nil, nil); !errors.Is(err, ErrStopping) {
		t.Errorf("reload after the launcher ended: %v", err)
	}
	if err := Reload(filepath.Join(dir, "nowhere"), os.Getpid(), nil, nil); err == nil || !strings.Contains(err.Error(), "cannot reach the launcher") {
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
		st, err := AskStatus(ctx, h.dir, os.Getpid())
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
	go func() { reloaded <- Reload(h.dir, os.Getpid(), nil, nil) }()
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

	if err := Reload(h.dir, os.Getpid(), nil, nil); err != nil {
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

// fakeControl listens on path as a launcher would (in this process, so
// that its peer pid is the test's), answers "ok" to a request, and sends
// on got what each connection sent before it was closed ("" for nothing).
func fakeControl(t *testing.T, path string) <-chan string {
	t.Helper()
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	got := make(chan string, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.SetDeadline(time.Now().Add(patience))
			line, _ := bufio.NewReader(c).ReadString('\n')
			got <- line
			switch line {
			case "status\n":
				io.WriteString(c, `{"serving":{"generation":1,"pid":1,"mode":"normal"},"draining":[]}`)
			case "":
			default:
				io.WriteString(c, "ok: generation 1 serves again in mode normal, flipped in 1ms\n")
			}
			c.Close()
		}
	}()
	return got
}

// askAll asks the launcher in dir, whose main PID is mainPID, everything
// root's side asks: a reload with a mode file, its status, and a rollback.
func askAll(dir string, mainPID int) []error {
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	reloadErr := Reload(dir, mainPID, []byte("SITE_MODE=\"maintenance\"\nDB_PASSWORD=\"site-a-secret\"\n"), nil)
	_, statusErr := AskStatus(ctx, dir, mainPID)
	_, rollbackErr := Rollback(ctx, dir, mainPID, 0)
	return []error{reloadErr, statusErr, rollbackErr}
}

// The site's app can replace the control socket in its runtime directory
// with one it listens on itself: root's side then talks only to the
// service's main process, and sends nothing to another one.
func TestControlSocketNotTheLaunchersIsRefused(t *testing.T) {
	dir := t.TempDir()
	got := fakeControl(t, filepath.Join(dir, paths.ControlSocket))
	mainPID := os.Getppid() // the launcher: any process but the one that listens
	want := fmt.Sprintf("is not the launcher's (pid %d answered, the service's main PID is %d): the site's app may have replaced it; nothing was sent", os.Getpid(), mainPID)
	for i, err := range askAll(dir, mainPID) {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("request %d to a socket the app listens on: %v; want %q", i, err, want)
		}
		if line := <-got; line != "" {
			t.Errorf("request %d: the app's socket was sent %q", i, line)
		}
	}
	for i, err := range askAll(dir, os.Getpid()) {
		if line := <-got; err != nil || line == "" {
			t.Errorf("request %d to the launcher's own socket: %v (it got %q)", i, err, line)
		}
	}
	if err := Reload(dir, 0, nil, nil); err == nil || !strings.Contains(err.Error(), "the service's main PID is not known; nothing was sent") {
		t.Errorf("reload without the main PID: %v", err)
	}
}

// The site's app can replace its control socket with a symlink to another
// site's (which root may reach): root's side then sends nothing there, not
// this site's mode file nor a rollback, and believes no answer from it.
func TestControlSocketSymlinkedToAnotherSiteIsRefused(t *testing.T) {
	base := t.TempDir()
	a, b := filepath.Join(base, "site-a"), filepath.Join(base, "site-b")
	for _, d := range []string{a, b} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	// Site B's launcher is another process, which records what it gets.
	gotFile := filepath.Join(base, "b-got")
	other := exec.Command(os.Args[0], "-test.run=^$")
	other.Env = append(os.Environ(), "LAUNCHER_TEST_HELPER=control", "CONTROL_PATH="+filepath.Join(b, paths.ControlSocket), "CONTROL_GOT="+gotFile)
	out, err := other.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := other.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Process.Kill(); other.Wait() })
	if line, err := bufio.NewReader(out).ReadString('\n'); line != "listening\n" {
		t.Fatalf("site B's launcher: %q, %v", line, err)
	}
	if err := os.Symlink(filepath.Join(b, paths.ControlSocket), filepath.Join(a, paths.ControlSocket)); err != nil {
		t.Fatal(err)
	}
	// Site A's launcher is this process.
	want := fmt.Sprintf("is not the launcher's (pid %d answered, the service's main PID is %d)", other.Process.Pid, os.Getpid())
	for i, err := range askAll(a, os.Getpid()) {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("request %d through the symlink: %v; want %q", i, err, want)
		}
	}
	// B's launcher is asked by its own main PID; then what it got is known.
	if _, err := AskStatus(context.Background(), b, other.Process.Pid); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(gotFile)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(data); got != "status\n" {
		t.Errorf("site B's launcher got %q from site A's requests, want nothing", strings.TrimSuffix(got, "status\n"))
	}
}

// helperControl is another site's launcher on its control socket
// (CONTROL_PATH): it says "listening" once it is, writes each request line
// it gets to CONTROL_GOT, and answers as a launcher would.
func helperControl() {
	ln, err := net.Listen("unix", os.Getenv("CONTROL_PATH"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	got, err := os.OpenFile(os.Getenv("CONTROL_GOT"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println("listening")
	for {
		c, err := ln.Accept()
		if err != nil {
			os.Exit(1)
		}
		c.SetDeadline(time.Now().Add(patience))
		line, _ := bufio.NewReader(c).ReadString('\n')
		got.WriteString(line)
		switch line {
		case "status\n":
			io.WriteString(c, `{"serving":{"generation":7,"pid":1,"mode":"normal"},"draining":[]}`)
		case "":
		default:
			io.WriteString(c, "ok: generation 6 serves again in mode normal, flipped in 1ms\n")
		}
		c.Close()
	}
}

// failingListener fails its first accepts as a launcher out of file
// descriptors does, then accepts.
type failingListener struct {
	net.Listener
	fails int
}

func (f *failingListener) Accept() (net.Conn, error) {
	if f.fails > 0 {
		f.fails--
		return nil, &net.OpError{Op: "accept", Net: "unix", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	}
	return f.Listener.Accept()
}

// A failed accept (EMFILE: the site's app, the same user, can connect
// until the launcher has no descriptor left) passes: the control socket
// answers again afterwards, instead of never for the rest of the
// service's run.
func TestControlSocketOutlivesAFailedAccept(t *testing.T) {
	dir := t.TempDir()
	ln, err := net.Listen("unix", filepath.Join(dir, paths.ControlSocket))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	l := &launcher{requests: make(chan request)}
	done := make(chan struct{})
	defer close(done)
	go l.serveControl(&failingListener{Listener: ln, fails: 3}, done)
	go func() {
		req := <-l.requests
		req.reply <- reloadResult{handover: handover{n: 2, mode: "normal"}}
	}()
	errc := make(chan error, 1)
	go func() { errc <- Reload(dir, os.Getpid(), nil, nil) }()
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("reload after failed accepts: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("nothing answered on the control socket after a failed accept")
	}
}
