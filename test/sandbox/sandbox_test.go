//go:build integration

package sandbox

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// These tests boot real systemd instances. They need root and fail (never
// skip) when the host cannot run a sandbox.

func TestMain(m *testing.M) {
	if err := ReapStale(os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	HandleSignals()
	code := m.Run()
	if err := CloseAll(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		code = 1
	}
	os.Exit(code)
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func run(t *testing.T, s *Sandbox, name string, args ...string) string {
	t.Helper()
	out, err := s.Run(testCtx(t), name, args...)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(out)
}

// TestSandbox boots one sandbox and checks what tests rely on.
func TestSandbox(t *testing.T) {
	s := New(t, Options{})

	t.Run("running", func(t *testing.T) {
		if got := run(t, s, "systemctl", "is-system-running"); got != "running" {
			t.Fatalf("is-system-running = %q, want running", got)
		}
	})

	t.Run("pid1 is systemd", func(t *testing.T) {
		if got := run(t, s, "cat", "/proc/1/comm"); got != "systemd" {
			t.Fatalf("/proc/1/comm inside = %q, want systemd", got)
		}
		if got := procComm(s.PID()); got != "systemd" {
			t.Fatalf("host /proc/%d/comm = %q, want systemd", s.PID(), got)
		}
		if got := run(t, s, "systemd-detect-virt", "--container"); got != "container-other" {
			t.Errorf("systemd-detect-virt --container = %q, want container-other", got)
		}
	})

	t.Run("core services", func(t *testing.T) {
		for _, u := range []string{"systemd-journald.service", "dbus.service", "systemd-logind.service"} {
			if got := run(t, s, "systemctl", "is-active", u); got != "active" {
				t.Errorf("%s is %q", u, got)
			}
		}
		// Host enablement is hidden and gettys are masked.
		out, _ := s.Run(testCtx(t), "systemctl", "list-units", "--no-legend", "--plain", "--type=service", "--state=active")
		for _, bad := range []string{"getty", "postgresql", "uwsgi"} {
			if strings.Contains(out, bad) {
				t.Errorf("unexpected %s unit active inside:\n%s", bad, out)
			}
		}
	})

	t.Run("environment", func(t *testing.T) {
		got := strings.Split(run(t, s, "env"), "\n")
		want := map[string]bool{}
		for _, kv := range commandEnv {
			want[kv] = true
		}
		for _, kv := range got {
			if !want[kv] {
				t.Errorf("unexpected environment entry inside: %q", kv)
			}
			delete(want, kv)
		}
		for kv := range want {
			t.Errorf("missing environment entry inside: %q", kv)
		}
	})

	t.Run("write and read files", func(t *testing.T) {
		ctx := testCtx(t)
		data := []byte("hello\nsandbox\x00binary\xff\n")
		p := "/etc/sitectl-test/deep/dir/file.conf"
		if err := s.WriteFile(ctx, p, data, 0o640); err != nil {
			t.Fatal(err)
		}
		got, err := s.ReadFile(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(data) {
			t.Fatalf("ReadFile = %q, want %q", got, data)
		}
		if mode := run(t, s, "stat", "-c", "%a", p); mode != "640" {
			t.Errorf("mode = %s, want 640", mode)
		}
		// Overwrite replaces atomically and leaves no temp files.
		if err := s.WriteFile(ctx, p, []byte("v2"), 0o600); err != nil {
			t.Fatal(err)
		}
		if got := run(t, s, "ls", "-A", filepath.Dir(p)); got != "file.conf" {
			t.Errorf("directory holds %q, want only file.conf", got)
		}
		// Not visible on the host.
		if _, err := os.Stat(p); err == nil {
			t.Errorf("%s written inside the sandbox exists on the host", p)
		}
		if _, err := s.ReadFile(ctx, "/no/such/file"); err == nil || !strings.Contains(err.Error(), "No such file") {
			t.Errorf("ReadFile of a missing file: err = %v, want one mentioning No such file", err)
		}
		if err := s.WriteFile(ctx, "relative/path", nil, 0o644); err == nil {
			t.Error("WriteFile with a relative path succeeded")
		}
	})

	t.Run("copy file from host tmp", func(t *testing.T) {
		ctx := testCtx(t)
		host := filepath.Join(t.TempDir(), "unit.service")
		if err := os.WriteFile(host, []byte("[Service]\nExecStart=/bin/true\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		// The host's /tmp is not visible inside ...
		if _, err := s.Run(ctx, "test", "-e", host); err == nil {
			t.Errorf("host file %s is visible inside the sandbox; its /tmp must be private", host)
		}
		// ... which is why CopyFile exists.
		if err := s.CopyFile(ctx, host, "/etc/systemd/system/copied.service", 0o644); err != nil {
			t.Fatal(err)
		}
		if got := run(t, s, "cat", "/etc/systemd/system/copied.service"); !strings.Contains(got, "ExecStart=/bin/true") {
			t.Errorf("copied file = %q", got)
		}
		if err := s.CopyFile(ctx, "/no/such/host/file", "/x", 0o644); err == nil {
			t.Error("CopyFile of a missing host file succeeded")
		}
	})

	t.Run("failing command", func(t *testing.T) {
		out, err := s.Run(testCtx(t), "sh", "-c", "echo to-stdout; echo to-stderr >&2; exit 3")
		if err == nil {
			t.Fatal("exit 3 did not produce an error")
		}
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 3 {
			t.Errorf("error %v does not wrap an exit status 3", err)
		}
		for _, want := range []string{"exit status 3", "to-stdout", "to-stderr"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not mention %q", err, want)
			}
		}
		if !strings.Contains(out, "to-stdout") {
			t.Errorf("output = %q", out)
		}
	})

	t.Run("context cancel kills the command inside", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := s.Run(ctx, "sleep", "1234")
		if err == nil || time.Since(start) > 10*time.Second {
			t.Fatalf("Run with an expiring context: err = %v after %v", err, time.Since(start))
		}
		time.Sleep(100 * time.Millisecond)
		if out, err := s.Run(testCtx(t), "pgrep", "-f", "sleep 1234"); err == nil {
			t.Errorf("sleep still running inside after cancel: %s", out)
		}
		// Nor may it linger as a zombie: its parent (nsenter) is outside
		// the namespace, and an orphaned zombie would hold up poweroff
		// until the host's init reaps it.
		if out := run(t, s, "ps", "-e", "-o", "stat=,pid=,comm="); strings.Contains(out, "Z") {
			t.Errorf("zombie left inside after cancel:\n%s", out)
		}
	})

	t.Run("transient service", func(t *testing.T) {
		run(t, s, "systemd-run", "--unit=x", "--wait", "true")
		if _, err := s.Run(testCtx(t), "systemd-run", "--unit=y", "--wait", "false"); err == nil {
			t.Error("systemd-run --wait false succeeded")
		}
		if got := s.Journal(testCtx(t), "-u", "y.service"); !strings.Contains(got, "y.service") {
			t.Errorf("journal of y.service does not mention it:\n%s", got)
		}
	})

	t.Run("private tmp and dev", func(t *testing.T) {
		if got := run(t, s, "findmnt", "-n", "-o", "FSTYPE", "/tmp"); got != "tmpfs" {
			t.Errorf("/tmp inside is %q, want tmpfs", got)
		}
		run(t, s, "touch", "/dev/sitectl-sandbox-marker")
		if _, err := os.Lstat("/dev/sitectl-sandbox-marker"); err == nil {
			t.Errorf("a file created in the sandbox's /dev appeared in the host's /dev")
		}
		if _, err := s.Run(testCtx(t), "sh", "-c", "echo 1 > /proc/sys/kernel/sysrq"); err == nil {
			t.Errorf("/proc/sys is writable inside")
		}
	})

	t.Run("network shared with host", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		go func() {
			if c, err := ln.Accept(); err == nil {
				c.Write([]byte("hello from host\n"))
				c.Close()
			}
		}()
		port := ln.Addr().(*net.TCPAddr).Port
		got := run(t, s, "bash", "-c", fmt.Sprintf("exec 3<>/dev/tcp/127.0.0.1/%d; cat <&3", port))
		if got != "hello from host" {
			t.Errorf("read %q from the host listener", got)
		}
	})

	t.Run("console captured", func(t *testing.T) {
		if c := s.Console(); !strings.Contains(c, "Welcome to") && !strings.Contains(c, "systemd") {
			t.Errorf("console log does not look like a systemd boot:\n%s", c)
		}
	})
}

func TestCloseRemovesEverything(t *testing.T) {
	ctx := testCtx(t)
	s, err := Boot(ctx, Options{Name: "close-test", Log: tLogWriter{t}})
	if err != nil {
		t.Fatal(err)
	}
	pid, cg, work := s.PID(), s.CgroupPath(), s.WorkDir()
	unsharePID := s.outer.Process.Pid
	for _, p := range []string{cg, work} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("before Close: %v", err)
		}
	}
	// A transient service so there is more than init.scope in the tree.
	if _, err := s.Run(ctx, "systemd-run", "--unit=sleeper", "sleep", "infinity"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	t.Logf("Close took %v", time.Since(start))
	for _, p := range []int{pid, unsharePID} {
		if !processGone(p) {
			t.Errorf("pid %d (%s) still exists after Close", p, procComm(p))
		}
	}
	for _, p := range []string{cg, work} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s still exists after Close (stat: %v)", p, err)
		}
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := s.Run(ctx, "true"); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("Run after Close: err = %v, want a 'closed' error", err)
	}
	var nilSandbox *Sandbox
	if err := nilSandbox.Close(); err != nil {
		t.Errorf("Close on nil: %v", err)
	}
}

