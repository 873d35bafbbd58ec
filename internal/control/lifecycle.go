package control

import (
	"context"
	"errors"
	"fmt"
	"time"

	sd "github.com/coreos/go-systemd/v22/dbus"
	"github.com/godbus/dbus/v5"
)

// Start starts a unit and waits for the job to finish.
func (m *Manager) Start(ctx context.Context, unit string) error {
	return m.job(ctx, "start", unit, m.conn.StartUnitContext)
}

// Stop stops a unit and waits for the job to finish: for a site's service,
// until the app drained and its cleanup ran.
func (m *Manager) Stop(ctx context.Context, unit string) error {
	return m.job(ctx, "stop", unit, m.conn.StopUnitContext)
}

// DaemonReload has systemd reload its units (and run its generators), and
// waits until it has.
func (m *Manager) DaemonReload(ctx context.Context) error {
	if err := m.conn.ReloadContext(ctx); err != nil {
		return fmt.Errorf("cannot reload systemd's units: %w", classify(err))
	}
	return nil
}

// NeedDaemonReload tells whether systemd would load another version of a
// unit than the one it has: its file, or the file it was generated from
// (SourcePath=, a site file), changed since the last daemon-reload. A unit
// systemd does not know needs one too.
func (m *Manager) NeedDaemonReload(ctx context.Context, unit string) (bool, error) {
	us, err := m.States(ctx, unit)
	if err != nil {
		return false, err
	}
	if len(us) != 1 || us[0].LoadState != "loaded" {
		return true, nil
	}
	p, err := m.conn.GetUnitPropertyContext(ctx, unit, "NeedDaemonReload")
	if err != nil {
		return false, fmt.Errorf("cannot read NeedDaemonReload of %s: %w", unit, classify(err))
	}
	need, _ := p.Value.Value().(bool)
	return need, nil
}

// StartedAt is when a unit last became active (ActiveEnterTimestamp); zero
// if it never did since systemd knows it.
func (m *Manager) StartedAt(ctx context.Context, unit string) (time.Time, error) {
	p, err := m.conn.GetUnitPropertyContext(ctx, unit, "ActiveEnterTimestamp")
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
	st, err := m.conn.ListUnitsByNamesContext(ctx, names)
	if err != nil {
		return nil, fmt.Errorf("cannot read units: %w", classify(err))
	}
	return states(st), nil
}

// StatesMatching is States for the units in memory that match patterns.
func (m *Manager) StatesMatching(ctx context.Context, patterns ...string) ([]Unit, error) {
	st, err := m.conn.ListUnitsByPatternsContext(ctx, nil, patterns)
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
