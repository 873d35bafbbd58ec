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
	was.File = now.File // where it was read from is no change
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

// unitsReloader is what a full restart needs besides Systemd to restart the
// units of the site file as it is now: control.Manager has it.
type unitsReloader interface {
	NeedDaemonReload(ctx context.Context, unit string) (bool, error)
	DaemonReload(ctx context.Context) error
}

// fullRestartNeeded tells whether site s, whose running service hands over
// inside itself, must restart fully instead, and why. It has systemd load
// the site's units afresh when they are older than the site file, so that
// the restart applies the change.
func (e *Env) fullRestartNeeded(ctx context.Context, s *site.Site) (string, error) {
	if e.Started == nil {
		return "", nil
	}
	started, err := e.Started(s.Name)
	if err != nil {
		return "", err
	}
	why := FullRestartReason(started, s, units.Options{})
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
			// active: checked again, or the restart would start the
			// site with none. The old process still serves on its
			// copies until then.
			if err := e.socketsHeld(ctx, s); err != nil {
				return "", err
			}
		}
	}
	return why, nil
}

// socketsHeld refuses to start a site whose active socket unit holds no
// socket: systemd closes a socket unit's sockets when its configuration
// changes while it runs (its units went away with a site file and came
// back), keeps it "active", and starts the service without LISTEN_FDS,
// so the app binds an address of its own or none. Only a restart of the
// socket unit opens them again; nothing is changed before it.
func (e *Env) socketsHeld(ctx context.Context, s *site.Site) error {
	if e.SocketsMissing == nil {
		return nil
	}
	missing, err := e.SocketsMissing(s)
	if errors.Is(err, sockheld.ErrUnknown) {
		// Anyone can make the tables too large to read; refusing would
		// let them stop every change. The site is verified once started.
		e.progress("%s: %v; going on without that check", s.Name, err)
		return nil
	}
	if err != nil || len(missing) == 0 {
		return err
	}
	// A socket unit that is not active opens its listeners afresh when
	// the service starts it: only the listeners of active ones are lost.
	var lost []string
	for _, l := range s.Listeners {
		what := l.Address
		if l.Kind == site.Unix {
			what = l.Path
		}
		if !slices.Contains(missing, what) || slices.Contains(lost, what) {
			continue
		}
		active, err := e.socketActive(ctx, units.SocketNameOf(s, l))
		if err != nil {
			return err
		}
		if active {
			lost = append(lost, what)
		}
	}
	if len(lost) == 0 {
		return nil
	}
	missing = lost
	socket := units.MainSocketName(s.Name)
	// Units older than the site file would restart the socket with its
	// old listeners: the command reloads them first.
	stale := false
	if r, ok := e.Systemd.(unitsReloader); ok {
		need, err := r.NeedDaemonReload(ctx, socket)
		stale = err == nil && need
	}
	what, fix := sockheld.Lost(s, missing, stale)
	return fmt.Errorf("site %s: %s; nothing was done: %s: %w", s.Name, what, fix, ErrSocketLost)
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
