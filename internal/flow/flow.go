// Package flow is what sitectl does to one site: switch it into a mode,
// restart it, roll it back. Each flow records what it is about to do before
// it does it, restarts the site's service over D-Bus, waits until the site
// really serves, and, if it does not, puts the previous mode back and brings
// that up again. The socket units are never touched, so no connection is
// refused while any of it happens.
package flow

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sitectl/sitectl/internal/control"
	"github.com/sitectl/sitectl/internal/modes"
	"github.com/sitectl/sitectl/internal/probe"
	"github.com/sitectl/sitectl/internal/site"
	"github.com/sitectl/sitectl/internal/units"
)

// Systemd is what a flow needs from systemd (control.Manager in production,
// a fake in unit tests).
type Systemd interface {
	Restart(ctx context.Context, unit string) error
	Reload(ctx context.Context, unit string) error
	ResetFailed(ctx context.Context, unit string) error
	UnitsByName(ctx context.Context, names ...string) ([]control.Unit, error)
}

// Env is what a flow runs with. Zero-valued hooks do nothing.
type Env struct {
	Store   modes.Store  // read
	Writer  modes.Writer // write: modes.Local for root, modes.Client otherwise
	Systemd Systemd
	// Progress gets one line per step, for a terminal.
	Progress func(format string, args ...any)
	// Journal returns the journal lines of a unit since a time, for the
	// report of a failed start.
	Journal func(unit string, since time.Time) []string
	// Probe checks that a site serves in a mode; default: the mode's HTTP
	// probe (probe.For) through the site's first listener.
	Probe func(ctx context.Context, s *site.Site, m site.Mode) error
	// Settle is how long a site without readiness notification must keep
	// running after its start before it counts as up; default 1s.
	Settle time.Duration
	Now    func() time.Time
}

func (e *Env) progress(format string, args ...any) {
	if e.Progress != nil {
		e.Progress(format, args...)
	}
}

func (e *Env) now() time.Time {
	if e.Now != nil {
		return e.Now()
	}
	return time.Now()
}

// Report is the outcome of a flow, as `--json` prints it.
type Report struct {
	Site     string   `json:"site"`
	From     string   `json:"from"`
	To       string   `json:"to"`
	Result   string   `json:"result"`
	Changed  bool     `json:"changed"`
	Duration float64  `json:"duration_seconds"`
	MainPID  int      `json:"main_pid"`
	Reason   string   `json:"reason,omitempty"`
	Journal  []string `json:"journal,omitempty"`
}

// Errors a caller maps to exit codes (with errors.Is).
var (
	ErrModeNotFound   = errors.New("no such mode")
	ErrRolledBack     = errors.New("the site did not come up and was rolled back")
	ErrRollbackFailed = errors.New("the site did not come up, and neither did its previous mode")
	ErrNoPrevious     = errors.New("the site has no previous mode to roll back to")
)

// Current is the mode a site is recorded in: its mode file, or its default
// mode when it has none yet.
func Current(st modes.Store, s *site.Site) (string, error) {
	m, ok, err := st.Current(s.Name)
	if err != nil {
		return "", err
	}
	if !ok {
		return s.DefaultMode, nil
	}
	return m, nil
}

// Options of a switch.
type Options struct {
	// Force restarts even when the site already runs in the mode.
	Force bool
	// Restart forces a full restart even for a site whose handoff is
	// overlap.
	Restart bool
	// Timeout bounds the whole flow; 0 means 2 minutes. Bringing the new
	// mode up may use 60% of it, the rollback the rest.
	Timeout time.Duration
}

