package activation

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sitectl/sitectl/internal/sdnotify"
)

// The tests that need inherited descriptors re-execute the test binary as a
// child with the descriptors in cmd.ExtraFiles (which start at fd 3, like
// systemd's). The child runs TestHelperProcess, selected by -test.run and
// the childEnv marker naming what it should do.
const childEnv = "ACTIVATION_TEST_CHILD"

// TestHelperProcess is not a real test: it is the body of the child
// processes started by the other tests.
func TestHelperProcess(t *testing.T) {
	mode := os.Getenv(childEnv)
	if mode == "" {
		t.Skip("helper process for other tests")
	}
	// The parent cannot know the child's pid before it starts, so it passes
	// LISTEN_PID=self and the child substitutes its own pid here, before
	// the package reads the environment. The package itself stays strict.
	if os.Getenv("LISTEN_PID") == "self" {
		os.Setenv("LISTEN_PID", strconv.Itoa(os.Getpid()))
	}
	err := runChild(mode)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(3)
	}
	os.Exit(0)
}

// childReport is what the "report" and "files" children print as JSON.
type childReport struct {
	Listeners map[string][]string `json:"listeners,omitempty"`
	Files     []string            `json:"files,omitempty"`
	CloseExec []bool              `json:"close_exec,omitempty"`
	Err       string              `json:"err,omitempty"`
	EnvLeft   []string            `json:"env_left,omitempty"`
	Changed   []string            `json:"changed,omitempty"` // fds above the passed ones that Listeners closed
}

// fdTargets maps the open descriptors from fd 3 to fd 31 to what they
// are.
func fdTargets() map[int]string {
	m := map[int]string{}
	for fd := listenFDsStart; fd < 32; fd++ {
		if target, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(fd)); err == nil {
			m[fd] = target
		}
	}
	return m
}

func listenEnvLeft() []string {
	var left []string
	for _, v := range []string{"LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"} {
		if _, ok := os.LookupEnv(v); ok {
			left = append(left, v)
		}
	}
	return left
}

func runChild(mode string) error {
	var rep childReport
	switch mode {
	case "report":
		before := fdTargets()
		m, err := Listeners()
		if err != nil {
			rep.Err = err.Error()
		}
		rep.Listeners = describe(m)
		passed, _ := strconv.Atoi(os.Getenv("TEST_PASSED"))
		after := fdTargets()
		for fd, target := range before {
			if fd >= listenFDsStart+passed && after[fd] != target {
				rep.Changed = append(rep.Changed, fmt.Sprintf("fd %d %s", fd, target))
			}
		}
	case "files-then-listeners":
		files := Files(false)
		m, err := Listeners()
		if err != nil {
			rep.Err = err.Error()
		}
		rep.Listeners = describe(m)
		for _, f := range files {
			if _, err := unix.GetsockoptInt(int(f.Fd()), unix.SOL_SOCKET, unix.SO_TYPE); err != nil {
				rep.Files = append(rep.Files, fmt.Sprintf("%s: %v", f.Name(), err))
			}
		}
	case "listener":
		_, err := Listener(os.Getenv("WANT"))
		if err != nil {
			rep.Err = err.Error()
		}
	case "files":
		if os.Getenv("FILES_TWICE") != "" {
			for _, f := range Files(false) {
				rep.Files = append(rep.Files, f.Name())
			}
		}
		for _, f := range Files(true) {
			rep.Files = append(rep.Files, f.Name())
			flags, err := unix.FcntlInt(f.Fd(), unix.F_GETFD, 0)
			if err != nil {
				return err
			}
			rep.CloseExec = append(rep.CloseExec, flags&unix.FD_CLOEXEC != 0)
		}
	case "serve", "serve-names":
		return serveChild()
	default:
		return fmt.Errorf("unknown mode %q", mode)
	}
	rep.EnvLeft = listenEnvLeft()
	return json.NewEncoder(os.Stdout).Encode(rep)
}

func describe(m map[string][]net.Listener) map[string][]string {
	if m == nil {
		return nil
	}
	d := make(map[string][]string)
	for name, ls := range m {
		for _, l := range ls {
			d[name] = append(d[name], l.Addr().Network()+" "+l.Addr().String())
		}
	}
	return d
}

