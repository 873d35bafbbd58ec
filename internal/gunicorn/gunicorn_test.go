package gunicorn

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// app is a WSGI app that leaves marks in its directory: "atexit" from an
// atexit handler, "teardown" from an object the interpreter's teardown
// frees; it answers with FROM_CONF, which a gunicorn.conf.py may set, and
// its pid in X-Worker-Pid, after 300 ms when the query string is "hold".
const app = `import atexit, os, threading, time
DIR = os.path.dirname(os.path.abspath(__file__))
if os.environ.get("FAIL_IMPORT") == "1":
    raise RuntimeError("failing to load, as asked")
def mark(name):
    with open(os.path.join(DIR, name), "a") as f:
        f.write("%d\n" % os.getpid())
atexit.register(mark, "atexit")
class Teardown:
    # What it calls is bound now: the teardown clears modules and builtins.
    def __del__(self, open=open, path=os.path.join(DIR, "teardown"), getpid=os.getpid):
        with open(path, "a") as f:
            f.write("%d\n" % getpid())
KEEP = Teardown()
def run_thread(name, daemon):
    mark(name + "-start")
    if daemon:
        # It runs for as long as the process, as an SDK's background
        # sender does; its target holds nothing of this module, which
        # the teardown then frees.
        threading.Thread(target=time.sleep, args=(3600,), daemon=True).start()
        return
    def run():
        # Longer than the test takes to stop gunicorn after the worker's
        # first request (on a busy host too), shorter than its graceful
        # timeout.
        time.sleep(3)
        mark(name)
    threading.Thread(target=run).start()
if os.environ.get("THREAD") == "daemon":
    run_thread("thread", True)
def application(environ, start_response):
    if os.environ.get("THREAD") == "non-daemon":
        run_thread("thread", False)
    if environ.get("QUERY_STRING") == "hold":
        time.sleep(0.3)
    start_response("200 OK", [("Content-Type", "text/plain"), ("X-Worker-Pid", str(os.getpid()))])
    return [os.environ.get("FROM_CONF", "-").encode()]
`

// gunicornRun is one gunicorn master started by a test, as the preset
// starts it: GUNICORN_CMD_ARGS with sitectl's file when fast.
type gunicornRun struct {
	dir, sock string
	workers   int
	cmd       *exec.Cmd
	out       strings.Builder
}

func startGunicorn(t *testing.T, dir string, fast bool, args []string, env ...string) *gunicornRun {
	t.Helper()
	bin, err := exec.LookPath("gunicorn")
	if err != nil {
		t.Fatalf("gunicorn is needed (test/run installs Debian's): %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "app.py"), []byte(app), 0o644); err != nil {
		t.Fatal(err)
	}
	r := &gunicornRun{dir: dir, sock: filepath.Join(dir, "g.sock")}
	cmdArgs := "--graceful-timeout 5"
	if fast {
		conf := filepath.Join(t.TempDir(), "sitectl.conf.py")
		if err := os.WriteFile(conf, []byte(Config), 0o644); err != nil {
			t.Fatal(err)
		}
		cmdArgs += " -c " + conf
	}
	r.workers = 2
	if slices.Contains(env, "FAIL_IMPORT=1") {
		// One worker: with two, the master's end races the second
		// worker's, and gunicorn itself then exits 1 or 3.
		r.workers = 1
	}
	r.cmd = exec.Command(bin, append(append([]string{"--workers", strconv.Itoa(r.workers), "--bind", "unix:" + r.sock}, args...), "app:application")...)
	r.cmd.Dir = dir
	r.cmd.Env = append(append(os.Environ(), "GUNICORN_CMD_ARGS="+cmdArgs, "PYTHONDONTWRITEBYTECODE=1"), env...)
	r.cmd.Stdout, r.cmd.Stderr = &r.out, &r.out
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.cmd.Process.Kill(); r.cmd.Wait() })
	return r
}

