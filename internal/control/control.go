// Package control drives systemd's manager over D-Bus for sitectl: start,
// stop and restart jobs that are waited for with a deadline, and the unit
// state sitectl reports.
//
// Only root uses it (root's sitectl and sitectl's state service, which runs
// deployers' changes): it connects to systemd's private socket, as
// systemctl does, and falls back to the system bus. Job results come back on a buffered channel that is always read or
// abandoned with its context: an unread unbuffered channel would block every
// later job (go-systemd issue 429). A job result other than "done" is an
// error naming the unit.
package control

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	sd "github.com/coreos/go-systemd/v22/dbus"
	"github.com/godbus/dbus/v5"
	"golang.org/x/sys/unix"
)

// Errors callers tell apart (with errors.Is).
var (
	// ErrUnavailable: neither the system bus nor systemd's private socket
	// could be reached.
	ErrUnavailable = errors.New("systemd cannot be reached")
	// ErrDenied: systemd or polkit refused the call.
	ErrDenied = errors.New("permission denied")
	// ErrReloadIgnored: systemd answered a daemon-reload that it did not do.
	ErrReloadIgnored = errors.New("systemd did not reload its units")
)

// Manager is a connection to systemd. It survives systemd closing it
// (systemd re-executing itself, as its own package upgrade does, or its
// bus restarting): see reconnect.go. It may be used by several goroutines
// at once.
type Manager struct {
	// mu guards cur, the connection calls use now, and closed; a call
	// reads cur once (current) and makes all its requests on it.
	mu     sync.Mutex
	cur    *link
	closed bool
	// redial holds the one reconnection under way (a channel, so that
	// waiting for it ends with the waiter's context).
	redial chan struct{}
	// dial makes a new connection: connect, or a test's fake systemd.
	dial func() (*link, error)

	// SourceChanged, when set, tells whether the file a unit was
	// generated from (its SourcePath=, source) has other content than
	// the unit file systemd loaded (fragment, its FragmentPath=) says
	// it was generated from: NeedDaemonReload and StartSpec ask it when
	// systemd says the unit is current, since systemd compares only
	// modification times (see NeedDaemonReload). A unit that says
	// nothing of its source's content is false. sitectl's own check
	// lives outside this package (generator.SourceChanged); nil: systemd's
	// answer alone.
	SourceChanged func(fragment, source string) (bool, error)
}

// link is one connection to systemd.
type link struct {
	conn *sd.Conn
	bus  *dbus.Conn // the same connection, for pipelined property reads
	// private is systemd's private socket when conn is connected to it:
	// the listing of units then reads it on a connection of its own
	// (rawListUnits).
	private string
}

// Connect reaches systemd over the system bus, or, for root when there is no
// bus, over systemd's private socket. ctx bounds the connecting only: godbus
// would close a connection made with a context once that context ends.
func Connect(ctx context.Context) (*Manager, error) {
	return newManager(ctx, connect)
}

// newManager is a Manager connected with dial, within ctx.
func newManager(ctx context.Context, dial func() (*link, error)) (*Manager, error) {
	l, err := dialWithin(ctx, dial)
	if err != nil {
		return nil, err
	}
	return &Manager{cur: l, dial: dial, redial: make(chan struct{}, 1)}, nil
}

// dialWithin is dial, given up when ctx ends first: a connection that comes
// up after all is closed.
func dialWithin(ctx context.Context, dial func() (*link, error)) (*link, error) {
	type result struct {
		l   *link
		err error
	}
	done := make(chan result, 1)
	go func() {
		l, err := dial()
		done <- result{l, err}
	}()
	select {
	case r := <-done:
		return r.l, r.err
	case <-ctx.Done():
		go func() { // close the connection if it comes up after all
			if r := <-done; r.l != nil {
				r.l.conn.Close()
			}
		}()
		return nil, fmt.Errorf("%w: no answer within the time allowed (%v)", ErrUnavailable, ctx.Err())
	}
}

// current is the connection calls use now.
func (m *Manager) current() *link {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.cur
}