// serveChild serves every activated listener with Serve and prints how
// Serve returned.
func serveChild() error {
	m, err := Listeners()
	if err != nil {
		return err
	}
	var all []net.Listener
	for _, ls := range m {
		all = append(all, ls...)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	mux.HandleFunc("/names", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(describe(m))
	})
	mux.HandleFunc("/sleep", func(w http.ResponseWriter, r *http.Request) {
		d, err := time.ParseDuration(r.FormValue("d"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		Status("sleeping " + d.String()) // tells the parent the request is in flight
		select {
		case <-time.After(d):
			io.WriteString(w, "slept")
		case <-r.Context().Done():
		}
	})
	var opts ServeOptions
	if v := os.Getenv("TEST_DRAIN"); v != "" {
		if opts.DrainTimeout, err = time.ParseDuration(v); err != nil {
			return err
		}
	}
	var drainStart time.Time
	opts.OnDrain = func(string) { drainStart = time.Now() }
	err = Serve(context.Background(), &http.Server{Handler: mux}, all, opts)
	took := time.Since(drainStart)
	switch {
	case err == nil:
		fmt.Println("serve returned nil")
	case errors.Is(err, ErrDrainTimeout):
		fmt.Println("serve returned drain timeout:", err)
	default:
		fmt.Println("serve returned error:", err)
	}
	fmt.Printf("drain took %s\n", took)
	return nil
}

// child prepares the test binary as a child process running mode with files
// as fds 3, 4, ... and the given extra environment.
func child(t *testing.T, mode string, files []*os.File, env ...string) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$")
	cmd.Env = append(cleanEnv(), childEnv+"="+mode)
	cmd.Env = append(cmd.Env, env...)
	cmd.ExtraFiles = files
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &testWriter{t}
	return cmd, &stdout
}

// cleanEnv is the environment without variables that would confuse the
// child.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		switch strings.SplitN(kv, "=", 2)[0] {
		case "LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES", "NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", DrainTimeoutEnv:
			continue
		}
		env = append(env, kv)
	}
	return env
}

type testWriter struct{ t *testing.T }

func (w *testWriter) Write(p []byte) (int, error) {
	w.t.Logf("child stderr: %s", bytes.TrimRight(p, "\n"))
	return len(p), nil
}

func runReport(t *testing.T, mode string, files []*os.File, env ...string) childReport {
	t.Helper()
	cmd, stdout := child(t, mode, files, env...)
	if err := cmd.Run(); err != nil {
		t.Fatalf("child %s: %v", mode, err)
	}
	var rep childReport
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("child %s printed %q: %v", mode, stdout, err)
	}
	return rep
}

func tcpListenerFile(t *testing.T) (*os.File, string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	f, err := l.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f, l.Addr().String()
}

func unixListenerFile(t *testing.T) (*os.File, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "admin.sock")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	l.SetUnlinkOnClose(false)
	defer l.Close()
	f, err := l.File()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f, path
}

func TestFilesIgnoresEnvironmentNotMeantForUs(t *testing.T) {
	pid := strconv.Itoa(os.Getpid())
	for _, tc := range []struct {
		name string
		env  map[string]string
	}{
		{"nothing set", nil},
		{"no LISTEN_PID", map[string]string{"LISTEN_FDS": "1"}},
		{"other pid", map[string]string{"LISTEN_FDS": "1", "LISTEN_PID": strconv.Itoa(os.Getpid() + 1)}},
		{"garbage pid", map[string]string{"LISTEN_FDS": "1", "LISTEN_PID": "self"}},
		{"zero fds", map[string]string{"LISTEN_FDS": "0", "LISTEN_PID": pid}},
		{"garbage fds", map[string]string{"LISTEN_FDS": "two", "LISTEN_PID": pid}},
		{"negative fds", map[string]string{"LISTEN_FDS": "-1", "LISTEN_PID": pid}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, v := range []string{"LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"} {
				t.Setenv(v, "")
				os.Unsetenv(v)
			}
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			if files := Files(false); files != nil {
				t.Fatalf("Files(false) = %v, want nil", files)
			}
			if len(tc.env) > 0 && len(listenEnvLeft()) == 0 {
				t.Fatal("Files(false) unset the environment")
			}
			if files := Files(true); files != nil {
				t.Fatalf("Files(true) = %v, want nil", files)
			}
			if left := listenEnvLeft(); len(left) > 0 {
				t.Fatalf("Files(true) left %v in the environment", left)
			}
		})
	}
}

