package activation

import (
	"errors"
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
// systemd ignores a notification longer than 4096 bytes or holding a NUL
// byte, and splits one into fields at every "\n" and "\r"; Notify refuses
// the first two with an error rather than report as sent what systemd
// drops.
//
// Notify waits at most 5 seconds for the service manager to take the
// message; if its socket's queue stays full that long, the result is
// (false, err) with err wrapping [os.ErrDeadlineExceeded].
//
// Notify leaves NOTIFY_SOCKET in the environment so it can be called again.
func Notify(state string) (bool, error) {
	addr, ok := os.LookupEnv("NOTIFY_SOCKET")
	if !ok || addr == "" {
		return false, nil
	}
	if len(state) > notifyMax {
		return false, fmt.Errorf("activation: cannot notify systemd of %q: the message is %d bytes, systemd ignores one longer than %d",
			firstLine(state), len(state), notifyMax)
	}
	if strings.IndexByte(state, 0) >= 0 {
		return false, fmt.Errorf("activation: cannot notify systemd of %q: the message holds a NUL byte, and systemd ignores such a message",
			firstLine(state))
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
	if err := conn.SetWriteDeadline(time.Now().Add(notifyTimeout)); err != nil {
		return false, fmt.Errorf("activation: cannot send %q to systemd at NOTIFY_SOCKET=%q: %w", firstLine(state), addr, err)
	}
	if _, err := conn.Write([]byte(state)); errors.Is(err, os.ErrDeadlineExceeded) {
		return false, fmt.Errorf("activation: systemd at NOTIFY_SOCKET=%q did not take %q within %s (its queue is full): %w",
			addr, firstLine(state), notifyTimeout, err)
	} else if err != nil {
		return false, fmt.Errorf("activation: cannot send %q to systemd at NOTIFY_SOCKET=%q: %w", firstLine(state), addr, err)
	}
	return true, nil
}

// notifyTimeout bounds the send of one notification. A datagram to a
// socket whose queue is full (a service manager that does not read it,
// busy or stuck) waits for room; Notify gives up after this long instead
// of holding its caller, and says so.
var notifyTimeout = 5 * time.Second

// notifyMax is the longest notification systemd takes (NOTIFY_BUFFER_MAX,
// PIPE_BUF); it ignores a longer one.
const notifyMax = 4096

// firstLine is the start of a message, for an error: its first line, at
// most 80 bytes of it.
func firstLine(s string) string {
	line, _, more := strings.Cut(s, "\n")
	if len(line) > 80 {
		line, more = strings.ToValidUTF8(line[:80], ""), true
	}
	if more {
		return line + "…"
	}
	return line
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
// (STATUS=...). status may come from outside (an error, a request path):
// it is sent as one field that systemd takes, whatever it holds. Newlines
// and tabs are replaced by spaces, other control characters (a "\r" would
// start another field, an escape sequence would reach the terminal of
// whoever runs systemctl status) are written as \xNN, invalid UTF-8 (for
// which systemd ignores the status) as U+FFFD, and text that would make
// the message longer than systemd takes is cut, ending with "…". See
// [Notify] for the meaning of the results.
func Status(status string) (bool, error) {
	// sdnotify.Status cuts a long text to fit a notification.
	return Notify(sdnotify.Status(status))
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