// SwitchMode puts site s into mode `to`. The caller holds the site's lock.
func SwitchMode(ctx context.Context, e *Env, s *site.Site, to string, opts Options) (Report, error) {
	start := e.now()
	rep := Report{Site: s.Name, To: to}
	mode, ok := s.Mode(to)
	if !ok {
		return rep, fmt.Errorf("site %s has no mode %q (it has: %v): %w", s.Name, to, s.ModeNames(), ErrModeNotFound)
	}
	from, err := Current(e.Store, s)
	if err != nil {
		return rep, err
	}
	rep.From = from

	service := units.ServiceName(s.Name)
	if from == to && !opts.Force {
		us, err := e.Systemd.UnitsByName(ctx, service)
		if err != nil {
			return rep, err
		}
		if len(us) == 1 && us[0].ActiveState == "active" {
			rep.Result, rep.MainPID = modes.ResultOK, us[0].MainPID
			rep.Reason = "already in mode " + to
			return rep, nil
		}
	}
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = 2 * time.Minute
	}

	// Record the intent first: a sitectl killed from here on leaves a
	// pending switch that status reports and the next switch closes.
	if err := e.Writer.Begin(s, from, to); err != nil {
		return rep, err
	}
	overlapped, err := e.overlapping(ctx, s, opts)
	if err != nil {
		return rep, errors.Join(err, e.Writer.Finish(s, modes.ResultRolledBack, err.Error()))
	}
	e.progress("%s: %s → %s", s.Name, from, to)
	// A restart in the same mode needs no new mode file: prepare renders it
	// from the site file at the start. A handover inside the unit has no
	// prepare, so there the file is rendered afresh, changed variables and all.
	if from != to || overlapped {
		if err := e.Writer.SetMode(s, to); err != nil {
			return rep, errors.Join(err, e.Writer.Finish(s, modes.ResultRolledBack, "the mode could not be recorded: "+err.Error()))
		}
	}
	rep.Changed = true

	upCtx, cancel := context.WithTimeout(ctx, timeout*6/10)
	var pid int
	var upErr error
	if overlapped {
		pid, upErr = handOver(upCtx, e, s, mode)
	} else {
		pid, upErr = bringUp(upCtx, e, s, mode)
	}
	cancel()
	if upErr == nil {
		rep.Result, rep.MainPID = modes.ResultOK, pid
		rep.Duration = e.now().Sub(start).Seconds()
		e.progress("%s: serving in mode %s (main PID %d) after %.1fs", s.Name, to, pid, rep.Duration)
		return rep, e.Writer.Finish(s, modes.ResultOK, "")
	}

	// The new mode did not come up: put the old one back.
	rep.Reason = upErr.Error()
	if e.Journal != nil {
		rep.Journal = e.Journal(service, start)
	}
	e.progress("%s: mode %s did not come up: %v", s.Name, to, upErr)
	e.progress("%s: rolling back to %s", s.Name, from)
	var backErr error
	back, backOK := s.Mode(from)
	if !backOK {
		backErr = fmt.Errorf("the previous mode %q is no longer in the site file", from)
	} else if backErr = e.Writer.SetMode(s, from); backErr == nil {
		backCtx, cancel := context.WithTimeout(ctx, timeout-timeout*6/10)
		if overlapped {
			// The old generation never stopped serving: with the mode
			// file back, there is nothing to restart, only to check.
			pid, backErr = e.stillServing(backCtx, s)
		}
		if !overlapped || backErr != nil {
			pid, backErr = bringUp(backCtx, e, s, back)
		}
		cancel()
	}
	rep.Duration = e.now().Sub(start).Seconds()
	if backErr != nil {
		rep.Result = modes.ResultRollbackFailed
		rep.Reason = upErr.Error() + "; rollback: " + backErr.Error()
		e.progress("%s: the rollback to %s failed too: %v", s.Name, from, backErr)
		return rep, errors.Join(fmt.Errorf("site %s: mode %s: %v; rollback to %s: %v: %w", s.Name, to, upErr, from, backErr, ErrRollbackFailed),
			e.Writer.Finish(s, modes.ResultRollbackFailed, rep.Reason))
	}
	rep.Result, rep.MainPID = modes.ResultRolledBack, pid
	rep.Changed = false
	e.progress("%s: serving in mode %s again (main PID %d)", s.Name, from, pid)
	return rep, errors.Join(fmt.Errorf("site %s: mode %s: %v: %w", s.Name, to, upErr, ErrRolledBack),
		e.Writer.Finish(s, modes.ResultRolledBack, upErr.Error()))
}

