package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
	"testing"

	"github.com/sitectl/sitectl/internal/control"
	"github.com/sitectl/sitectl/internal/modes"
	"github.com/sitectl/sitectl/internal/site"
	"github.com/sitectl/sitectl/internal/units"
)

// fakeSystemd keeps unit states; a unit it has no entry for is not found.
type fakeSystemd struct {
	active      map[string]string // unit → active state
	startErr    error             // every start fails with it
	failOnly    string            // with startErr: only this unit's start fails
	reloadLoads []string          // units a daemon-reload loads
	loaded      map[string]bool
	stale       bool // the units are older than the site file
	reloads     int
	calls       []string
	asked       []string // units NeedDaemonReload was asked of
}

func (f *fakeSystemd) unit(n string) control.Unit {
	load := "not-found"
	if f.loaded[n] {
		load = "loaded"
	}
	st := f.active[n]
	if st == "" {
		st = "inactive"
	}
	return control.Unit{Name: n, LoadState: load, ActiveState: st}
}

func (f *fakeSystemd) States(_ context.Context, names ...string) ([]control.Unit, error) {
	var out []control.Unit
	for _, n := range names {
		out = append(out, f.unit(n))
	}
	return out, nil
}

func (f *fakeSystemd) StatesMatching(_ context.Context, patterns ...string) ([]control.Unit, error) {
	var out []control.Unit
	for n := range f.active {
		for _, p := range patterns {
			if ok, _ := path.Match(p, n); ok {
				out = append(out, f.unit(n))
				break
			}
		}
	}
	return out, nil
}

func (f *fakeSystemd) Start(_ context.Context, u string) error {
	f.calls = append(f.calls, "start "+u)
	if f.startErr != nil && (f.failOnly == "" || f.failOnly == u) {
		f.active[u] = "failed"
		return f.startErr
	}
	f.active[u] = "active"
	if u == "site-karl.socket" {
		f.active["site-karl-reload.path"] = "active" // its Wants=
	}
	return nil
}

func (f *fakeSystemd) Stop(_ context.Context, u string) error {
	f.calls = append(f.calls, "stop "+u)
	f.active[u] = "inactive"
	return nil
}

func (f *fakeSystemd) ResetFailed(_ context.Context, u string) error {
	if f.active[u] == "failed" {
		f.active[u] = "inactive"
	}
	return nil
}

func (f *fakeSystemd) DaemonReload(context.Context) error {
	f.calls = append(f.calls, "daemon-reload")
	f.reloads++
	f.stale = false
	for _, u := range f.reloadLoads {
		f.loaded[u] = true
	}
	return nil
}

func (f *fakeSystemd) NeedDaemonReload(_ context.Context, u string) (bool, error) {
	f.asked = append(f.asked, u)
	return f.stale || !f.loaded[u], nil
}

var karlUnits = []string{"site-karl.socket", "site-karl.service", "site-karl-reload.path", "site-karl-reload.service"}

