package flow

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"

	"github.com/sitectl/sitectl/internal/control"
	"github.com/sitectl/sitectl/internal/site"
	"github.com/sitectl/sitectl/internal/sockheld"
	"github.com/sitectl/sitectl/internal/units"
)

// A handover inside the running unit keeps what the unit was started with:
// its sockets, user, launcher flags (exec, probe, timeouts, ...). A site
// file changed in any of these since the service started needs a full
// restart, which a reload or mode switch then does instead, saying why.

// siteKeys names the site-file keys of the fields of site.Site that end up
// in its units, for the one line that says what changed.
var siteKeys = []struct {
	key string
	get func(*site.Site) any
}{
	{"handoff", func(s *site.Site) any { return s.Handoff }},
	{"listen", func(s *site.Site) any { return listeners(s) }},
	{"backlog", func(s *site.Site) any { return s.Backlog }},
	{"user", func(s *site.Site) any { return s.User }},
	{"group", func(s *site.Site) any { return s.Group }},
	{"exec", func(s *site.Site) any { return s.Exec }},
	{"workdir", func(s *site.Site) any { return s.Workdir }},
	{"environment", func(s *site.Site) any { return s.Environment }},
	{"server", func(s *site.Site) any { return s.Server }},
	{"readiness", func(s *site.Site) any { return s.Readiness }},
	{"drain_timeout", func(s *site.Site) any { return s.DrainTimeout }},
	{"stop_timeout", func(s *site.Site) any { return s.StopTimeout }},
	{"start_timeout", func(s *site.Site) any { return s.StartTimeout }},
	{"keep_previous", func(s *site.Site) any { return s.KeepPrevious }},
	{"cleanup_timeout", func(s *site.Site) any { return s.CleanupTimeout }},
	{"reload_trigger", func(s *site.Site) any { return s.ReloadTrigger }},
	{"cleanup", func(s *site.Site) any { return s.Cleanup }},
	{"probe", func(s *site.Site) any { return s.Probe }},
	{"hardening", func(s *site.Site) any { return s.Hardening }},
	{"description", func(s *site.Site) any { return s.Description }},
}

// listeners are a site's listeners without where the file declares them.
func listeners(s *site.Site) []site.Listener {
	out := make([]site.Listener, len(s.Listeners))
	for i, l := range s.Listeners {
		l.Line, l.Col = 0, 0
		out[i] = l
	}
	return out
}

// FullRestartReason says, in one line, why site file now cannot be applied
// by a handover inside a service started from started: their units differ.
// It is "" when they do not, or when started is nil (not known).
func FullRestartReason(started, now *site.Site, opts units.Options) string {
	if started == nil {
		return ""
	}
	was := *started
	// Where it was read from is no change, nor is the stamp of the
	// file's bytes on the units (a comment): what the units say is.
	was.File, was.Digest = now.File, now.Digest
	if reflect.DeepEqual(units.Render(&was, opts), units.Render(now, opts)) {
		return ""
	}
	var keys []string
	for _, k := range siteKeys {
		if !reflect.DeepEqual(k.get(&was), k.get(now)) {
			keys = append(keys, k.key)
		}
	}
	what := "the site file"
	if len(keys) > 0 {
		what = strings.Join(keys, ", ")
	}
	return fmt.Sprintf("%s changed since the service started, which a handover inside it cannot apply: restarting fully", what)
}

// startedCopy is what Env.Started said of a site, read once per change:
// its site file as the running service started from it.
type startedCopy struct {
	known bool // Env.Started was asked (it is set)
	site  *site.Site
	err   error
}

// started reads the copy of site name's file that its service last
// started from.
func (e *Env) started(name string) startedCopy {
	if e.Started == nil {
		return startedCopy{}
	}
	s, err := e.Started(name)
	return startedCopy{known: true, site: s, err: err}
}

// unitsReloader is what a full restart needs besides Systemd to restart the
// units of the site file as it is now: control.Manager has it.
type unitsReloader interface {
	NeedDaemonReload(ctx context.Context, unit string) (bool, error)
	DaemonReload(ctx context.Context) error
}

