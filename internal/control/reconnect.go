package control

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/godbus/dbus/v5"
)

// systemd closes every connection to it when it re-executes itself
// (systemctl daemon-reexec, which its own package upgrade runs) and when
// its bus restarts; it answers nothing while it re-executes, and a job
// that was running goes on after it, its JobRemoved sent only to
// connections made since. A Manager therefore connects again when a call
// fails because its connection closed, and makes the call once more only
// when that is safe: a read, or a call that godbus never sent (it fails
// with dbus.ErrClosed). A job that was asked for and may have reached
// systemd is never asked for again; one whose wait lost its connection is
// watched on a new one until systemd no longer has it, and its outcome is
// told from the unit's state then (awaitLost).

// redialInterval is how long a reconnection waits after a dial that
// failed; redialAttempt bounds one dial (a systemd busy re-executing may
// take a connection and not answer on it).
const (
	redialInterval = 100 * time.Millisecond
	redialAttempt  = 5 * time.Second
)

// jobPollInterval is how often a job whose JobRemoved was lost with its
// connection is looked for.
const jobPollInterval = 100 * time.Millisecond

// closed tells whether err is l's connection having closed (and not, say,
// the caller's context ending).
func (l *link) closed(ctx context.Context, err error) bool {
	return err != nil && ctx.Err() == nil && (errors.Is(err, dbus.ErrClosed) || l.bus.Context().Err() != nil)
}

// reconnect replaces old, a connection that closed, with a new one, dialled
// until ctx ends, and returns it. When another call already replaced it, or
// old is still open, that connection is returned.
func (m *Manager) reconnect(ctx context.Context, old *link) (*link, error) {
	select {
	case m.redial <- struct{}{}:
		defer func() { <-m.redial }()
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: the connection to systemd closed (systemd re-executing itself, or its bus restarting) and no new one came up in the time allowed (%v)", ErrUnavailable, ctx.Err())
	}
	if cur := m.current(); cur != old || old.bus.Context().Err() == nil {
		return cur, nil
	}
	var last error
	for {
		if m.isClosed() {
			return nil, fmt.Errorf("%w: the connection to systemd was closed", ErrUnavailable)
		}
		actx, cancel := context.WithTimeout(ctx, redialAttempt)
		l, err := dialWithin(actx, m.dial)
		cancel()
		if err == nil {
			m.mu.Lock()
			if m.closed {
				m.mu.Unlock()
				l.conn.Close()
				return nil, fmt.Errorf("%w: the connection to systemd was closed", ErrUnavailable)
			}
			m.cur = l
			m.mu.Unlock()
			old.conn.Close()
			return l, nil
		}
		last = err
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: the connection to systemd closed (systemd re-executing itself, or its bus restarting) and no new one came up in the time allowed (%v; last try: %v)", ErrUnavailable, ctx.Err(), last)
		case <-time.After(redialInterval):
		}
	}
}

func (m *Manager) isClosed() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.closed
}

// retried runs call on the current connection and, when that connection
// closed under it, once more on a new one. Only for calls that may be made
// twice: reads, and resets.
func (m *Manager) retried(ctx context.Context, call func(l *link) error) error {
	l := m.current()
	err := call(l)
	if !l.closed(ctx, err) {
		return err
	}
	l, rerr := m.reconnect(ctx, l)
	if rerr != nil {
		return rerr
	}
	return call(l)
}

// unsent runs call, which asks systemd to do something, on the current
// connection and, when godbus did not send it because the connection had
// closed, once more on a new one. A call that was sent is never sent
// again, even when its connection closed before systemd answered: systemd
// may have queued it. The connection the call was made on is returned.
func (m *Manager) unsent(ctx context.Context, call func(l *link) error) (*link, error) {
	l := m.current()
	err := call(l)
	if ctx.Err() != nil || !errors.Is(err, dbus.ErrClosed) {
		return l, err
	}
	l, rerr := m.reconnect(ctx, l)
	if rerr != nil {
		return nil, rerr
	}
	return l, call(l)
}

// awaitLost waits, on new connections, until systemd no longer has job id,
// which the connection l it was asked for on lost before its JobRemoved
// came, and tells the job's outcome from the unit's state then: systemd
// keeps its jobs across a re-execution, but tells their results only in
// JobRemoved. A stop has stopped a unit that is inactive or failed; a
// start, restart or reload has done its work on a unit that is active.
// The callers read the unit's real state after the job anyway (its main
// PID, what it serves).
func (m *Manager) awaitLost(ctx context.Context, verb, unit string, id int, l *link) error {
	path := dbus.ObjectPath(fmt.Sprintf("/org/freedesktop/systemd1/job/%d", id))
	var last error
	for {
		var err error
		if l, err = m.reconnect(ctx, l); err != nil {
			return fmt.Errorf("%s of %s was under way, and its outcome cannot be told: %w", verb, unit, err)
		}
		var state string
		err = l.bus.Object("org.freedesktop.systemd1", path).CallWithContext(ctx,
			"org.freedesktop.DBus.Properties.Get", 0, "org.freedesktop.systemd1.Job", "State").Store(&state)
		var de dbus.Error
		if errors.As(err, &de) && (de.Name == "org.freedesktop.DBus.Error.UnknownObject" || de.Name == "org.freedesktop.systemd1.NoSuchJob") {
			break // the job is gone
		}
		if err != nil && !l.closed(ctx, err) {
			// Not yet answered as it should be (a bus whose systemd
			// has not come back yet): asked again until ctx ends.
			last = classify(err)
		}
		select {
		case <-ctx.Done():
			if last != nil {
				return fmt.Errorf("%s of %s did not finish in time: %w (systemd closed the connection while it ran; last: %v)", verb, unit, ctx.Err(), last)
			}
			return fmt.Errorf("%s of %s did not finish in time: %w (systemd closed the connection while it ran)", verb, unit, ctx.Err())
		case <-time.After(jobPollInterval):
		}
	}
	us, err := m.States(ctx, unit)
	if err != nil {
		return fmt.Errorf("%s of %s ended while systemd's connection was replaced, and %w", verb, unit, err)
	}
	state := "not loaded"
	if len(us) == 1 {
		state = us[0].ActiveState + "/" + us[0].SubState
		active := us[0].ActiveState
		if verb == "stop" && (active == "inactive" || active == "failed") || verb != "stop" && active == "active" {
			return nil
		}
	}
	return &JobError{Verb: verb, Unit: unit, State: state}
}
