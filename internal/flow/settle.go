package flow

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/sitectl/sitectl/internal/control"
	"github.com/sitectl/sitectl/internal/launcher"
	"github.com/sitectl/sitectl/internal/modes"
	"github.com/sitectl/sitectl/internal/paths"
	"github.com/sitectl/sitectl/internal/procfs"
	"github.com/sitectl/sitectl/internal/site"
)

// A switch says "ok" only about a site that really serves the new mode.
// Once systemd says the service runs (after READY=1 for a notify site, or
// once an overlap site's reload job is done), the switch
//
//  1. finds the process that serves: the service's main process, or for
//     an overlap site the generation its launcher reports;
//  2. reads the environment that process started with (/proc/PID/environ,
//     as root) and checks SITE_MODE and the mode's own variables;
//  3. probes the site through its listener (modes with a probe);
//  4. watches it settle: until the serving process has run for the site's
//     settle_time, counted from its own start, the service must stay
//     running with the same main process and no automatic restart, and an
//     overlap site must keep a serving generation; then it probes once
//     more, unless the first probe's answer came after the settle time.
//     READY=1 is not health: an app can say it and die 300 ms later.
//
// A fast app waits out the rest of the settle time; one that took longer
// than that to become ready is still watched for half the settle time
// after it was ready. An overlap site's launcher watched its new generation
// from the moment it was ready until it took over (the wait for quiet,
// during which its death fails the reload), so that time counts: the
// switch watches only what is left of the half.

// pollInterval is how often a switch looks at the service while it
// verifies and settles.
const pollInterval = 100 * time.Millisecond

// watched is the service a switch brought up.
type watched struct {
	service string
	unit    control.Unit // as it was when systemd said it runs
	overlap bool
	serving int       // the pid that serves: the main process, or the generation
	ready   time.Time // when systemd said it runs
	// watchedSince is when the serving process was ready and watched
	// from: ready, or, for an overlap site, when its launcher saw the
	// generation ready, if that was earlier.
	watchedSince time.Time
	// probedSettled: the first probe's answer came once the serving
	// process had settled, so the settle needs no second one.
	probedSettled bool
}

// verifyServed checks that the service w serves site s in mode m, and
// watches it settle (see above).
func (e *Env) verifyServed(ctx context.Context, s *site.Site, m site.Mode, w *watched) error {
	w.ready = e.now()
	pid, readyAt, err := e.servingPID(ctx, s, w)
	if err != nil {
		return e.whyGone(ctx, w, goneWait(s, err), err)
	}
	w.serving, w.watchedSince = pid, watchedFrom(w.ready, readyAt)
	e.progress("%s: verifying that pid %d serves mode %s", s.Name, pid, m.Name)
	if err := e.checkServed(s.Name, m, pid); err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ESRCH) {
			return e.whyGone(ctx, w, goneWait(s, err), err)
		}
		return err
	}
	if err := e.verify(ctx, s, m, w); err != nil {
		return err
	}
	e.trace("%s: verified that pid %d serves mode %s", s.Name, pid, m.Name)
	// Asked after the probe: an answer that came once the process had
	// settled shows it serving then, as well as a probe begun then would.
	left, lerr := e.settleLeft(s, w)
	w.probedSettled = lerr == nil && left <= 0
	return e.settle(ctx, s, m, w)
}

// whyGone explains err, a serving process that could not be found or read
// right after it was ready: it exited (an app that dies right after
// READY=1), and systemd says how once the service stops. It waits at most
// limit for that; without it, err.
func (e *Env) whyGone(ctx context.Context, w *watched, limit time.Duration, err error) error {
	for deadline := e.now().Add(limit); ; {
		u, uerr := e.unit(ctx, w.service)
		if uerr == nil {
			if cerr := w.changed(u, fmt.Sprintf("%.1fs after it was ready", e.now().Sub(w.ready).Seconds())); cerr != nil {
				return cerr
			}
		}
		if !e.now().Before(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(pollInterval):
		}
	}
}

