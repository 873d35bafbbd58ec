package control

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	sd "github.com/coreos/go-systemd/v22/dbus"
	"github.com/godbus/dbus/v5"
)

// This file is the one D-Bus call sitectl makes without godbus: the
// listing of every site unit, which at 10,000 sites is an answer of 20,000
// rows of ten fields. godbus decodes it into 200,000 boxed values in
// []interface{} rows, the CPU and memory of which were the longest part of
// sitectl list. Here it is read on a connection of its own to systemd's
// private socket (root's, as systemctl does it) and decoded straight into
// the rows, every string of them a part of one copy of the answer.

// maxMessage bounds a message read from systemd: the D-Bus specification's
// largest message (128 MiB).
const maxMessage = 128 << 20

// listTimeout bounds the raw listing when the caller's context has no
// deadline: godbus's calls have none either, but a read from a socket is
// bounded here.
const listTimeout = 30 * time.Second

// rawListUnits calls ListUnitsByPatterns on systemd's private socket at path
// and decodes the answer.
func rawListUnits(ctx context.Context, path string, patterns []string) ([]sd.UnitStatus, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(listTimeout)
	}
	if err := c.SetDeadline(deadline); err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	r := bufio.NewReaderSize(c, 64<<10)
	if err := authExternal(c, r, os.Getuid()); err != nil {
		return nil, err
	}
	const serial = 1
	if _, err := c.Write(append([]byte("BEGIN\r\n"), listCall(serial, patterns)...)); err != nil {
		return nil, err
	}
	for {
		m, err := readMessage(r, maxMessage)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, err
		}
		if m.replySerial != serial || m.typ != typeReturn && m.typ != typeError {
			continue // a signal systemd sends every direct connection
		}
		if m.typ == typeError {
			return nil, m.asError()
		}
		if m.signature != "a(ssssssouso)" {
			return nil, fmt.Errorf("systemd answered %q, want a(ssssssouso)", m.signature)
		}
		return decodeUnitStatuses(m.order, m.body)
	}
}

// authRead is how much sd-bus reads at once of a connection that is still
// authenticating (at least 256 bytes). Once it finds BEGIN in what it read,
// systemd 252 goes on only when more bytes arrive: a call sent together
// with BEGIN that fits in the same read is never answered. In a booted
// systemd 252, a listing with the one pattern "site-*" (211 bytes) was
// unanswered in 50 of 50 tries; with status's three patterns (256 bytes)
// it is answered every time.
const authRead = 256

// listCall is encodeListCall made at least authRead bytes long, so that it
// never fits in sd-bus's read of BEGIN: the last pattern is repeated, which
// matches no other unit. No pattern lists every unit; so does "*".
func listCall(serial uint32, patterns []string) []byte {
	if len(patterns) == 0 {
		patterns = []string{"*"}
	}
	m := encodeListCall(serial, patterns)
	for len(m) < authRead {
		patterns = append(slices.Clip(patterns), patterns[len(patterns)-1])
		m = encodeListCall(serial, patterns)
	}
	return m
}

// authExternal authenticates as uid with the EXTERNAL mechanism (the
// kernel vouches for the socket's peer credentials), stopping before
// BEGIN.
func authExternal(w io.Writer, r *bufio.Reader, uid int) error {
	if _, err := w.Write([]byte("\x00AUTH EXTERNAL " + hex.EncodeToString([]byte(strconv.Itoa(uid))) + "\r\n")); err != nil {
		return err
	}
	line, err := r.ReadSlice('\n')
	if err != nil {
		return fmt.Errorf("no answer to the authentication: %w", err)
	}
	if !bytes.HasPrefix(line, []byte("OK ")) {
		return fmt.Errorf("authentication refused: %q", bytes.TrimSpace(line))
	}
	return nil
}

// Message types and header fields of the D-Bus wire format.
const (
	typeCall   = 1
	typeReturn = 2
	typeError  = 3

	fieldPath        = 1
	fieldInterface   = 2
	fieldMember      = 3
	fieldErrorName   = 4
	fieldReplySerial = 5
	fieldDestination = 6
	fieldSignature   = 8
)

