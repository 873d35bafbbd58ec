package flow

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sitectl/sitectl/internal/control"
	"github.com/sitectl/sitectl/internal/modes"
	"github.com/sitectl/sitectl/internal/site"
	"github.com/sitectl/sitectl/internal/sitecheck"
	"github.com/sitectl/sitectl/internal/sockheld"
	"github.com/sitectl/sitectl/internal/units"
)

func mustSite(t *testing.T, file, text string) *site.Site {
	t.Helper()
	r := site.LoadBytes(file, "shop", []byte(text), nil)
	if len(r.Errors) > 0 {
		t.Fatal(r.Errors)
	}
	return r.Sites[0]
}

// Only what a site's units say needs a full restart: not where the file
// was read from, not its modes (a handover renders the mode afresh).
func TestFullRestartReason(t *testing.T) {
	const base = "exec = [\"/bin/app\"]\ndrain_timeout = \"10s\"\n[[listen]]\naddress = \"127.0.0.1:8080\"\n"
	running := mustSite(t, "/var/lib/sitectl/sites/shop/last-good.toml", base+"[modes.ro]\nenvironment = { RO = \"1\" }\n")
	for _, tc := range []struct{ name, now, want string }{
		{"same", base + "[modes.ro]\nenvironment = { RO = \"1\" }\n", ""},
		{"a mode changed", base + "[modes.ro]\nenvironment = { RO = \"2\" }\n", ""},
		{"handoff", "handoff = \"overlap\"\n" + base, "handoff changed since the service started, which a handover inside it cannot apply: restarting fully"},
		{"keep_previous", "handoff = \"overlap\"\nkeep_previous = \"1m\"\n" + base, "handoff, keep_previous changed since the service started, which a handover inside it cannot apply: restarting fully"},
		{"listener and timeout", "exec = [\"/bin/app\"]\ndrain_timeout = \"7s\"\n[[listen]]\naddress = \"127.0.0.1:8081\"\n", "listen, drain_timeout changed since the service started, which a handover inside it cannot apply: restarting fully"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			now := mustSite(t, "/etc/sitectl/sites/shop.toml", tc.now)
			if got := FullRestartReason(running, now, units.Options{}); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
	if got := FullRestartReason(nil, running, units.Options{}); got != "" {
		t.Errorf("without a copy: %q", got)
	}
}

// lostUntilReopened is SocketsMissing of a site whose socket units lost
// the given listeners, until the restart restarts any socket unit.
func lostUntilReopened(f *fakeSystemd, lost ...string) func(*site.Site) ([]string, error) {
	return func(*site.Site) ([]string, error) {
		if len(f.socketRestarts) > 0 {
			return nil, nil
		}
		return lost, nil
	}
}

// A site whose active socket unit holds no socket (its listeners changed
// at a daemon-reload while it ran) is restarted with that socket unit:
// the service stopped first, then the socket unit restarted, which binds
// the listeners its unit declares now, then the service started and
// verified. Without that the app would start without LISTEN_FDS. The
// report says what was done.
func TestRestartOpensLostSocketsAgain(t *testing.T) {
	e, f := newEnv(t)
	s := testSite(t)
	e.SocketsMissing = lostUntilReopened(f, "127.0.0.1:8080")
	rep, err := Restart(context.Background(), e, s, time.Minute)
	if err != nil || rep.Result != modes.ResultOK {
		t.Fatalf("restart: %v, %+v", err, rep)
	}
	if strings.Join(f.stops, ",") != "site-karl.service" || strings.Join(f.socketRestarts, ",") != "site-karl.socket" || len(f.restarts) != 1 {
		t.Errorf("stops %v, socket restarts %v, restarts %v", f.stops, f.socketRestarts, f.restarts)
	}
	if w := strings.Join(rep.Warnings, "\n"); !strings.Contains(w, "systemd holds no socket for 127.0.0.1:8080") || !strings.Contains(w, "site-karl.socket restarted with the service") {
		t.Errorf("warnings %q", rep.Warnings)
	}
	// With its sockets held, a restart restarts the service alone.
	e.SocketsMissing = func(*site.Site) ([]string, error) { return nil, nil }
	if _, err := Restart(context.Background(), e, s, time.Minute); err != nil || len(f.restarts) != 2 || len(f.socketRestarts) != 1 || len(f.stops) != 1 {
		t.Errorf("with its sockets held: %v, restarts %v, socket restarts %v, stops %v", err, f.restarts, f.socketRestarts, f.stops)
	}
}

// The sockets a restart opened again are looked for once the socket
// units restarted: "ok" is what was seen, and that check is what points
// the site's hint at the new sockets, which need not have the old ones'
// numbers among PID 1's open files. A socket unit that restarted and
// still holds none fails the change.
func TestReopenedSocketsAreSeenHeld(t *testing.T) {
	e, f := newEnv(t)
	s := testSite(t)
	lost := lostUntilReopened(f, "127.0.0.1:8080")
	checkedAfter := 0
	e.SocketsMissing = func(s *site.Site) ([]string, error) {
		if len(f.socketRestarts) > 0 {
			checkedAfter++
		}
		return lost(s)
	}
	if _, err := Restart(context.Background(), e, s, time.Minute); err != nil || checkedAfter == 0 {
		t.Fatalf("restart: %v; checks after the socket unit restarted: %d", err, checkedAfter)
	}

	e, f = newEnv(t)
	e.SocketsMissing = func(*site.Site) ([]string, error) { return []string{"127.0.0.1:8080"}, nil }
	rep, err := Restart(context.Background(), e, s, time.Minute)
	if err == nil || rep.Result == modes.ResultOK || !strings.Contains(err.Error(), "site-karl.socket restarted, yet systemd holds no socket for 127.0.0.1:8080") {
		t.Errorf("a socket unit that restarted and holds nothing: %v, %+v", err, rep)
	}
	if len(f.socketRestarts) == 0 {
		t.Errorf("socket restarts %v", f.socketRestarts)
	}
}

// A lost listener that another process listens on (a site that moved away
// from the address and still runs, two sites that swapped ports) would
// fail the socket unit's restart after the service was stopped, and the
// rollback with it: the change is refused first, nothing stopped or
// recorded, with how to free it. The site's own service's processes are
// passed as its own.
func TestLostListenerInUseIsRefusedBeforeAnythingStops(t *testing.T) {
	e, f := newEnv(t)
	s := testSite(t)
	e.SocketsMissing = lostUntilReopened(f, "127.0.0.1:8080")
	var gotOwn []int
	e.Procs = func(pid int) ([]int, error) { return []int{pid, 4242}, nil }
	e.Unbindable = func(_ *site.Site, lost []string, own []int) ([]string, error) {
		gotOwn = own
		return []string{lost[0] + ": another process listens there"}, nil
	}
	rep, err := Restart(context.Background(), e, s, time.Minute)
	if !errors.Is(err, ErrListenerInUse) || !strings.Contains(err.Error(), "127.0.0.1:8080: another process listens there") ||
		!strings.Contains(err.Error(), "nothing was done") || !strings.Contains(err.Error(), "`sitectl restart karl`") {
		t.Fatalf("err = %v", err)
	}
	if len(f.restarts)+len(f.stops)+len(f.socketRestarts) != 0 || rep.Changed {
		t.Errorf("something was done: restarts %v, stops %v, socket restarts %v, report %+v", f.restarts, f.stops, f.socketRestarts, rep)
	}
	if len(gotOwn) != 2 || gotOwn[1] != 4242 {
		t.Errorf("own processes %v, want the service's", gotOwn)
	}
	// Free again: the restart goes on as before.
	e.Unbindable = func(*site.Site, []string, []int) ([]string, error) { return nil, nil }
	if _, err := Restart(context.Background(), e, s, time.Minute); err != nil || len(f.socketRestarts) != 1 {
		t.Errorf("with the address free: %v, socket restarts %v", err, f.socketRestarts)
	}
}

// Units older than the site file would restart the socket unit with the
// listeners systemd loaded, not the file's: the change is refused with
// the commands that apply the file, and nothing is done or recorded.
func TestLostSocketsWithStaleUnitsRefuseAndSayTheCommand(t *testing.T) {
	e, f := newEnv(t)
	s := testSite(t)
	e.Systemd = &reloadingSystemd{fakeSystemd: f, stale: true}
	e.SocketsMissing = lostUntilReopened(f, "127.0.0.1:8080")
	_, err := Restart(context.Background(), e, s, time.Minute)
	if !errors.Is(err, ErrSocketLost) || !strings.Contains(err.Error(), "nothing was done: run `systemctl daemon-reload && sitectl restart karl`") {
		t.Fatalf("err = %v", err)
	}
	if len(f.restarts)+len(f.stops)+len(f.socketRestarts) != 0 {
		t.Errorf("restarts %v, stops %v, socket restarts %v", f.restarts, f.stops, f.socketRestarts)
	}
	if st, _ := e.Store.ReadState("karl"); len(st.History) != 0 || st.Pending != nil {
		t.Errorf("recorded: %+v", st)
	}
}

// A handover inside the running service keeps the sockets it has: an
// overlap site's reload with lost sockets is refused, and names the
// restart that opens them.
func TestLostSocketsRefuseAHandover(t *testing.T) {
	e, f := newEnv(t)
	s := overlapSite(t, "")
	e.SocketsMissing = lostUntilReopened(f, "127.0.0.1:8080")
	_, err := Reload(context.Background(), e, s, time.Minute)
	if !errors.Is(err, ErrSocketLost) || !strings.Contains(err.Error(), "nothing was done: `sitectl restart karl` restarts site-karl.socket") {
		t.Fatalf("err = %v", err)
	}
	if len(f.reloads)+len(f.restarts)+len(f.stops)+len(f.socketRestarts) != 0 {
		t.Errorf("reloads %v, restarts %v, stops %v, socket restarts %v", f.reloads, f.restarts, f.stops, f.socketRestarts)
	}
	if _, err := Restart(context.Background(), e, s, time.Minute); err != nil || len(f.socketRestarts) != 1 {
		t.Errorf("restart: %v, socket restarts %v", err, f.socketRestarts)
	}
}

// A named listener has a socket unit of its own: its socket is lost only
// when that unit is active (an inactive one opens it when the service
// starts it), and only that unit is restarted.
func TestLostSocketOfANamedListener(t *testing.T) {
	e, f := newEnv(t)
	s, err := site.Parse("/etc/sitectl/sites/karl.toml", []byte("exec = [\"/bin/app\"]\n[[listen]]\naddress = \"127.0.0.1:8080\"\n[[listen]]\nname = \"admin\"\naddress = \"127.0.0.1:8081\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	e.SocketsMissing = lostUntilReopened(f, "127.0.0.1:8081")
	f.socketStates = map[string]string{"site-karl@admin.socket": "inactive"}
	if _, err := Restart(context.Background(), e, s, time.Minute); err != nil || len(f.restarts) != 1 || len(f.socketRestarts) != 0 {
		t.Errorf("the named listener's socket unit inactive: %v, restarts %v, socket restarts %v", err, f.restarts, f.socketRestarts)
	}
	f.socketStates = nil
	if _, err := Restart(context.Background(), e, s, time.Minute); err != nil || strings.Join(f.socketRestarts, ",") != "site-karl@admin.socket" {
		t.Errorf("the named listener's socket unit active: %v, socket restarts %v", err, f.socketRestarts)
	}
}

// A socket unit that does not listen again (its new port is taken) fails
// the restart, which rolls back like any failed start: it is not taken
// for a stop by someone else, although the unit is not active.
func TestReopenedSocketThatFailsRollsBack(t *testing.T) {
	e, f := newEnv(t)
	s := testSite(t)
	f.socketFails = true
	e.SocketsMissing = lostUntilReopened(f, "127.0.0.1:8080")
	rep, err := Restart(context.Background(), e, s, time.Minute)
	if !errors.Is(err, ErrRolledBack) || rep.Result != modes.ResultRolledBack || !strings.Contains(rep.Reason, "site-karl.socket did not listen again") {
		t.Fatalf("restart: %v, %+v", err, rep)
	}
	if len(f.restarts) != 1 {
		t.Errorf("restarts %v", f.restarts)
	}
	// The warnings are of what was done: no socket unit listens again.
	if w := strings.Join(rep.Warnings, "\n"); strings.Contains(w, "restarted with the service") {
		t.Errorf("warnings claim the socket was opened again: %q", rep.Warnings)
	}
}

// When the sockets cannot be checked (a table any local user can make too
// large to read), the change goes on without the check, and says so:
// refusing would let anyone stop every change.
func TestSocketsUnknownDoNotStopAChange(t *testing.T) {
	e, f := newEnv(t)
	var said []string
	e.Progress = func(format string, args ...any) { said = append(said, fmt.Sprintf(format, args...)) }
	e.SocketsMissing = func(*site.Site) ([]string, error) {
		return nil, fmt.Errorf("/proc/1/net/unix is larger than 16777216 bytes: %w", sockheld.ErrUnknown)
	}
	if _, err := Restart(context.Background(), e, testSite(t), time.Minute); err != nil || len(f.restarts) != 1 {
		t.Fatalf("restart with the sockets unknown: %v, restarts %v", err, f.restarts)
	}
	if !strings.Contains(strings.Join(said, "\n"), "going on without that check") {
		t.Errorf("nothing said of the check: %q", said)
	}
}

// A site taken out of service is not changed: starting its service would
// start its sockets and put it back in service, which only enable does.
func TestOutOfServiceSiteIsNotChanged(t *testing.T) {
	e, f := newEnv(t)
	s := testSite(t)
	if _, err := e.Store.SetOutOfService(s.Name, true, 0); err != nil {
		t.Fatal(err)
	}
	for _, change := range []func() error{
		func() error { _, err := Restart(context.Background(), e, s, time.Minute); return err },
		func() error {
			_, err := SwitchMode(context.Background(), e, s, "normal", Options{Force: true})
			return err
		},
	} {
		if err := change(); !errors.Is(err, ErrOutOfService) || !strings.Contains(err.Error(), "nothing was done") {
			t.Errorf("a change of a site out of service: %v", err)
		}
	}
	if len(f.restarts) != 0 {
		t.Errorf("restarted: %v", f.restarts)
	}
	if st, _ := e.Store.ReadState(s.Name); len(st.History) != 0 || st.Pending != nil {
		t.Errorf("recorded: %+v", st)
	}
}

// reloadingSystemd is fakeSystemd with units older than the site file,
// until a daemon-reload.
type reloadingSystemd struct {
	*fakeSystemd
	stale   bool
	reloads int
}

func (r *reloadingSystemd) NeedDaemonReload(context.Context, string) (bool, error) {
	return r.stale, nil
}

func (r *reloadingSystemd) DaemonReload(context.Context) error {
	r.reloads++
	r.stale = false
	return nil
}

// A listener changed in the file: the daemon-reload of a full restart
// makes systemd close the old sockets, so they are looked for after it,
// and the full restart opens them again with the socket unit.
func TestSocketsReopenedAfterTheFlowsDaemonReload(t *testing.T) {
	e, f := newEnv(t)
	s := overlapSite(t, "")
	r := &reloadingSystemd{fakeSystemd: f, stale: true}
	e.Systemd = r
	started := *s
	started.Listeners = []site.Listener{{Kind: site.TCP, Address: "127.0.0.1:9999", Name: "http"}}
	e.Started = func(string) (*site.Site, error) { return &started, nil }
	e.SocketsMissing = func(*site.Site) ([]string, error) {
		if r.reloads > 0 && len(f.socketRestarts) == 0 {
			return []string{"127.0.0.1:8080"}, nil
		}
		return nil, nil
	}
	rep, err := Reload(context.Background(), e, s, time.Minute)
	if err != nil || r.reloads != 1 || rep.FullRestart == "" {
		t.Fatalf("reload: %v (%d daemon-reloads), %+v", err, r.reloads, rep)
	}
	if strings.Join(f.socketRestarts, ",") != "site-karl.socket" || len(f.restarts) != 1 || len(f.reloads) != 0 {
		t.Errorf("socket restarts %v, restarts %v, reloads %v", f.socketRestarts, f.restarts, f.reloads)
	}
}

// failingFinish is a Writer whose Finish fails: a full or read-only /var.
type failingFinish struct{ modes.Writer }

func (failingFinish) Finish(*site.Site, string, string) error {
	return errors.New("no space left on device")
}

// A switch that succeeded but could not be written to the history says
// what was observed and what was not recorded, with the error.
func TestOKWhoseHistoryCouldNotBeWritten(t *testing.T) {
	e, _ := newEnv(t)
	e.Writer = failingFinish{e.Writer}
	rep, err := SwitchMode(context.Background(), e, testSite(t), "read-only", Options{})
	if !errors.Is(err, ErrNotRecorded) || rep.Result != modes.ResultOK || !strings.Contains(rep.Reason, "the site serves in mode read-only, but its history could not be written") ||
		!strings.Contains(rep.Reason, "no space left on device") {
		t.Fatalf("report %+v, %v", rep, err)
	}
}

// A stopped or failed socket unit whose TCP listener a program of the host
// holds: the restart would start it with the service, both would fail
// ("dependency"), and so would the rollback, which then reported exit 5,
// "the site did not come up, and neither did its previous mode", for a
// site that was not up, without the address. It is refused first, nothing
// started or recorded, with the address and what to do.
func TestStoppedSocketWhoseListenerIsInUseIsRefusedFirst(t *testing.T) {
	for _, state := range []string{"failed", "inactive"} {
		e, f := newEnv(t)
		s := testSite(t)
		f.sockets.ActiveState, f.sockets.SubState = state, "dead"
		f.state = "inactive"
		var asked []string
		e.Unbindable = func(_ *site.Site, addrs []string, own []int) ([]string, error) {
			asked = addrs
			return []string{addrs[0] + ": another process listens there"}, nil
		}
		rep, err := Restart(context.Background(), e, s, time.Minute)
		if !errors.Is(err, ErrListenerInUse) || !strings.Contains(err.Error(), "127.0.0.1:8080: another process listens there") ||
			!strings.Contains(err.Error(), "site-karl.socket is not listening") || !strings.Contains(err.Error(), "nothing was done") {
			t.Fatalf("socket %s: err = %v", state, err)
		}
		if len(asked) != 1 || asked[0] != "127.0.0.1:8080" {
			t.Errorf("socket %s: asked about %v", state, asked)
		}
		if len(f.restarts)+len(f.stops)+len(f.socketRestarts) != 0 || rep.Changed {
			t.Errorf("socket %s: something was done: restarts %v, stops %v, socket restarts %v", state, f.restarts, f.stops, f.socketRestarts)
		}
		if st, _ := e.Store.ReadState("karl"); len(st.History) != 0 || st.Pending != nil {
			t.Errorf("socket %s: recorded: %+v", state, st)
		}
	}
	// A listening socket is not bound again: nothing asks.
	e, _ := newEnv(t)
	e.Unbindable = func(*site.Site, []string, []int) ([]string, error) {
		t.Error("a listening socket's address was bound")
		return nil, nil
	}
	if _, err := Restart(context.Background(), e, testSite(t), time.Minute); err != nil {
		t.Errorf("restart of a listening site: %v", err)
	}
}

// A site file put in place without a daemon-reload has no units: the
// restart failed with "Unit not found", the rollback the same way, and
// sitectl said exit 5, "the site is down". It is refused first, exit 1,
// nothing recorded, with the daemon-reload to run.
func TestSiteWithoutUnitsIsRefusedWithTheDaemonReload(t *testing.T) {
	e, f := newEnv(t)
	s := testSite(t)
	f.sockets.LoadState, f.sockets.ActiveState, f.sockets.SubState = "not-found", "inactive", "dead"
	f.state = "inactive"
	rep, err := Restart(context.Background(), e, s, time.Minute)
	if !errors.Is(err, ErrCannotStart) || errors.Is(err, ErrRollbackFailed) || !strings.Contains(err.Error(), "systemd has no unit site-karl.socket") ||
		!strings.Contains(err.Error(), "nothing was done: run `systemctl daemon-reload`, then the change again") {
		t.Fatalf("err = %v", err)
	}
	if len(f.restarts)+len(f.stops)+len(f.socketRestarts) != 0 || rep.Changed {
		t.Errorf("something was done: restarts %v, stops %v", f.restarts, f.stops)
	}
	if st, _ := e.Store.ReadState("karl"); len(st.History) != 0 || st.Pending != nil {
		t.Errorf("recorded: %+v", st)
	}
}

// ownerSystemd is a fake whose socket units' sockets belong to user and
// group.
type ownerSystemd struct {
	*fakeSystemd
	user, group string
}

func (o *ownerSystemd) SocketOwner(_ context.Context, unit string) (string, string, error) {
	return o.user, o.group, nil
}

// A lost listener whose socket unit systemd could not start, its unix
// sockets to belong to a user or group the host does not have (a
// listener's owner named by mistake), would fail the socket unit's
// restart after the service was stopped: the change is refused first,
// nothing stopped or recorded, saying which and how to fix it. Users the
// host has, or none, go ahead.
func TestSocketOfAnOwnerTheHostLacksIsRefusedBeforeAnythingStops(t *testing.T) {
	e, f := newEnv(t)
	s := testSite(t)
	e.SocketsMissing = lostUntilReopened(f, "127.0.0.1:8080")
	known := map[string]bool{"www-data": true}
	e.Host = &sitecheck.Host{LookupName: func(db, name string) (bool, error) { return known[name], nil }}
	e.Systemd = &ownerSystemd{fakeSystemd: f, user: "nginx", group: "www-data"}
	rep, err := Restart(context.Background(), e, s, time.Minute)
	if !errors.Is(err, ErrCannotStart) || !strings.Contains(err.Error(), `the restart must start site-karl.socket, and systemd could not start it: user "nginx" (SocketUser= of site-karl.socket) does not exist on this host;`) ||
		!strings.Contains(err.Error(), "nothing was done") || !strings.Contains(err.Error(), "fix the listener's owner or group in the site file") {
		t.Fatalf("err = %v", err)
	}
	if len(f.restarts)+len(f.stops)+len(f.socketRestarts) != 0 || rep.Changed {
		t.Errorf("something was done: restarts %v, stops %v, socket restarts %v, report %+v", f.restarts, f.stops, f.socketRestarts, rep)
	}
	if p, err := StartProblems(context.Background(), e, s, "normal"); err != nil || len(p) != 1 || p[0] != `user "nginx" (SocketUser= of site-karl.socket) does not exist on this host: systemd could not start site-karl.socket` {
		t.Errorf("StartProblems: %q, %v", p, err)
	}
	e.Systemd = &ownerSystemd{fakeSystemd: f, user: "www-data", group: "nogroup"}
	if _, err := Restart(context.Background(), e, s, time.Minute); !errors.Is(err, ErrCannotStart) || !strings.Contains(err.Error(), `group "nogroup" (SocketGroup= of site-karl.socket) does not exist`) {
		t.Errorf("a group the host lacks: %v", err)
	}
	e.Systemd = &ownerSystemd{fakeSystemd: f, user: "www-data"}
	if _, err := Restart(context.Background(), e, s, time.Minute); err != nil || len(f.socketRestarts) != 1 {
		t.Errorf("with an owner the host has: %v, socket restarts %v", err, f.socketRestarts)
	}

	// A socket unit that is not active (a listener of a new name, whose
	// unit the last daemon-reload added): the service's start would
	// start it, and fail with it.
	e, f = newEnv(t)
	e.Host = &sitecheck.Host{LookupName: func(db, name string) (bool, error) { return known[name], nil }}
	e.Systemd = &ownerSystemd{fakeSystemd: f, user: "nginx"}
	f.sockets = control.Unit{LoadState: "loaded", ActiveState: "inactive", SubState: "dead"}
	rep, err = Restart(context.Background(), e, s, time.Minute)
	if !errors.Is(err, ErrCannotStart) || !strings.Contains(err.Error(), `the restart must start site-karl.socket, and systemd could not start it: user "nginx" (SocketUser= of site-karl.socket)`) {
		t.Errorf("an idle socket unit: %v", err)
	}
	if len(f.restarts)+len(f.stops)+len(f.socketRestarts) != 0 || rep.Changed {
		t.Errorf("an idle socket unit: something was done: restarts %v, stops %v, socket restarts %v, report %+v", f.restarts, f.stops, f.socketRestarts, rep)
	}
}
