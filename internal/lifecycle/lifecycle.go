// Package lifecycle puts a site in service, takes it out of service, and
// removes it: sitectl enable, disable and remove. Each is idempotent and
// says whether it changed anything.
//
// In service means: the site's sockets listen (its first connection starts
// the app) and its reload trigger is armed, now and after every boot. Out
// of service means: its units are stopped, and a marker in its state
// directory, which the generator honours, keeps it so across reboots; its
// site file and its state (mode, history) stay. Generated units cannot be
// `systemctl disable`d, which is why sitectl keeps its own marker. Removed
// means: its units are stopped and everything sitectl kept of it is gone,
// so that a new site of that name starts afresh in its default mode. The
// site file is the operator's (or Ansible's): remove requires it gone, and
// never deletes it.
package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/sitectl/sitectl/internal/control"
	"github.com/sitectl/sitectl/internal/modes"
	"github.com/sitectl/sitectl/internal/site"
	"github.com/sitectl/sitectl/internal/sockheld"
	"github.com/sitectl/sitectl/internal/units"
)

// Systemd is what the verbs need from systemd (control.Manager, or a fake).
type Systemd interface {
	States(ctx context.Context, names ...string) ([]control.Unit, error)
	StatesMatching(ctx context.Context, patterns ...string) ([]control.Unit, error)
	Start(ctx context.Context, unit string) error
	Stop(ctx context.Context, unit string) error
	ResetFailed(ctx context.Context, unit string) error
	DaemonReload(ctx context.Context) error
	NeedDaemonReload(ctx context.Context, unit string) (bool, error)
}

// Env is what the verbs run with.
type Env struct {
	Store   modes.Store
	Systemd Systemd
	UID     int // who asked, for the out-of-service marker
	// Progress gets one line per step, for a terminal; nil for none.
	Progress func(format string, args ...any)
	// SocketsMissing returns the listeners of s for which systemd holds
	// no listening socket (sockheld.Missing); nil: not checked.
	SocketsMissing func(s *site.Site) ([]string, error)
	// Sites returns the valid sites of the site directory, as the
	// generator has them; nil: remove hands no listener over (handOver).
	Sites func() ([]*site.Site, error)
	// Bindable says why listener l could not be bound now (another
	// program holds its port); nil: it could, or it is not checked.
	Bindable func(l site.Listener) error
}

func (e *Env) progress(format string, args ...any) {
	if e.Progress != nil {
		e.Progress(format, args...)
	}
}

// Report is what a verb did, as --json prints it.
type Report struct {
	Site           string   `json:"site" doc:"the site's name"`
	Action         string   `json:"action" doc:"what was asked for" enum:"enable,disable,remove"`
	Changed        bool     `json:"changed" doc:"anything changed (false: the site already was as asked)"`
	InService      bool     `json:"in_service" doc:"the site is in service afterwards: its sockets start at boot"`
	DaemonReload   bool     `json:"daemon_reload" doc:"sitectl had systemd reload its units"`
	Started        []string `json:"started" doc:"the units started; [] when none"`
	Stopped        []string `json:"stopped" doc:"the units stopped; [] when none"`
	StateForgotten bool     `json:"state_forgotten" doc:"remove: the site's state directory was there, and is gone"`
	TakenOverBy    []string `json:"taken_over_by" doc:"remove: the sites whose files declare a listener the removed site held (a renamed site file), whose sockets remove started once it had let go of the listener; [] when none"`
	Notes          []string `json:"notes" doc:"what the operator should know and do, one sentence each; [] when nothing"`
}

func newReport(name, action string) Report {
	return Report{Site: name, Action: action, Started: []string{}, Stopped: []string{}, TakenOverBy: []string{}, Notes: []string{}}
}

// inService are the units that put a site in service: its sockets, and the
// path unit of its reload trigger.
func inService(s *site.Site) []string {
	names := units.SocketNames(s)
	if s.ReloadTrigger != "" {
		names = append(names, units.ReloadPathName(s.Name))
	}
	return names
}

