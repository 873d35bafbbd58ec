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

// Send writes one record. fields are extra upper-case field names and
// values. It fails when journald cannot be reached or does not take the
// record within sendTimeout; callers fall back to stderr.
func Send(priority int, message string, fields map[string]string) error {
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
	} else if err != nil {
		return fmt.Errorf("cannot write to journald: %w", err)
	}
	return nil
}