func TestListenersNotActivated(t *testing.T) {
	for _, v := range []string{"LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"} {
		t.Setenv(v, "")
		os.Unsetenv(v)
	}
	_, err := Listeners()
	if !errors.Is(err, ErrNotActivated) {
		t.Fatalf("Listeners() error = %v, want ErrNotActivated", err)
	}
	for _, want := range []string{"LISTEN_FDS is not set", ".socket unit", "ListenersOrBind"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Listeners() error %q does not mention %q", err, want)
		}
	}
	_, err = Listener("http")
	if !errors.Is(err, ErrNotActivated) {
		t.Fatalf("Listener(http) error = %v, want ErrNotActivated", err)
	}
	for _, want := range []string{`listener "http"`, "FileDescriptorName=http", "LISTEN_FDS is not set", "ListenersOrBind"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Listener(http) error %q does not mention %q", err, want)
		}
	}
	t.Logf("operator sees: %v", err)
}

func TestListenersGroupedByName(t *testing.T) {
	httpFile, httpAddr := tcpListenerFile(t)
	adminFile, adminPath := unixListenerFile(t)
	extraFile, extraAddr := tcpListenerFile(t)

	t.Run("names", func(t *testing.T) {
		rep := runReport(t, "report", []*os.File{httpFile, adminFile, extraFile},
			"LISTEN_PID=self", "LISTEN_FDS=3", "LISTEN_FDNAMES=http:admin:")
		if rep.Err != "" {
			t.Fatal(rep.Err)
		}
		want := map[string][]string{
			"http":    {"tcp " + httpAddr},
			"admin":   {"unix " + adminPath},
			"unknown": {"tcp " + extraAddr},
		}
		if fmt.Sprint(rep.Listeners) != fmt.Sprint(want) {
			t.Errorf("listeners = %v, want %v", rep.Listeners, want)
		}
		if len(rep.EnvLeft) > 0 {
			t.Errorf("Listeners left %v in the environment", rep.EnvLeft)
		}
	})
	t.Run("shared name", func(t *testing.T) {
		rep := runReport(t, "report", []*os.File{httpFile, extraFile},
			"LISTEN_PID=self", "LISTEN_FDS=2", "LISTEN_FDNAMES=http:http")
		want := map[string][]string{"http": {"tcp " + httpAddr, "tcp " + extraAddr}}
		if fmt.Sprint(rep.Listeners) != fmt.Sprint(want) {
			t.Errorf("listeners = %v, want %v (err %q)", rep.Listeners, want, rep.Err)
		}
	})
	t.Run("no names", func(t *testing.T) {
		rep := runReport(t, "report", []*os.File{httpFile},
			"LISTEN_PID=self", "LISTEN_FDS=1")
		want := map[string][]string{"unknown": {"tcp " + httpAddr}}
		if fmt.Sprint(rep.Listeners) != fmt.Sprint(want) {
			t.Errorf("listeners = %v, want %v (err %q)", rep.Listeners, want, rep.Err)
		}
	})
	t.Run("other pid", func(t *testing.T) {
		rep := runReport(t, "report", []*os.File{httpFile},
			"LISTEN_PID=1", "LISTEN_FDS=1", "LISTEN_FDNAMES=http")
		if !strings.Contains(rep.Err, "LISTEN_PID=1 names another process") {
			t.Errorf("error = %q, want it to explain the LISTEN_PID mismatch", rep.Err)
		}
		if len(rep.EnvLeft) > 0 {
			t.Errorf("inherited variables %v were left in the environment", rep.EnvLeft)
		}
	})
}