// goneWait is how long whyGone waits for systemd to see the service stop
// after err. An overlap site's launcher that cannot be asked at all is
// stopping: its serving generation died, and it stops the generations
// still draining first, which takes up to their drain and stop timeouts
// (its control socket is closed meanwhile).
func goneWait(s *site.Site, err error) time.Duration {
	wait := 2 * time.Second
	if errors.Is(err, errLauncherGone) {
		wait += min(s.DrainTimeout+s.StopTimeout, maxGoneWait)
	}
	return wait
}

// errLauncherGone marks an overlap site's launcher that could not be asked
// which generation serves.
var errLauncherGone = errors.New("the launcher cannot be asked")

// launcherGone is an error of asking the launcher; it is errLauncherGone.
type launcherGone struct{ error }

func (launcherGone) Is(target error) bool { return target == errLauncherGone }
func (g launcherGone) Unwrap() error      { return g.error }

// maxGoneWait bounds goneWait's share of the drain and stop timeouts.
const maxGoneWait = 40 * time.Second

// servingPID is the process that serves: the main process, or the
// generation the launcher of an overlap site reports, with when the
// launcher saw that generation ready (zero for a main process, or from a
// launcher that does not say).
func (e *Env) servingPID(ctx context.Context, s *site.Site, w *watched) (int, time.Time, error) {
	if !w.overlap {
		return w.unit.MainPID, time.Time{}, nil
	}
	st, err := e.launcherStatus(ctx, s, w.unit.MainPID)
	if err != nil {
		return 0, time.Time{}, launcherGone{fmt.Errorf("cannot ask the launcher of %s which generation serves: %w", w.service, err)}
	}
	if st.Serving == nil {
		return 0, time.Time{}, fmt.Errorf("no generation of %s serves: %s", w.service, orUnknown(st.Last))
	}
	// The pid is the launcher's word, and the launcher runs as the site's
	// user: root reads the environment of nothing but its own processes.
	if err := generationOf(w.unit.MainPID, st.Serving.PID); err != nil {
		return 0, time.Time{}, fmt.Errorf("the launcher of %s says pid %d serves, which is not one of its generations: %w", w.service, st.Serving.PID, err)
	}
	return st.Serving.PID, st.Serving.Ready, nil
}

// generationOf checks that pid, which the launcher whose pid is mainPID
// says serves, is one of its generations (launcher.CheckGeneration): the
// launcher runs as the site's user, and the site's app can answer on its
// control socket, so the pid could be any process on the host, whose
// environment root would read and report. A variable for tests, whose
// processes are made up.
var generationOf = func(mainPID, pid int) error { return launcher.CheckGeneration(procfs.Root, mainPID, pid) }

// watchedFrom is when a serving process that systemd said runs at ready,
// and whose launcher saw it ready at launcherReady (zero: not said), has
// been watched from: the earlier of the two. A launcher's time after
// ready (a clock set back) is not believed. The launcher's time came over
// its socket, as a wall-clock time only: it is returned as ready less the
// difference, which keeps ready's monotonic reading, so that the settle's
// e.now().Sub of it is not thrown by a clock stepped during the settle (an
// NTP step back of an hour would have the switch watch an hour more, fail
// at its timeout and roll back a site that serves).
func watchedFrom(ready, launcherReady time.Time) time.Time {
	if launcherReady.IsZero() || launcherReady.After(ready) {
		return ready
	}
	return ready.Add(-ready.Sub(launcherReady))
}

// checkServed reads the environment process pid, of site name's service,
// started with and checks that it runs mode m.
func (e *Env) checkServed(name string, m site.Mode, pid int) error {
	env, err := e.environ(pid, "SITE="+name)
	if err != nil {
		return fmt.Errorf("cannot tell which mode the serving process runs: %w", err)
	}
	return servedModeMismatch(env, m, pid)
}