// fullRestartNeeded tells whether site s, whose running service hands over
// inside itself, must restart fully instead, and why. It has systemd load
// the site's units afresh when they are older than the site file, so that
// the restart applies the change. started is the site as its service
// started (Env.Started); none: the check cannot be made, and none is
// needed.
func (e *Env) fullRestartNeeded(ctx context.Context, s *site.Site, started startedCopy) (string, error) {
	if started.err != nil {
		return "", started.err
	}
	if !started.known {
		return "", nil
	}
	why := FullRestartReason(started.site, s, units.Options{})
	if why == "" {
		return "", nil
	}
	if r, ok := e.Systemd.(unitsReloader); ok {
		need, err := r.NeedDaemonReload(ctx, units.ServiceName(s.Name))
		if err != nil {
			return "", err
		}
		if need {
			e.progress("%s: reloading systemd's units, which are older than the site file", s.Name)
			if err := r.DaemonReload(ctx); err != nil {
				return "", err
			}
			// A listener changed in the file makes systemd close the
			// socket unit's old sockets at that reload, and keep it
			// active: plan looks for them after this, and the restart
			// opens them again (reopenSockets).
		}
	}
	return why, nil
}

// lostSockets finds the listeners of site s for which systemd holds no
// socket although the socket unit that should hold them is active, and
// those socket units (holders). systemd closes the sockets of a socket
// unit whose listeners changed at a daemon-reload while it ran (or whose
// file went away and came back), keeps it "active", and would start the
// service without LISTEN_FDS, so that the app binds an address of its own
// or none. An inactive socket unit opens its listeners afresh when the
// service starts it: its listeners are not lost. A check that cannot tell
// (sockheld.ErrUnknown) finds none, and says so: anyone can make the
// tables too large to read, and refusing would let them stop every change.
func (e *Env) lostSockets(ctx context.Context, s *site.Site) (lost, holders []string, _ error) {
	if e.SocketsMissing == nil {
		return nil, nil, nil
	}
	missing, err := e.SocketsMissing(s)
	if errors.Is(err, sockheld.ErrUnknown) {
		e.progress("%s: %v; going on without that check", s.Name, err)
		return nil, nil, nil
	}
	if err != nil || len(missing) == 0 {
		return nil, nil, err
	}
	for _, l := range s.Listeners {
		what := l.Endpoint()
		if !slices.Contains(missing, what) || slices.Contains(lost, what) {
			continue
		}
		socket := units.SocketNameOf(s, l)
		active, err := e.socketActive(ctx, socket)
		if err != nil {
			return nil, nil, err
		}
		if active {
			lost = append(lost, what)
			if !slices.Contains(holders, socket) {
				holders = append(holders, socket)
			}
		}
	}
	return lost, holders, nil
}

// checkSockets refuses a switch of a site whose active socket units hold
// no socket for some of its listeners when the switch cannot open them
// again: its units are older than the site file (a restart of the socket
// unit would open the listeners systemd loaded, not the file's), or it
// hands over inside the running service, which keeps the sockets it has.
// Nothing is changed before it. A restart opens them (reopenSockets), and
// says so once it did.
func (sw *switchRun) checkSockets(ctx context.Context) error {
	e, s := sw.e, sw.s
	lost, holders, err := e.lostSockets(ctx, s)
	if err != nil || len(lost) == 0 {
		return err
	}
	stale := false
	if r, ok := e.Systemd.(unitsReloader); ok {
		for _, h := range holders {
			need, err := r.NeedDaemonReload(ctx, h)
			if err == nil && need {
				stale = true
			}
		}
	}
	if stale {
		return fmt.Errorf("site %s: the site file changed since systemd loaded %s, which listens where it said then, not on %s; nothing was done: run `systemctl daemon-reload && sitectl restart %s`, which restarts it with the service (connections to it are refused for that moment): %w",
			s.Name, strings.Join(holders, " and "), strings.Join(lost, ", "), s.Name, ErrSocketLost)
	}
	if sw.overlapped {
		what, _ := sockheld.Lost(s, lost)
		return fmt.Errorf("site %s: %s; a handover inside the running service keeps the sockets it has, so nothing was done: `sitectl restart %s` restarts %s with the service (connections to it are refused for that moment): %w",
			s.Name, what, s.Name, strings.Join(holders, " and "), ErrSocketLost)
	}
	if err := sw.bindable(ctx, lost); err != nil {
		return err
	}
	sw.socketsLost, sw.lostHolders = true, holders
	return nil
}

// socketOwners reads a socket unit's SocketUser= and SocketGroup=
// (control.Manager.SocketOwner).
type socketOwners interface {
	SocketOwner(ctx context.Context, unit string) (user, group string, err error)
}