// shared makes go-systemd's two connections one: go-systemd dials one for
// calls and another for signals, and systemd sends every signal of every
// unit (hundreds of PropertiesChanged during one restart) to every
// connection on its private socket, where no match rule filters them.
// With two, sitectl reads and decodes each twice and waits for the second
// connection's handshake; calls and signals share one connection fine.
// The first connection dialled is returned to every later call; a failed
// dial is not remembered.
func shared(dial func() (*dbus.Conn, error)) func() (*dbus.Conn, error) {
	var c *dbus.Conn
	return func() (*dbus.Conn, error) {
		if c != nil {
			return c, nil
		}
		conn, err := dial()
		if err != nil {
			return nil, err
		}
		c = conn
		return c, nil
	}
}

// dialer is a shared dial (see shared) of a connection authenticated as
// this process's user, greeting the bus when hello, that l.bus is then.
func (l *link) dialer(open func() (*dbus.Conn, error), hello bool) func() (*dbus.Conn, error) {
	return shared(func() (*dbus.Conn, error) {
		c, err := open()
		if err != nil {
			return nil, err
		}
		if err := c.Auth([]dbus.Auth{dbus.AuthExternal(strconv.Itoa(os.Getuid()))}); err != nil {
			c.Close()
			return nil, err
		}
		if hello {
			if err := c.Hello(); err != nil {
				c.Close()
				return nil, err
			}
		}
		l.bus = c
		return c, nil
	})
}

func connect() (*link, error) {
	m := &link{}
	bus := m.dialer(func() (*dbus.Conn, error) { return dbus.SystemBusPrivate() }, true)
	if os.Geteuid() != 0 {
		conn, err := sd.NewConnection(bus)
		if err != nil {
			return nil, fmt.Errorf("%w: the system bus does not answer (%v)", ErrUnavailable, err)
		}
		m.conn = conn
		return m, nil
	}
	// Root talks to systemd directly, as systemctl does: one hop instead
	// of two through the bus broker for every call, and no Hello.
	conn, err := sd.NewConnection(m.dialer(func() (*dbus.Conn, error) {
		return dbus.Dial("unix:path=" + privateSocket)
	}, false))
	if err == nil {
		m.private = privateSocket
	} else {
		var err2 error
		if conn, err2 = sd.NewConnection(bus); err2 != nil {
			return nil, fmt.Errorf("%w: neither %s nor the system bus answers (%v; %v)", ErrUnavailable, privateSocket, err, err2)
		}
	}
	m.conn = conn
	return m, nil
}

// privateSocket is systemd's own D-Bus socket, for root.
const privateSocket = "/run/systemd/private"

// Close the connection. A Manager closed is not connected again.
func (m *Manager) Close() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	m.cur.conn.Close()
}

// jobFunc is one of go-systemd's *UnitContext job methods.
type jobFunc func(c *sd.Conn, ctx context.Context, name, mode string, ch chan<- string) (int, error)

// Restart restarts a unit and waits for the job to finish.
func (m *Manager) Restart(ctx context.Context, unit string) error {
	return m.job(ctx, "restart", unit, (*sd.Conn).RestartUnitContext)
}

// Reload reloads a unit and waits for the job to finish. For a site with
// handoff = "overlap" the job ends when the new generation serves.
func (m *Manager) Reload(ctx context.Context, unit string) error {
	return m.job(ctx, "reload", unit, (*sd.Conn).ReloadUnitContext)
}

// job queues a job in mode "fail": a job that conflicts with one already
// queued (an operator's stop of the site, say) is refused instead of
// cancelling it, since sitectl must never undo a stop it did not make.
// A job queued first is still cancelled by such a stop: its result is
// then "canceled".
func (m *Manager) job(ctx context.Context, verb, unit string, fn jobFunc) error {
	ch := make(chan string, 1) // buffered: a late result never blocks the connection
	var id int
	l, err := m.unsent(ctx, func(l *link) (err error) {
		id, err = fn(l.conn, ctx, unit, "fail", ch)
		return err
	})
	if err != nil {
		return fmt.Errorf("cannot %s %s: %w", verb, unit, classify(err))
	}
	select {
	case result := <-ch:
		return jobResult(verb, unit, result)
	case <-l.bus.Context().Done():
		select {
		case result := <-ch: // came just before the connection closed
			return jobResult(verb, unit, result)
		default:
		}
		// systemd closed the connection (it re-executes itself): the
		// job goes on, but its result is never sent here.
		return m.awaitLost(ctx, verb, unit, id, l)
	case <-ctx.Done():
		return fmt.Errorf("%s of %s did not finish in time: %w", verb, unit, ctx.Err())
	}
}

