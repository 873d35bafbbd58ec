// Package journal writes structured records to systemd's journal through its
// native socket, so that fields such as SITECTL_EVENT can be matched later
// (journalctl SITECTL_EVENT=cleanup). Records from a unit's processes are
// attributed to the unit by journald itself.
package journal

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io/fs"
	"net"
	"os"
	"strings"
)

// socket is journald's native socket.
const socket = "/run/systemd/journal/socket"

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
// values. It fails when journald cannot be reached; callers fall back to
// stderr.
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
		return err
	}
	defer conn.Close()
	_, err = conn.Write(b.Bytes())
	return err
}