// Enable puts site s in service and keeps it there across reboots: it
// removes the out-of-service marker, has systemd reload its units when
// they are missing or older than the site file (or the marker changed, so
// that sockets.target wants the socket again), and starts the site's
// sockets and reload path unit. The caller holds the site's lock.
func Enable(ctx context.Context, e *Env, s *site.Site) (Report, error) {
	rep := newReport(s.Name, "enable")
	if err := e.stoppedBindable(ctx, s); err != nil {
		return rep, err
	}
	marked, err := e.Store.SetOutOfService(s.Name, false, e.UID)
	if err != nil {
		return rep, err
	}
	rep.Changed = marked
	want := inService(s)
	check := append(slices.Clone(want), units.ServiceName(s.Name))
	if !marked {
		listening, current, err := e.leftAsItRuns(ctx, &rep, s, want, check)
		if err != nil || listening {
			return rep, err
		}
		if current {
			check = nil // systemd was just asked: no unit needs a reload
		}
	}
	if err := e.reloadIfNeeded(ctx, &rep, marked, check); err != nil {
		return rep, err
	}
	if err := e.startInactive(ctx, &rep, s.Name, want); err != nil {
		if !marked {
			// It was not marked: nothing about boot changed.
			return rep, fmt.Errorf("site %s: %w", s.Name, err)
		}
		// The marker is gone already: say so, rather than leave the
		// operator to think the site stays out of service.
		return rep, fmt.Errorf("site %s: %w; the site is no longer marked out of service, so its sockets start at boot (`sitectl disable %s` marks it again)",
			s.Name, err, s.Name)
	}
	if err := e.verify(ctx, &rep, want, "active"); err != nil {
		return rep, err
	}
	return rep, e.socketsHeld(s)
}

// stoppedBindable refuses, before anything is done, to enable a site one
// of whose TCP listeners systemd could not bind now (another program of
// the host listens there) while the socket unit that declares it is not
// active: its start would fail with systemd's "resources", which names no
// address.
func (e *Env) stoppedBindable(ctx context.Context, s *site.Site) error {
	l, name, err := e.firstUnbindable(ctx, s, s.Listeners)
	if err != nil && name == "" {
		return err
	}
	if err != nil {
		return fmt.Errorf("site %s: %s cannot listen on %s now: %w; nothing was done: stop what listens there (`ss -ltnp` shows it) or give the site another address in its file, then `sitectl enable %s`",
			s.Name, name, l.Endpoint(), err, s.Name)
	}
	return nil
}

// firstUnbindable is the first of site s's listeners ls whose socket unit
// (name) is not active and that cannot be bound now, with why (err); a
// listener whose own socket is active holds it. An error with no name is
// systemd's.
func (e *Env) firstUnbindable(ctx context.Context, s *site.Site, ls []site.Listener) (l site.Listener, name string, err error) {
	if e.Bindable == nil || len(ls) == 0 {
		return site.Listener{}, "", nil
	}
	names := make([]string, len(ls))
	for i, l := range ls {
		names[i] = units.SocketNameOf(s, l)
	}
	us, err := e.Systemd.States(ctx, names...)
	if err != nil {
		return site.Listener{}, "", err
	}
	active := map[string]bool{}
	for _, u := range us {
		active[u.Name] = u.ActiveState == "active"
	}
	for i, l := range ls {
		if active[names[i]] {
			continue // its own socket holds it
		}
		if err := e.Bindable(l); err != nil {
			return l, names[i], err
		}
	}
	return site.Listener{}, "", nil
}

