package activation

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/sitectl/sitectl/internal/sdnotify"
)

// Notify sends state, one or more newline-separated KEY=VALUE assignments
// such as "READY=1", to the service manager over the datagram socket named
// by NOTIFY_SOCKET. A leading "@" in NOTIFY_SOCKET denotes a socket in the
// abstract namespace.
//
// The result is tri-state:
//   - (false, nil): NOTIFY_SOCKET is unset, so the process is not running
//     under a service manager that listens for notifications (for example
//     Type=exec, or started by hand); nothing was sent and this is not an
//     error.
//   - (false, err): NOTIFY_SOCKET is set but the message could not be sent.
//   - (true, nil): the message was sent.
//
// Notify leaves NOTIFY_SOCKET in the environment so it can be called again.
func Notify(state string) (bool, error) {
	addr, ok := os.LookupEnv("NOTIFY_SOCKET")
	if !ok || addr == "" {
		return false, nil
	}
	if !strings.HasPrefix(addr, "/") && !strings.HasPrefix(addr, "@") {
		return false, fmt.Errorf("activation: cannot notify systemd: NOTIFY_SOCKET=%q is neither an absolute path nor an abstract socket name starting with @", addr)
	}
	// The Go runtime maps a leading "@" to the abstract namespace.
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		return false, fmt.Errorf("activation: cannot notify systemd at NOTIFY_SOCKET=%q: %w", addr, err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(state)); err != nil {
		return false, fmt.Errorf("activation: cannot send %q to systemd at NOTIFY_SOCKET=%q: %w", firstLine(state), addr, err)
	}
	return true, nil
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i] + "…"
	}
	return s
}

// Ready tells systemd that start-up is complete (READY=1). With Type=notify
// the unit becomes active, and units ordered after it start, only then.
// See [Notify] for the meaning of the results.
func Ready() (bool, error) { return Notify("READY=1") }

// Stopping tells systemd that the service is shutting down (STOPPING=1).
// See [Notify] for the meaning of the results.
func Stopping() (bool, error) { return Notify("STOPPING=1") }

// Reloading tells systemd that the service is reloading its configuration
// (RELOADING=1 with MONOTONIC_USEC= set to the current CLOCK_MONOTONIC time
// in microseconds, as Type=notify-reload requires). Call [Ready] when the
// reload is complete. See [Notify] for the meaning of the results.
func Reloading() (bool, error) {
	msg, err := sdnotify.Reloading()
	if err != nil {
		return false, fmt.Errorf("activation: cannot read CLOCK_MONOTONIC for RELOADING=1: %w", err)
	}
	return Notify(msg)
}

// Status sets the one-line status text shown by systemctl status
// (STATUS=...). Newlines in status are replaced by spaces. See [Notify] for
// the meaning of the results.
func Status(status string) (bool, error) {
	return Notify("STATUS=" + strings.ReplaceAll(status, "\n", " "))
}

// Watchdog sends a watchdog keep-alive (WATCHDOG=1). See [WatchdogInterval]
// for how often it must be sent and [Notify] for the meaning of the results.
func Watchdog() (bool, error) { return Notify("WATCHDOG=1") }

// WatchdogInterval reports the watchdog timeout systemd expects this process
// to honour (WatchdogSec= in the unit, passed as WATCHDOG_USEC). The second
// result is false if no watchdog is enabled for this process: WATCHDOG_USEC
// is unset, zero or malformed, or WATCHDOG_PID is set to another process's
// ID. Send [Watchdog] more often than the returned interval; half of it is
// the usual choice.
func WatchdogInterval() (time.Duration, bool) {
	usecVar, ok := os.LookupEnv("WATCHDOG_USEC")
	if !ok {
		return 0, false
	}
	usec, err := strconv.ParseInt(usecVar, 10, 64)
	if err != nil || usec <= 0 || usec > int64(time.Duration(1<<63-1)/time.Microsecond) {
		return 0, false
	}
	if pidVar, ok := os.LookupEnv("WATCHDOG_PID"); ok {
		pid, err := strconv.Atoi(pidVar)
		if err != nil || pid != os.Getpid() {
			return 0, false
		}
	}
	return time.Duration(usec) * time.Microsecond, true
}