// Restart restarts a site in its current mode and verifies it serves.
func Restart(ctx context.Context, e *Env, s *site.Site, timeout time.Duration) (Report, error) {
	cur, err := Current(e.Store, s)
	if err != nil {
		return Report{Site: s.Name}, err
	}
	return SwitchMode(ctx, e, s, cur, Options{Force: true, Restart: true, Timeout: timeout})
}

// Reload moves a site to a new generation in its current mode with the
// site's handoff: overlapped for handoff = "overlap", a restart otherwise.
func Reload(ctx context.Context, e *Env, s *site.Site, timeout time.Duration) (Report, error) {
	cur, err := Current(e.Store, s)
	if err != nil {
		return Report{Site: s.Name}, err
	}
	return SwitchMode(ctx, e, s, cur, Options{Force: true, Timeout: timeout})
}

// overlapping tells whether a change of this site hands over inside the
// running unit: the site's handoff is overlap, no full restart was asked
// for, and the unit runs (a stopped site is simply started).
func (e *Env) overlapping(ctx context.Context, s *site.Site, opts Options) (bool, error) {
	if s.Handoff != site.HandoffOverlap || opts.Restart {
		return false, nil
	}
	us, err := e.Systemd.UnitsByName(ctx, units.ServiceName(s.Name))
	if err != nil {
		return false, err
	}
	return len(us) == 1 && us[0].ActiveState == "active", nil
}

// handOver reloads an overlap site: the launcher starts a new generation in
// mode m, waits until it is ready and lets the old one drain; the reload job
// ends when that is done, or failed with the old generation still serving.
func handOver(ctx context.Context, e *Env, s *site.Site, m site.Mode) (int, error) {
	service := units.ServiceName(s.Name)
	before, err := e.stillServing(ctx, s)
	if err != nil {
		return 0, err
	}
	e.progress("%s: starting a new generation beside the serving one", s.Name)
	if err := e.Systemd.Reload(ctx, service); err != nil {
		return 0, err
	}
	pid, err := e.stillServing(ctx, s)
	if err != nil {
		return 0, err
	}
	if pid != before {
		return 0, fmt.Errorf("the launcher of %s changed during the reload (main PID %d, now %d)", service, before, pid)
	}
	if probe.For(s, m) != nil {
		check := e.Probe
		if check == nil {
			check = verify
		}
		e.progress("%s: verifying through its listener", s.Name)
		if err := e.probeWhileRunning(ctx, s, m, service, pid, check); err != nil {
			return 0, err
		}
	}
	return pid, nil
}

// stillServing checks that a site's service is active and running, and
// returns its main PID.
func (e *Env) stillServing(ctx context.Context, s *site.Site) (int, error) {
	service := units.ServiceName(s.Name)
	us, err := e.Systemd.UnitsByName(ctx, service)
	if err != nil {
		return 0, err
	}
	if len(us) != 1 || us[0].ActiveState != "active" || us[0].SubState != "running" {
		return 0, fmt.Errorf("%s is not running", service)
	}
	return us[0].MainPID, nil
}

// Rollback switches a site back to its previous mode.
func Rollback(ctx context.Context, e *Env, s *site.Site, timeout time.Duration) (Report, error) {
	state, err := e.Store.ReadState(s.Name)
	if err != nil {
		return Report{Site: s.Name}, err
	}
	if state.PreviousMode == "" {
		return Report{Site: s.Name}, fmt.Errorf("site %s: %w", s.Name, ErrNoPrevious)
	}
	return SwitchMode(ctx, e, s, state.PreviousMode, Options{Timeout: timeout})
}

