// Package journal writes structured records to systemd's journal through its
// native socket, so that fields such as SITECTL_EVENT can be matched later
// (journalctl SITECTL_EVENT=cleanup). Records from a unit's processes are
// attributed to the unit by journald itself.
package journal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// socket is journald's native socket; a variable for tests.
var socket = "/run/systemd/journal/socket"

// sendTimeout bounds the write of one record. A datagram to journald
// waits while journald's queue is full (journald is busy or stopped);
// the generator, which logs before it writes the units, would wait until
// PID 1 kills it. A record that is not taken in time goes to the caller's
// fallback.
const sendTimeout = time.Second

// Priorities, as syslog numbers them.
const (
	PriErr     = 3
	PriWarning = 4
	PriInfo    = 6
)

// Available tells whether journald's native socket is there to send to.
func Available() bool {
	fi, err := os.Stat(socket)
	return err == nil && fi.Mode().Type() == fs.ModeSocket
}

// maxRecord bounds one record. A record is one datagram, and a datagram
// longer than the sender's socket buffer (net.core.wmem_default, about
// 212 KiB) fails with EMSGSIZE; journald itself keeps a message of up to
// 64 KiB whole by default.
const maxRecord = 64 << 10

// Send writes one record. fields are extra upper-case field names and
// values. A message too long for one record is cut, and says so at its
// end. It fails when journald cannot be reached or does not take the
// record within sendTimeout; callers fall back to stderr. A record that
// is too large even so fails with an error that wraps unix.EMSGSIZE:
// journald is there, and takes the next record.
func Send(priority int, message string, fields map[string]string) error {
	b := record(priority, message, fields)
	if over := b.Len() - maxRecord; over > 0 && over < len(message) {
		cut := fmt.Sprintf("…(cut: %d bytes in all)", len(message))
		keep := max(0, len(message)-over-len(cut)-16) // 16: the length of a value with a newline
		b = record(priority, strings.ToValidUTF8(message[:keep], "")+cut, fields)
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: socket, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("cannot reach journald: %w", err)
	}
	defer conn.Close()
	if err := conn.SetWriteDeadline(time.Now().Add(sendTimeout)); err != nil {
		return fmt.Errorf("cannot write to journald: %w", err)
	}
	if _, err := conn.Write(b.Bytes()); errors.Is(err, os.ErrDeadlineExceeded) {
		return fmt.Errorf("journald did not take the record within %s (its queue is full): %w", sendTimeout, err)
	} else if errors.Is(err, unix.EMSGSIZE) {
		return fmt.Errorf("a record of %d bytes is too large for journald's socket: %w", b.Len(), err)
	} else if err != nil {
		return fmt.Errorf("cannot write to journald: %w", err)
	}
	return nil
}

// record is the native protocol's form of a record.
func record(priority int, message string, fields map[string]string) *bytes.Buffer {
	var b bytes.Buffer
	write := func(k, v string) {
		if !strings.ContainsRune(v, '\n') {
			fmt.Fprintf(&b, "%s=%s\n", k, v)
			return
		}
		// Values with newlines: name, newline, little-endian length, value.
		b.WriteString(k + "\n")
		binary.Write(&b, binary.LittleEndian, uint64(len(v)))
		b.WriteString(v + "\n")
	}
	write("MESSAGE", message)
	write("PRIORITY", fmt.Sprint(priority))
	for k, v := range fields {
		write(k, v)
	}
	return &b
}
