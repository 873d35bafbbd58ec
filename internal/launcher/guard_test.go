package launcher

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/sitectl/sitectl/internal/probe"
	"github.com/sitectl/sitectl/internal/site"
)

// helperGuardLauncher plays a launcher (Guard first when GUARD is set)
// that starts a generation, the app, as its own user: it prints the
// app's attempt at its memory, then whether it can still read the app's
// system call (park.go needs it).
func helperGuardLauncher() {
	if os.Getenv("GUARD") != "" {
		if err := Guard(); err != nil {
			fmt.Println("guard:", err)
			os.Exit(1)
		}
	}
	app := exec.Command(os.Args[0])
	app.Env = append(os.Environ(), "LAUNCHER_TEST_HELPER=guard-app")
	app.Stderr = os.Stderr
	in, _ := app.StdinPipe()
	out, _ := app.StdoutPipe()
	if err := app.Start(); err != nil {
		fmt.Println("start:", err)
		os.Exit(1)
	}
	line, _ := bufio.NewReader(out).ReadString('\n')
	fmt.Print(line)
	if _, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(app.Process.Pid), "syscall")); err != nil {
		fmt.Println("launcher reads the app's syscall: no:", err)
	} else {
		fmt.Println("launcher reads the app's syscall: yes")
	}
	// What the launcher does of itself still works: its own path, and a
	// probe of a unix listener (through /proc/self/fd).
	if _, err := os.Executable(); err != nil {
		fmt.Println("launcher finds itself: no:", err)
	}
	sock := filepath.Join(os.TempDir(), fmt.Sprintf("guard-%d.sock", os.Getpid()))
	if ln, err := net.Listen("unix", sock); err != nil {
		fmt.Println("listen:", err)
	} else {
		c, err := probe.ListenerTarget(site.Listener{Kind: site.Unix, Path: sock}).Dial(context.Background())
		if err != nil {
			fmt.Println("launcher probes a unix socket: no:", err)
		} else {
			c.Close()
			fmt.Println("launcher probes a unix socket: yes")
		}
		ln.Close()
	}
	in.Close()
	app.Wait()
	os.Exit(0)
}

// helperGuardApp is a hostile app: it tries to open its launcher's
// memory for writing, says how it went, and waits for its stdin to close.
func helperGuardApp() {
	fd, err := unix.Open(filepath.Join("/proc", strconv.Itoa(os.Getppid()), "mem"), unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err == nil {
		unix.Close(fd)
		fmt.Println("app writes the launcher's memory: yes")
	} else {
		fmt.Println("app writes the launcher's memory: no:", err)
	}
	io.Copy(io.Discard, os.Stdin)
	os.Exit(0)
}

// runGuardHelpers runs the launcher helper, as an unprivileged user when
// the test runs as root (root may write any process's memory), and
// returns what it printed.
func runGuardHelpers(t *testing.T, guard bool) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := self
	cmd := exec.Command(bin)
	if os.Geteuid() == 0 {
		// The test binary's own directory is root's alone: a copy that
		// nobody may run.
		dir := t.TempDir()
		for _, d := range []string{filepath.Dir(dir), dir} {
			if err := os.Chmod(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		bin = filepath.Join(dir, "launcher.test")
		data, err := os.ReadFile(self)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(bin, data, 0o755); err != nil {
			t.Fatal(err)
		}
		cmd = exec.Command(bin)
		cmd.Dir = dir
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	}
	cmd.Env = append(os.Environ(), "LAUNCHER_TEST_HELPER=guard-launcher")
	if guard {
		cmd.Env = append(cmd.Env, "GUARD=1")
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("launcher helper: %v: %s", err, out)
	}
	return string(out)
}

// The app runs as the launcher's user: without Guard, where the kernel
// allows a process to write the memory of another of its user's (no Yama
// restriction), the app could take the launcher over.
func TestGuardKeepsTheAppOutOfTheLauncher(t *testing.T) {
	unguarded := runGuardHelpers(t, false)
	t.Logf("without Guard:\n%s", unguarded)
	out := runGuardHelpers(t, true)
	if !strings.Contains(out, "app writes the launcher's memory: no") {
		t.Errorf("with Guard, the app can still open the launcher's memory for writing:\n%s", out)
	}
	if !strings.Contains(out, "launcher probes a unix socket: yes") || strings.Contains(out, "launcher finds itself: no") {
		t.Errorf("with Guard, the launcher cannot do what it does of itself:\n%s", out)
	}
	if !strings.Contains(out, "launcher reads the app's syscall: yes") {
		t.Errorf("with Guard, the launcher can no longer read its generation's system call:\n%s", out)
	}
}
