package flow

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sitectl/sitectl/internal/control"
	"github.com/sitectl/sitectl/internal/launcher"
	"github.com/sitectl/sitectl/internal/paths"
	"github.com/sitectl/sitectl/internal/probe"
	"github.com/sitectl/sitectl/internal/procfs"
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
func (e *Env) overlapping(ctx context.Context, s *site.Site, opts Options, started startedCopy) (overlap bool, why string, err error) {
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
	why, err = e.fullRestartNeeded(ctx, s, started)
	return why == "" && err == nil, why, err
}

// handOver reloads an overlap site: the launcher starts a new generation in
// mode m, waits until it is ready and lets the old one drain; the reload job
// ends when that is done, or failed with the old generation still serving.
// Then the generation that serves is verified and watched as it settles.
func (sw *switchRun) handOver(ctx context.Context, m site.Mode) (int, error) {
	e, s := sw.e, sw.s
	service := units.ServiceName(s.Name)
	before, err := e.serving(ctx, service)
	if err != nil {
		return 0, err
	}
	if err := sw.stillUp(ctx); err != nil {
		return 0, err
	}
	// Which generation serves before: a rollback may leave it serving
	// only if it is still the one that does (see back).
	if pid, _, err := e.servingPID(ctx, s, &watched{service: service, unit: before, overlap: true}); err == nil {
		sw.servedBefore = pid
	}
	e.progress("%s: starting a new generation beside the serving one", s.Name)
	if err := e.Systemd.Reload(ctx, service); err != nil {
		return 0, sw.reloadFailed(ctx, err, before.MainPID)
	}
	e.trace("%s: systemd's reload job of %s is done: the launcher's new generation is ready", s.Name, service)
	u, err := e.serving(ctx, service)
	if err != nil {
		return 0, err
	}
	if u.MainPID != before.MainPID {
		return 0, fmt.Errorf("the launcher of %s changed during the reload (main PID %d, now %d)", service, before.MainPID, u.MainPID)
	}
	w := watched{service: service, unit: u, overlap: true}
	return u.MainPID, e.verifyServed(ctx, s, m, &w)
}

// reloadFailed says why a reload job failed: the launcher, the main
// process mainPID, knows (a new generation that exited, with its exit
// status, or was not ready in time).
func (sw *switchRun) reloadFailed(ctx context.Context, jobErr error, mainPID int) error {
	err := sw.jobFailed(ctx, jobErr)
	if errors.Is(err, ErrStopped) {
		return err
	}
	if st, serr := sw.e.launcherStatus(ctx, sw.s, mainPID); serr == nil && st.Last != "" {
		return fmt.Errorf("%w: %s", err, st.Last)
	}
	return err
}

// serving checks that a site's service is active and running, and
// returns its state.
func (e *Env) serving(ctx context.Context, service string) (control.Unit, error) {
	u, err := e.unit(ctx, service)
	if err != nil && !errors.Is(err, errNotLoaded) {
		return u, err
	}
	if err != nil || u.ActiveState != "active" || u.SubState != "running" {
		return u, fmt.Errorf("%s is not running", service)
	}
	return u, nil
}

// restartIn restarts the service and waits until it really serves in mode
// m: systemd says it runs (after READY=1 for a notify site), and then it is
// verified and watched as it settles.
func (sw *switchRun) restartIn(ctx context.Context, m site.Mode) (int, error) {
	e, s := sw.e, sw.s
	service := units.ServiceName(s.Name)
	if err := sw.stillUp(ctx); err != nil {
		return 0, err
	}
	if err := sw.reopenSockets(ctx); err != nil {
		return 0, err
	}
	// A deliberate start must not be refused for earlier failures or the
	// start-rate limit.
	if err := e.Systemd.ResetFailed(ctx, service); err != nil {
		return 0, err
	}
	e.progress("%s: restarting %s", s.Name, service)
	if err := e.Systemd.Restart(ctx, service); err != nil {
		return 0, sw.jobFailed(ctx, err)
	}
	e.trace("%s: systemd's restart job of %s is done", s.Name, service)
	u, err := e.unit(ctx, service)
	if err != nil {
		return 0, err
	}
	if u.ActiveState != "active" || u.SubState != "running" {
		return 0, fmt.Errorf("%s is %s/%s after its start (%s)", service, u.ActiveState, u.SubState, howItEnded(u))
	}
	w := watched{service: service, unit: u}
	return u.MainPID, e.verifyServed(ctx, s, m, &w)
}

// verify probes the site in mode m through its listener, when the mode has
// a probe (see probe.For), while w's main process keeps running.
// The priority root's sitectl gave up is taken back once the verification
// fails or has taken verifyingGrace (see Env.Verifying).
func (e *Env) verify(ctx context.Context, s *site.Site, m site.Mode, w *watched) error {
	e.verifyingSoon()
	err := e.verifyNow(ctx, s, m, w)
	if err != nil {
		e.verifyingNow()
	}
	return err
}

func (e *Env) verifyNow(ctx context.Context, s *site.Site, m site.Mode, w *watched) error {
	if probe.For(s, m) == nil {
		return e.notStopped(ctx, w)
	}
	check := e.Probe
	if check == nil {
		check = e.verifyListener
	}
	return e.probeWhileRunning(ctx, s, m, w, check)
}

