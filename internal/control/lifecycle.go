package control

import (
	"context"
	"errors"
	"fmt"
	"time"

	sd "github.com/coreos/go-systemd/v22/dbus"
	"github.com/godbus/dbus/v5"
	"golang.org/x/sys/unix"
)

// Start starts a unit and waits for the job to finish.
func (m *Manager) Start(ctx context.Context, unit string) error {
	return m.job(ctx, "start", unit, (*sd.Conn).StartUnitContext)
}

// Stop stops a unit and waits for the job to finish: for a site's service,
// until the app drained and its cleanup ran.
func (m *Manager) Stop(ctx context.Context, unit string) error {
	return m.job(ctx, "stop", unit, (*sd.Conn).StopUnitContext)
}

// DaemonReload has systemd reload its units (and run its generators), waits
// until it has, and checks that it did: systemd 252 answers a reload it
// gave up on as if it had done it (see reloadHappened).
func (m *Manager) DaemonReload(ctx context.Context) error {
	before, known := statDir(generatorDir)
	if _, err := m.unsent(ctx, func(l *link) error { return l.conn.ReloadContext(ctx) }); err != nil {
		return fmt.Errorf("cannot reload systemd's units: %w", classify(err))
	}
	after, found := statDir(generatorDir)
	return reloadHappened(before, known, after, found)
}

// generatorDir is where systemd's generators write their units: systemd
// removes it and makes it anew, as a new directory, on every reload that
// gets as far as running them.
const generatorDir = "/run/systemd/generator"

// dirID tells two directories of one path apart: a directory made anew
// has another inode, or at least another change time.
type dirID struct {
	dev, ino uint64
	ctime    int64
}

func statDir(path string) (dirID, bool) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return dirID{}, false
	}
	return dirID{uint64(st.Dev), st.Ino, st.Ctim.Nano()}, true
}

// reloadHappened tells from the generator directory, before and after a
// daemon-reload that systemd answered, whether systemd really reloaded.
// systemd 252 serializes its state, then flushes and reruns the
// generators, then loads every unit. When the serialization fails (PID 1
// must duplicate every descriptor it holds: with thousands of listening
// sockets and an open-file limit under twice their number, "Failed to
// serialize socket fd: Too many open files") it logs the error, keeps every
// unit as it was and still answers the reload as done, so systemctl
// daemon-reload exits 0. The directory is then the same one. Where there
// was none before (no generator ran, or it cannot be seen from here),
// nothing can be told and the reload counts as done.
func reloadHappened(before dirID, known bool, after dirID, found bool) error {
	if !known || !found || after != before {
		return nil
	}
	return fmt.Errorf("%w: systemd answered the daemon-reload but did not run its generators or load any unit again (%s is unchanged); "+
		"its journal says why (journalctl -b _PID=1 -n 30): with many sites, usually because PID 1 may not open twice the descriptors it holds (compare `grep 'open files' /proc/1/limits` with `ls /proc/1/fd | wc -l`)",
		ErrReloadIgnored, generatorDir)
}

// NeedDaemonReload tells whether systemd would load another version of a
// unit than the one it has: its file, or the file it was generated from
// (SourcePath=, a site file), changed since the last daemon-reload. A unit
// systemd does not know needs one too.
//
// systemd (252) tells a changed file only by a modification time later
// than the one it loaded: a file put in place with an older time (cp -p,
// rsync -a, tar x) is not seen. When systemd says the unit is current,
// SourceChanged, if set, compares the content of the source with what the
// unit file says it was generated from.
func (m *Manager) NeedDaemonReload(ctx context.Context, unit string) (bool, error) {
	us, err := m.States(ctx, unit)
	if err != nil {
		return false, err
	}
	if len(us) != 1 || us[0].LoadState != "loaded" {
		return true, nil
	}
	var need bool
	var fragment, source string
	props := []unitProp{{unitIface, "NeedDaemonReload", func(v dbus.Variant) { need, _ = v.Value().(bool) }}}
	if m.SourceChanged != nil {
		props = append(props,
			unitProp{unitIface, "FragmentPath", func(v dbus.Variant) { fragment, _ = v.Value().(string) }},
			unitProp{unitIface, "SourcePath", func(v dbus.Variant) { source, _ = v.Value().(string) }})
	}
	if err := m.getProps(ctx, unit, props); err != nil {
		return false, err
	}
	if need {
		return true, nil
	}
	return m.sourceChanged(unit, fragment, source)
}

// sourceChanged is SourceChanged of a unit systemd says is current, which
// it loaded from fragment, generated from source: false without a check,
// or without either file.
func (m *Manager) sourceChanged(unit, fragment, source string) (bool, error) {
	if m.SourceChanged == nil || fragment == "" || source == "" {
		return false, nil
	}
	changed, err := m.SourceChanged(fragment, source)
	if err != nil {
		return false, fmt.Errorf("cannot tell whether %s is older than %s: %w", unit, source, err)
	}
	return changed, nil
}

// StartedAt is when a unit last became active (ActiveEnterTimestamp); zero
// if it never did since systemd knows it.
func (m *Manager) StartedAt(ctx context.Context, unit string) (time.Time, error) {
	var p *sd.Property
	err := m.retried(ctx, func(l *link) (err error) {
		p, err = l.conn.GetUnitPropertyContext(ctx, unit, "ActiveEnterTimestamp")
		return err
	})
	var de dbus.Error
	if errors.As(err, &de) && de.Name == "org.freedesktop.systemd1.NoSuchUnit" {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("cannot read ActiveEnterTimestamp of %s: %w", unit, classify(err))
	}
	usec, _ := p.Value.Value().(uint64)
	if usec == 0 {
		return time.Time{}, nil
	}
	return time.UnixMicro(int64(usec)).UTC(), nil
}

// States reads the load and active state of units of any type (sockets and
// path units too: UnitsByName reads service properties), with the job
// queued for each, loading them if needed, in one call.
func (m *Manager) States(ctx context.Context, names ...string) ([]Unit, error) {
	var st []sd.UnitStatus
	err := m.retried(ctx, func(l *link) (err error) {
		st, err = l.conn.ListUnitsByNamesContext(ctx, names)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("cannot read units: %w", classify(err))
	}
	return states(st), nil
}

// StatesMatching is States for the units in memory that match patterns.
func (m *Manager) StatesMatching(ctx context.Context, patterns ...string) ([]Unit, error) {
	var st []sd.UnitStatus
	err := m.retried(ctx, func(l *link) (err error) {
		st, err = l.conn.ListUnitsByPatternsContext(ctx, nil, patterns)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("cannot list units: %w", classify(err))
	}
	return states(st), nil
}

func states(st []sd.UnitStatus) []Unit {
	out := make([]Unit, len(st))
	for i, s := range st {
		out[i] = Unit{Name: s.Name, LoadState: s.LoadState, ActiveState: s.ActiveState, SubState: s.SubState, Job: s.JobType}
	}
	return out
}
