package flow

import (
	"context"
	"errors"
	"fmt"

	"github.com/sitectl/sitectl/internal/modes"
	"github.com/sitectl/sitectl/internal/units"
)

// An operator who stops a site's sockets (systemctl stop site-NAME.socket)
// while a switch runs means it: the switch must not start the site again,
// neither with its own restart nor with a rollback. sitectl queues its
// jobs in systemd's "fail" mode, so a stop queued first refuses them
// instead of being cancelled, and a stop queued later cancels them. Before
// every start, and after every job that did not end "done", a switch that
// began with the sockets up checks whether they still are; if not, it
// records the previous mode again, starts nothing, and reports it.

// socketsUp tells whether every socket unit of the site is active with no
// stop queued, and if not, which is not.
func (sw *switchRun) socketsUp(ctx context.Context) (bool, string, error) {
	states, err := sw.e.Systemd.States(ctx, units.SocketNames(sw.s)...)
	if err != nil {
		return false, "", err
	}
	sw.maskedSockets, sw.unloadedSockets, sw.idleSockets = sw.maskedSockets[:0], sw.unloadedSockets[:0], sw.idleSockets[:0]
	for _, u := range states {
		switch u.LoadState {
		case "masked":
			sw.maskedSockets = append(sw.maskedSockets, u.Name)
		case "not-found":
			sw.unloadedSockets = append(sw.unloadedSockets, u.Name)
		case "loaded":
			if u.ActiveState != "active" {
				sw.idleSockets = append(sw.idleSockets, u.Name)
			}
		}
	}
	for _, u := range states {
		switch {
		case u.Job == "stop":
			return false, fmt.Sprintf("%s has a stop job (now %s/%s)", u.Name, u.ActiveState, u.SubState), nil
		case u.ActiveState != "active" && !sw.reopened[u.Name]:
			// A socket unit the switch restarted itself that did
			// not listen again is not a stop by someone else.
			return false, fmt.Sprintf("%s is %s/%s", u.Name, u.ActiveState, u.SubState), nil
		}
	}
	return true, "", nil
}

// stillUp fails with ErrStopped when the sockets were up when the switch
// began and are not any more.
func (sw *switchRun) stillUp(ctx context.Context) error {
	if !sw.socketsWereUp {
		return nil
	}
	up, why, err := sw.socketsUp(ctx)
	switch {
	case err != nil:
		return err
	case !up:
		return fmt.Errorf("%w: %s", ErrStopped, why)
	}
	return nil
}

// jobFailed is what a restart or reload job that did not end "done" means:
// a stop by someone else (their stop cancelled it, or refused it), or the
// job's own failure.
func (sw *switchRun) jobFailed(ctx context.Context, jobErr error) error {
	if err := sw.stillUp(ctx); errors.Is(err, ErrStopped) {
		return fmt.Errorf("%w (%v)", err, jobErr)
	}
	return jobErr
}

// stopped ends a switch during which someone else stopped the site: the
// previous mode is recorded again, so that the next start runs what ran
// before, and nothing is started.
func (sw *switchRun) stopped(cause error) (Report, error) {
	e, s, from := sw.e, sw.s, sw.rep.From
	sw.rep.Reason, sw.rep.Changed = cause.Error(), false
	sw.rep.Result = modes.ResultStopped
	sw.rep.Duration = e.now().Sub(sw.start).Seconds()
	e.progress("%s: %v; it stays stopped", s.Name, cause)
	var setErr error
	if from != sw.rep.To || sw.overlapped {
		setErr = e.Writer.SetMode(s, from)
	}
	reason := cause.Error()
	if setErr != nil {
		reason += "; the previous mode could not be recorded again: " + setErr.Error()
	}
	err := fmt.Errorf("site %s: mode %s: %w", s.Name, sw.rep.To, cause)
	return sw.finish(modes.ResultStopped, reason, errors.Join(err, setErr))
}