func jobResult(verb, unit, result string) error {
	if result != "done" {
		return &JobError{Verb: verb, Unit: unit, Result: result}
	}
	return nil
}

// JobError is a job that ended with another result than "done", or whose
// result was lost with systemd's connection and that left the unit in
// another state than it was to.
type JobError struct {
	Verb, Unit, Result string
	// State is the unit's active and sub state after a job whose result
	// was lost; Result is then "".
	State string
}

func (e *JobError) Error() string {
	if e.State != "" {
		return fmt.Sprintf("%s of %s ended while systemd was not connected (it re-executed itself, or its bus restarted), and left it %s", e.Verb, e.Unit, e.State)
	}
	return fmt.Sprintf("%s of %s ended with result %q", e.Verb, e.Unit, e.Result)
}

// ResetFailed clears a unit's failed state and its start-rate counter, so a
// deliberate start is not refused because of earlier failures.
func (m *Manager) ResetFailed(ctx context.Context, unit string) error {
	err := m.retried(ctx, func(l *link) error { return l.conn.ResetFailedUnitContext(ctx, unit) })
	var de dbus.Error
	if errors.As(err, &de) && de.Name == "org.freedesktop.systemd1.NoSuchUnit" {
		return nil // never loaded, nothing to reset
	}
	if err != nil {
		return fmt.Errorf("cannot reset %s: %w", unit, classify(err))
	}
	return nil
}

func classify(err error) error {
	var de dbus.Error
	if errors.As(err, &de) {
		switch de.Name {
		case "org.freedesktop.DBus.Error.AccessDenied", "org.freedesktop.DBus.Error.InteractiveAuthorizationRequired",
			"org.freedesktop.systemd1.AccessDenied":
			return fmt.Errorf("%w: %s", ErrDenied, de.Error())
		}
	}
	return err
}

// Unit is the state of a service unit as sitectl reports it.
type Unit struct {
	Name        string    `json:"unit"`
	LoadState   string    `json:"load_state"`
	ActiveState string    `json:"active_state"`
	SubState    string    `json:"sub_state"`
	MainPID     int       `json:"main_pid"`
	Since       time.Time `json:"since,omitzero"` // when it entered its active state
	Result      string    `json:"result,omitempty"`
	StatusText  string    `json:"status_text,omitempty"`
	NRestarts   int       `json:"n_restarts"`
	// How the last main process ended (CLD_EXITED with its status,
	// CLD_KILLED or CLD_DUMPED with its signal); ExecMainCode 0 while
	// it runs or before any ran.
	ExecMainCode   int `json:"-"`
	ExecMainStatus int `json:"-"`
	// Job is the type of the job queued or running for the unit ("stop",
	// "start", ...), or ""; read by States only.
	Job string `json:"-"`
	// ActiveEnter is when an active service that systemd restarted after
	// a failure (NRestarts > 0) last became active; zero otherwise (a
	// reload's return to active does not move it, as it moves Since).
	// It carries this process's monotonic reading: compare it with
	// time.Now only.
	ActiveEnter time.Time `json:"-"`
	// Fragment is the unit file systemd loaded (FragmentPath=), DropIns
	// the drop-ins applied to it (DropInPaths=); read by UnitsByName and
	// Units, of every loaded unit (services, sockets, paths), not by List.
	Fragment string   `json:"-"`
	DropIns  []string `json:"-"`
}

// MainExit describes how the last main process of u ended, as systemctl
// status words it ("exited with status 1", "killed by signal 9"); "" when
// none has ended since the last start.
func (u Unit) MainExit() string {
	switch u.ExecMainCode {
	case 1: // CLD_EXITED
		return fmt.Sprintf("exited with status %d", u.ExecMainStatus)
	case 2: // CLD_KILLED
		return fmt.Sprintf("was killed by signal %d", u.ExecMainStatus)
	case 3: // CLD_DUMPED
		return fmt.Sprintf("dumped core on signal %d", u.ExecMainStatus)
	}
	return ""
}

