package control

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	sd "github.com/coreos/go-systemd/v22/dbus"
	"github.com/godbus/dbus/v5"
)

// busFake plays systemd's private socket to godbus and go-systemd: it
// authenticates each connection as systemd does and hands every call to
// answer with the connection's number (1 for the first). It can hang up a
// connection, as systemd does when it re-executes itself.
type busFake struct {
	t    *testing.T
	path string
	// refuse is how many dials after the first connection fail, as they
	// do while systemd re-executes.
	refuse int

	mu     sync.Mutex
	conns  []net.Conn
	dials  int
	calls  []string // "N Member" for each call, N the connection's number
	answer func(n int, call *dbus.Message) (replies []*dbus.Message, hangUp bool)
}

func newBusFake(t *testing.T, answer func(n int, call *dbus.Message) ([]*dbus.Message, bool)) *busFake {
	f := &busFake{t: t, path: filepath.Join(t.TempDir(), "private"), answer: answer}
	l, err := net.Listen("unix", f.path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		l.Close()
		f.mu.Lock()
		defer f.mu.Unlock()
		for _, c := range f.conns {
			c.Close()
		}
	})
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			f.mu.Lock()
			f.conns = append(f.conns, c)
			n := len(f.conns)
			f.mu.Unlock()
			go f.serve(n, c)
		}
	}()
	return f
}

// dial is the Manager's dial seam: a link to the fake, made as connect
// makes one to systemd's private socket.
func (f *busFake) dial() (*link, error) {
	f.mu.Lock()
	f.dials++
	refused := f.dials > 1 && f.dials <= 1+f.refuse
	f.mu.Unlock()
	if refused {
		return nil, errors.New("dial unix /run/systemd/private: connect: connection refused")
	}
	l := &link{}
	conn, err := sd.NewConnection(l.dialer(func() (*dbus.Conn, error) { return dbus.Dial("unix:path=" + f.path) }, false))
	if err != nil {
		return nil, err
	}
	l.conn = conn
	return l, nil
}

// hangUp closes connection n (1 for the first) from systemd's side.
func (f *busFake) hangUp(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.conns[n-1].Close()
}

func (f *busFake) called() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

func (f *busFake) serve(n int, c net.Conn) {
	defer c.Close()
	r := bufio.NewReader(c)
	for { // the authentication, as sd-bus answers godbus
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimPrefix(strings.TrimSpace(line), "\x00")
		switch {
		case line == "AUTH":
			c.Write([]byte("REJECTED EXTERNAL\r\n"))
		case strings.HasPrefix(line, "AUTH EXTERNAL"):
			c.Write([]byte("OK 0123456789abcdef0123456789abcdef\r\n"))
		case line == "NEGOTIATE_UNIX_FD":
			c.Write([]byte("ERROR\r\n"))
		case line == "BEGIN":
		default:
			f.t.Errorf("connection %d: authentication line %q", n, line)
			return
		}
		if line == "BEGIN" {
			break
		}
	}
	for {
		call, err := dbus.DecodeMessage(r)
		if err != nil {
			return
		}
		member, _ := call.Headers[dbus.FieldMember].Value().(string)
		f.mu.Lock()
		f.calls = append(f.calls, fmt.Sprintf("%d %s", n, member))
		f.mu.Unlock()
		var replies []*dbus.Message
		hangUp := false
		if member == "AddMatch" { // go-systemd's, sent when it connects
			replies = []*dbus.Message{reply(call)}
		} else {
			replies, hangUp = f.answer(n, call)
		}
		for _, m := range replies {
			if err := m.EncodeTo(c, binary.LittleEndian); err != nil {
				f.t.Errorf("connection %d: %v", n, err)
			}
		}
		if hangUp {
			return
		}
	}
}

func reply(call *dbus.Message, body ...any) *dbus.Message {
	m := &dbus.Message{Type: dbus.TypeMethodReply, Headers: map[dbus.HeaderField]dbus.Variant{
		dbus.FieldReplySerial: dbus.MakeVariant(call.Serial()),
	}, Body: body}
	if len(body) > 0 {
		m.Headers[dbus.FieldSignature] = dbus.MakeVariant(dbus.SignatureOf(body...))
	}
	return m
}

func errorReply(call *dbus.Message, name string) *dbus.Message {
	return &dbus.Message{Type: dbus.TypeError, Headers: map[dbus.HeaderField]dbus.Variant{
		dbus.FieldReplySerial: dbus.MakeVariant(call.Serial()),
		dbus.FieldErrorName:   dbus.MakeVariant(name),
		dbus.FieldSignature:   dbus.MakeVariant(dbus.SignatureOf("")),
	}, Body: []any{name}}
}

func jobRemoved(id uint32, unit, result string) *dbus.Message {
	body := []any{id, dbus.ObjectPath(fmt.Sprintf("/org/freedesktop/systemd1/job/%d", id)), unit, result}
	return &dbus.Message{Type: dbus.TypeSignal, Headers: map[dbus.HeaderField]dbus.Variant{
		dbus.FieldPath:      dbus.MakeVariant(dbus.ObjectPath("/org/freedesktop/systemd1")),
		dbus.FieldInterface: dbus.MakeVariant("org.freedesktop.systemd1.Manager"),
		dbus.FieldMember:    dbus.MakeVariant("JobRemoved"),
		dbus.FieldSignature: dbus.MakeVariant(dbus.SignatureOf(body...)),
	}, Body: body}
}

