package activation

import (
	"os"
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