// leftAsItRuns is enable of a site already in service whose units are all
// active but older than its site file: enable's daemon-reload would apply
// the file to running units, and systemd closes the sockets of a running
// socket unit whose listeners changed, so the site would listen on nothing
// new and lose what it had. Such a site is left as it runs, with a note
// that says how the file is applied. listening: it was, and enable is done;
// current: every unit of check was found as new as the file.
func (e *Env) leftAsItRuns(ctx context.Context, rep *Report, s *site.Site, want, check []string) (listening, current bool, _ error) {
	us, err := e.Systemd.States(ctx, want...)
	if err != nil {
		return false, false, err
	}
	if len(notIn(us, "active")) > 0 {
		return false, false, nil
	}
	stale := false
	for _, u := range check {
		need, err := e.Systemd.NeedDaemonReload(ctx, u)
		if err != nil {
			return false, false, err
		}
		stale = stale || need
	}
	if !stale {
		return false, true, nil
	}
	rep.InService = true
	rep.Notes = append(rep.Notes, fmt.Sprintf("site %s is in service and its units run as systemd loaded them, which is older than %s; enable left them so (a daemon-reload closes a running socket unit's sockets when its listeners changed): `systemctl daemon-reload && sitectl restart %s` applies the file",
		s.Name, s.File, s.Name))
	return true, false, nil
}

// socketsHeld says whether systemd holds a listening socket for each of
// the site's listeners: an active socket unit need not. systemd closes
// the sockets of one whose listeners changed at a daemon-reload (enable's
// own, say) and keeps it active, so the site would refuse every
// connection from then on (or go down at its next start) while enable
// said it is in service. Only a restart of the socket unit opens them.
func (e *Env) socketsHeld(s *site.Site) error {
	if e.SocketsMissing == nil {
		return nil
	}
	missing, err := e.SocketsMissing(s)
	if errors.Is(err, sockheld.ErrUnknown) {
		e.progress("%s: %v; not checked", s.Name, err)
		return nil
	}
	if err != nil {
		return err
	}
	if len(missing) > 0 {
		what, fix := sockheld.Lost(s, missing)
		return fmt.Errorf("site %s is in service at boot, but %s: %s", s.Name, what, fix)
	}
	return nil
}

// Disable takes site s out of service and keeps it out across reboots: it
// writes the out-of-service marker and stops the site's path unit, its
// services (the app drains as on any stop) and its sockets; the marker
// changing has systemd reload its units, so that sockets.target no longer
// wants the socket. The caller holds the site's lock.
func Disable(ctx context.Context, e *Env, s *site.Site) (Report, error) {
	rep := newReport(s.Name, "disable")
	marked, err := e.Store.SetOutOfService(s.Name, true, e.UID)
	if err != nil {
		return rep, err
	}
	rep.Changed = marked
	names := append(inService(s), units.ServiceName(s.Name), units.ReloadServiceName(s.Name))
	us, err := e.Systemd.States(ctx, names...)
	if err != nil {
		return rep, err
	}
	if err := e.stopAll(ctx, &rep, us); err != nil {
		return rep, err
	}
	if err := e.reloadIfNeeded(ctx, &rep, marked, nil); err != nil {
		return rep, err
	}
	return rep, e.verify(ctx, &rep, names, "inactive")
}

// ErrFileExists: remove was asked for a site whose file is still there.
var ErrFileExists = errors.New("the site file is still there")

// Remove stops every unit site name still has and forgets its state. Its
// site file must be gone already (fileGone): the file is the operator's,
// and a site whose file is there comes back at the next daemon-reload.
// Units generated from the file before it went are unloaded with a
// daemon-reload. The caller holds the site's lock, if it has state.
func Remove(ctx context.Context, e *Env, name string, fileGone bool) (Report, error) {
	rep := newReport(name, "remove")
	if !fileGone {
		return rep, ErrFileExists
	}
	us, err := e.Systemd.StatesMatching(ctx, units.UnitPatterns(name)...)
	if err != nil {
		return rep, err
	}
	heirs, err := e.heirsOf(ctx, &rep, us)
	if err != nil {
		return rep, err
	}
	if err := e.stopAll(ctx, &rep, us); err != nil {
		return rep, err
	}
	if err := e.handOver(ctx, &rep, heirs); err != nil {
		return rep, err
	}
	loaded := slices.ContainsFunc(us, func(u control.Unit) bool { return u.LoadState == "loaded" })
	if err := e.reloadIfNeeded(ctx, &rep, loaded, nil); err != nil {
		return rep, err
	}
	if rep.StateForgotten, err = e.Store.Forget(name); err != nil {
		return rep, err
	}
	rep.Changed = rep.Changed || rep.StateForgotten
	var names []string
	for _, u := range us {
		names = append(names, u.Name)
	}
	if err := e.verify(ctx, &rep, names, "inactive"); err != nil {
		return rep, err
	}
	for _, h := range heirs {
		if err := e.socketsHeld(h); err != nil {
			return rep, err
		}
	}
	return rep, nil
}

