// Package sdnotify is sitectl's side of systemd's notification protocol
// (sd_notify(3)) that package activation does not cover: the messages both
// sitectl's launcher and apps send (RELOADING=1 needs the monotonic clock)
// and a socket that receives them the way systemd does, proving each
// sender through the kernel's credentials. The launcher of an overlap site
// is the service manager of its generations, so it receives what systemd
// would; package activation sends.
package sdnotify

import (
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Reloading is the RELOADING=1 message, with the MONOTONIC_USEC= that
// Type=notify-reload (systemd 253 and later) requires.
func Reloading() (string, error) {
	usec, err := MonotonicUsec()
	if err != nil {
		return "", err
	}
	return "RELOADING=1\nMONOTONIC_USEC=" + strconv.FormatInt(usec, 10), nil
}

// MonotonicUsec is CLOCK_MONOTONIC in microseconds, systemd's clock for
// MONOTONIC_USEC=.
func MonotonicUsec() (int64, error) {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0, err
	}
	return ts.Sec*1_000_000 + ts.Nsec/1_000, nil
}

// Status is the STATUS= field of a message that says text. A notification
// is fields separated by newlines, and systemd shows STATUS= as it came in
// `systemctl status`: text that holds names from outside (a release
// directory a deployer named, an error from the app) must not end the
// field and start another (a newline followed by WATCHDOG_USEC= or
// MAINPID=), nor carry escape sequences to root's terminal. A newline or
// tab is a space, other control characters are written as \xNN, and
// invalid UTF-8 as U+FFFD.
func Status(text string) string {
	var b strings.Builder
	b.Grow(len("STATUS=") + len(text))
	b.WriteString("STATUS=")
	for _, r := range strings.ToValidUTF8(text, "\uFFFD") {
		if r == '\n' || r == '\t' {
			b.WriteByte(' ')
			continue
		}
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			fmt.Fprintf(&b, `\x%02x`, r)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}