func TestFilesInChild(t *testing.T) {
	httpFile, _ := tcpListenerFile(t)
	adminFile, _ := unixListenerFile(t)
	rep := runReport(t, "files", []*os.File{httpFile, adminFile},
		"LISTEN_PID=self", "LISTEN_FDS=2", "LISTEN_FDNAMES=http:")
	if got, want := strings.Join(rep.Files, ","), "http,unknown"; got != want {
		t.Errorf("file names = %s, want %s", got, want)
	}
	for i, c := range rep.CloseExec {
		if !c {
			t.Errorf("fd %d is not close-on-exec", 3+i)
		}
	}
	if len(rep.EnvLeft) > 0 {
		t.Errorf("Files(true) left %v in the environment", rep.EnvLeft)
	}
}

// LISTEN_FDNAMES with another number of names than LISTEN_FDS passes
// cannot say which name is whose: neither Files nor Listeners hands out a
// descriptor under a name that may be another's (sd_listen_fds_with_names
// refuses it too), and Listeners says why.
func TestNamesForAnotherCountAreRefused(t *testing.T) {
	httpFile, _ := tcpListenerFile(t)
	adminFile, _ := unixListenerFile(t)
	for _, names := range []string{"admin", "admin:http:metrics"} {
		rep := runReport(t, "report", []*os.File{httpFile, adminFile},
			"LISTEN_PID=self", "LISTEN_FDS=2", "LISTEN_FDNAMES="+names)
		if rep.Listeners != nil || !strings.Contains(rep.Err, "LISTEN_FDNAMES names") ||
			!strings.Contains(rep.Err, "LISTEN_FDS passes 2") {
			t.Errorf("LISTEN_FDNAMES=%s for 2 descriptors: listeners %v, error %q", names, rep.Listeners, rep.Err)
		}
		if len(rep.EnvLeft) > 0 {
			t.Errorf("LISTEN_FDNAMES=%s: Listeners left %v in the environment", names, rep.EnvLeft)
		}
		rep = runReport(t, "files", []*os.File{httpFile, adminFile},
			"LISTEN_PID=self", "LISTEN_FDS=2", "LISTEN_FDNAMES="+names)
		if len(rep.Files) != 0 {
			t.Errorf("LISTEN_FDNAMES=%s for 2 descriptors: Files returned %v", names, rep.Files)
		}
	}
}

func TestListenerMissingName(t *testing.T) {
	httpFile, _ := tcpListenerFile(t)
	adminFile, _ := unixListenerFile(t)
	rep := runReport(t, "listener", []*os.File{httpFile, adminFile},
		"LISTEN_PID=self", "LISTEN_FDS=2", "LISTEN_FDNAMES=http:admin", "WANT=metrics")
	for _, want := range []string{`listener named "metrics"`, `"http" (fd 3)`, `"admin" (fd 4)`, "FileDescriptorName="} {
		if !strings.Contains(rep.Err, want) {
			t.Errorf("error %q does not mention %q", rep.Err, want)
		}
	}
	t.Logf("operator sees: %s", rep.Err)
}

func TestListenersRejectsUnusableDescriptors(t *testing.T) {
	udp, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	udpFile, err := udp.(*net.UDPConn).File()
	if err != nil {
		t.Fatal(err)
	}
	defer udpFile.Close()

	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	idle := os.NewFile(uintptr(fd), "idle stream socket")
	defer idle.Close()

	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()

	httpFile, _ := tcpListenerFile(t)
	for _, tc := range []struct {
		name string
		file *os.File
		want string
	}{
		{"datagram", udpFile, `fd 4 ("dns") passed by systemd is a datagram socket`},
		{"not listening", idle, `fd 4 ("dns") passed by systemd is a stream socket that is not listening`},
		{"pipe", r, `fd 4 ("dns") passed by systemd is not a socket`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep := runReport(t, "report", []*os.File{httpFile, tc.file},
				"LISTEN_PID=self", "LISTEN_FDS=2", "LISTEN_FDNAMES=http:dns")
			if !strings.Contains(rep.Err, tc.want) {
				t.Errorf("error = %q, want it to contain %q", rep.Err, tc.want)
			}
			if rep.Listeners != nil {
				t.Errorf("got listeners %v along with the error", rep.Listeners)
			}
		})
	}
}

// notifySocket listens on a datagram socket and points NOTIFY_SOCKET at it.
func notifySocket(t *testing.T) *net.UnixConn {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	t.Setenv("NOTIFY_SOCKET", path)
	return conn
}

