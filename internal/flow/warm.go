package flow

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sitectl/sitectl/internal/launcher"
	"github.com/sitectl/sitectl/internal/modes"
	"github.com/sitectl/sitectl/internal/paths"
	"github.com/sitectl/sitectl/internal/site"
	"github.com/sitectl/sitectl/internal/units"
)

// warmRollback is the rollback of a site with keep_previous
// (docs/warm-rollback.md): when its launcher keeps a generation warm, it
// records that generation's mode, as a cold rollback would, asks the
// launcher to flip back to it (no process starts), and verifies that the
// service serves that mode. done is false when nothing was changed and a
// cold rollback should follow: rep.NoWarm says why.
func warmRollback(ctx context.Context, e *Env, s *site.Site, timeout time.Duration) (rep Report, err error, done bool) {
	rep = Report{Site: s.Name}
	// The launcher is asked only as the service's main process: its
	// control socket is in a directory the site's app can write.
	u, err := e.serving(ctx, units.ServiceName(s.Name))
	if err != nil {
		rep.NoWarm = err.Error()
		return rep, nil, false
	}
	st, err := e.launcherStatus(ctx, s, u.MainPID)
	switch {
	case err != nil:
		rep.NoWarm = err.Error()
		return rep, nil, false
	case st.Warm == nil:
		rep.NoWarm = "no warm generation"
		if st.NoWarm != "" {
			rep.NoWarm += " (" + st.NoWarm + ")"
		}
		return rep, nil, false
	}
	to := st.Warm.Mode
	mode, ok := s.Mode(to)
	if !ok {
		rep.NoWarm = fmt.Sprintf("the warm generation's mode %q is no longer in the site file", to)
		return rep, nil, false
	}
	// A generation kept warm since before the mode's environment was
	// edited runs an older version of the mode: a flip would serve that,
	// then fail its check and restart the site cold. Read as any serving
	// generation is, and only if it is one of the launcher's own.
	if err := generationOf(u.MainPID, st.Warm.PID); err != nil {
		rep.NoWarm = fmt.Sprintf("the launcher says pid %d is its warm generation, which is not one of its generations: %v", st.Warm.PID, err)
		return rep, nil, false
	}
	if err := e.checkServed(s.Name, mode, st.Warm.PID); err != nil {
		rep.NoWarm = fmt.Sprintf("the warm generation runs an older version of mode %s than the site file has (%v)", to, err)
		return rep, nil, false
	}
	if rep.From, err = Current(e.Store, s); err != nil {
		return rep, err, true
	}
	rep.To = to
	return e.flipBack(ctx, s, rep, mode, u.MainPID, st.Warm.PID, timeout)
}