// heirsOf finds, before anything stops, the sites in service whose files
// declare a listener the removed site held (its last good copy says which,
// or heldUnclaimed: after a rename, the new file), and has systemd load
// their units if it has not yet: the old socket must let go of a listener
// before the new one can take it, and visitors are refused in between, so
// nothing but the start is left for that moment. A site out of service
// gets a note. us are the removed site's units.
func (e *Env) heirsOf(ctx context.Context, rep *Report, us []control.Unit) ([]*site.Site, error) {
	good, err := e.Store.ReadLastGood(rep.Site)
	copied := err == nil && good != nil && len(good.Listeners) > 0
	listening := slices.ContainsFunc(us, func(u control.Unit) bool { return strings.HasSuffix(u.Name, ".socket") && u.ActiveState == "active" })
	if e.Sites == nil || !copied && !listening {
		return nil, nil
	}
	sites, err := e.Sites()
	if err != nil {
		return nil, fmt.Errorf("which sites declare the listeners of site %s is unknown: %w; nothing was done", rep.Site, err)
	}
	var held []site.Listener
	if copied {
		held = good.Listeners
	} else {
		var silent []string
		if held, silent, err = e.heldUnclaimed(ctx, rep.Site, sites); err != nil {
			return nil, fmt.Errorf("which listeners site %s holds is unknown: %w; nothing was done", rep.Site, err)
		}
		if len(held) == 0 {
			// After a daemon-reload, systemd has closed the socket of
			// a unit whose file is gone, unless its service runs: the
			// renamed site does not listen, and nothing says which it
			// is.
			for _, name := range silent {
				rep.Notes = append(rep.Notes, fmt.Sprintf("site %s is in service but does not listen: if it is site %s renamed, systemd closed %s's socket at the daemon-reload and started none of %s's; `sitectl enable %s` starts them", name, rep.Site, rep.Site, name, name))
			}
		}
	}
	var in []*site.Site
	var check []string
	for _, h := range heirs(sites, rep.Site, held) {
		out, _, err := e.Store.OutOfService(h.Name)
		if err != nil {
			return nil, err
		}
		if out {
			rep.Notes = append(rep.Notes, fmt.Sprintf("site %s declares listeners site %s held, but is out of service: `sitectl enable %s` puts it in service", h.Name, rep.Site, h.Name))
			continue
		}
		if err := e.canTakeOver(ctx, h, held); err != nil {
			return nil, fmt.Errorf("site %s, whose file declares the listeners of site %s, could not take them over: %w; nothing was done", h.Name, rep.Site, err)
		}
		in = append(in, h)
		check = append(check, inService(h)...)
	}
	return in, e.reloadIfNeeded(ctx, rep, false, check)
}