// servedModeMismatch compares the environment of the serving process pid
// with mode m (modes.Mismatch): SITE_MODE and each of the mode's own
// variables must have the mode file's values. The message names the
// variables that differ, never a value, the process's or the mode's: it
// goes to the deployer's progress, the history and the journal, and a
// mode's variables hold the site's secrets (a database password in
// DATABASE_URL).
func servedModeMismatch(env []string, m site.Mode, pid int) error {
	differ, unset := modes.Mismatch(env, m)
	var found []string
	if len(differ) > 0 {
		found = append(found, strings.Join(differ, ", ")+plural(differ, " differs", " differ")+" from the mode file")
	}
	if len(unset) > 0 {
		found = append(found, strings.Join(unset, ", ")+plural(unset, " is", " are")+" unset")
	}
	if len(found) == 0 {
		return nil
	}
	return fmt.Errorf("the serving process (pid %d) does not run mode %s: in its environment %s",
		pid, m.Name, strings.Join(found, "; "))
}

// plural is one when names has one name, else many.
func plural(names []string, one, many string) string {
	if len(names) == 1 {
		return one
	}
	return many
}

// settle watches w until its serving process has run for the settle time,
// then probes once more, unless the first probe already began after it
// (a short settle_time, or a slow start).
func (e *Env) settle(ctx context.Context, s *site.Site, m site.Mode, w *watched) error {
	announced, lost := false, 0
	for {
		if err := e.stillServes(ctx, s, m, w); err != nil {
			return err
		}
		left, err := e.settleLeft(s, w)
		switch {
		case err != nil && lost < 3:
			lost++ // gone: systemd or the launcher will say how, soon
		case err != nil:
			return fmt.Errorf("the serving process (pid %d) of %s is gone: %w", w.serving, w.service, err)
		case left <= 0 && w.probedSettled:
			return nil // probed after the settle time, and still the same since
		case left <= 0:
			return e.verify(ctx, s, m, w)
		case !announced:
			announced = true
			e.progress("%s: watching pid %d settle for %s", s.Name, w.serving, left.Round(time.Millisecond))
		}
		wait := pollInterval
		if err == nil {
			wait = min(wait, left)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s did not settle in time: %w", w.service, ctx.Err())
		case <-time.After(wait):
		}
	}
}

// settleLeft is how much longer w must be watched: until its serving
// process has run for the settle time from its own start, and at least
// half the settle time since it was ready (watchedSince). The second
// bound matters on a busy host: an app whose start took longer than the
// settle time would otherwise not be watched at all after its READY=1 (14 of 30 switches to
// an app that exits 300 ms after READY=1 said ok at a load of 27 on 2
// cores without it).
func (e *Env) settleLeft(s *site.Site, w *watched) (time.Duration, error) {
	age, err := e.age(w.serving)
	if err != nil {
		return 0, err
	}
	return max(s.SettleTime-age, s.SettleTime/2-e.now().Sub(w.watchedSince)), nil
}

// stillServes checks, once, that w still runs as it was verified: the same
// main process, not restarted, and for an overlap site a generation that
// serves (a newer one, from a reload meanwhile, is checked afresh).
func (e *Env) stillServes(ctx context.Context, s *site.Site, m site.Mode, w *watched) error {
	u, err := e.unit(ctx, w.service)
	if err != nil {
		return err
	}
	if err := w.changed(u, fmt.Sprintf("%.1fs after it was ready", e.now().Sub(w.ready).Seconds())); err != nil || !w.overlap {
		return err
	}
	pid, _, err := e.servingPID(ctx, s, w)
	if err != nil {
		return e.whyGone(ctx, w, goneWait(s, err), err)
	}
	if pid == w.serving {
		return nil
	}
	w.serving = pid
	if err := e.checkServed(s.Name, m, pid); err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ESRCH) {
			return e.whyGone(ctx, w, goneWait(s, err), err)
		}
		return err
	}
	return nil
}