const (
	unitIface    = "org.freedesktop.systemd1.Unit"
	serviceIface = "org.freedesktop.systemd1.Service"
	socketIface  = "org.freedesktop.systemd1.Socket"
)

// Units reads the state of every unit matching the patterns: one
// ListUnitsByPatterns call, which holds every unit's load, active and sub
// state, then the properties of the service units among them as pipelined
// calls (sent in batches of up to maxInFlight, answered together), never
// one round trip per unit. Socket and path units are read from the listing
// alone. Units that are not loaded are left out; ask for them by name with
// UnitsByName.
func (m *Manager) Units(ctx context.Context, patterns ...string) ([]Unit, error) {
	return m.listed(ctx, patterns, fullProps)
}

// List reads the units matching the patterns as a listing of thousands of
// sites needs them: one ListUnitsByPatterns call, which already holds every
// unit's load, active and sub state, and property reads only for services
// that are not inactive (main PID, status line, restarts, since when; how a
// failed one ended). An inactive service has, by systemd's state machine,
// ended with result "success" (any other result leaves it failed), so that
// is what List reports for it; its Since is left zero. For 10,000 idle
// sites that is one call instead of 20,000.
func (m *Manager) List(ctx context.Context, patterns ...string) ([]Unit, error) {
	return m.listed(ctx, patterns, briefProps)
}

// listed is the units matching patterns, with the properties want says,
// read on one connection, again on a new one if systemd closed it.
func (m *Manager) listed(ctx context.Context, patterns []string, want propsFunc) ([]Unit, error) {
	var us []Unit
	err := m.retried(ctx, func(l *link) error {
		st, err := l.listUnits(ctx, patterns)
		if err != nil {
			return err
		}
		us, err = l.details(ctx, st, want)
		return err
	})
	return us, err
}

// listUnits is systemd's ListUnitsByPatterns. On systemd's private socket
// it is read and decoded by rawListUnits; on the system bus it is decoded
// by godbus, without go-systemd's two passes of reflection over that (a
// sixth of sitectl list's CPU at 10,000 sites went to them).
func (l *link) listUnits(ctx context.Context, patterns []string) ([]sd.UnitStatus, error) {
	if l.private != "" {
		st, err := rawListUnits(ctx, l.private, patterns)
		var derr dbus.Error
		if err == nil || errors.As(err, &derr) || ctx.Err() != nil {
			if err != nil {
				return nil, fmt.Errorf("cannot list units: %w", classify(err))
			}
			return st, nil
		}
		// The socket went away since the connection was made, or spoke
		// unexpectedly: the connection godbus keeps asks instead.
	}
	call := l.bus.Object("org.freedesktop.systemd1", "/org/freedesktop/systemd1").CallWithContext(ctx,
		"org.freedesktop.systemd1.Manager.ListUnitsByPatterns", 0, []string{}, patterns)
	if call.Err != nil {
		return nil, fmt.Errorf("cannot list units: %w", classify(call.Err))
	}
	st, err := unitStatuses(call.Body)
	if err != nil {
		return nil, fmt.Errorf("cannot list units: %w", err)
	}
	return st, nil
}

// unitStatuses reads the body of a ListUnits answer, a(ssssssouso), as
// godbus decodes it: one []interface{} of ten fields for each unit.
func unitStatuses(body []interface{}) ([]sd.UnitStatus, error) {
	if len(body) != 1 {
		return nil, fmt.Errorf("systemd answered %d values, want 1", len(body))
	}
	rows, ok := body[0].([][]interface{})
	if !ok {
		return nil, fmt.Errorf("systemd answered %T, want a(ssssssouso)", body[0])
	}
	out := make([]sd.UnitStatus, len(rows))
	for i, r := range rows {
		u := &out[i]
		var ok [10]bool
		if len(r) == 10 {
			u.Name, ok[0] = r[0].(string)
			u.Description, ok[1] = r[1].(string)
			u.LoadState, ok[2] = r[2].(string)
			u.ActiveState, ok[3] = r[3].(string)
			u.SubState, ok[4] = r[4].(string)
			u.Followed, ok[5] = r[5].(string)
			u.Path, ok[6] = r[6].(dbus.ObjectPath)
			u.JobId, ok[7] = r[7].(uint32)
			u.JobType, ok[8] = r[8].(string)
			u.JobPath, ok[9] = r[9].(dbus.ObjectPath)
		}
		if ok != [10]bool{true, true, true, true, true, true, true, true, true, true} {
			return nil, fmt.Errorf("unit %d of systemd's answer is not (ssssssouso): %v", i, r)
		}
	}
	return out, nil
}