func listing(call *dbus.Message, unit, active, sub string) *dbus.Message {
	return reply(call, []unitRow{{unit, "", "loaded", active, sub, "",
		dbus.ObjectPath("/org/freedesktop/systemd1/unit/" + sd.PathBusEscape(unit)), 0, "", "/"}})
}

func fakeManager(t *testing.T, f *busFake) *Manager {
	t.Helper()
	m, err := newManager(context.Background(), f.dial)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return m
}

// systemd re-executing itself (its own package upgrade does) closes every
// connection while a restart job runs, and sends the job's JobRemoved only
// on connections made after: the restart is not sent again, the Manager
// connects anew (refused while systemd is down), waits until the job is
// gone and tells the job's outcome from the unit's state.
func TestJobWaitSurvivesConnectionClosed(t *testing.T) {
	for _, c := range []struct {
		active, sub string
		ok          bool
	}{
		{"active", "running", true},
		{"failed", "failed", false},
	} {
		t.Run(c.active, func(t *testing.T) {
			var mu sync.Mutex
			polls := 0
			f := newBusFake(t, func(n int, call *dbus.Message) ([]*dbus.Message, bool) {
				member, _ := call.Headers[dbus.FieldMember].Value().(string)
				path, _ := call.Headers[dbus.FieldPath].Value().(dbus.ObjectPath)
				switch {
				case member == "RestartUnit" && n == 1:
					return []*dbus.Message{reply(call, dbus.ObjectPath("/org/freedesktop/systemd1/job/7"))}, true
				case member == "Get" && path == "/org/freedesktop/systemd1/job/7":
					mu.Lock()
					defer mu.Unlock()
					if polls++; polls < 3 {
						return []*dbus.Message{reply(call, dbus.MakeVariant("running"))}, false
					}
					return []*dbus.Message{errorReply(call, "org.freedesktop.DBus.Error.UnknownObject")}, false
				case member == "ListUnitsByNames":
					return []*dbus.Message{listing(call, "site-a.service", c.active, c.sub)}, false
				}
				t.Errorf("connection %d: unexpected call %s on %s", n, member, path)
				return []*dbus.Message{errorReply(call, "org.freedesktop.DBus.Error.UnknownMethod")}, false
			})
			f.refuse = 2
			m := fakeManager(t, f)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err := m.Restart(ctx, "site-a.service")
			var je *JobError
			switch {
			case c.ok && err != nil:
				t.Errorf("restart: %v", err)
			case !c.ok && !errors.As(err, &je):
				t.Errorf("restart of a unit failed after it: %v, want a JobError", err)
			case !c.ok && !strings.Contains(err.Error(), "failed/failed"):
				t.Errorf("restart of a unit failed after it: %q does not say its state", err)
			}
			restarts := 0
			for _, call := range f.called() {
				if strings.HasSuffix(call, " RestartUnit") {
					restarts++
				}
			}
			if restarts != 1 {
				t.Errorf("RestartUnit sent %d times, want 1: %v", restarts, f.called())
			}
		})
	}
}

// A connection systemd closed before a job was asked for never carried it:
// the job is asked for on a new connection, and its JobRemoved read there.
// A read whose connection closed under it is made again once.
func TestCallsRetriedOnANewConnection(t *testing.T) {
	f := newBusFake(t, func(n int, call *dbus.Message) ([]*dbus.Message, bool) {
		member, _ := call.Headers[dbus.FieldMember].Value().(string)
		switch {
		case member == "ListUnitsByNames" && n == 2:
			return nil, true // closed before it answered
		case member == "ListUnitsByNames":
			return []*dbus.Message{listing(call, "site-a.service", "active", "running")}, false
		case member == "StartUnit" && n == 2:
			return []*dbus.Message{reply(call, dbus.ObjectPath("/org/freedesktop/systemd1/job/9")), jobRemoved(9, "site-a.service", "done")}, false
		}
		t.Errorf("connection %d: unexpected call %s", n, member)
		return []*dbus.Message{errorReply(call, "org.freedesktop.DBus.Error.UnknownMethod")}, false
	})
	m := fakeManager(t, f)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	closed := m.current().bus
	f.hangUp(1)
	<-closed.Context().Done()
	if err := m.Start(ctx, "site-a.service"); err != nil {
		t.Errorf("start after the connection closed: %v", err)
	}
	us, err := m.States(ctx, "site-a.service")
	if err != nil || len(us) != 1 || us[0].ActiveState != "active" {
		t.Errorf("states read again on a new connection: %+v, %v", us, err)
	}
	want := []string{"2 AddMatch", "2 StartUnit", "2 ListUnitsByNames", "3 AddMatch", "3 ListUnitsByNames"}
	if got := f.called(); strings.Join(got[1:], ",") != strings.Join(want, ",") {
		t.Errorf("calls %v, want AddMatch on 1 then %v", got, want)
	}
}