func readNotify(t *testing.T, conn *net.UnixConn, timeout time.Duration) string {
	t.Helper()
	buf := make([]byte, 4096)
	conn.SetReadDeadline(time.Now().Add(timeout))
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatalf("no notification received: %v", err)
	}
	return string(buf[:n])
}

func TestNotify(t *testing.T) {
	conn := notifySocket(t)
	for _, tc := range []struct {
		name string
		send func() (bool, error)
		want string
	}{
		{"Ready", Ready, "READY=1"},
		{"Stopping", Stopping, "STOPPING=1"},
		{"Status", func() (bool, error) { return Status("serving\n2 sites") }, "STATUS=serving 2 sites"},
		{"Watchdog", Watchdog, "WATCHDOG=1"},
		{"Notify", func() (bool, error) { return Notify("READY=1\nSTATUS=up") }, "READY=1\nSTATUS=up"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sent, err := tc.send()
			if !sent || err != nil {
				t.Fatalf("got (%v, %v), want (true, nil)", sent, err)
			}
			if got := readNotify(t, conn, time.Second); got != tc.want {
				t.Errorf("received %q, want %q", got, tc.want)
			}
		})
	}
}

func TestReloadingSendsMonotonicTime(t *testing.T) {
	conn := notifySocket(t)
	before, err := sdnotify.MonotonicUsec()
	if err != nil {
		t.Fatal(err)
	}
	if sent, err := Reloading(); !sent || err != nil {
		t.Fatalf("Reloading() = (%v, %v), want (true, nil)", sent, err)
	}
	after, _ := sdnotify.MonotonicUsec()
	msg := readNotify(t, conn, time.Second)
	m := regexp.MustCompile(`^RELOADING=1\nMONOTONIC_USEC=([1-9][0-9]*)$`).FindStringSubmatch(msg)
	if m == nil {
		t.Fatalf("received %q, want RELOADING=1 and MONOTONIC_USEC=<decimal microseconds>", msg)
	}
	usec, _ := strconv.ParseInt(m[1], 10, 64)
	if usec < before || usec > after {
		t.Errorf("MONOTONIC_USEC=%d is outside [%d, %d]", usec, before, after)
	}
}

func TestNotifyAbstractSocket(t *testing.T) {
	name := fmt.Sprintf("@sitectl-activation-test-%d-%d", os.Getpid(), time.Now().UnixNano())
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	t.Setenv("NOTIFY_SOCKET", name)
	if sent, err := Ready(); !sent || err != nil {
		t.Fatalf("Ready() = (%v, %v), want (true, nil)", sent, err)
	}
	if got := readNotify(t, conn, time.Second); got != "READY=1" {
		t.Errorf("received %q, want READY=1", got)
	}
}

func TestNotifyTriState(t *testing.T) {
	t.Run("unset", func(t *testing.T) {
		t.Setenv("NOTIFY_SOCKET", "")
		os.Unsetenv("NOTIFY_SOCKET")
		if sent, err := Ready(); sent || err != nil {
			t.Errorf("Ready() = (%v, %v), want (false, nil)", sent, err)
		}
	})
	t.Run("relative path", func(t *testing.T) {
		t.Setenv("NOTIFY_SOCKET", "notify.sock")
		if sent, err := Ready(); sent || err == nil {
			t.Errorf("Ready() = (%v, %v), want (false, error)", sent, err)
		}
	})
	t.Run("nobody listening", func(t *testing.T) {
		t.Setenv("NOTIFY_SOCKET", filepath.Join(t.TempDir(), "gone.sock"))
		sent, err := Ready()
		if sent || err == nil {
			t.Fatalf("Ready() = (%v, %v), want (false, error)", sent, err)
		}
		if !strings.Contains(err.Error(), "NOTIFY_SOCKET=") {
			t.Errorf("error %q does not name NOTIFY_SOCKET", err)
		}
	})
}