// flipBack records the warm generation's mode, asks the launcher (the
// service's main process mainPID) for the flip and verifies it; a refused
// flip puts the recorded mode back. A flip that does not serve is
// followed by a cold restart in the mode rolled back to (coldAfterFlip).
func (e *Env) flipBack(ctx context.Context, s *site.Site, rep Report, mode site.Mode, mainPID, warmPID int, timeout time.Duration) (Report, error, bool) {
	start := e.now()
	from, to := rep.From, rep.To
	if err := e.Writer.Begin(s, from, to); err != nil {
		return rep, err, true
	}
	if err := e.recordMode(s, from, to); err != nil {
		return rep, errors.Join(err, e.Writer.Finish(s, modes.ResultRolledBack, err.Error())), true
	}
	answer, err := e.rollbackLauncher(ctx, s, mainPID, warmPID)
	if err != nil {
		rep.NoWarm = err.Error()
		restore := e.recordMode(s, to, from)
		if restore != nil {
			// Nothing flipped: mode from serves on, but the mode file
			// records to, which the next start or reload would run.
			restore = fmt.Errorf("site %s: the launcher refused the warm rollback (%v), and the mode file could not be put back to mode %s, which serves on: it records mode %s, which the site's next start or reload runs: %v: %w",
				s.Name, err, from, to, restore, ErrModeNotPutBack)
		}
		return rep, errors.Join(restore, e.Writer.Finish(s, modes.ResultRolledBack, "warm rollback refused: "+err.Error())), restore != nil
	}
	e.progress("%s: %s", s.Name, answer)
	rep.Rollback, rep.Changed = "warm", true
	pid, gen, err := e.servingGeneration(ctx, s, mode)
	if err == nil && gen != warmPID {
		// Another generation serves the mode (a reload begun meanwhile
		// by systemctl reload, or an app answering on the launcher's
		// socket): not the one kept warm, whose release a rollback of a
		// reload brings back.
		err = fmt.Errorf("the launcher says pid %d serves, not the warm generation (pid %d)", gen, warmPID)
	}
	if err == nil {
		// The launcher's word and the environment say which generation
		// serves, not that it answers: a warm generation's workers may
		// have died, or its connections gone stale. Probed as any
		// switch is, through the site's listener.
		err = e.probeServing(ctx, s, mode, gen)
	}
	rep.Duration = e.now().Sub(start).Seconds()
	if err != nil {
		reason := "the warm generation did not serve after the flip: " + err.Error()
		if ferr := e.Writer.Finish(s, modes.ResultRollbackFailed, reason+"; restarting cold"); ferr != nil {
			rep.Result, rep.Reason = modes.ResultRollbackFailed, reason
			return rep, errors.Join(fmt.Errorf("site %s: warm rollback to mode %s: %v: %w", s.Name, to, err, ErrRollbackFailed), ferr), true
		}
		return e.coldAfterFlip(ctx, s, from, to, reason, timeout)
	}
	rep.Result, rep.MainPID = modes.ResultOK, pid
	e.progress("%s: serving in mode %s again (main PID %d) after %.3fs", s.Name, to, pid, rep.Duration)
	// The history says what sitectl observed; the launcher's own words
	// went to the progress lines above. One that cannot be written
	// leaves the flip done all the same, and says so (notRecorded).
	if ferr := e.Writer.Finish(s, modes.ResultOK, "warm rollback: the generation kept warm serves again"); ferr != nil {
		return rep, notRecorded(&rep, ferr), true
	}
	return rep, nil, true
}

// coldAfterFlip restarts site s cold in mode to, the mode a warm flip
// that did not serve was to bring back: the launcher drained the newer
// generation at the flip, so only a fresh start serves again. The report
// is the restart's, as a rollback from mode from, cold, with why.
func (e *Env) coldAfterFlip(ctx context.Context, s *site.Site, from, to, why string, timeout time.Duration) (Report, error, bool) {
	e.progress("%s: %s: restarting cold in mode %s", s.Name, why, to)
	rep, err := SwitchMode(ctx, e, s, to, Options{Force: true, Restart: true, Timeout: timeout})
	rep.From, rep.Rollback, rep.NoWarm = from, "cold", why
	return rep, err, true
}

// probeServing verifies that site s serves mode m, generation gen
// serving, while its service runs, as a switch's verification does: the
// probe through its listener, or for a mode without one, that the
// generation runs (notStopped).
func (e *Env) probeServing(ctx context.Context, s *site.Site, m site.Mode, gen int) error {
	service := units.ServiceName(s.Name)
	u, err := e.serving(ctx, service)
	if err != nil {
		return err
	}
	return e.verify(ctx, s, m, &watched{service: service, unit: u, overlap: true, serving: gen})
}

// recordMode makes to the recorded mode, when it is not from already.
func (e *Env) recordMode(s *site.Site, from, to string) error {
	if from == to {
		return nil
	}
	return e.Writer.SetMode(s, to)
}

// rollbackLauncher asks the launcher of s, the main process mainPID of its
// service, to flip back to its warm generation, the one whose pid is
// warmPID that was checked: a reload meanwhile makes another one warm.
func (e *Env) rollbackLauncher(ctx context.Context, s *site.Site, mainPID, warmPID int) (string, error) {
	if e.RollbackLauncher != nil {
		return e.RollbackLauncher(ctx, s)
	}
	// The launcher answers once its loop takes the request: at once,
	// unless a reload is under way.
	ctx, cancel := context.WithTimeout(ctx, rollbackWait)
	defer cancel()
	return launcher.Rollback(ctx, paths.RuntimeDirectoryPath(s.Name), mainPID, warmPID)
}

// rollbackWait bounds the wait for the launcher's answer to a rollback.
const rollbackWait = 30 * time.Second