// encodeListCall is the method call ListUnitsByPatterns([], patterns) to
// systemd's manager, little-endian.
func encodeListCall(serial uint32, patterns []string) []byte {
	var body wbuf
	body.stringArray(nil)
	body.stringArray(patterns)
	var fields wbuf
	field := func(code byte, sig byte, v string) {
		fields.align(8)
		fields.b = append(fields.b, code, 1, sig, 0)
		if sig == 'g' {
			fields.b = append(fields.b, byte(len(v)))
			fields.b = append(fields.b, v...)
			fields.b = append(fields.b, 0)
			return
		}
		fields.str(v)
	}
	field(fieldPath, 'o', "/org/freedesktop/systemd1")
	field(fieldInterface, 's', "org.freedesktop.systemd1.Manager")
	field(fieldMember, 's', "ListUnitsByPatterns")
	field(fieldDestination, 's', "org.freedesktop.systemd1")
	field(fieldSignature, 'g', "asas")
	var m wbuf
	m.b = append(m.b, 'l', typeCall, 0, 1)
	m.u32(uint32(len(body.b)))
	m.u32(serial)
	m.u32(uint32(len(fields.b)))
	m.b = append(m.b, fields.b...) // fields start at 16: 8-aligned, as within fields
	m.align(8)
	return append(m.b, body.b...)
}

// wbuf writes little-endian D-Bus values; offsets are from its start.
type wbuf struct{ b []byte }

func (w *wbuf) align(n int) {
	for len(w.b)%n != 0 {
		w.b = append(w.b, 0)
	}
}

func (w *wbuf) u32(v uint32) {
	w.align(4)
	w.b = binary.LittleEndian.AppendUint32(w.b, v)
}

func (w *wbuf) str(s string) {
	w.u32(uint32(len(s)))
	w.b = append(w.b, s...)
	w.b = append(w.b, 0)
}

func (w *wbuf) stringArray(ss []string) {
	w.u32(0)
	at := len(w.b)
	for _, s := range ss {
		w.str(s)
	}
	binary.LittleEndian.PutUint32(w.b[at-4:], uint32(len(w.b)-at))
}

// message is what sitectl reads of a message from systemd.
type message struct {
	order       binary.ByteOrder
	typ         byte
	replySerial uint32
	signature   string
	errorName   string
	body        []byte
}

// asError is an error answer as an error: its name and, if its body is a
// string, the message.
func (m message) asError() error {
	msg := ""
	if strings.HasPrefix(m.signature, "s") {
		d := rbuf{order: m.order, b: m.body}
		if s, err := d.str(); err == nil {
			msg = s
		}
	}
	return dbus.Error{Name: m.errorName, Body: []interface{}{msg}}
}

// readMessage reads one message of at most max bytes.
func readMessage(r *bufio.Reader, max int) (message, error) {
	var m message
	fixed, err := r.Peek(16)
	if err != nil {
		return m, fmt.Errorf("reading systemd's answer: %w", err)
	}
	switch fixed[0] {
	case 'l':
		m.order = binary.LittleEndian
	case 'B':
		m.order = binary.BigEndian
	default:
		return m, fmt.Errorf("systemd's answer has no valid byte order mark (%q)", fixed[0])
	}
	m.typ = fixed[1]
	bodyLen := uint64(m.order.Uint32(fixed[4:]))
	fieldsLen := uint64(m.order.Uint32(fixed[12:]))
	headerLen := (16 + fieldsLen + 7) &^ 7
	if headerLen+bodyLen > uint64(max) {
		return m, fmt.Errorf("systemd's answer is larger than %d bytes", max)
	}
	buf := make([]byte, headerLen+bodyLen)
	if _, err := io.ReadFull(r, buf); err != nil {
		return m, fmt.Errorf("reading systemd's answer: %w", err)
	}
	m.body = buf[headerLen:]
	d := rbuf{order: m.order, b: buf[:16+fieldsLen], off: 16}
	for d.off < len(d.b) {
		if err := d.align(8); err != nil {
			return m, err
		}
		code, err := d.byte()
		if err != nil {
			return m, err
		}
		sig, err := d.signature()
		if err != nil {
			return m, err
		}
		switch {
		case code == fieldReplySerial && sig == "u":
			m.replySerial, err = d.u32()
		case code == fieldSignature && sig == "g":
			m.signature, err = d.signature()
		case code == fieldErrorName && sig == "s":
			m.errorName, err = d.str()
		default:
			err = d.skip(sig)
		}
		if err != nil {
			return m, fmt.Errorf("systemd's answer has a bad header: %w", err)
		}
	}
	return m, nil
}