func karl(t *testing.T) *site.Site {
	s, err := site.Parse("/etc/sitectl/sites/karl.toml", []byte("exec = [\"/bin/app\"]\nreload_trigger = \"/srv/karl/restart.txt\"\n[[listen]]\naddress = \"127.0.0.1:8080\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func newEnv(t *testing.T) (*Env, *fakeSystemd) {
	f := &fakeSystemd{active: map[string]string{}, loaded: map[string]bool{}}
	for _, u := range karlUnits {
		f.loaded[u] = true
	}
	return &Env{Store: modes.Store{Dir: t.TempDir()}, Systemd: f}, f
}

// enable starts the sockets and the trigger; again, it changes nothing
// and asks systemd once about each unit; units older than the site file
// are reloaded first.
func TestEnableIsIdempotent(t *testing.T) {
	e, f := newEnv(t)
	f.stale = true
	rep, err := Enable(context.Background(), e, karl(t))
	if err != nil || !rep.Changed || !rep.InService || !rep.DaemonReload || !slices.Equal(rep.Started, []string{"site-karl.socket"}) {
		t.Fatalf("first enable: %+v %v", rep, err)
	}
	if want := "daemon-reload,start site-karl.socket"; strings.Join(f.calls, ",") != want {
		t.Errorf("calls %v, want %s", f.calls, want)
	}
	f.calls, f.asked = nil, nil
	rep, err = Enable(context.Background(), e, karl(t))
	if err != nil || rep.Changed || !rep.InService || len(f.calls) != 0 {
		t.Errorf("second enable: %+v %v, calls %v", rep, err, f.calls)
	}
	// Each unit is asked once whether it is older than the file.
	if asked := slices.Compact(slices.Sorted(slices.Values(f.asked))); len(asked) != len(f.asked) || len(asked) == 0 {
		t.Errorf("second enable asked systemd %v", f.asked)
	}
}

// enable of a site in service whose units all run, but are older than
// its file, leaves them as they run: its daemon-reload would close the
// sockets of a socket unit whose listeners changed. A note says how the
// file is applied.
func TestEnableLeavesARunningSiteAsItRuns(t *testing.T) {
	e, f := newEnv(t)
	f.active["site-karl.socket"], f.active["site-karl-reload.path"] = "active", "active"
	f.stale = true
	e.SocketsMissing = func(*site.Site) ([]string, error) { return []string{"127.0.0.1:8080"}, nil }
	rep, err := Enable(context.Background(), e, karl(t))
	if err != nil || rep.Changed || !rep.InService || rep.DaemonReload || len(f.calls) != 0 {
		t.Fatalf("enable: %+v %v, calls %v", rep, err, f.calls)
	}
	if n := strings.Join(rep.Notes, " "); !strings.Contains(n, "`systemctl daemon-reload && sitectl restart karl` applies the file") {
		t.Errorf("notes %q", rep.Notes)
	}
	// Out of service, enable puts it back with its units reloaded.
	if _, err := e.Store.SetOutOfService("karl", true, 0); err != nil {
		t.Fatal(err)
	}
	e.SocketsMissing = nil
	if rep, err := Enable(context.Background(), e, karl(t)); err != nil || !rep.DaemonReload || !rep.InService {
		t.Errorf("enable of a site out of service: %+v %v", rep, err)
	}
}

// enable does not say a site is in service whose active socket unit
// holds no socket (its listeners changed, and a daemon-reload closed
// them): it says the command that opens them again.
func TestEnableChecksTheSockets(t *testing.T) {
	e, f := newEnv(t)
	f.active["site-karl.socket"] = "active"
	e.SocketsMissing = func(*site.Site) ([]string, error) { return []string{"127.0.0.1:8080"}, nil }
	_, err := Enable(context.Background(), e, karl(t))
	if err == nil || !strings.Contains(err.Error(), "systemd holds no socket for 127.0.0.1:8080") || !strings.Contains(err.Error(), "run `sitectl restart karl`, which restarts site-karl.socket") {
		t.Fatalf("enable of a socket unit without its socket: %v", err)
	}
	e.SocketsMissing = func(*site.Site) ([]string, error) { return nil, nil }
	if rep, err := Enable(context.Background(), e, karl(t)); err != nil || !rep.InService {
		t.Errorf("with its socket: %+v %v", rep, err)
	}
}

// disable stops the trigger first, then the service, then the socket,
// marks the site and reloads once; again, it changes nothing; enable
// then clears the mark.
func TestDisableMarksAndStopsInOrder(t *testing.T) {
	e, f := newEnv(t)
	for _, u := range karlUnits[:3] {
		f.active[u] = "active"
	}
	rep, err := Disable(context.Background(), e, karl(t))
	if err != nil || !rep.Changed || rep.InService {
		t.Fatalf("disable: %+v %v", rep, err)
	}
	if want := "stop site-karl-reload.path,stop site-karl.service,stop site-karl.socket,daemon-reload"; strings.Join(f.calls, ",") != want {
		t.Errorf("calls %v, want %s", f.calls, want)
	}
	if out, _, _ := e.Store.OutOfService("karl"); !out {
		t.Error("no out-of-service mark")
	}
	f.calls = nil
	if rep, err := Disable(context.Background(), e, karl(t)); err != nil || rep.Changed || len(f.calls) != 0 {
		t.Errorf("second disable: %+v %v %v", rep, err, f.calls)
	}
	if rep, err := Enable(context.Background(), e, karl(t)); err != nil || !rep.Changed || !rep.DaemonReload {
		t.Errorf("enable after disable: %+v %v", rep, err)
	}
	if out, _, _ := e.Store.OutOfService("karl"); out {
		t.Error("enable left the mark")
	}
}

// remove refuses while the file is there; then it stops what runs,
// unloads the generated units and forgets the state; again, nothing.
func TestRemoveForgetsTheSite(t *testing.T) {
	e, f := newEnv(t)
	s := karl(t)
	f.active["site-karl.socket"], f.active["site-karl.service"] = "active", "failed"
	if err := e.Store.Write(s, s.Modes[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := Remove(context.Background(), e, "karl", false); err != ErrFileExists {
		t.Fatalf("remove with the file there: %v", err)
	}
	rep, err := Remove(context.Background(), e, "karl", true)
	if err != nil || !rep.Changed || !rep.StateForgotten || !rep.DaemonReload || !slices.Equal(rep.Stopped, []string{"site-karl.socket"}) {
		t.Fatalf("remove: %+v %v", rep, err)
	}
	if _, ok, _ := e.Store.Current("karl"); ok {
		t.Error("the mode survived remove")
	}
	for u := range f.loaded {
		f.loaded[u] = false // the daemon-reload unloaded them
	}
	if rep, err := Remove(context.Background(), e, "karl", true); err != nil || rep.Changed {
		t.Errorf("second remove: %+v %v", rep, err)
	}
}

// A start that fails leaves the site wanted at boot (the marker is
// gone): enable says so, and the command that marks it again.
func TestEnableThatCannotStartSaysWhereTheSiteStands(t *testing.T) {
	e, f := newEnv(t)
	if _, err := Disable(context.Background(), e, karl(t)); err != nil {
		t.Fatal(err)
	}
	f.startErr = &control.JobError{Verb: "start", Unit: "site-karl.socket", Result: "failed"}
	rep, err := Enable(context.Background(), e, karl(t))
	want := "site karl: site-karl.socket did not start: start of site-karl.socket ended with result \"failed\"; the site is no longer marked out of service, so its sockets start at boot (`sitectl disable karl` marks it again)"
	if err == nil || err.Error() != want || rep.InService {
		t.Errorf("enable whose start fails: %+v\n%v\nwant %s", rep, err, want)
	}
	if out, _, _ := e.Store.OutOfService("karl"); out {
		t.Error("the marker is still there, which the error says is gone")
	}
}

// A start that fails of a site that was never marked out of service:
// nothing about boot changed, and enable does not say the mark is gone.
func TestEnableThatCannotStartUnmarkedSaysNothingOfAMark(t *testing.T) {
	e, f := newEnv(t)
	f.startErr = &control.JobError{Verb: "start", Unit: "site-karl.socket", Result: "failed"}
	_, err := Enable(context.Background(), e, karl(t))
	if err == nil || strings.Contains(err.Error(), "no longer marked out of service") || !strings.Contains(err.Error(), "site-karl.socket did not start") {
		t.Errorf("enable whose start fails, never disabled: %v", err)
	}
}

// A stopped site whose address a program of the host listens on: the
// socket's start would fail with "resources", naming no address. enable
// refuses first, naming it, and changes nothing (a site out of service
// stays marked).
func TestEnableOfAListenerInUseIsRefusedFirst(t *testing.T) {
	e, f := newEnv(t)
	if _, err := Disable(context.Background(), e, karl(t)); err != nil {
		t.Fatal(err)
	}
	f.calls = nil
	e.Bindable = func(l site.Listener) error {
		return fmt.Errorf("listen tcp %s: bind: address already in use", l.Address)
	}
	rep, err := Enable(context.Background(), e, karl(t))
	if err == nil || !strings.Contains(err.Error(), "site-karl.socket cannot listen on 127.0.0.1:8080 now") ||
		!strings.Contains(err.Error(), "address already in use; nothing was done") || rep.Changed {
		t.Fatalf("enable: %+v %v", rep, err)
	}
	if len(f.calls) != 0 {
		t.Errorf("enable did something: %v", f.calls)
	}
	if out, _, _ := e.Store.OutOfService("karl"); !out {
		t.Error("the out-of-service mark is gone")
	}
	// Its own socket listening there: not bound again.
	f.active["site-karl.socket"] = "active"
	if _, err := Enable(context.Background(), e, karl(t)); err != nil {
		t.Errorf("enable with the site's own socket listening: %v", err)
	}
}

// namedSite is a site named name with one listener, on address.
func namedSite(t *testing.T, name, address string) *site.Site {
	t.Helper()
	s, err := site.ParseNamed("/etc/sitectl/sites/"+name+".toml", name, []byte("exec = [\"/bin/app\"]\n[[listen]]\naddress = \""+address+"\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// A renamed site file: karl.toml became carl.toml, which declares karl's
// listener. remove karl starts carl's socket once karl's let go of the
// port, and only carl's: a site on another port, or karl itself, is not
// started; a site that declares it but is out of service stays so, with
// a note. Without a copy of what karl held (its service never started),
// the listeners PID 1 holds for a site whose own socket is not active are
// karl's; without either, nothing is handed over.
func TestRemoveHandsTheListenersToTheRenamedSite(t *testing.T) {
	for _, tc := range []struct {
		name        string
		carlOut     bool
		keepCopy    bool
		pid1Holds   string // a listener PID 1 holds a socket for (karl's socket)
		carlListens bool
		wantStarted []string
		wantTaken   []string
		wantNotes   int
	}{
		{name: "renamed", keepCopy: true, wantStarted: []string{"site-carl.socket"}, wantTaken: []string{"carl"}},
		{name: "renamed, out of service", carlOut: true, keepCopy: true, wantStarted: []string{}, wantTaken: []string{}, wantNotes: 1},
		{name: "no copy: PID 1 holds carl's listener", pid1Holds: "127.0.0.1:8080", wantStarted: []string{"site-carl.socket"}, wantTaken: []string{"carl"}},
		// Nothing held (after a daemon-reload systemd closed karl's
		// socket): every site in service that does not listen gets a
		// note, other's socket being stopped here too.
		{name: "no copy, carl's socket listens already", carlListens: true, wantStarted: []string{}, wantTaken: []string{}, wantNotes: 1},
		{name: "no copy, nothing held", wantStarted: []string{}, wantTaken: []string{}, wantNotes: 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, f := newEnv(t)
			f.active["site-karl.socket"], f.active["site-karl.service"] = "active", "active"
			if tc.carlListens {
				f.active["site-carl.socket"] = "active"
			}
			// PID 1 holds a socket for each active socket unit's
			// listener, and for pid1Holds.
			e.SocketsMissing = func(s *site.Site) ([]string, error) {
				var missing []string
				for _, l := range s.Listeners {
					if f.active[units.SocketNameOf(s, l)] != "active" && l.Endpoint() != tc.pid1Holds {
						missing = append(missing, l.Endpoint())
					}
				}
				return missing, nil
			}
			f.loaded["site-carl.socket"], f.loaded["site-other.socket"] = true, true
			k, carl, other := karl(t), namedSite(t, "carl", "127.0.0.1:8080"), namedSite(t, "other", "127.0.0.1:8081")
			if err := e.Store.Write(k, k.Modes[0]); err != nil {
				t.Fatal(err)
			}
			if tc.keepCopy {
				if err := e.Store.SaveLastGood(k, []byte("exec = [\"/bin/app\"]\n[[listen]]\naddress = \"127.0.0.1:8080\"\n")); err != nil {
					t.Fatal(err)
				}
			}
			if tc.carlOut {
				if _, err := e.Store.SetOutOfService("carl", true, 0); err != nil {
					t.Fatal(err)
				}
			}
			e.Sites = func() ([]*site.Site, error) { return []*site.Site{other, carl, k}, nil }
			rep, err := Remove(context.Background(), e, "karl", true)
			if err != nil || !slices.Equal(rep.Started, tc.wantStarted) || !slices.Equal(rep.TakenOverBy, tc.wantTaken) || len(rep.Notes) != tc.wantNotes {
				t.Fatalf("remove: %+v %v", rep, err)
			}
			if tc.wantNotes > 0 && !tc.carlListens && !slices.ContainsFunc(rep.Notes, func(n string) bool { return strings.Contains(n, "`sitectl enable carl`") }) {
				t.Errorf("no note says how to start carl: %q", rep.Notes)
			}
			// The old socket let go of the port before the new one listens.
			stop, start := slices.Index(f.calls, "stop site-karl.socket"), slices.Index(f.calls, "start site-carl.socket")
			if start >= 0 && (stop < 0 || stop > start) {
				t.Errorf("carl's socket started before karl's stopped: %v", f.calls)
			}
			if f.active["site-other.socket"] == "active" || f.active["site-karl.socket"] == "active" {
				t.Errorf("remove started a site that does not declare karl's listener: %v", f.calls)
			}
		})
	}
}

// A heir's socket that does not start: the error names both sites and
// what to do, and the state stays, so that a second remove hands the
// listeners over.
func TestRemoveSaysWhenTheHeirDoesNotTakeOver(t *testing.T) {
	e, f := newEnv(t)
	f.active["site-karl.socket"], f.active["site-karl.service"] = "active", "active"
	f.loaded["site-carl.socket"] = true
	k := karl(t)
	if err := e.Store.SaveLastGood(k, []byte("exec = [\"/bin/app\"]\n[[listen]]\naddress = \"127.0.0.1:8080\"\n")); err != nil {
		t.Fatal(err)
	}
	e.Sites = func() ([]*site.Site, error) { return []*site.Site{namedSite(t, "carl", "127.0.0.1:8080")}, nil }
	f.startErr, f.failOnly = &control.JobError{Verb: "start", Unit: "site-carl.socket", Result: "failed"}, "site-carl.socket"
	_, err := Remove(context.Background(), e, "karl", true)
	if err == nil || !strings.Contains(err.Error(), "site carl, whose file declares the listeners of site karl, did not take them over") ||
		!strings.Contains(err.Error(), "site-carl.socket did not start") || !strings.Contains(err.Error(), "`sitectl remove karl` hands them over") {
		t.Fatalf("remove with a socket that fails: %v", err)
	}
	if good, err := e.Store.ReadLastGood("karl"); err != nil || good == nil {
		t.Fatalf("karl's state was forgotten: %v %v", good, err)
	}
	f.startErr = nil
	for u := range f.active {
		if strings.HasPrefix(u, "site-karl") {
			delete(f.active, u) // systemd unloaded them as they stopped
		}
	}
	rep, err := Remove(context.Background(), e, "karl", true)
	if err != nil || !slices.Equal(rep.TakenOverBy, []string{"carl"}) || !rep.StateForgotten {
		t.Fatalf("the second remove: %+v %v", rep, err)
	}
}

// A heir with another listener that cannot be bound (another program
// holds its port) could not start once the old sockets stopped: remove
// refuses before anything, and the old site serves on.
func TestRemoveRefusesAHeirThatCannotBind(t *testing.T) {
	e, f := newEnv(t)
	f.active["site-karl.socket"] = "active"
	f.loaded["site-carl.socket"], f.loaded["site-carl@admin.socket"] = true, true
	k := karl(t)
	if err := e.Store.SaveLastGood(k, []byte("exec = [\"/bin/app\"]\n[[listen]]\naddress = \"127.0.0.1:8080\"\n")); err != nil {
		t.Fatal(err)
	}
	carl, err := site.ParseNamed("/etc/sitectl/sites/carl.toml", "carl", []byte("exec = [\"/bin/app\"]\n[[listen]]\naddress = \"127.0.0.1:8080\"\n[[listen]]\nname = \"admin\"\naddress = \"127.0.0.1:9090\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	e.Sites = func() ([]*site.Site, error) { return []*site.Site{carl}, nil }
	var asked []string
	e.Bindable = func(l site.Listener) error {
		asked = append(asked, l.Endpoint())
		if l.Address == "127.0.0.1:9090" {
			return errors.New("address already in use")
		}
		return nil
	}
	_, err = Remove(context.Background(), e, "karl", true)
	if err == nil || !strings.Contains(err.Error(), "its listener 127.0.0.1:9090 cannot be bound: address already in use; nothing was done") {
		t.Fatalf("remove: %v", err)
	}
	if len(f.calls) != 0 || f.active["site-karl.socket"] != "active" {
		t.Errorf("remove changed something: %v", f.calls)
	}
	if !slices.Equal(asked, []string{"127.0.0.1:9090"}) {
		t.Errorf("asked about %v, want only the listener karl did not hold", asked)
	}
	// carl's own socket listening on it already (an enable tried before
	// the remove) holds it: no refusal.
	f.active["site-carl@admin.socket"] = "active"
	rep, err := Remove(context.Background(), e, "karl", true)
	if err != nil || !slices.Equal(rep.TakenOverBy, []string{"carl"}) {
		t.Fatalf("remove with carl's admin socket listening: %+v %v", rep, err)
	}
}

// The heir's units are loaded before the old ones stop: the daemon-reload
// is not in the moment between the two sockets.
func TestRemoveLoadsTheHeirsUnitsBeforeItStops(t *testing.T) {
	e, f := newEnv(t)
	f.active["site-karl.socket"] = "active"
	k := karl(t)
	if err := e.Store.SaveLastGood(k, []byte("exec = [\"/bin/app\"]\n[[listen]]\naddress = \"127.0.0.1:8080\"\n")); err != nil {
		t.Fatal(err)
	}
	e.Sites = func() ([]*site.Site, error) { return []*site.Site{namedSite(t, "carl", "127.0.0.1:8080")}, nil }
	// carl's socket unit is not loaded: the operator did not reload.
	f.reloadLoads = []string{"site-carl.socket"}
	rep, err := Remove(context.Background(), e, "karl", true)
	if err != nil || !slices.Equal(rep.TakenOverBy, []string{"carl"}) {
		t.Fatalf("remove: %+v %v", rep, err)
	}
	reload, stop, start := slices.Index(f.calls, "daemon-reload"), slices.Index(f.calls, "stop site-karl.socket"), slices.Index(f.calls, "start site-carl.socket")
	if reload < 0 || stop < 0 || start != stop+1 || reload > stop {
		t.Errorf("calls %v: want a daemon-reload, then karl's socket stopped and carl's started right after", f.calls)
	}
}
