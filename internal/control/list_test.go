package control

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	sd "github.com/coreos/go-systemd/v22/dbus"
	"github.com/godbus/dbus/v5"
)

// unitRow is one unit of a ListUnits answer as systemd sends it.
type unitRow struct {
	Name, Description, LoadState, ActiveState, SubState, Followed string
	Path                                                          dbus.ObjectPath
	JobID                                                         uint32
	JobType                                                       string
	JobPath                                                       dbus.ObjectPath
}

// TestUnitStatusesReadsWhatGodbusDecodes: a ListUnitsByPatterns answer
// sent over the wire and decoded by godbus is read field for field as
// go-systemd read it; an answer of another shape is an error, not units
// with empty states.
func TestUnitStatusesReadsWhatGodbusDecodes(t *testing.T) {
	rows := []unitRow{
		{"site-a.service", "a", "loaded", "active", "running", "", "/org/freedesktop/systemd1/unit/site_2da_2eservice", 7, "reload", "/org/freedesktop/systemd1/job/7"},
		{"site-a.socket", "a socket", "loaded", "active", "listening", "", "/org/freedesktop/systemd1/unit/site_2da_2esocket", 0, "", "/"},
	}
	body := decoded(t, rows)
	got, err := unitStatuses(body)
	if err != nil {
		t.Fatal(err)
	}
	var want []sd.UnitStatus
	if err := dbus.Store(body, &want); err != nil { // go-systemd's way
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("%d units, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("unit %d: %+v, want %+v", i, got[i], want[i])
		}
	}
	if want[0].JobId != 7 || want[1].SubState != "listening" {
		t.Errorf("go-systemd's reading: %+v", want)
	}
	for _, bad := range [][]interface{}{nil, {"x"}, {[][]interface{}{{"site-a.service", "a", "loaded"}}}, decoded(t, []struct{ A, B string }{{"a", "b"}})} {
		if us, err := unitStatuses(bad); err == nil {
			t.Errorf("%v: %+v, want an error", bad, us)
		}
	}
}

// decoded is v sent as the body of a method reply and decoded by godbus.
func decoded(t *testing.T, v any) []interface{} {
	t.Helper()
	msg := &dbus.Message{Type: dbus.TypeMethodReply, Headers: map[dbus.HeaderField]dbus.Variant{
		dbus.FieldReplySerial: dbus.MakeVariant(uint32(1)),
		dbus.FieldSignature:   dbus.MakeVariant(dbus.SignatureOf(v)),
	}, Body: []interface{}{v}}
	var buf bytes.Buffer
	if err := msg.EncodeTo(&buf, binary.LittleEndian); err != nil {
		t.Fatal(err)
	}
	back, err := dbus.DecodeMessage(&buf)
	if err != nil {
		t.Fatal(err)
	}
	return back.Body
}

// TestSharedDialsOnce: go-systemd's two dials get one connection; a failed
// dial is tried again, not remembered.
func TestSharedDialsOnce(t *testing.T) {
	dials, fail := 0, true
	want := &dbus.Conn{}
	dial := shared(func() (*dbus.Conn, error) {
		dials++
		if fail {
			return nil, errors.New("refused")
		}
		return want, nil
	})
	if _, err := dial(); err == nil {
		t.Fatal("a failed dial succeeded")
	}
	fail = false
	for range 2 {
		if c, err := dial(); err != nil || c != want {
			t.Fatalf("dial = %p, %v; want %p", c, err, want)
		}
	}
	if dials != 2 {
		t.Fatalf("dialled %d times, want 2 (one failed, then one for both)", dials)
	}
}

// TestFilesAreReadForStatusNotList: status (units by name, or the listing
// of every site) reads where systemd loaded each unit from, sockets and
// paths too, to name a site's local changes; list reads none of it.
func TestFilesAreReadForStatusNotList(t *testing.T) {
	names := func(ps []property) map[string]bool {
		m := map[string]bool{}
		for _, p := range ps {
			m[p.name] = true
		}
		return m
	}
	for _, u := range []sd.UnitStatus{
		{Name: "site-a.service", LoadState: "loaded", ActiveState: "active"},
		{Name: "site-a.service", LoadState: "loaded", ActiveState: "inactive"},
		{Name: "site-a.socket", LoadState: "loaded", ActiveState: "active"},
		{Name: "site-a-reload.path", LoadState: "loaded", ActiveState: "active"},
	} {
		for what, want := range map[string]propsFunc{"named": namedProps, "full": fullProps} {
			if got := names(want(u)); !got["FragmentPath"] || !got["DropInPaths"] {
				t.Errorf("%s %s (%s): reads %v, want FragmentPath and DropInPaths", what, u.Name, u.ActiveState, got)
			}
		}
		if got := names(briefProps(u)); got["FragmentPath"] || got["DropInPaths"] {
			t.Errorf("list reads the files of %s: %v", u.Name, got)
		}
	}
	var got Unit
	for _, p := range fileProps {
		switch p.name {
		case "FragmentPath":
			p.set(&got, dbus.MakeVariant("/etc/systemd/system/site-a.service"))
		case "DropInPaths":
			p.set(&got, dbus.MakeVariant([]string{"/etc/systemd/system/site-a.service.d/override.conf"}))
		}
	}
	if got.Fragment != "/etc/systemd/system/site-a.service" || len(got.DropIns) != 1 {
		t.Errorf("read %+v", got)
	}
}