// rbuf reads D-Bus values of a message; off counts from the message's
// start, or from the body's, which is 8-aligned.
type rbuf struct {
	order binary.ByteOrder
	b     []byte
	off   int
}

var errShort = errors.New("the message ends too early")

func (d *rbuf) align(n int) error {
	next := (d.off + n - 1) &^ (n - 1)
	if next > len(d.b) {
		return errShort
	}
	d.off = next
	return nil
}

func (d *rbuf) byte() (byte, error) {
	if d.off >= len(d.b) {
		return 0, errShort
	}
	d.off++
	return d.b[d.off-1], nil
}

func (d *rbuf) u32() (uint32, error) {
	if err := d.align(4); err != nil {
		return 0, err
	}
	if d.off+4 > len(d.b) {
		return 0, errShort
	}
	d.off += 4
	return d.order.Uint32(d.b[d.off-4:]), nil
}

// bytesOf reads a string or object path without copying it.
func (d *rbuf) bytesOf() ([]byte, error) {
	n, err := d.u32()
	if err != nil {
		return nil, err
	}
	if uint64(d.off)+uint64(n)+1 > uint64(len(d.b)) {
		return nil, errShort
	}
	s := d.b[d.off : d.off+int(n)]
	if d.b[d.off+int(n)] != 0 {
		return nil, errors.New("a string is not terminated")
	}
	d.off += int(n) + 1
	return s, nil
}

func (d *rbuf) str() (string, error) {
	b, err := d.bytesOf()
	return string(b), err
}

func (d *rbuf) signature() (string, error) {
	n, err := d.byte()
	if err != nil {
		return "", err
	}
	if d.off+int(n)+1 > len(d.b) {
		return "", errShort
	}
	s := string(d.b[d.off : d.off+int(n)])
	d.off += int(n) + 1
	return s, nil
}

// skip reads past a header field's value of a basic type.
func (d *rbuf) skip(sig string) error {
	var err error
	switch sig {
	case "y":
		_, err = d.byte()
	case "u", "i", "b":
		_, err = d.u32()
	case "s", "o":
		_, err = d.bytesOf()
	case "g":
		_, err = d.signature()
	default:
		err = fmt.Errorf("a header field of type %q", sig)
	}
	return err
}

// decodeUnitStatuses decodes the body of a ListUnits answer,
// a(ssssssouso). The body is copied into one string once; every name and
// path is a substring of it, not an allocation of its own.
func decodeUnitStatuses(order binary.ByteOrder, body []byte) ([]sd.UnitStatus, error) {
	n, err := unitRows(order, body, nil)
	if err != nil {
		return nil, err
	}
	out := make([]sd.UnitStatus, 0, n)
	text := string(body)
	_, err = unitRows(order, body, func(fs *[10][2]int, job uint32) {
		field := func(i int) string { return text[fs[i][0]:fs[i][1]] }
		out = append(out, sd.UnitStatus{Name: field(0), Description: field(1),
			LoadState: field(2), ActiveState: field(3), SubState: field(4), Followed: field(5),
			Path: dbus.ObjectPath(field(6)), JobId: job, JobType: field(8), JobPath: dbus.ObjectPath(field(9))})
	})
	return out, err
}

// unitRows walks the rows of a(ssssssouso), giving each row's string
// fields as offsets into body (field 7, the job id, is job), and returns
// how many there are.
func unitRows(order binary.ByteOrder, body []byte, row func(fs *[10][2]int, job uint32)) (int, error) {
	d := rbuf{order: order, b: body}
	n, err := d.u32()
	if err != nil {
		return 0, err
	}
	if err := d.align(8); err != nil {
		return 0, err
	}
	if uint64(d.off)+uint64(n) > uint64(len(body)) {
		return 0, errShort
	}
	end := d.off + int(n)
	rows := 0
	for d.off < end {
		if err := d.align(8); err != nil {
			return 0, err
		}
		var fs [10][2]int
		var job uint32
		for i := range fs {
			if i == 7 {
				job, err = d.u32()
			} else {
				var b []byte
				b, err = d.bytesOf()
				fs[i] = [2]int{d.off - len(b) - 1, d.off - 1}
			}
			if err != nil {
				return 0, fmt.Errorf("unit %d of systemd's answer: %w", rows, err)
			}
		}
		if row != nil {
			row(&fs, job)
		}
		rows++
	}
	if d.off != end {
		return 0, errors.New("a unit of systemd's answer runs past its array")
	}
	return rows, nil
}