func TestParallelSandboxes(t *testing.T) {
	for _, name := range []string{"one", "two"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s := New(t, Options{Name: "parallel-" + name})
			ctx := testCtx(t)
			if got := run(t, s, "systemctl", "is-system-running"); got != "running" {
				t.Fatalf("is-system-running = %q", got)
			}
			if err := s.WriteFile(ctx, "/etc/whoami", []byte(name), 0o644); err != nil {
				t.Fatal(err)
			}
			run(t, s, "systemd-run", "--unit=x", "--wait", "true")
			time.Sleep(500 * time.Millisecond) // overlap with the other one
			got, err := s.ReadFile(ctx, "/etc/whoami")
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != name {
				t.Errorf("/etc/whoami = %q, want %q: sandboxes share files", got, name)
			}
		})
	}
}

func TestBootFailureIsReported(t *testing.T) {
	t.Run("systemd exits at once", func(t *testing.T) {
		s, err := Boot(testCtx(t), Options{Name: "dies", Log: tLogWriter{t}, systemd: "/bin/false"})
		if err == nil {
			s.Close()
			t.Fatal("Boot with /bin/false as systemd succeeded")
		}
		t.Logf("error (as expected): %v", err)
		if !strings.Contains(err.Error(), "exit status 1") {
			t.Errorf("error does not carry the exit status: %v", err)
		}
		assertNoLeftovers(t, "dies")
	})
	t.Run("boot does not reach running", func(t *testing.T) {
		s, err := Boot(testCtx(t), Options{Name: "rescue", Log: tLogWriter{t}, Unit: "sitectl-no-such.target"})
		if err == nil {
			s.Close()
			t.Fatal("Boot into a missing target succeeded")
		}
		t.Logf("error (as expected): %v", err)
		if !strings.Contains(err.Error(), "journal") {
			t.Errorf("error carries no journal: %v", err)
		}
		assertNoLeftovers(t, "rescue")
	})
	t.Run("boot timeout", func(t *testing.T) {
		s, err := Boot(testCtx(t), Options{Name: "slow", Log: tLogWriter{t}, BootTimeout: time.Millisecond})
		if err == nil {
			s.Close()
			t.Fatal("Boot with a 1ms timeout succeeded")
		}
		t.Logf("error (as expected): %.300s", err)
		if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "within 1ms") {
			t.Errorf("error does not report the timeout: %v", err)
		}
		assertNoLeftovers(t, "slow")
	})
	t.Run("missing systemd binary", func(t *testing.T) {
		_, err := Boot(testCtx(t), Options{systemd: "/nonexistent/systemd"})
		if !errors.Is(err, ErrHostNotSupported) || !strings.Contains(err.Error(), "/nonexistent/systemd") {
			t.Errorf("err = %v, want ErrHostNotSupported naming the binary", err)
		}
	})
}

