package activation

import (
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// A LISTEN_FDS beyond any descriptor is refused, not allocated for.
func TestListenFDsHugeCount(t *testing.T) {
	t.Setenv("LISTEN_PID", strconv.Itoa(os.Getpid()))
	for _, n := range []string{"9223372036854775807", "2147483645", "100000000"} {
		t.Setenv("LISTEN_FDS", n)
		fds, err := readListenEnv()
		if err == nil || fds != nil {
			t.Errorf("LISTEN_FDS=%s: got %d descriptors, error %v; want an error", n, len(fds), err)
		}
	}
}

// A LISTEN_FDS larger than the number of descriptors passed is an error
// that says so, before any descriptor is touched: those above the passed
// ones belong to the process itself (the Go runtime's among them), and
// Listeners must not take them for sockets from systemd and close them.
func TestListenersCountLargerThanPassed(t *testing.T) {
	httpFile, _ := tcpListenerFile(t)
	rep := runReport(t, "report", []*os.File{httpFile},
		"LISTEN_PID=self", "LISTEN_FDS=40", "LISTEN_FDNAMES=http")
	if !strings.Contains(rep.Err, "LISTEN_FDS=40 announces fds 3 to 42, but fd 42 is not open") {
		t.Errorf("error = %q, want it to say the count does not match the descriptors", rep.Err)
	}
	if rep.Listeners != nil {
		t.Errorf("got listeners %v", rep.Listeners)
	}
}

// A LISTEN_FDS only a little larger than the number of descriptors passed
// reaches descriptors this process opened itself, right above the passed
// ones (the Go runtime's: its poller, the cgroup files it reads the CPU
// limit from): they are not taken for sockets from systemd, nor closed,
// and the error says that the count is wrong.
func TestListenersCountOneMoreThanPassed(t *testing.T) {
	httpFile, _ := tcpListenerFile(t)
	for _, n := range []string{"2", "3"} {
		rep := runReport(t, "report", []*os.File{httpFile},
			"LISTEN_PID=self", "LISTEN_FDS="+n, "LISTEN_FDNAMES=http", "TEST_PASSED=1")
		if !strings.Contains(rep.Err, "fd 4 was not passed to this process") ||
			!strings.Contains(rep.Err, "the count does not match the descriptors passed") {
			t.Errorf("LISTEN_FDS=%s: error = %q, want it to say the count does not match the descriptors", n, rep.Err)
		}
		if len(rep.Changed) > 0 {
			t.Errorf("LISTEN_FDS=%s: Listeners closed descriptors of the process itself: %v", n, rep.Changed)
		}
		if rep.Listeners != nil {
			t.Errorf("LISTEN_FDS=%s: got listeners %v", n, rep.Listeners)
		}
	}
}

// Files does not wrap a descriptor of this process (fd 3 of the test
// binary is the Go runtime's) in an *os.File, whose finalizer would close
// it; and a second Files(false) still returns the passed descriptors it
// marked close-on-exec itself.
func TestFilesOnlyPassedDescriptors(t *testing.T) {
	t.Setenv("LISTEN_PID", strconv.Itoa(os.Getpid()))
	t.Setenv("LISTEN_FDS", "1")
	if files := Files(false); files != nil {
		t.Fatalf("Files(false) = %v, a descriptor this process opened", files[0].Name())
	}
	runtime.GC()

	httpFile, _ := tcpListenerFile(t)
	rep := runReport(t, "files", []*os.File{httpFile},
		"LISTEN_PID=self", "LISTEN_FDS=1", "LISTEN_FDNAMES=http", "FILES_TWICE=1")
	if got, want := strings.Join(rep.Files, ","), "http,http"; got != want {
		t.Errorf("Files(false), then Files(true): names %s, want %s", got, want)
	}
}

// Listeners after Files(false) refuses the descriptors Files returned,
// rather than close them under the program's *os.File values.
func TestListenersAfterFiles(t *testing.T) {
	httpFile, _ := tcpListenerFile(t)
	rep := runReport(t, "files-then-listeners", []*os.File{httpFile},
		"LISTEN_PID=self", "LISTEN_FDS=1", "LISTEN_FDNAMES=http")
	if !strings.Contains(rep.Err, "already returned by activation.Files") {
		t.Errorf("Listeners after Files(false): error %q, listeners %v; want an error", rep.Err, rep.Listeners)
	}
	if len(rep.Files) > 0 {
		t.Errorf("the files Files returned no longer hold their sockets: %v", rep.Files)
	}
}