// bringUp restarts the service and waits until it really serves in mode m.
func bringUp(ctx context.Context, e *Env, s *site.Site, m site.Mode) (int, error) {
	service := units.ServiceName(s.Name)
	// A deliberate start must not be refused for earlier failures or the
	// start-rate limit.
	if err := e.Systemd.ResetFailed(ctx, service); err != nil {
		return 0, err
	}
	e.progress("%s: restarting %s", s.Name, service)
	if err := e.Systemd.Restart(ctx, service); err != nil {
		return 0, err
	}
	pid, err := e.waitRunning(ctx, s, service)
	if err != nil {
		return 0, err
	}
	check := e.Probe
	if check == nil {
		check = verify
	}
	if probe.For(s, m) == nil {
		return pid, nil
	}
	e.progress("%s: verifying through its listener", s.Name)
	if err := e.probeWhileRunning(ctx, s, m, service, pid, check); err != nil {
		return 0, err
	}
	// The process that passed the probe must still be the one running.
	us, err := e.Systemd.UnitsByName(ctx, service)
	if err != nil {
		return 0, err
	}
	if len(us) != 1 {
		return 0, fmt.Errorf("%s is no longer loaded", service)
	}
	if u := us[0]; u.ActiveState != "active" || u.MainPID != pid {
		return 0, fmt.Errorf("%s stopped running right after it started (now %s/%s)", service, u.ActiveState, u.SubState)
	}
	return pid, nil
}

// probeWhileRunning runs the probe, and gives up as soon as the service stops
// running or its main process changes: a server that announced readiness
// before loading the app (gunicorn does) and then died must not keep the
// switch, and the visitors queued in the socket, waiting for the probe's
// whole timeout.
func (e *Env) probeWhileRunning(ctx context.Context, s *site.Site, m site.Mode, service string, pid int, probe func(context.Context, *site.Site, site.Mode) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
			us, err := e.Systemd.UnitsByName(ctx, service)
			if err != nil || ctx.Err() != nil {
				continue
			}
			if len(us) != 1 {
				cancel(fmt.Errorf("%s is no longer loaded", service))
				return
			}
			if u := us[0]; u.ActiveState != "active" || u.MainPID != pid {
				cancel(fmt.Errorf("%s stopped running while it was being verified (now %s/%s, result %q)", service, u.ActiveState, u.SubState, u.Result))
				return
			}
		}
	}()
	err := probe(ctx, s, m)
	if cause := context.Cause(ctx); err != nil && cause != nil && !errors.Is(cause, context.Canceled) && !errors.Is(cause, context.DeadlineExceeded) {
		return cause
	}
	return err
}

// waitRunning checks that the unit is active and running. A notify site is
// ready when its start job is done (systemd waited for READY=1); a site
// without readiness must also keep running for the settle time, since its
// start job is done as soon as it was exec'd.
func (e *Env) waitRunning(ctx context.Context, s *site.Site, service string) (int, error) {
	settle := time.Duration(0)
	if s.Readiness == site.ReadinessNone {
		settle = e.Settle
		if settle == 0 {
			settle = time.Second
		}
	}
	deadline := e.now().Add(settle)
	pid := 0
	for {
		us, err := e.Systemd.UnitsByName(ctx, service)
		if err != nil {
			return 0, err
		}
		if len(us) != 1 {
			return 0, fmt.Errorf("%s is not loaded", service)
		}
		u := us[0]
		if u.ActiveState != "active" || u.SubState != "running" {
			return 0, fmt.Errorf("%s is %s/%s after its start (result %q)", service, u.ActiveState, u.SubState, u.Result)
		}
		if pid != 0 && u.MainPID != pid {
			return 0, fmt.Errorf("%s restarted by itself while settling (main PID %d, then %d)", service, pid, u.MainPID)
		}
		pid = u.MainPID
		if !e.now().Before(deadline) {
			return pid, nil
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}