// ownable refuses, before anything is stopped, a restart that must start
// or restart socket units (those idle, which the service's start starts,
// and those that lost a listener) that systemd could not start: one
// whose unix sockets are to belong to a user or group (a listener's
// owner or group: SocketUser=, SocketGroup=) that does not exist on this
// host. The socket unit would fail (217/USER) after the service was
// stopped, and the service's start with it.
func (sw *switchRun) ownable(ctx context.Context, sockets []string) error {
	problems, err := sw.e.ownerProblems(ctx, sockets)
	if err != nil || len(problems) == 0 {
		return err
	}
	texts := make([]string, len(problems))
	for i, p := range problems {
		texts[i] = p.text
	}
	return fmt.Errorf("site %s: the restart must start %s, and systemd could not start it: %s; a restart would stop the site first; nothing was done (fix the listener's owner or group in the site file, then `systemctl daemon-reload`): %w",
		sw.s.Name, strings.Join(sockets, " and "), strings.Join(texts, "; "), ErrCannotStart)
}

// ownerProblem is a socket unit's SocketUser= or SocketGroup= that does
// not exist on the host, in words.
type ownerProblem struct{ socket, text string }

// ownerProblems reads the SocketUser= and SocketGroup= of each socket
// unit as systemd has it loaded, and says which name a user or group
// that surely does not exist on this host; none when systemd's units
// cannot tell (a fake without socketOwners).
func (e *Env) ownerProblems(ctx context.Context, sockets []string) ([]ownerProblem, error) {
	r, ok := e.Systemd.(socketOwners)
	if !ok {
		return nil, nil
	}
	host := e.host()
	var out []ownerProblem
	for _, name := range sockets {
		user, group, err := r.SocketOwner(ctx, name)
		if err != nil {
			return nil, err
		}
		if host.Missing("passwd", user) {
			out = append(out, ownerProblem{name, fmt.Sprintf("user %q (SocketUser= of %s) does not exist on this host", user, name)})
		}
		if host.Missing("group", group) {
			out = append(out, ownerProblem{name, fmt.Sprintf("group %q (SocketGroup= of %s) does not exist on this host", group, name)})
		}
	}
	return out, nil
}

// bindable refuses, before anything is stopped, a change whose lost
// listeners systemd could not bind now because another process listens
// there: a site that moved away from the address, whose running process
// keeps its own copy of the socket until its own restart (two sites that
// swapped ports), or a program of the host's. The restart of the socket
// unit would fail after the service was stopped, and the rollback with
// it: the site down. Sockets of the site's own service do not count; the
// restart stops it first.
func (sw *switchRun) bindable(ctx context.Context, lost []string) error {
	e, s := sw.e, sw.s
	if e.Unbindable == nil {
		return nil
	}
	busy, err := e.Unbindable(s, lost, sw.ownPIDs(ctx))
	if err != nil || len(busy) == 0 {
		return err
	}
	return fmt.Errorf("site %s: systemd must open %s again, and cannot now (%s); nothing was done: stop what listens there (`ss -ltnp` shows it; a site that moved away from the address, two sites that swapped ports say, holds it in its running service until that stops: `systemctl stop site-OTHER.service`), then run `sitectl restart %s`: %w",
		s.Name, strings.Join(lost, ", "), strings.Join(busy, "; "), s.Name, ErrListenerInUse)
}

// ownPIDs are the processes of the site's own service, whose copies of
// the site's sockets do not count against a bind: the restart stops them
// first.
func (sw *switchRun) ownPIDs(ctx context.Context) []int {
	e := sw.e
	u, err := e.unit(ctx, units.ServiceName(sw.s.Name))
	if err != nil || u.MainPID <= 0 {
		return nil
	}
	if e.Procs != nil {
		if pids, err := e.Procs(u.MainPID); err == nil {
			return pids
		}
	}
	return []int{u.MainPID}
}

// stoppedBindable refuses, before anything is done, a restart of a site
// whose socket units are not active (stopped, never started, or failed)
// when systemd could not bind one of their TCP listeners now: another
// program of the host listens there. The restart starts the service,
// which starts them (Requires=); their start would fail, the service's
// with it ("dependency"), and so would the rollback's, which then
// reported a site that had been up and was lost, without the address.
func (sw *switchRun) stoppedBindable(ctx context.Context) error {
	e, s := sw.e, sw.s
	if e.Unbindable == nil {
		return nil
	}
	states, err := e.Systemd.States(ctx, units.SocketNames(s)...)
	if err != nil {
		return err
	}
	stopped := map[string]bool{}
	for _, u := range states {
		if u.ActiveState != "active" {
			stopped[u.Name] = true
		}
	}
	var addrs, sockets []string
	for _, l := range s.Listeners {
		name := units.SocketNameOf(s, l)
		if l.Kind != site.TCP || !stopped[name] {
			continue
		}
		addrs = append(addrs, l.Address)
		if !slices.Contains(sockets, name) {
			sockets = append(sockets, name)
		}
	}
	if len(addrs) == 0 {
		return nil
	}
	busy, err := e.Unbindable(s, addrs, sw.ownPIDs(ctx))
	if err != nil || len(busy) == 0 {
		return err
	}
	return fmt.Errorf("site %s: %s is not listening, and the restart would start it, but systemd cannot bind %s now (%s); nothing was done: stop what listens there (`ss -ltnp` shows it) or give the site another address in its file (then `systemctl daemon-reload`), then run `sitectl restart %s`: %w",
		s.Name, strings.Join(sockets, " and "), strings.Join(addrs, ", "), strings.Join(busy, "; "), s.Name, ErrListenerInUse)
}