// assertNoLeftovers checks that no cgroup or work dir of this process with
// the given name is left.
func assertNoLeftovers(t *testing.T, name string) {
	t.Helper()
	root, err := cgroup2Root()
	if err != nil {
		t.Fatal(err)
	}
	pattern := fmt.Sprintf("%s%d-*-%s", namePrefix, os.Getpid(), name)
	for _, dir := range []string{root, workBase} {
		if m, _ := filepath.Glob(filepath.Join(dir, pattern)); len(m) > 0 {
			t.Errorf("left behind: %v", m)
		}
	}
}

func TestReapStaleLeavesLiveSandboxes(t *testing.T) {
	s := New(t, Options{Name: "reap-live"})
	if err := ReapStale(tLogWriter{t}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(s.CgroupPath()); err != nil {
		t.Fatalf("ReapStale removed a live sandbox: %v", err)
	}
	if err := syscall.Kill(s.PID(), 0); err != nil {
		t.Fatalf("ReapStale killed a live sandbox: %v", err)
	}
}

// TestCloseWithCommandsRunning: commands still running through nsenter must
// neither block the poweroff nor survive it.
func TestCloseWithCommandsRunning(t *testing.T) {
	s := New(t, Options{Name: "busy"})
	ctx := testCtx(t)
	cmd := s.Command(ctx, "sleep", "infinity")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := s.Run(ctx, "sh", "-c", "sleep 1000 & exec sleep 2000")
		done <- err
	}()
	time.Sleep(300 * time.Millisecond)
	start := time.Now()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("Close took %v with commands running", d)
	}
	t.Logf("Close took %v", time.Since(start))
	if err := cmd.Wait(); err == nil {
		t.Error("sleep infinity ended successfully?")
	}
	select {
	case err := <-done:
		if err == nil {
			t.Error("Run of sleep 2000 ended successfully?")
		}
	case <-time.After(10 * time.Second):
		t.Error("Run still blocked 10s after Close")
	}
}