// changed tells whether u is no longer the service w watches, and how.
func (w *watched) changed(u control.Unit, when string) error {
	if u.ActiveState == "active" && u.SubState == "running" && u.MainPID == w.unit.MainPID && u.NRestarts == w.unit.NRestarts {
		return nil
	}
	return fmt.Errorf("%s stopped running %s: %s", w.service, when, describeChange(w.unit, u))
}

// describeChange says what became of a service that was running as before.
func describeChange(before, u control.Unit) string {
	var parts []string
	if exit := u.MainExit(); exit != "" && (u.MainPID != before.MainPID || u.ActiveState != "active") {
		parts = append(parts, "its main process "+exit)
	}
	if n := u.NRestarts - before.NRestarts; n > 0 {
		parts = append(parts, fmt.Sprintf("systemd restarted it %d times", n))
	}
	if u.MainPID != 0 && before.MainPID != 0 && u.MainPID != before.MainPID {
		parts = append(parts, fmt.Sprintf("main PID %d, now %d", before.MainPID, u.MainPID))
	}
	parts = append(parts, "now "+howItEnded(u))
	return strings.Join(parts, "; ")
}

// howItEnded is a unit's state, its result and its status line.
func howItEnded(u control.Unit) string {
	s := u.ActiveState + "/" + u.SubState
	if u.Result != "" && u.Result != "success" {
		s += fmt.Sprintf(", result %q", u.Result)
	}
	if u.StatusText != "" {
		s += fmt.Sprintf(", status %q", u.StatusText)
	}
	return s
}

func orUnknown(s string) string {
	if s == "" {
		return "the launcher does not say why"
	}
	return s
}

// The seams of verification, with their defaults.

// environ is the environment process pid started with, which has mark
// (SITE=NAME, which the site's unit sets for every process it runs).
func (e *Env) environ(pid int, mark string) ([]string, error) {
	if e.Environ != nil {
		return e.Environ(pid)
	}
	// An environ file reads empty while a process has no memory of its
	// own: being forked and not yet exec'd, or exiting (its memory freed
	// before it is a zombie), as an app that crashes at once does. Either
	// passes soon: read again until there is an environment, or the
	// process is gone, which the caller tells as such (whyGone), instead
	// of a serving process that runs no mode.
	// A process that exited reads empty until its parent reaps it, which
	// a busy systemd may do late: it is gone already, and said so at
	// once rather than after the wait, when its empty environment would
	// be taken for one that runs no mode.
	// A process forked and not yet exec'd has its parent's environment
	// (systemd's, without SITE_MODE): with Type=simple (a drop-in) the
	// restart's job is done as soon as systemd forked the main process.
	// Read again until the unit's environment is there (mark).
	deadline := time.Now().Add(emptyEnvironWait)
	for {
		env, err := procfs.Environ(pid)
		if err != nil || len(env) > 0 && slices.Contains(env, mark) {
			return env, err
		}
		if exited, _ := procfs.Exited(pid); exited {
			return nil, fmt.Errorf("process %d exited: %w", pid, syscall.ESRCH)
		}
		if time.Now().After(deadline) {
			return env, nil
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// emptyEnvironWait bounds how long environ reads again a process whose
// environment reads empty.
const emptyEnvironWait = 2 * time.Second

func (e *Env) age(pid int) (time.Duration, error) {
	if e.Age != nil {
		return e.Age(pid)
	}
	return procfs.Age(pid)
}

// launcherStatus asks the launcher of overlap site s, the main process
// mainPID of its service, which generation serves.
func (e *Env) launcherStatus(ctx context.Context, s *site.Site, mainPID int) (launcher.Status, error) {
	if e.Launcher != nil {
		return e.Launcher(ctx, s)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return launcher.AskStatus(ctx, paths.RuntimeDirectoryPath(s.Name), mainPID)
}
