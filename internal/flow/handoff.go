package flow

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sitectl/sitectl/internal/control"
	"github.com/sitectl/sitectl/internal/probe"
	"github.com/sitectl/sitectl/internal/site"
	"github.com/sitectl/sitectl/internal/units"
)

// errNotLoaded: systemd does not know the unit.
var errNotLoaded = errors.New("is not loaded")

// unit reads the state of one unit.
func (e *Env) unit(ctx context.Context, name string) (control.Unit, error) {
	us, err := e.Systemd.UnitsByName(ctx, name)
	if err != nil {
		return control.Unit{}, err
	}
	if len(us) != 1 {
		return control.Unit{}, fmt.Errorf("%s %w", name, errNotLoaded)
	}
	return us[0], nil
}

// overlapping tells whether a change of this site hands over inside the
// running unit: the site's handoff is overlap, no full restart was asked
// for, and the unit runs (a stopped site is simply started).
//
// A running unit started from a site file that differs from today's in
// what its units say (FullRestartReason) cannot hand over inside itself
// either: why is then the one line that says so.
func (e *Env) overlapping(ctx context.Context, s *site.Site, opts Options) (overlap bool, why string, err error) {
	if s.Handoff != site.HandoffOverlap || opts.Restart {
		return false, "", nil
	}
	u, err := e.unit(ctx, units.ServiceName(s.Name))
	if errors.Is(err, errNotLoaded) {
		return false, "", nil
	}
	if err != nil || u.ActiveState != "active" {
		return false, "", err
	}
	why, err = e.fullRestartNeeded(ctx, s)
	return why == "" && err == nil, why, err
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
	return pid, e.verify(ctx, s, m, pid)
}

// stillServing checks that a site's service is active and running, and
// returns its main PID.
func (e *Env) stillServing(ctx context.Context, s *site.Site) (int, error) {
	service := units.ServiceName(s.Name)
	u, err := e.unit(ctx, service)
	if err != nil && !errors.Is(err, errNotLoaded) {
		return 0, err
	}
	if err != nil || u.ActiveState != "active" || u.SubState != "running" {
		return 0, fmt.Errorf("%s is not running", service)
	}
	return u.MainPID, nil
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
	if probe.For(s, m) == nil {
		return pid, nil
	}
	if err := e.verify(ctx, s, m, pid); err != nil {
		return 0, err
	}
	// The process that passed the probe must still be the one running.
	u, err := e.unit(ctx, service)
	if err != nil {
		return 0, err
	}
	if u.ActiveState != "active" || u.MainPID != pid {
		return 0, fmt.Errorf("%s stopped running right after it started (now %s/%s)", service, u.ActiveState, u.SubState)
	}
	return pid, nil
}

// verify probes the site in mode m through its listener, when the mode has
// a probe (see probe.For), while its main process pid keeps running.
func (e *Env) verify(ctx context.Context, s *site.Site, m site.Mode, pid int) error {
	if probe.For(s, m) == nil {
		return nil
	}
	check := e.Probe
	if check == nil {
		check = verify
	}
	e.progress("%s: verifying through its listener", s.Name)
	return e.probeWhileRunning(ctx, s, m, units.ServiceName(s.Name), pid, check)
}

// probeWhileRunning runs the probe, and gives up as soon as the service stops
// running or its main process changes: a server that announced readiness
// before loading the app (gunicorn does) and then died must not keep the
// switch, and the visitors queued in the socket, waiting for the probe's
// whole timeout.
func (e *Env) probeWhileRunning(ctx context.Context, s *site.Site, m site.Mode, service string, pid int, check func(context.Context, *site.Site, site.Mode) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	go e.watchRunning(ctx, cancel, service, pid)
	err := check(ctx, s, m)
	if cause := context.Cause(ctx); err != nil && cause != nil && !errors.Is(cause, context.Canceled) && !errors.Is(cause, context.DeadlineExceeded) {
		return cause
	}
	return err
}

// watchRunning cancels ctx with the reason once the service stops running
// or its main process is no longer pid.
func (e *Env) watchRunning(ctx context.Context, cancel context.CancelCauseFunc, service string, pid int) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(100 * time.Millisecond):
		}
		u, err := e.unit(ctx, service)
		switch {
		case errors.Is(err, errNotLoaded):
			cancel(err)
			return
		case err != nil || ctx.Err() != nil:
			continue
		case u.ActiveState != "active" || u.MainPID != pid:
			cancel(fmt.Errorf("%s stopped running while it was being verified (now %s/%s, result %q)", service, u.ActiveState, u.SubState, u.Result))
			return
		}
	}
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
		u, err := e.unit(ctx, service)
		if err != nil {
			return 0, err
		}
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