// notStopped is what a mode without a probe is verified by besides the
// environment of the process that serves: that w's serving process runs.
// One stopped with every process of its session (SIGSTOP, a debugger's
// stop), as a warm generation can be while it waits, answers nothing until
// it is continued; anything less sure (a process that cannot be read, one
// process of the session that runs) is no reason to fail.
func (e *Env) notStopped(ctx context.Context, w *watched) error {
	if w.serving <= 0 {
		return nil
	}
	stopped := e.SessionStopped
	if stopped == nil {
		stopped = procfs.SessionStopped
	}
	if halted, err := stopped(ctx, w.serving); err != nil || !halted {
		return nil
	}
	return fmt.Errorf("the serving process (pid %d) of %s is stopped, with every process of its session (SIGSTOP, or a debugger): it answers nothing until it is continued", w.serving, w.service)
}

// probeWhileRunning runs the probe, and gives up as soon as the service stops
// running or its main process changes: a server that announced readiness
// before loading the app (gunicorn does) and then died must not keep the
// switch, and the visitors queued in the socket, waiting for the probe's
// whole timeout.
func (e *Env) probeWhileRunning(ctx context.Context, s *site.Site, m site.Mode, w *watched, check func(context.Context, *site.Site, site.Mode) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	go e.watchRunning(ctx, cancel, w)
	err := check(ctx, s, m)
	if cause := context.Cause(ctx); err != nil && cause != nil && !errors.Is(cause, context.Canceled) && !errors.Is(cause, context.DeadlineExceeded) {
		return cause
	}
	return err
}

// watchRunning cancels ctx with the reason once the service stops running
// or its main process is no longer w's.
func (e *Env) watchRunning(ctx context.Context, cancel context.CancelCauseFunc, w *watched) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(pollInterval):
		}
		u, err := e.unit(ctx, w.service)
		switch {
		case errors.Is(err, errNotLoaded):
			cancel(err)
			return
		case err != nil || ctx.Err() != nil:
			continue
		}
		if err := w.changed(u, "while it was being verified"); err != nil {
			cancel(err)
			return
		}
	}
}

// servingGeneration checks that an overlap site's unit runs and that the
// generation its launcher reports serving runs mode m, and returns the
// launcher's pid and the pid of the generation that serves.
func (e *Env) servingGeneration(ctx context.Context, s *site.Site, m site.Mode) (mainPID, gen int, err error) {
	return e.servingGenerationOf(ctx, s, m, false)
}

// servingGenerationOf is servingGeneration that, with abandoned, also takes
// a unit that still reloads: its launcher answered that the handover under
// way was abandoned, and is stopping the generation it started, which can
// no longer take over.
func (e *Env) servingGenerationOf(ctx context.Context, s *site.Site, m site.Mode, abandoned bool) (mainPID, gen int, err error) {
	service := units.ServiceName(s.Name)
	u, err := e.serving(ctx, service)
	if err != nil && !(abandoned && u.ActiveState == "reloading") {
		return 0, 0, err
	}
	pid, _, err := e.servingPID(ctx, s, &watched{service: service, unit: u, overlap: true})
	if err != nil {
		return 0, 0, err
	}
	return u.MainPID, pid, e.checkServed(s.Name, m, pid)
}

// abandonHandover ends a handover the switch gave up on (upErr) while its
// unit still reloads: the launcher still starts the new generation, which
// could take over after the switch said it rolled back, and a rollback
// that found the unit reloading took it for down and restarted it cold.
// The launcher is asked to abandon the handover (again, while the reload
// has not reached it); once it answers, the new generation can no longer
// take over (sw.abandoned), and its answer, how far the generation had
// come, is added to upErr. Then the reload job is waited for while the
// rollback's time allows: the launcher may still be stopping the
// generation (its stop timeout), and meanwhile the unit still reloads.
func (sw *switchRun) abandonHandover(ctx context.Context, upErr error) error {
	if !sw.overlapped {
		return upErr
	}
	service := units.ServiceName(sw.s.Name)
	// Without the old generation's pid there is nothing to name: only
	// wait.
	asked, said := sw.servedBefore == 0, ""
	waitCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	for {
		u, err := sw.e.unit(waitCtx, service)
		if err != nil || u.ActiveState != "reloading" {
			break
		}
		if !asked {
			answer, err := sw.e.abandonLauncher(ctx, sw.s, u.MainPID, sw.servedBefore)
			switch {
			case err == nil:
				asked, said, sw.abandoned = true, answer, true
				sw.e.progress("%s: %s", sw.s.Name, answer)
				if deadline, ok := ctx.Deadline(); ok {
					// Leave time to check what serves.
					waitCtx, cancel = context.WithDeadline(ctx, deadline.Add(-abandonCheck))
					defer cancel()
				}
			case errors.Is(err, launcher.ErrNoReload):
				// ExecReload= has not reached the launcher yet.
			default:
				asked = true
				sw.e.progress("%s: the new generation could not be kept from taking over: %v", sw.s.Name, err)
			}
		}
		select {
		case <-waitCtx.Done():
		case <-time.After(pollInterval):
			continue
		}
		break
	}
	if said != "" {
		return fmt.Errorf("%w; %s", upErr, said)
	}
	return upErr
}

// abandonCheck is what the wait for an abandoned reload leaves of the
// rollback's time, to check which generation serves.
const abandonCheck = time.Second

// abandonLauncher asks the launcher of overlap site s, the main process
// mainPID of its service, to abandon the handover from the generation
// whose pid is serving.
func (e *Env) abandonLauncher(ctx context.Context, s *site.Site, mainPID, serving int) (string, error) {
	if e.AbandonLauncher != nil {
		return e.AbandonLauncher(ctx, s, serving)
	}
	return launcher.Abandon(ctx, paths.RuntimeDirectoryPath(s.Name), mainPID, serving)
}
