package control

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"net"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
)

// row is one unit of a ListUnits answer as godbus encodes it.
type row struct {
	Name, Description, Load, Active, Sub, Followed string
	Path                                           dbus.ObjectPath
	JobID                                          uint32
	JobType                                        string
	JobPath                                        dbus.ObjectPath
}

func testRows() []row {
	return []row{
		{"site-a.service", "sitectl site a", "loaded", "active", "running", "", "/org/freedesktop/systemd1/unit/site_2da_2eservice", 0, "", "/"},
		{"site-bb.socket", "", "loaded", "active", "listening", "", "/org/freedesktop/systemd1/unit/site_2dbb_2esocket", 0, "", "/"},
		{"site-ccc.service", "a description with ünïcode and a\ttab", "not-found", "inactive", "dead", "x", "/org/freedesktop/systemd1/unit/site_2dccc_2eservice", 4242, "restart", "/org/freedesktop/systemd1/job/4242"},
		{"site-dddd.path", strings.Repeat("long ", 300), "loaded", "failed", "failed", "", "/o", 1, "start", "/org/freedesktop/systemd1/job/1"},
	}
}

// encodeReply is a method return to serial as godbus writes it.
func encodeReply(t testing.TB, order binary.ByteOrder, serial uint32, body ...interface{}) []byte {
	t.Helper()
	m := &dbus.Message{Type: dbus.TypeMethodReply, Headers: map[dbus.HeaderField]dbus.Variant{
		dbus.FieldReplySerial: dbus.MakeVariant(serial),
		dbus.FieldSender:      dbus.MakeVariant("org.freedesktop.systemd1"),
	}, Body: body}
	if len(body) > 0 {
		m.Headers[dbus.FieldSignature] = dbus.MakeVariant(dbus.SignatureOf(body...))
	}
	var b bytes.Buffer
	if err := m.EncodeTo(&b, order); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// The call is what godbus itself reads as ListUnitsByPatterns([], patterns).
func TestEncodeListCallIsWhatGodbusReads(t *testing.T) {
	for _, patterns := range [][]string{nil, {"site-*.service"}, {"site-*.service", "site-*.socket", "site-*.path"}, {"a", "", "ünï"}} {
		m, err := dbus.DecodeMessage(bytes.NewReader(encodeListCall(7, patterns)))
		if err != nil {
			t.Fatalf("%q: godbus cannot read the call: %v", patterns, err)
		}
		if m.Type != dbus.TypeMethodCall || m.Serial() != 7 {
			t.Errorf("%q: type %v serial %d", patterns, m.Type, m.Serial())
		}
		want := map[dbus.HeaderField]interface{}{
			dbus.FieldPath:        dbus.ObjectPath("/org/freedesktop/systemd1"),
			dbus.FieldInterface:   "org.freedesktop.systemd1.Manager",
			dbus.FieldMember:      "ListUnitsByPatterns",
			dbus.FieldDestination: "org.freedesktop.systemd1",
			dbus.FieldSignature:   dbus.ParseSignatureMust("asas"),
		}
		for f, v := range want {
			if got := m.Headers[f].Value(); !reflect.DeepEqual(got, v) {
				t.Errorf("%q: header %d is %#v, want %#v", patterns, f, got, v)
			}
		}
		wantPatterns := patterns
		if wantPatterns == nil {
			wantPatterns = []string{}
		}
		if len(m.Body) != 2 || !reflect.DeepEqual(m.Body[0], []string{}) || !reflect.DeepEqual(m.Body[1], wantPatterns) {
			t.Errorf("%q: body %#v", patterns, m.Body)
		}
	}
}

// The raw decoder gives what godbus's decoding and unitStatuses give, in
// both byte orders.
func TestRawListingDecodesWhatGodbusDecodes(t *testing.T) {
	for _, order := range []binary.ByteOrder{binary.LittleEndian, binary.BigEndian} {
		for n := 0; n <= len(testRows()); n++ {
			rows := testRows()[:n]
			b := encodeReply(t, order, 1, rows)
			gm, err := dbus.DecodeMessage(bytes.NewReader(b))
			if err != nil {
				t.Fatal(err)
			}
			want, err := unitStatuses(gm.Body)
			if err != nil {
				t.Fatal(err)
			}
			m, err := readMessage(bufio.NewReader(bytes.NewReader(b)), maxMessage)
			if err != nil {
				t.Fatalf("%v, %d rows: %v", order, n, err)
			}
			if m.typ != typeReturn || m.replySerial != 1 || m.signature != "a(ssssssouso)" {
				t.Errorf("%v, %d rows: header %+v", order, n, m)
			}
			got, err := decodeUnitStatuses(m.order, m.body)
			if err != nil {
				t.Fatalf("%v, %d rows: %v", order, n, err)
			}
			if len(got) != len(want) || len(got) > 0 && !reflect.DeepEqual(got, want) {
				t.Errorf("%v, %d rows:\n got %+v\nwant %+v", order, n, got, want)
			}
		}
	}
}

// Every truncation of a valid answer is an error, never a panic or a
// shorter listing taken for the whole.
func TestRawListingRefusesTruncatedAnswers(t *testing.T) {
	b := encodeReply(t, binary.LittleEndian, 1, testRows())
	m, err := readMessage(bufio.NewReader(bytes.NewReader(b)), maxMessage)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(m.body); i++ {
		if st, err := decodeUnitStatuses(m.order, m.body[:i]); err == nil {
			t.Fatalf("a body cut at %d of %d decoded as %d units", i, len(m.body), len(st))
		}
	}
	for i := 0; i < len(b); i++ {
		if _, err := readMessage(bufio.NewReader(bytes.NewReader(b[:i])), maxMessage); err == nil {
			t.Fatalf("a message cut at %d of %d was read", i, len(b))
		}
	}
}

// A message larger than the bound is refused from its header, before
// anything of that size is allocated or read.
func TestReadMessageBoundsItsSize(t *testing.T) {
	b := encodeReply(t, binary.LittleEndian, 1, testRows())
	if _, err := readMessage(bufio.NewReader(bytes.NewReader(b)), len(b)-1); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("a message one byte over the bound: %v", err)
	}
	huge := append([]byte(nil), b[:16]...)
	binary.LittleEndian.PutUint32(huge[4:], 1<<31)
	if _, err := readMessage(bufio.NewReader(bytes.NewReader(huge)), maxMessage); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("a header claiming a 2 GiB body: %v", err)
	}
}