func TestWatchdogInterval(t *testing.T) {
	pid := strconv.Itoa(os.Getpid())
	for _, tc := range []struct {
		usec, pid string // "-" = unset
		want      time.Duration
		ok        bool
	}{
		{"-", "-", 0, false},
		{"30000000", "-", 30 * time.Second, true},
		{"30000000", pid, 30 * time.Second, true},
		{"30000000", "1", 0, false},
		{"0", pid, 0, false},
		{"soon", pid, 0, false},
	} {
		t.Run(tc.usec+"/"+tc.pid, func(t *testing.T) {
			for k, v := range map[string]string{"WATCHDOG_USEC": tc.usec, "WATCHDOG_PID": tc.pid} {
				t.Setenv(k, v)
				if v == "-" {
					os.Unsetenv(k)
				}
			}
			d, ok := WatchdogInterval()
			if d != tc.want || ok != tc.ok {
				t.Errorf("WatchdogInterval() = (%v, %v), want (%v, %v)", d, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestDrainTimeoutSetting(t *testing.T) {
	t.Setenv(DrainTimeoutEnv, "")
	os.Unsetenv(DrainTimeoutEnv)
	if d, _ := drainTimeout(0); d != DefaultDrainTimeout {
		t.Errorf("default drain timeout = %v, want %v", d, DefaultDrainTimeout)
	}
	t.Setenv(DrainTimeoutEnv, "7s")
	if d, _ := drainTimeout(0); d != 7*time.Second {
		t.Errorf("drain timeout with %s=7s = %v", DrainTimeoutEnv, d)
	}
	if d, _ := drainTimeout(2 * time.Second); d != 2*time.Second {
		t.Errorf("explicit drain timeout overridden by environment: %v", d)
	}
	t.Setenv(DrainTimeoutEnv, "7")
	if _, err := drainTimeout(0); err == nil || !strings.Contains(err.Error(), DrainTimeoutEnv) {
		t.Errorf("invalid %s accepted or error unclear: %v", DrainTimeoutEnv, err)
	}
}

// servingChild starts a "serve" child on a fresh TCP listener, waits for
// READY=1 and returns the child, its base URL, its stdout and the notify
// socket.
func servingChild(t *testing.T, drain string) (*exec.Cmd, string, *bytes.Buffer, *net.UnixConn) {
	t.Helper()
	conn := notifySocket(t)
	f, addr := tcpListenerFile(t)
	cmd, stdout := child(t, "serve", []*os.File{f},
		"LISTEN_PID=self", "LISTEN_FDS=1", "LISTEN_FDNAMES=http",
		"NOTIFY_SOCKET="+os.Getenv("NOTIFY_SOCKET"), "TEST_DRAIN="+drain)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	f.Close() // the child holds the only copy now
	if msg := readNotify(t, conn, 10*time.Second); msg != "READY=1" {
		t.Fatalf("first notification = %q, want READY=1", msg)
	}
	return cmd, "http://" + addr, stdout, conn
}

var noKeepAlive = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}

type response struct {
	status int
	body   string
	err    error
}

func get(url string) response {
	resp, err := noKeepAlive.Get(url)
	if err != nil {
		return response{err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return response{resp.StatusCode, string(b), err}
}

func TestServeDrainsInFlightRequests(t *testing.T) {
	cmd, base, stdout, conn := servingChild(t, "5s")
	if r := get(base + "/"); r.status != 200 || r.body != "ok" {
		t.Fatalf("GET / = %+v, want 200 ok", r)
	}

	slow := make(chan response, 1)
	go func() { slow <- get(base + "/sleep?d=1s") }()
	if msg := readNotify(t, conn, 5*time.Second); msg != "STATUS=sleeping 1s" {
		t.Fatalf("notification = %q, want the request's STATUS", msg)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if msg := readNotify(t, conn, 5*time.Second); msg != "STOPPING=1" {
		t.Fatalf("notification after SIGTERM = %q, want STOPPING=1", msg)
	}

	// New connections are refused while the slow request is still running.
	refused := false
	for deadline := time.Now().Add(800 * time.Millisecond); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		c, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
		if err != nil {
			refused = true
			break
		}
		c.Close()
	}
	if !refused {
		t.Error("listener still accepting connections after STOPPING=1")
	}
	select {
	case r := <-slow:
		if r.err != nil || r.status != 200 || r.body != "slept" {
			t.Errorf("in-flight request during drain = %+v, want 200 slept", r)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("in-flight request did not complete")
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("child exited with %v", err)
	}
	if got, _ := childResult(t, stdout); got != "serve returned nil" {
		t.Errorf("child reported %q, want a clean return", got)
	}
}

// childResult splits a serve child's output into how Serve returned and how
// long the drain took, measured in the child.
func childResult(t *testing.T, stdout *bytes.Buffer) (string, time.Duration) {
	t.Helper()
	result, took, _ := strings.Cut(strings.TrimSpace(stdout.String()), "\ndrain took ")
	d, err := time.ParseDuration(took)
	if err != nil {
		t.Fatalf("child printed %q, want the result and the drain time", stdout)
	}
	return result, d
}

func TestServeCutsOffRequestsAfterDrainTimeout(t *testing.T) {
	const drain = 500 * time.Millisecond
	cmd, base, stdout, conn := servingChild(t, drain.String())
	slow := make(chan response, 1)
	go func() { slow <- get(base + "/sleep?d=10s") }()
	if msg := readNotify(t, conn, 5*time.Second); !strings.HasPrefix(msg, "STATUS=sleeping") {
		t.Fatalf("notification = %q, want the request's STATUS", msg)
	}
	start := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("child exited with %v", err)
	}
	if elapsed := time.Since(start); elapsed > drain+5*time.Second {
		t.Errorf("child exited %v after SIGTERM, want about %v", elapsed, drain)
	}
	got, took := childResult(t, stdout)
	if !strings.HasPrefix(got, "serve returned drain timeout:") {
		t.Errorf("child reported %q, want a drain timeout", got)
	}
	// Well short of the request's 10s, with room for a loaded host's
	// timer and scheduling delays.
	if took < drain || took > drain+2*time.Second {
		t.Errorf("Serve returned %v after the drain began, want about %v", took, drain)
	}
	select {
	case r := <-slow:
		if r.err == nil {
			t.Errorf("request longer than the drain timeout got %+v, want it cut off", r)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("cut-off request did not return")
	}
}

func TestServeSecondSignalForcesClose(t *testing.T) {
	cmd, base, stdout, conn := servingChild(t, "30s")
	go get(base + "/sleep?d=10s")
	readNotify(t, conn, 5*time.Second) // STATUS=sleeping
	cmd.Process.Signal(syscall.SIGTERM)
	if msg := readNotify(t, conn, 5*time.Second); msg != "STOPPING=1" {
		t.Fatalf("notification after SIGTERM = %q, want STOPPING=1", msg)
	}
	cmd.Process.Signal(syscall.SIGINT)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("child exited with %v", err)
	}
	got, took := childResult(t, stdout)
	if !strings.Contains(got, "second signal") {
		t.Errorf("child reported %q, want the drain cut short by a second signal", got)
	}
	if took > 2*time.Second {
		t.Errorf("second signal took %v to stop a 30s drain", took)
	}
}

func TestServeUnderSystemdSocketActivate(t *testing.T) {
	const tool = "/usr/bin/systemd-socket-activate"
	if _, err := os.Stat(tool); err != nil {
		t.Skipf("%s not available: %v", tool, err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()

	// systemd-socket-activate passes only a few variables on, so the child
	// marker goes through -E. It sets LISTEN_PID itself.
	cmd := exec.Command(tool, "-l", addr, "--fdname=http", "-E", childEnv+"=serve-names",
		os.Args[0], "-test.run=^TestHelperProcess$")
	cmd.Env = cleanEnv()
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &testWriter{t}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	}()

	var r response
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if r = get("http://" + addr + "/names"); r.err == nil {
			break
		}
	}
	if r.err != nil || r.status != 200 {
		t.Fatalf("GET /names = %+v", r)
	}
	var names map[string][]string
	if err := json.Unmarshal([]byte(r.body), &names); err != nil {
		t.Fatalf("GET /names body %q: %v", r.body, err)
	}
	var got []string
	for name := range names {
		got = append(got, name)
	}
	sort.Strings(got)
	if strings.Join(got, ",") != "http" || fmt.Sprint(names["http"]) != "[tcp "+addr+"]" {
		t.Errorf("child reported listeners %v, want http on %s", names, addr)
	}

	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("child exited with %v", err)
	}
	if got, _ := childResult(t, &stdout); got != "serve returned nil" {
		t.Errorf("child reported %q, want a clean return", got)
	}
}