// UnitsByName reads the given units, loading them if needed. Services are
// read in full: their restart count too when they are not running (how a
// crash loop that gave up ended).
func (m *Manager) UnitsByName(ctx context.Context, names ...string) ([]Unit, error) {
	var us []Unit
	err := m.retried(ctx, func(l *link) error {
		st, err := l.conn.ListUnitsByNamesContext(ctx, names)
		if err != nil {
			return fmt.Errorf("cannot read units: %w", classify(err))
		}
		us, err = l.details(ctx, st, namedProps)
		return err
	})
	return us, err
}

// maxInFlight bounds the pipelined calls: dbus-daemon allows a connection
// 128 pending replies by default, and refuses the rest.
const maxInFlight = 96

// property is one property a unit read asks for.
type property struct {
	iface, name string
	set         func(u *Unit, v dbus.Variant)
}

// Every service: when its state last changed, and how it last ended.
// Running services also: their main PID, status line and restart count
// (systemd's NRestarts: automatic restarts since the last deliberate
// start). Each is a small Get; GetAll of the service interface would send
// some 250 properties (exec arrays among them) per unit.
var (
	unitProps = []property{
		{unitIface, "StateChangeTimestamp", func(u *Unit, v dbus.Variant) {
			if usec, _ := v.Value().(uint64); usec > 0 {
				u.Since = time.UnixMicro(int64(usec)).UTC()
			}
		}},
		{serviceIface, "Result", func(u *Unit, v dbus.Variant) { u.Result, _ = v.Value().(string) }},
		{serviceIface, "ExecMainCode", func(u *Unit, v dbus.Variant) { c, _ := v.Value().(int32); u.ExecMainCode = int(c) }},
		{serviceIface, "ExecMainStatus", func(u *Unit, v dbus.Variant) { c, _ := v.Value().(int32); u.ExecMainStatus = int(c) }},
	}
	runningProps = []property{
		{serviceIface, "MainPID", func(u *Unit, v dbus.Variant) { pid, _ := v.Value().(uint32); u.MainPID = int(pid) }},
		{serviceIface, "StatusText", func(u *Unit, v dbus.Variant) { u.StatusText, _ = v.Value().(string) }},
	}
	restartProps = []property{
		{serviceIface, "NRestarts", func(u *Unit, v dbus.Variant) { n, _ := v.Value().(uint32); u.NRestarts = int(n) }},
	}
	// fileProps are where systemd loaded a unit from: for status, which
	// names a site's local changes, never for list.
	fileProps = []property{
		{unitIface, "FragmentPath", func(u *Unit, v dbus.Variant) { u.Fragment, _ = v.Value().(string) }},
		{unitIface, "DropInPaths", func(u *Unit, v dbus.Variant) { u.DropIns, _ = v.Value().([]string) }},
	}
)

type pending struct {
	unit int
	prop property
	call *dbus.Call
}

// propsFunc says which properties to read of a loaded unit; none for
// sockets and paths (the listing says all status needs of them).
type propsFunc func(s sd.UnitStatus) []property

// props is the properties of a service: always when its state changed and
// how it last ended; what runs for one that is not inactive or failed; its
// restart count when it runs, or also when it does not if withRestarts (how
// a crash loop that gave up ended).
func props(s sd.UnitStatus, withRestarts bool) []property {
	if !strings.HasSuffix(s.Name, ".service") {
		return nil
	}
	ps := slices.Clone(unitProps)
	running := s.ActiveState != "inactive" && s.ActiveState != "failed"
	if running {
		ps = append(ps, runningProps...)
	}
	if running || withRestarts {
		ps = append(ps, restartProps...)
	}
	return ps
}