// heldUnclaimed is what the removed site name holds when there is no copy
// of the file it ran (its service never started: socket-activated and
// never visited). systemd cannot say: once the file is gone, the socket
// unit is "not-found" and shows no Listen property. Before a daemon-reload
// PID 1 still holds the socket open, so these are the listeners of the
// other valid sites for which PID 1 holds a listening socket although the
// site's own socket unit for it is not active: after a rename, the new
// file's. Only sites with a socket that is not active are asked about
// (sockheld). silent are the sites in service with a socket that is not
// active and no such listener.
func (e *Env) heldUnclaimed(ctx context.Context, name string, sites []*site.Site) (held []site.Listener, silent []string, _ error) {
	if e.SocketsMissing == nil {
		return nil, nil, nil
	}
	var names []string
	for _, s := range sites {
		if s.Name != name {
			for _, l := range s.Listeners {
				names = append(names, units.SocketNameOf(s, l))
			}
		}
	}
	if len(names) == 0 {
		return nil, nil, nil
	}
	us, err := e.Systemd.States(ctx, names...)
	if err != nil {
		return nil, nil, err
	}
	active := map[string]bool{}
	for _, u := range us {
		active[u.Name] = u.ActiveState == "active"
	}
	for _, s := range sites {
		if s.Name == name || !slices.ContainsFunc(s.Listeners, func(l site.Listener) bool { return !active[units.SocketNameOf(s, l)] }) {
			continue
		}
		missing, err := e.SocketsMissing(s)
		if err != nil {
			return nil, nil, err
		}
		found := false
		for _, l := range s.Listeners {
			if !active[units.SocketNameOf(s, l)] && !slices.Contains(missing, l.Endpoint()) {
				held, found = append(held, l), true
			}
		}
		if out, _, err := e.Store.OutOfService(s.Name); err == nil && !out && !found {
			silent = append(silent, s.Name)
		}
	}
	return held, silent, nil
}

// canTakeOver checks, before the removed site's sockets stop, that heir's
// other listeners (those the removed site did not hold, and whose socket
// is not listening already) can be bound: once they stop, systemd unloads
// their units, whose files are gone, and nothing could start them again.
func (e *Env) canTakeOver(ctx context.Context, heir *site.Site, held []site.Listener) error {
	var others []site.Listener
	for _, l := range heir.Listeners {
		if !slices.ContainsFunc(held, func(h site.Listener) bool { return site.SameListener(h, l) }) {
			others = append(others, l)
		}
	}
	l, name, err := e.firstUnbindable(ctx, heir, others)
	if err != nil && name != "" {
		return fmt.Errorf("its listener %s cannot be bound: %w", l.Endpoint(), err)
	}
	return err
}

// handOver starts the sockets of heirs (heirsOf) as soon as the removed
// site's have let go of the listeners. systemd unloads the removed site's
// units as they stop (their files are gone): if a heir's socket does not
// start, they cannot start again, and the state stays, so that another
// remove hands the listeners over once the heir is fixed.
func (e *Env) handOver(ctx context.Context, rep *Report, heirs []*site.Site) error {
	for _, h := range heirs {
		if err := e.startAll(ctx, rep, h.Name, inService(h)); err != nil {
			return fmt.Errorf("site %s, whose file declares the listeners of site %s, did not take them over: %w; the listeners are not served: fix site %s, then `sitectl remove %s` hands them over (its state is kept until then)", h.Name, rep.Site, err, h.Name, rep.Site)
		}
		rep.TakenOverBy = append(rep.TakenOverBy, h.Name)
	}
	return nil
}

// heirs are the sites other than the one named that declare one of
// held.
func heirs(sites []*site.Site, name string, held []site.Listener) []*site.Site {
	var out []*site.Site
	for _, s := range sites {
		if s.Name == name {
			continue
		}
		for _, l := range s.Listeners {
			if slices.ContainsFunc(held, func(h site.Listener) bool { return site.SameListener(h, l) }) {
				out = append(out, s)
				break
			}
		}
	}
	return out
}

// startAll starts those of names that are not active, and reads them
// back: each must be active.
func (e *Env) startAll(ctx context.Context, rep *Report, site string, names []string) error {
	if err := e.startInactive(ctx, rep, site, names); err != nil {
		return err
	}
	us, err := e.Systemd.States(ctx, names...)
	if err != nil {
		return err
	}
	if wrong := notIn(us, "active"); len(wrong) > 0 {
		return errors.New(strings.Join(wrong, ", ") + ", not active")
	}
	return nil
}

