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
// invalid UTF-8 as U+FFFD. The field is at most StatusMax bytes, cut
// with "…": systemd drops a whole notification longer than 4096 bytes,
// and a READY=1 sent with a long error in its status would be lost.
func Status(text string) string {
	const more = "…"
	var b strings.Builder
	b.Grow(min(len("STATUS=")+len(text), StatusMax))
	b.WriteString("STATUS=")
	for _, r := range strings.ToValidUTF8(text, "\uFFFD") {
		var piece string
		switch {
		case r == '\n' || r == '\t':
			piece = " "
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0):
			piece = fmt.Sprintf(`\x%02x`, r)
		default:
			piece = string(r)
		}
		// Whole characters and whole escapes only, with room for
		// the mark of the cut.
		if b.Len()+len(piece) > StatusMax-len(more) {
			b.WriteString(more)
			break
		}
		b.WriteString(piece)
	}
	return b.String()
}

// StatusMax bounds the STATUS= field Status makes, so that it fits in a
// notification (at most 4096 bytes) beside the other fields sent with it
// (READY=1, RELOADING=1, MONOTONIC_USEC=).
const StatusMax = 2048