// unitsLoaded refuses a change of a site none of whose socket units
// systemd has loaded (socketsUp saw them all not-found): a site file
// added, or renamed into place, since the last daemon-reload has no units
// yet (the generator writes them at a reload). The restart could only
// fail with "Unit not found", and its rollback the same way, which said
// that a site that never ran was down. A listener added to a running
// site's file is not this: its restart runs the units systemd has, and
// says the file changed since. It reads nothing of its own: every change
// pays for it.
func (sw *switchRun) unitsLoaded() error {
	if len(sw.unloadedSockets) == 0 || len(sw.unloadedSockets) < len(units.SocketNames(sw.s)) {
		return nil
	}
	return fmt.Errorf("site %s: systemd has no unit %s: the generator writes a site's units at a daemon-reload, and none ran since %s was put in place; nothing was done: run `systemctl daemon-reload`, then the change again: %w",
		sw.s.Name, strings.Join(sw.unloadedSockets, " or "), sw.s.File, ErrCannotStart)
}

// reopenSockets opens again the lost sockets of the site (lostSockets)
// before a restart starts its service: the service is stopped (the app
// drains as on any stop), then the socket units that hold no socket for
// some of their listeners are restarted, which binds the listeners their
// units declare now. Until then those units listen on nothing for these
// listeners, so nothing is lost that was served. Units restarted here are
// not taken for a stop by someone else if they fail (socketsUp). It looks
// only when checkSockets found some, or a pin reloaded the units.
func (sw *switchRun) reopenSockets(ctx context.Context) error {
	e, s := sw.e, sw.s
	if !sw.socketsLost {
		return nil
	}
	lost, holders, err := e.lostSockets(ctx, s)
	if err != nil || len(lost) == 0 {
		return err
	}
	service := units.ServiceName(s.Name)
	e.progress("%s: systemd holds no socket for %s: stopping %s and restarting %s to open them again", s.Name, strings.Join(lost, ", "), service, strings.Join(holders, " and "))
	if err := e.Systemd.Stop(ctx, service); err != nil {
		return sw.jobFailed(ctx, err)
	}
	if sw.reopened == nil {
		sw.reopened = map[string]bool{}
	}
	for _, h := range holders {
		sw.reopened[h] = true
		if err := e.Systemd.ResetFailed(ctx, h); err != nil {
			return err
		}
		if err := e.Systemd.Restart(ctx, h); err != nil {
			return fmt.Errorf("%s did not listen again: %w", h, err)
		}
	}
	// Seen, not assumed: systemd holds them now. The check also points
	// the site's hint (sockheld) at the new sockets, whose numbers among
	// PID 1's open files need not be the old ones'; a hint left at the
	// old numbers would cost the next check the full read it saves.
	still, _, err := e.lostSockets(ctx, s)
	if err != nil {
		return err
	}
	if len(still) > 0 {
		return fmt.Errorf("%s restarted, yet systemd holds no socket for %s", strings.Join(holders, " and "), strings.Join(still, ", "))
	}
	// Said once the socket units listen again: the report's warnings
	// are of what was done.
	what, _ := sockheld.Lost(s, lost)
	sw.warn("%s: %s restarted with the service to open them again; connections to it were refused for that moment", what, strings.Join(holders, " and "))
	return nil
}

// unitStates reads the state of units of any type; control.Manager has it
// (UnitsByName reads a service's properties too, which a socket has not).
type unitStates interface {
	States(ctx context.Context, names ...string) ([]control.Unit, error)
}

// socketActive tells whether a socket unit is active.
func (e *Env) socketActive(ctx context.Context, socket string) (bool, error) {
	r, ok := e.Systemd.(unitStates)
	if !ok {
		u, err := e.unit(ctx, socket)
		return err == nil && u.ActiveState == "active", nil
	}
	us, err := r.States(ctx, socket)
	if err != nil {
		return false, err
	}
	return len(us) == 1 && us[0].ActiveState == "active", nil
}