// startInactive starts those of names that are not active, in order.
func (e *Env) startInactive(ctx context.Context, rep *Report, site string, names []string) error {
	for _, name := range names {
		// Read just before: starting the socket starts the path unit.
		us, err := e.Systemd.States(ctx, name)
		if err != nil {
			return err
		}
		if len(us) != 1 {
			return fmt.Errorf("systemd said nothing about %s", name)
		}
		if us[0].ActiveState == "active" {
			continue
		}
		if err := e.start(ctx, site, us[0]); err != nil {
			return fmt.Errorf("%s did not start: %w", name, err)
		}
		rep.Started, rep.Changed = append(rep.Started, name), true
	}
	return nil
}

// stopOrder stops the trigger first (a touch must not restart what is
// being stopped), then the services (the app drains), then the sockets.
func stopOrder(name string) int {
	switch {
	case strings.HasSuffix(name, ".path"):
		return 0
	case strings.HasSuffix(name, ".service"):
		return 1
	}
	return 2
}

// stopAll stops the units that are not inactive, in stopOrder, and clears
// the failed state of those that failed, so that none shows as failed.
func (e *Env) stopAll(ctx context.Context, rep *Report, us []control.Unit) error {
	us = slices.Clone(us)
	slices.SortStableFunc(us, func(a, b control.Unit) int { return stopOrder(a.Name) - stopOrder(b.Name) })
	for _, u := range us {
		switch u.ActiveState {
		case "inactive", "":
			continue
		case "failed":
			if err := e.Systemd.ResetFailed(ctx, u.Name); err != nil {
				return err
			}
			rep.Changed = true
			continue
		}
		e.progress("%s: stopping %s", rep.Site, u.Name)
		if err := e.Systemd.Stop(ctx, u.Name); err != nil {
			return err
		}
		rep.Stopped, rep.Changed = append(rep.Stopped, u.Name), true
	}
	return nil
}

// start starts one unit, clearing a failed state and the start limit
// first: a deliberate start must not be refused for earlier failures.
func (e *Env) start(ctx context.Context, name string, u control.Unit) error {
	if u.LoadState != "loaded" {
		return fmt.Errorf("systemd has no unit %s (load state %q) even after a daemon-reload: is sitectl-generator installed?", u.Name, u.LoadState)
	}
	if err := e.Systemd.ResetFailed(ctx, u.Name); err != nil {
		return err
	}
	e.progress("%s: starting %s", name, u.Name)
	return e.Systemd.Start(ctx, u.Name)
}

// reloadIfNeeded has systemd reload its units when must is true or one of
// check needs it (missing, or older than its site file).
func (e *Env) reloadIfNeeded(ctx context.Context, rep *Report, must bool, check []string) error {
	for _, u := range check {
		if must {
			break
		}
		need, err := e.Systemd.NeedDaemonReload(ctx, u)
		if err != nil {
			return err
		}
		must = need
	}
	if !must {
		return nil
	}
	e.progress("%s: reloading systemd's units", rep.Site)
	if err := e.Systemd.DaemonReload(ctx); err != nil {
		return err
	}
	rep.DaemonReload, rep.Changed = true, true
	return nil
}

// verify reads the units back: each must be in state want ("inactive"
// counts a unit systemd no longer knows). "ok" is what systemd says, not
// what was asked of it.
func (e *Env) verify(ctx context.Context, rep *Report, names []string, want string) error {
	if len(names) == 0 {
		return nil
	}
	us, err := e.Systemd.States(ctx, names...)
	if err != nil {
		return err
	}
	wrong := notIn(us, want)
	rep.InService = want == "active" && len(wrong) == 0
	if len(wrong) > 0 {
		return fmt.Errorf("site %s: %s, not %s", rep.Site, strings.Join(wrong, ", "), want)
	}
	return nil
}

// notIn says which of us are not in state want ("inactive" counts a unit
// systemd no longer knows), as "NAME is ACTIVE/SUB".
func notIn(us []control.Unit, want string) []string {
	var wrong []string
	for _, u := range us {
		if u.ActiveState != want && !(want == "inactive" && u.ActiveState == "") {
			wrong = append(wrong, fmt.Sprintf("%s is %s/%s", u.Name, u.ActiveState, u.SubState))
		}
	}
	return wrong
}