// get asks the app until every worker has answered (or 20 s passed), and
// returns what one of them answered. A worker that has answered runs its
// own signal handlers: until it installs them, between its fork and its
// init_process, it has the master's, which only queue a SIGTERM for the
// master's loop, and a stop then loses it (the worker ends at the graceful
// timeout, by SIGKILL). "Booting worker" is logged before that window, so
// it is not enough. The requests of a round are held 300 ms each and sent
// at once, one per worker, so that each busy worker leaves the next to
// another.
func (r *gunicornRun) get(t *testing.T) string {
	t.Helper()
	c := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", r.sock)
		},
		DisableKeepAlives: true,
	}}
	type answer struct {
		body, pid string
		err       error
	}
	ask := func() answer {
		resp, err := c.Get("http://gunicorn/?hold")
		if err != nil {
			return answer{err: err}
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return answer{body: string(b), pid: resp.Header.Get("X-Worker-Pid"), err: err}
	}
	answered := map[string]bool{}
	var body string
	var err error
	deadline := time.Now().Add(20 * time.Second)
	for {
		round := make(chan answer, r.workers)
		for i := 0; i < r.workers; i++ {
			go func() { round <- ask() }()
		}
		for i := 0; i < r.workers; i++ {
			a := <-round
			if a.err != nil {
				err = a.err
				continue
			}
			body, answered[a.pid] = a.body, true
		}
		if len(answered) >= r.workers {
			return body
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d gunicorn workers answered within 20s: %v\n%s", len(answered), r.workers, err, r.out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop sends SIGTERM, gunicorn's graceful stop, and returns its exit status.
func (r *gunicornRun) stop(t *testing.T) int {
	t.Helper()
	r.cmd.Process.Signal(syscall.SIGTERM)
	return r.wait(t)
}

func (r *gunicornRun) wait(t *testing.T) int {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- r.cmd.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0
	case <-time.After(20 * time.Second):
		t.Fatalf("gunicorn did not end within 20s:\n%s", r.out.String())
		return -1
	}
}

// marks returns the pids that left the mark name.
func marks(t *testing.T, dir, name string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Fields(string(b))
}

// Each process that ends cleanly runs its atexit handlers and skips the
// teardown with sitectl's file; without it, gunicorn's processes tear down
// the interpreter. With --preload the master holds the app too.
func TestFastExitSkipsOnlyTheTeardown(t *testing.T) {
	for _, preload := range []bool{false, true} {
		var args []string
		holders := 2 // the workers import the app
		if preload {
			args, holders = []string{"--preload"}, 3
		}
		for _, fast := range []bool{false, true} {
			dir := t.TempDir()
			g := startGunicorn(t, dir, fast, args)
			g.get(t)
			if code := g.stop(t); code != 0 {
				t.Fatalf("preload=%v fast=%v: gunicorn exited %d:\n%s", preload, fast, code, g.out.String())
			}
			atexit, teardown := marks(t, dir, "atexit"), marks(t, dir, "teardown")
			if len(atexit) != holders {
				t.Errorf("preload=%v fast=%v: the atexit handler ran in %d processes, want %d (%v):\n%s", preload, fast, len(atexit), holders, atexit, g.out.String())
			}
			want := holders
			if fast {
				want = 0
			}
			if len(teardown) != want {
				t.Errorf("preload=%v fast=%v: the teardown freed the app's objects in %d processes, want %d:\n%s", preload, fast, len(teardown), want, g.out.String())
			}
			for _, line := range []string{"Worker exiting", "Shutting down: Master"} {
				if !strings.Contains(g.out.String(), line) {
					t.Errorf("preload=%v fast=%v: gunicorn's log lost %q:\n%s", preload, fast, line, g.out.String())
				}
			}
		}
	}
}

// A worker with a thread Python would wait for ends as gunicorn ends it,
// after the thread; daemon threads do not keep the teardown.
func TestThreadsOfTheApp(t *testing.T) {
	for _, thread := range []string{"daemon", "non-daemon"} {
		dir := t.TempDir()
		g := startGunicorn(t, dir, true, nil, "THREAD="+thread)
		g.get(t)
		if code := g.stop(t); code != 0 {
			t.Fatalf("%s: gunicorn exited %d:\n%s", thread, code, g.out.String())
		}
		teardowns := marks(t, dir, "teardown")
		started, finished := marks(t, dir, "thread-start"), marks(t, dir, "thread")
		if thread == "daemon" {
			if len(started) != 2 || len(teardowns) != 0 {
				t.Errorf("daemon threads: %d started (want 2, one per worker), %d workers tore down the interpreter (want 0)", len(started), len(teardowns))
			}
			continue
		}
		// A thread per request, in the worker that served it: every one
		// finished, and each such worker ended as gunicorn ends it.
		slices.Sort(started)
		slices.Sort(finished)
		ran := slices.Compact(slices.Clone(started))
		if len(started) == 0 || !slices.Equal(started, finished) {
			t.Errorf("non-daemon threads: started in %v, finished in %v: a worker ended before its thread", started, finished)
		}
		for _, pid := range ran {
			if !slices.Contains(teardowns, pid) {
				t.Errorf("non-daemon threads: worker %s ran one and did not end as gunicorn ends it (teardowns: %v)", pid, teardowns)
			}
		}
	}
}

func TestDefaultConfigIsStillLoaded(t *testing.T) {
	// gunicorn.conf.py in the working directory: gunicorn reads it when no
	// config file is named, so sitectl's file reads it too.
	dir := t.TempDir()
	conf := "raw_env = ['FROM_CONF=' + __file__]\n"
	if err := os.WriteFile(filepath.Join(dir, "gunicorn.conf.py"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	g := startGunicorn(t, dir, true, nil)
	if got, want := g.get(t), filepath.Join(dir, "gunicorn.conf.py"); got != want {
		t.Errorf("the app got FROM_CONF=%q, want %q: gunicorn.conf.py was not read as gunicorn reads it", got, want)
	}
	g.stop(t)
	if n := len(marks(t, dir, "teardown")); n != 0 {
		t.Errorf("%d workers tore down the interpreter with sitectl's hook in place", n)
	}

	// Hooks of the operator's own are kept, and ours are not added for
	// the processes they are for.
	dir = t.TempDir()
	conf = "import os\ndef worker_exit(server, worker):\n    open(os.path.join(" + "'" + dir + "'" + ", 'own'), 'a').write('%d\\n' % os.getpid())\n"
	if err := os.WriteFile(filepath.Join(dir, "gunicorn.conf.py"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	g = startGunicorn(t, dir, true, []string{"--preload"})
	g.get(t)
	g.stop(t)
	if n := len(marks(t, dir, "own")); n != 2 {
		t.Errorf("the operator's worker_exit ran in %d workers, want 2:\n%s", n, g.out.String())
	}
	// The workers end as gunicorn ends them; the master, for which the
	// file has no hook, ends early.
	if n := len(marks(t, dir, "teardown")); n != 2 {
		t.Errorf("with the operator's own worker_exit, %d processes tore down the interpreter, want the 2 workers", n)
	}
}

// A gunicorn.conf.py with a mistake fails gunicorn's start as it would
// without sitectl's file, and the error names it, not only sitectl's file.
func TestBrokenDefaultConfigIsNamed(t *testing.T) {
	codes := map[bool]int{}
	for _, fast := range []bool{false, true} {
		dir := t.TempDir()
		conf := filepath.Join(dir, "gunicorn.conf.py")
		if err := os.WriteFile(conf, []byte("workers = 2\nraise ValueError('a mistake of the operator')\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		g := startGunicorn(t, dir, fast, nil)
		codes[fast] = g.wait(t)
		out := g.out.String()
		if !strings.Contains(out, "Failed to read config file: "+conf) || !strings.Contains(out, "a mistake of the operator") {
			t.Errorf("fast=%v: the error does not name %s and its mistake:\n%s", fast, conf, out)
		}
	}
	if codes[true] != codes[false] || codes[true] == 0 {
		t.Errorf("gunicorn exited %d with sitectl's file and %d without: want the same, not 0", codes[true], codes[false])
	}
}

func TestFailingWorkerEndsAsGunicornEndsIt(t *testing.T) {
	// A worker that cannot load the app exits with gunicorn's own status,
	// which makes its master give up with the same status.
	codes := map[bool]int{}
	for _, fast := range []bool{false, true} {
		dir := t.TempDir()
		g := startGunicorn(t, dir, fast, nil, "FAIL_IMPORT=1")
		codes[fast] = g.wait(t)
		if !strings.Contains(g.out.String(), "failing to load, as asked") {
			t.Errorf("fast=%v: the worker's traceback is missing:\n%s", fast, g.out.String())
		}
	}
	if codes[true] != codes[false] || codes[true] == 0 {
		t.Errorf("gunicorn exited %d with sitectl's file and %d without: want the same, not 0", codes[true], codes[false])
	}
}

// Ensure writes the file, with its directory, when it is missing or
// differs, and leaves it alone when it holds the content already.
func TestEnsure(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "sitectl")
	path := filepath.Join(dir, "gunicorn.conf.py")
	check := func(when string) os.FileInfo {
		t.Helper()
		b, err := os.ReadFile(path)
		if err != nil || string(b) != Config {
			t.Fatalf("%s: %v, %d bytes, want the config", when, err, len(b))
		}
		fi, _ := os.Stat(path)
		di, _ := os.Stat(dir)
		if fi.Mode().Perm() != 0o644 || di.Mode().Perm() != 0o755 {
			t.Errorf("%s: file %v, directory %v, want 0644 and 0755", when, fi.Mode(), di.Mode())
		}
		return fi
	}
	if err := Ensure(path); err != nil {
		t.Fatal(err)
	}
	first := check("missing")
	if err := Ensure(path); err != nil {
		t.Fatal(err)
	}
	if again := check("there"); !os.SameFile(first, again) {
		t.Errorf("a file that holds the config was written again")
	}
	for _, content := range []string{"", Config[:100], Config + "x"} {
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := Ensure(path); err != nil {
			t.Fatal(err)
		}
		check(fmt.Sprintf("%d bytes", len(content)))
	}
}

// A named pipe or a symlink to /dev/zero where the file goes is replaced
// by the file, at once: opening the pipe to compare its content waited for
// a writer, and sitectl prepare, and the site's start, with it.
func TestEnsureReplacesWhatIsNoFile(t *testing.T) {
	dir := t.TempDir()
	for name, plant := range map[string]func(string) error{
		"fifo": func(p string) error { return syscall.Mkfifo(p, 0o644) },
		"zero": func(p string) error { return os.Symlink("/dev/zero", p) },
	} {
		path := filepath.Join(dir, name)
		if err := plant(path); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- Ensure(path) }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
		case <-time.After(2 * time.Second):
			t.Fatalf("%s: Ensure still runs after 2s", name)
		}
		if fi, err := os.Lstat(path); err != nil || !fi.Mode().IsRegular() {
			t.Fatalf("%s: %v, %v, want the file", name, fi, err)
		}
	}
}

// A file that cannot be written (/run full) where the file of another
// sitectl is keeps that file, with ErrKept: a gunicorn site still starts.
// Without a file there, or with an empty one, it is an error of its own.
func TestEnsureKeepsTheFileThereWhenItCannotWrite(t *testing.T) {
	full := func(path string, _ []byte, _ os.FileMode) error {
		return fmt.Errorf("cannot write %s: %w", path, syscall.ENOSPC)
	}
	defer func(w func(string, []byte, os.FileMode) error) { write = w }(write)
	write = full
	dir := t.TempDir()
	path := filepath.Join(dir, "gunicorn.conf.py")
	if err := Ensure(path); err == nil || errors.Is(err, ErrKept) || !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("no file there: %v", err)
	}
	for _, content := range []string{"", "# an older sitectl's hooks\n"} {
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		err := Ensure(path)
		if kept := content != ""; errors.Is(err, ErrKept) != kept || !errors.Is(err, syscall.ENOSPC) {
			t.Errorf("%q there: %v", content, err)
		}
		if b, _ := os.ReadFile(path); string(b) != content {
			t.Errorf("%q there: now %q", content, b)
		}
	}
}