// fakeSystemd serves one connection on a unix socket: it checks the
// authentication and the call, then writes answer.
func fakeSystemd(t *testing.T, answer func(serial uint32) []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "private")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		r := bufio.NewReader(c)
		line, err := r.ReadString('\n')
		if err != nil || !strings.HasPrefix(line, "\x00AUTH EXTERNAL ") {
			t.Errorf("authentication %q: %v", line, err)
			return
		}
		c.Write([]byte("OK 0123456789abcdef0123456789abcdef\r\n"))
		if line, err = r.ReadString('\n'); err != nil || line != "BEGIN\r\n" {
			t.Errorf("after OK: %q, %v", line, err)
			return
		}
		call, err := dbus.DecodeMessage(r)
		if err != nil {
			t.Errorf("the call: %v", err)
			return
		}
		if a := answer(call.Serial()); a != nil {
			c.Write(a)
		}
		time.Sleep(2 * time.Second) // an answer that never comes
	}()
	return path
}

func signal(t *testing.T) []byte {
	m := &dbus.Message{Type: dbus.TypeSignal, Headers: map[dbus.HeaderField]dbus.Variant{
		dbus.FieldPath:      dbus.MakeVariant(dbus.ObjectPath("/org/freedesktop/systemd1")),
		dbus.FieldInterface: dbus.MakeVariant("org.freedesktop.systemd1.Manager"),
		dbus.FieldMember:    dbus.MakeVariant("JobRemoved"),
		dbus.FieldSignature: dbus.MakeVariant(dbus.SignatureOf(uint32(0), dbus.ObjectPath("/"), "", "")),
	}, Body: []interface{}{uint32(3), dbus.ObjectPath("/org/freedesktop/systemd1/job/3"), "site-a.service", "done"}}
	var b bytes.Buffer
	if err := m.EncodeTo(&b, binary.LittleEndian); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// Signals systemd sends before the answer, and answers to other serials,
// are read past.
func TestRawListUnitsReadsPastSignals(t *testing.T) {
	path := fakeSystemd(t, func(serial uint32) []byte {
		other := encodeReply(t, binary.LittleEndian, serial+1, testRows()[:1])
		return append(append(signal(t), other...), encodeReply(t, binary.LittleEndian, serial, testRows())...)
	})
	st, err := rawListUnits(context.Background(), path, []string{"site-*"})
	if err != nil {
		t.Fatal(err)
	}
	if len(st) != len(testRows()) || st[3].Name != "site-dddd.path" || st[2].JobId != 4242 {
		t.Errorf("listing: %+v", st)
	}
}

// An error answer is a dbus.Error, which classify words as for godbus's
// calls: access denied is ErrDenied.
func TestRawListUnitsReturnsSystemdsError(t *testing.T) {
	path := fakeSystemd(t, func(serial uint32) []byte {
		m := &dbus.Message{Type: dbus.TypeError, Headers: map[dbus.HeaderField]dbus.Variant{
			dbus.FieldReplySerial: dbus.MakeVariant(serial),
			dbus.FieldErrorName:   dbus.MakeVariant("org.freedesktop.DBus.Error.AccessDenied"),
			dbus.FieldSignature:   dbus.MakeVariant(dbus.SignatureOf("")),
		}, Body: []interface{}{"Access denied"}}
		var b bytes.Buffer
		if err := m.EncodeTo(&b, binary.LittleEndian); err != nil {
			t.Error(err)
		}
		return b.Bytes()
	})
	_, err := rawListUnits(context.Background(), path, nil)
	var de dbus.Error
	if !errors.As(err, &de) || de.Name != "org.freedesktop.DBus.Error.AccessDenied" || !errors.Is(classify(err), ErrDenied) {
		t.Errorf("error answer: %v", err)
	}
	if !strings.Contains(err.Error(), "Access denied") {
		t.Errorf("error answer %q lost its message", err)
	}
}

// A systemd that does not answer holds the listing no longer than the
// caller's context.
func TestRawListUnitsEndsWithItsContext(t *testing.T) {
	path := fakeSystemd(t, func(uint32) []byte { return nil })
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := rawListUnits(ctx, path, nil); err == nil {
		t.Fatal("no answer, and no error")
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("gave up after %v", d)
	}
}

// A refused authentication is an error naming what systemd said.
func TestAuthExternalRefused(t *testing.T) {
	r := bufio.NewReader(strings.NewReader("REJECTED EXTERNAL\r\n"))
	if err := authExternal(&bytes.Buffer{}, r, 0); err == nil || !strings.Contains(err.Error(), "REJECTED") {
		t.Errorf("refused authentication: %v", err)
	}
}

func FuzzReadListing(f *testing.F) {
	f.Add(encodeReply(f, binary.LittleEndian, 1, testRows()))
	f.Add(encodeReply(f, binary.BigEndian, 1, testRows()[:2]))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := readMessage(bufio.NewReader(bytes.NewReader(b)), 1<<20)
		if err != nil {
			return
		}
		st, err := decodeUnitStatuses(m.order, m.body)
		if err == nil && len(st) > len(m.body)/40 {
			t.Errorf("%d units from a body of %d bytes", len(st), len(m.body))
		}
		_ = m.asError()
	})
}

// The raw listing never fits in sd-bus's read of BEGIN (authRead), and asks
// for the same units: the patterns given, as a set, or every unit.
func TestListCallOutgrowsTheAuthRead(t *testing.T) {
	for _, patterns := range [][]string{nil, {"*"}, {"site-*"}, {"site-cli.*"}, {"site-*.service", "site-*.socket", "site-*.path"}, {strings.Repeat("x", 300)}} {
		b := listCall(1, patterns)
		if len(b) < authRead {
			t.Errorf("%q: the call is %d bytes: sd-bus would read it with BEGIN and leave it unanswered", patterns, len(b))
		}
		m, err := dbus.DecodeMessage(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("%q: %v", patterns, err)
		}
		got, _ := m.Body[1].([]string)
		want := patterns
		if len(want) == 0 {
			want = []string{"*"}
		}
		if !setEqual(got, want) {
			t.Errorf("%q: the call asks for %q", patterns, got)
		}
	}
}

func setEqual(a, b []string) bool {
	in := func(x []string, s string) bool { return slices.Contains(x, s) }
	for _, s := range a {
		if !in(b, s) {
			return false
		}
	}
	for _, s := range b {
		if !in(a, s) {
			return false
		}
	}
	return true
}