// fullProps is for a listing of status, which reads everything of every
// site: no restart count of a service that does not run.
func fullProps(s sd.UnitStatus) []property { return append(props(s, false), fileProps...) }

// namedProps is for units asked for by name: everything, and, of every
// unit, the files systemd loaded it from.
func namedProps(s sd.UnitStatus) []property { return append(props(s, true), fileProps...) }

// briefProps is fullProps without anything of an inactive service.
func briefProps(s sd.UnitStatus) []property {
	if s.ActiveState == "inactive" {
		return nil
	}
	return props(s, false)
}

func (l *link) details(ctx context.Context, st []sd.UnitStatus, want propsFunc) ([]Unit, error) {
	out := make([]Unit, len(st))
	var wanted []pending
	for i, s := range st {
		out[i] = Unit{Name: s.Name, LoadState: s.LoadState, ActiveState: s.ActiveState, SubState: s.SubState}
		if s.LoadState != "loaded" && (s.ActiveState == "inactive" || s.ActiveState == "") {
			// No file and not running: systemd has nothing more to
			// say. A unit whose file went (a site file deleted and a
			// daemon-reload since) runs on, not-found, with its main
			// process and all: that is read as for any unit.
			continue
		}
		ps := want(s)
		if ps == nil && s.ActiveState == "inactive" && strings.HasSuffix(s.Name, ".service") {
			out[i].Result = "success"
		}
		for _, p := range ps {
			wanted = append(wanted, pending{unit: i, prop: p})
		}
	}
	if err := l.readProps(ctx, st, out, wanted); err != nil {
		return nil, err
	}
	// Only for services restarted after a failure, which are few: when
	// they last became active, to tell a crash loop from a site that runs.
	wanted = wanted[:0]
	for i := range out {
		if out[i].NRestarts > 0 && out[i].ActiveState == "active" {
			wanted = append(wanted, pending{unit: i, prop: activeEnterProp})
		}
	}
	if err := l.readProps(ctx, st, out, wanted); err != nil {
		return nil, err
	}
	return out, nil
}

// activeEnterProp reads systemd's monotonic timestamp, not its wall-clock
// one: status compares ActiveEnter with time.Now, and a wall clock stepped
// back since (an NTP step after a boot with the RTC ahead, date -s) would
// keep a service that crashed once restarting, exit 3, for the length of
// the step.
var activeEnterProp = property{unitIface, "ActiveEnterTimestampMonotonic", func(u *Unit, v dbus.Variant) {
	if usec, _ := v.Value().(uint64); usec > 0 {
		var mono unix.Timespec
		if unix.ClockGettime(unix.CLOCK_MONOTONIC, &mono) == nil {
			u.ActiveEnter = fromMonotonic(usec, time.Now(), time.Duration(mono.Nano()))
		}
	}
}}

// fromMonotonic is the time of usec, a CLOCK_MONOTONIC timestamp of
// systemd's in microseconds, as now (time.Now) less how long ago it was,
// monoNow being CLOCK_MONOTONIC read at now: it keeps now's monotonic
// reading, so that its Sub from a later time.Now is not moved by a step of
// the wall clock.
func fromMonotonic(usec uint64, now time.Time, monoNow time.Duration) time.Time {
	return now.Add(time.Duration(usec)*time.Microsecond - monoNow)
}

// readProps reads the wanted properties into out, pipelined, a batch at a
// time, answered together.
func (l *link) readProps(ctx context.Context, st []sd.UnitStatus, out []Unit, wanted []pending) error {
	for start := 0; start < len(wanted); start += maxInFlight {
		batch := wanted[start:min(start+maxInFlight, len(wanted))]
		for i := range batch {
			obj := l.bus.Object("org.freedesktop.systemd1", st[batch[i].unit].Path)
			batch[i].call = obj.GoWithContext(ctx, "org.freedesktop.DBus.Properties.Get", 0, nil, batch[i].prop.iface, batch[i].prop.name)
		}
		for _, p := range batch {
			var v dbus.Variant
			if err := (<-p.call.Done).Store(&v); err != nil {
				return fmt.Errorf("cannot read %s of %s: %w", p.prop.name, st[p.unit].Name, classify(err))
			}
			p.prop.set(&out[p.unit], v)
		}
	}
	return nil
}