// TestSeed: the files of Options.Seed are in place when systemd starts, so
// a unit they enable runs at boot, and nothing of them reaches the host.
func TestSeed(t *testing.T) {
	dir := t.TempDir()
	seed := filepath.Join(dir, "seed.tar")
	unit := "[Unit]\nDescription=seeded\n[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/bin/sh -c 'echo seeded > /run/seeded'\n"
	var files bytes.Buffer
	tw := tar.NewWriter(&files)
	for _, f := range []struct{ name, body, link string }{
		{name: "etc/systemd/system/sitectl-seeded.service", body: unit},
		{name: "etc/systemd/system/multi-user.target.wants/sitectl-seeded.service", link: "../sitectl-seeded.service"},
	} {
		h := &tar.Header{Name: f.name, Mode: 0o644, Size: int64(len(f.body)), Typeflag: tar.TypeReg}
		if f.link != "" {
			h = &tar.Header{Name: f.name, Mode: 0o777, Linkname: f.link, Typeflag: tar.TypeSymlink}
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(f.body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(seed, files.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	s := New(t, Options{Name: "seed", Seed: seed})
	if got := run(t, s, "cat", "/run/seeded"); got != "seeded" {
		t.Errorf("/run/seeded = %q", got)
	}
	if got := run(t, s, "systemctl", "is-active", "sitectl-seeded.service"); got != "active" {
		t.Errorf("the seeded unit is %s", got)
	}
	if _, err := os.Stat("/etc/systemd/system/sitectl-seeded.service"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the seed reached the host: %v", err)
	}
	if _, err := Boot(testCtx(t), Options{Name: "seed-missing", Seed: filepath.Join(dir, "missing.tar")}); err == nil || !strings.Contains(err.Error(), "seed archive") {
		t.Errorf("a missing seed archive: %v", err)
	}
}

// CheckReloaded tells a reload systemd did from one it answered without
// doing: with PID 1's soft open-file limit just above what it holds, it
// cannot duplicate its descriptors to serialize, and systemctl
// daemon-reload still exits 0.
func TestCheckReloaded(t *testing.T) {
	s := New(t, Options{Name: "reload-check"})
	ctx := testCtx(t)
	reload := func() error {
		mark, err := s.ReloadMark()
		if err != nil {
			t.Fatal(err)
		}
		if out, err := s.Run(ctx, "systemctl", "daemon-reload"); err != nil {
			t.Fatalf("systemctl daemon-reload: %v\n%s", err, out)
		}
		return s.CheckReloaded(mark)
	}
	if err := reload(); err != nil {
		t.Fatalf("a reload systemd did: %v", err)
	}
	var rl unix.Rlimit
	if err := unix.Prlimit(s.PID(), unix.RLIMIT_NOFILE, nil, &rl); err != nil {
		t.Fatal(err)
	}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", s.PID()))
	if err != nil {
		t.Fatal(err)
	}
	low := unix.Rlimit{Cur: uint64(len(fds) + 3), Max: rl.Max}
	if err := unix.Prlimit(s.PID(), unix.RLIMIT_NOFILE, &low, nil); err != nil {
		t.Fatal(err)
	}
	err = reload()
	if restore := unix.Prlimit(s.PID(), unix.RLIMIT_NOFILE, &rl, nil); restore != nil {
		t.Fatal(restore)
	}
	if !errors.Is(err, ErrReloadIgnored) || !strings.Contains(err.Error(), fmt.Sprintf("open-file limit is %d", low.Cur)) {
		t.Errorf("a reload systemd ignored (PID 1 at %d of %d descriptors): %v", len(fds), low.Cur, err)
	}
	if err := reload(); err != nil {
		t.Errorf("a reload after the limit is back: %v", err)
	}
}
