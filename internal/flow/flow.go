// Package flow is what sitectl does to one site: switch it into a mode,
// restart it, roll it back. Each flow records what it is about to do before
// it does it, restarts the site's service over D-Bus, waits until the site
// really serves, and, if it does not, puts the previous mode back and brings
// that up again. The socket units are never touched, so no connection is
// refused while any of it happens.
package flow

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/sitectl/sitectl/internal/applog"
	"github.com/sitectl/sitectl/internal/control"
	"github.com/sitectl/sitectl/internal/launcher"
	"github.com/sitectl/sitectl/internal/modes"
	"github.com/sitectl/sitectl/internal/site"
	"github.com/sitectl/sitectl/internal/sitecheck"
	"github.com/sitectl/sitectl/internal/units"
)

// Systemd is what a flow needs from systemd (control.Manager in production,
// a fake in unit tests).
type Systemd interface {
	Restart(ctx context.Context, unit string) error
	Stop(ctx context.Context, unit string) error
	Reload(ctx context.Context, unit string) error
	ResetFailed(ctx context.Context, unit string) error
	UnitsByName(ctx context.Context, names ...string) ([]control.Unit, error)
	// States reads units of any type, sockets too, with their queued jobs.
	States(ctx context.Context, names ...string) ([]control.Unit, error)
}

// Env is what a flow runs with. Zero-valued hooks do nothing.
type Env struct {
	Store   modes.Store  // read
	Writer  modes.Writer // write: modes.Local, in root's sitectl or the state service
	Systemd Systemd
	// Progress gets one line per step, for a terminal.
	Progress func(format string, args ...any)
	// Trace gets the steps that have no progress line (trace.Tracer.Step);
	// nil: nothing.
	Trace func(format string, args ...any)
	// Started returns the site as its running service was started from
	// it (the last good copy sitectl prepare keeps), or nil when that is
	// not known; nil skips the check for changes a handover cannot apply.
	Started func(name string) (*site.Site, error)
	// SocketsMissing returns the listeners of a site for which systemd
	// holds no listening socket (sockheld.Missing); nil skips the check.
	SocketsMissing func(s *site.Site) ([]string, error)
	// Unbindable says why systemd could not bind lost listeners of a site
	// now (sockheld.Unbindable: another process than own, the site's
	// service's, listens there); nil skips the check.
	Unbindable func(s *site.Site, lost []string, own []int) ([]string, error)
	// Procs lists the processes of the unit whose main process is pid
	// (cgroup.Of and cgroup.Procs); nil: the main process alone.
	Procs func(pid int) ([]int, error)
	// Journal returns the journal lines of a unit since a time, for the
	// report of a failed start.
	Journal func(unit string, since time.Time) []string
	// Probe checks that a site serves in a mode; default: the mode's HTTP
	// probe (probe.For) through the site's first listener.
	Probe func(ctx context.Context, s *site.Site, m site.Mode) error
	// DialTCP connects the default probe to a TCP listener's address
	// (IP:port); default: a direct connect. sitectl's state service, which
	// has no network of its own, dials through sitectl-dial.service
	// (package dialer).
	DialTCP func(ctx context.Context, address string) (net.Conn, error)
	// Environ reads the environment a process started with; default
	// procfs.Environ (/proc/PID/environ).
	Environ func(pid int) ([]string, error)
	// Age is how long a process has been running; default procfs.Age.
	Age func(pid int) (time.Duration, error)
	// SessionStopped tells whether a process is stopped with every
	// process of its session; default procfs.SessionStopped.
	SessionStopped func(ctx context.Context, sid int) (bool, error)
	// Launcher asks an overlap site's launcher which generation serves;
	// default launcher.AskStatus in the site's runtime directory.
	Launcher func(ctx context.Context, s *site.Site) (launcher.Status, error)
	// RollbackLauncher asks a keep_previous site's launcher to flip back
	// to its warm generation; default launcher.Rollback in the site's
	// runtime directory.
	RollbackLauncher func(ctx context.Context, s *site.Site) (string, error)
	// AbandonLauncher asks an overlap site's launcher to stop the
	// generation a handover is starting to replace the one whose pid is
	// serving (a switch out of time); default launcher.Abandon in the
	// site's runtime directory.
	AbandonLauncher func(ctx context.Context, s *site.Site, serving int) (string, error)
	// PinBack goes back to the version of site s's file that the site
	// ran before the change, after the file as it is failed to start in
	// mode: it pins the site to that version (modes.Store.Pin) and has
	// systemd reload, so that its units come from it. It returns the site
	// as that version declares it, or nil when there is none to go back
	// to (no copy, the file is that version, the copy lacks mode). nil:
	// a rollback restarts the site from its file as it is.
	PinBack func(ctx context.Context, s *site.Site, mode, reason string) (*site.Site, error)
	// Unpin undoes PinBack when the version it went back to did not come
	// up either, and has systemd reload.
	Unpin func(ctx context.Context, s *site.Site) error
	// KeepStopped refuses a change of a site whose sockets are not
	// active: starting its service would start them (Requires=). A
	// deployer's change has it: root stopped the site (systemctl stop),
	// and only root starts it again.
	KeepStopped bool
	// Interrupt, once done, interrupts a change (root's sitectl got
	// SIGINT or SIGTERM; its cause says which): one not yet begun does
	// nothing, and a new mode not yet shown to serve is given up and
	// the previous mode brought up and verified again, as after a
	// failed start. A change whose new mode was shown to serve stands.
	// A deployer's change is interrupted when the deployer's sitectl gets
	// the signal and tells sitectl's state service; one whose caller
	// hangs up runs to its end. nil: a change is never interrupted.
	Interrupt context.Context
	// Host is what the check before a restart reads of the host;
	// default sitecheck.OS.
	Host *sitecheck.Host
	Now  func() time.Time
	// Verifying is called once while the flow verifies what it changed:
	// root's sitectl takes back the priority it gave up for the change
	// (launcher.Yield), so that a busy host cannot starve its probe into
	// a false failure. It comes when a verification fails, or once one
	// has gone on for verifyingGrace without succeeding: a probe answered
	// at once costs the host's other work nothing. nil: nothing.
	Verifying func()

	// urgent is Verifying, called at most once, once armed, and
	// verifyGrace, when set, replaces verifyingGrace (tests); see
	// verifying.go.
	urgent      func()
	verifyGrace time.Duration
}

func (e *Env) progress(format string, args ...any) {
	if e.Progress != nil {
		e.Progress(format, args...)
	}
}

// trace marks a step that shows no progress line, for an operator who
// asks where a change's time goes (trace.Tracer).
func (e *Env) trace(format string, args ...any) {
	if e.Trace != nil {
		e.Trace(format, args...)
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
	Site     string   `json:"site" doc:"the site's name"`
	From     string   `json:"from" doc:"the mode the site was in"`
	To       string   `json:"to" doc:"the mode asked for"`
	Result   string   `json:"result" doc:"ok (the site serves in mode to; with a reason, and a non-zero exit, when its history could not be written), rolled-back (the site serves in mode from again; exit code 5 when its mode file could not be written back, and the site would start in mode to: the reason says so), rollback-failed (it was shown to serve in neither: main_pid is not 0 when its service runs all the same, unverified), stopped (someone else stopped the site during the change: it stays stopped, in mode from), or empty when the change never began (a mode that does not exist, say)" enum:"ok,rolled-back,rollback-failed,stopped,"`
	Changed  bool     `json:"changed" doc:"the site was restarted or reloaded and runs the new mode or generation"`
	Duration float64  `json:"duration_seconds" doc:"how long the change took"`
	MainPID  int      `json:"main_pid" doc:"the service's main PID afterwards; 0 when it does not run"`
	Reason   string   `json:"reason" doc:"why nothing was done (already in the mode) or what failed; empty otherwise"`
	Journal  []string `json:"journal" doc:"the journal lines of a failed start; [] when none"`
	// AppError is the app's last error in the journal of a failed start:
	// the exception line of its last Python traceback, or its last lines.
	AppError []string `json:"app_error" doc:"the app's last error in the journal of a failed start: the exception line of its last Python traceback, or its last lines; [] when none"`
	// Hint explains a cause sitectl recognises in that journal.
	Hint string `json:"hint" doc:"a cause sitectl recognises in the journal of a failed start (an app that binds its own port); empty otherwise"`
	// FullRestart says why a site whose handoff is overlap was restarted
	// fully: its file changed in a way a handover cannot apply.
	FullRestart string `json:"full_restart" doc:"why an overlap site was restarted fully instead of handed over (its file changed in a way a handover cannot apply); empty otherwise"`
	// Rollback says how sitectl rollback went back.
	Rollback string `json:"rollback" doc:"for sitectl rollback: warm (the previous generation, kept warm by keep_previous, serves again without a process start) or cold (the previous mode started afresh); empty for other changes" enum:"warm,cold,"`
	// NoWarm says why a rollback of a keep_previous site went cold.
	NoWarm string `json:"no_warm" doc:"why sitectl rollback of a site with keep_previous went cold (no warm generation, the launcher unreachable, --cold); empty otherwise"`
	// Pinned says that the rollback went back to the version of the site
	// file the site ran before, and pinned the site to it.
	Pinned string `json:"pinned" doc:"the site file, as it is, failed to start, and the rollback went back to the version of it that the site ran before and pinned the site to that version until the file changes (the generator and every start use it, sitectl status shows it); empty otherwise"`
	// Warnings are what the operator should know of a change that went
	// ahead: a restart that ran units older than the site file.
	Warnings []string `json:"warnings" doc:"what the operator should know of a change that went ahead (a restart that ran systemd's units older than the site file); [] when none"`
	// UnitsStopped are units of what the site file no longer declares
	// that systemd still ran, stopped once the site served (stopGone).
	UnitsStopped []string `json:"units_stopped" doc:"units of what the site file no longer declares (a named listener removed, reload_trigger dropped) that systemd still ran without a unit file, stopped once the site served and seen inactive; [] when none"`
}

// MarshalJSON writes the report as docs/json/change.schema.json says:
// journal and app_error are [] when there are no lines, never null.
func (r Report) MarshalJSON() ([]byte, error) {
	type plain Report
	if r.Journal == nil {
		r.Journal = []string{}
	}
	if r.AppError == nil {
		r.AppError = []string{}
	}
	if r.Warnings == nil {
		r.Warnings = []string{}
	}
	if r.UnitsStopped == nil {
		r.UnitsStopped = []string{}
	}
	return json.Marshal(plain(r))
}

// Errors a caller maps to exit codes (with errors.Is).
var (
	ErrModeNotFound   = errors.New("no such mode")
	ErrRolledBack     = errors.New("the site did not come up and was rolled back")
	ErrRollbackFailed = errors.New("the site did not come up, and neither did its previous mode")
	ErrNoPrevious     = errors.New("the site has no previous mode to roll back to")
	// ErrStopped: someone else stopped the site's sockets during the
	// switch; it was left stopped (see stopped.go).
	ErrStopped    = errors.New("the site was stopped by someone else during the switch")
	ErrSocketLost = errors.New("its socket unit holds no socket")
	// ErrModeNotPutBack: a rollback found the previous mode serving (an
	// overlap site's old generation never stopped), but the mode file
	// could not record it again (a full or read-only state directory):
	// it records the mode that did not come up, which the site's next
	// start or reload would run.
	ErrModeNotPutBack = errors.New("the previous mode serves, but the mode file could not record it again")
	// ErrNotRecorded: the change was shown to serve, and its history
	// could not be written (a full or read-only state directory).
	ErrNotRecorded = errors.New("the change was made but not recorded")
	// ErrListenerInUse: a listener systemd must open again for the site
	// is held by another process.
	ErrListenerInUse = errors.New("a listener of the site is in use")
	// ErrBadTimeout: the change's timeout is longer than MaxTimeout, or
	// leaves too little time for the site to come up and stay up for its
	// settle_time.
	ErrBadTimeout = errors.New("the timeout does not fit the change")
	// ErrOutOfService: the site was taken out of service (sitectl
	// disable), and only sitectl enable puts it back.
	ErrOutOfService = errors.New("the site is out of service")
	// ErrSiteStopped: a deployer's change of a site whose sockets are
	// stopped; only root starts a site again.
	ErrSiteStopped = errors.New("the site is stopped")
	// ErrInterrupted: Env.Interrupt ended the change; with ErrRolledBack
	// or ErrRollbackFailed when it had begun, alone when nothing was done.
	ErrInterrupted = errors.New("sitectl was interrupted")
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
//
// The steps: check the mode and the state (begin), record the intent and
// the new mode (record), bring the new mode up with the site's handoff
// (up), and either finish (succeed) or put the previous mode back and
// bring that up (rollBack). Every way out of a recorded switch goes
// through finish, which closes it in the history.
func SwitchMode(ctx context.Context, e *Env, s *site.Site, to string, opts Options) (Report, error) {
	sw, done, err := begin(ctx, e, s, to, opts)
	if done || err != nil {
		return sw.rep, err
	}
	if err := e.inService(s); err != nil {
		return sw.rep, err
	}
	if err := sw.plan(ctx); err != nil {
		return sw.rep, err
	}
	e.trace("%s: checked that the change can be made", s.Name)
	if cause := e.interruption(); cause != nil {
		return sw.rep, fmt.Errorf("site %s: %w before the change began; nothing was done", s.Name, cause)
	}
	if err := sw.record(ctx); err != nil {
		return sw.rep, err
	}
	upCtx, cancel := context.WithTimeout(ctx, upShare(sw.timeout))
	stopWatch := e.onInterrupt(cancel)
	pid, upErr := sw.up(upCtx)
	stopWatch()
	cut := errors.Is(upCtx.Err(), context.Canceled) // by the interruption
	cancel()
	if cause := e.interruption(); cause != nil && upErr != nil && cut {
		sw.interrupted = true
		upErr = fmt.Errorf("%w before mode %s was shown to serve", cause, to)
	}
	if upErr == nil {
		if cause := e.interruption(); cause != nil {
			sw.warn("%v after mode %s was shown to serve: the change stands (`sitectl rollback %s` undoes it)", cause, to, s.Name)
		}
		sw.stopGone(ctx)
		return sw.succeed(pid)
	}
	backCtx, cancel := context.WithTimeout(ctx, sw.timeout-upShare(sw.timeout))
	defer cancel()
	if errors.Is(upErr, ErrStopped) {
		return sw.stopped(upErr)
	}
	if err := sw.stillUp(backCtx); errors.Is(err, ErrStopped) {
		return sw.stopped(fmt.Errorf("%w; before that, mode %s did not come up: %v", err, to, upErr))
	}
	return sw.rollBack(backCtx, upErr)
}

// switchRun is one switch of one site on its way.
type switchRun struct {
	e          *Env
	s          *site.Site
	opts       Options
	mode       site.Mode // the mode switched to
	rep        Report    // From, To and what happened so far
	start      time.Time
	timeout    time.Duration
	overlapped bool // the handover happens inside the running unit
	// socketsWereUp: the site's sockets were active when the switch began;
	// if they stop meanwhile, someone else stopped the site.
	socketsWereUp bool
	// servedBefore is the generation that served before an overlapped
	// handover (0: not known).
	servedBefore int
	// abandoned: the launcher answered that the handover the switch gave
	// up on was abandoned (abandonHandover).
	abandoned bool
	// reopened are the socket units the switch restarted itself to open
	// their lost sockets (reopenSockets); socketsLost: some may have lost
	// theirs (checkSockets found some, or a pin reloaded the units).
	reopened    map[string]bool
	socketsLost bool
	// gone are the units of what the site file declared when the service
	// last started and no longer declares (goneUnits).
	gone []string
	// maskedSockets are the site's socket units that are masked, as
	// socketsUp last saw them.
	maskedSockets []string
	// unloadedSockets are those systemd has no unit for (not-found), as
	// socketsUp last saw them: a site file put in place since the last
	// daemon-reload.
	unloadedSockets []string
	// idleSockets are the site's loaded socket units that are not
	// active, as socketsUp last saw them: a restart starts them (the
	// service requires them). lostHolders are the active ones
	// checkSockets found holding no socket for a listener, which the
	// restart restarts (reopenSockets).
	idleSockets, lostHolders []string
	// interrupted: Env.Interrupt cut the bringing up short; the site
	// file did not fail, so the rollback does not go back to the version
	// the site ran before.
	interrupted bool
	// goneFrom is the mode switched from as its mode file recorded it,
	// when the site file no longer has it: what a rollback brings back.
	goneFrom *site.Mode
}

// interruption is the cause of Env.Interrupt once it is done, or nil.
func (e *Env) interruption() error {
	if e.Interrupt == nil || e.Interrupt.Err() == nil {
		return nil
	}
	if cause := context.Cause(e.Interrupt); cause != nil && errors.Is(cause, ErrInterrupted) {
		return cause
	}
	return ErrInterrupted
}

// onInterrupt calls cancel when Env.Interrupt is done, until the returned
// function is called.
func (e *Env) onInterrupt(cancel func()) func() {
	if e.Interrupt == nil {
		return func() {}
	}
	stop := context.AfterFunc(e.Interrupt, cancel)
	return func() { stop() }
}

// MinTimeout is the shortest timeout, in whole seconds, of a change of a
// site whose settle_time is settle: its rollback share (40%) is longer
// than the settle time.
func MinTimeout(settle time.Duration) time.Duration {
	return (settle * 10 / 4).Truncate(time.Second) + time.Second
}

// MaxTimeout is the longest timeout of a change: a day, the longest any
// timeout of a site file may be. Past it a value is a typo, and one large
// enough overflows the deadlines computed from it.
const MaxTimeout = 24 * time.Hour

// CheckTimeout tells whether timeout leaves a change of site s room to
// show its result: the new mode must stay up for settle_time within the
// 60% it gets to come up, and the previous mode within the 40% left for a
// rollback. With less, a failed change could never show its rollback,
// and would say the site is down (exit 5) while the previous mode serves.
// The CLI asks before it takes the site's lock or touches its state;
// begin asks again, of the site file read under the lock.
func CheckTimeout(s *site.Site, timeout time.Duration) error {
	if timeout > MaxTimeout {
		return fmt.Errorf("site %s: a timeout of %v is longer than %v; nothing was done: %w", s.Name, timeout, MaxTimeout, ErrBadTimeout)
	}
	up := upShare(timeout)
	if back := timeout - up; back <= s.SettleTime {
		return fmt.Errorf("site %s: a timeout of %v leaves %v to bring the site up and %v for a rollback, not more than its settle_time %v, for which each must stay up: give at least %v; nothing was done: %w",
			s.Name, timeout, up, back, s.SettleTime, MinTimeout(s.SettleTime), ErrBadTimeout)
	}
	return nil
}

// upShare is the part of a change's timeout for bringing the new mode up:
// 60%; the rest is the rollback's.
func upShare(timeout time.Duration) time.Duration { return timeout / 10 * 6 }

// begin checks that the mode exists and reads the mode the site is in. A
// site that already runs in the mode is done unless forced (see already).
func begin(ctx context.Context, e *Env, s *site.Site, to string, opts Options) (*switchRun, bool, error) {
	sw := &switchRun{e: e, s: s, opts: opts, start: e.now(), rep: Report{Site: s.Name, To: to}, timeout: opts.Timeout}
	if sw.timeout <= 0 {
		sw.timeout = 2 * time.Minute
	}
	mode, ok := s.Mode(to)
	if !ok {
		return sw, true, fmt.Errorf("site %s has no mode %q (it has: %s): %w", s.Name, to, strings.Join(s.ModeNames(), ", "), ErrModeNotFound)
	}
	if err := CheckTimeout(s, sw.timeout); err != nil {
		return sw, true, err
	}
	sw.mode = mode
	recorded, err := Current(e.Store, s)
	if err != nil {
		return sw, true, err
	}
	from, err := e.switchedFrom(s, recorded, to)
	if err != nil {
		return sw, true, err
	}
	sw.rep.From = from
	if _, ok := s.Mode(from); !ok {
		// The site file lost the mode the site runs (renamed or removed):
		// prepare keeps its mode file as it is, and so is it known for a
		// rollback.
		if m, err := e.Store.RecordedMode(s.Name); err == nil && m.Name == from {
			sw.goneFrom = &m
		}
	}
	if from != to || opts.Force {
		return sw, false, nil
	}
	u, ok, err := e.already(ctx, s, mode)
	switch {
	case err != nil:
		return sw, true, err
	case !ok:
		return sw, false, nil
	}
	sw.rep.Result, sw.rep.MainPID = modes.ResultOK, u.MainPID
	sw.rep.Reason = "already in mode " + to
	return sw, true, nil
}

// switchedFrom is the mode a switch of site s to mode to, whose mode file
// records mode recorded, comes from and rolls back to: the recorded mode,
// unless it was never shown to serve. A sitectl killed (kill -9, the OOM
// killer, a power loss) after it recorded a switch leaves the mode file
// recording the mode it switched to, while the process that served before
// may serve on; a change that failed and rolled back to that mode would
// bring up a mode nothing verified, and take down a site that served
// (`sitectl restart`, or the switch asked again). Such a change comes
// from the mode last shown to serve (VerifiedMode), when the site file
// still has it, as a rollback right after the kill goes back to it. A
// switch to that very mode comes from the recorded one: it has nothing
// verified to roll back to.
func (e *Env) switchedFrom(s *site.Site, recorded, to string) (string, error) {
	state, err := e.Store.ReadSummary(s.Name)
	if err != nil {
		return "", err
	}
	v := state.VerifiedMode
	if v == "" && state.Pending != nil { // recorded by an older sitectl
		v = state.Pending.From
	}
	if _, ok := s.Mode(v); !ok || v == recorded || v == to {
		return recorded, nil
	}
	return v, nil
}

// already tells whether site s, whose mode file records mode m, is shown
// to serve m, so that a switch to m has nothing to do, and returns its
// service. The mode file alone does not show it: it is written before the
// restart that applies it, so a sitectl killed in between leaves it
// recording m while the old process serves on. The switch is open then
// (pending), and it is done only when no switch is, the service runs,
// and the process that serves started with m's environment (checkServed,
// as after a switch). Anything less is switched again.
func (e *Env) already(ctx context.Context, s *site.Site, m site.Mode) (control.Unit, bool, error) {
	state, err := e.Store.ReadSummary(s.Name)
	if err != nil {
		return control.Unit{}, false, err
	}
	if p := state.Pending; p != nil {
		e.progress("%s: a switch from %s to %s (sitectl pid %d) did not finish: switching again", s.Name, p.From, p.To, p.PID)
		return control.Unit{}, false, nil
	}
	service := units.ServiceName(s.Name)
	u, err := e.unit(ctx, service)
	switch {
	case errors.Is(err, errNotLoaded) || err == nil && u.ActiveState != "active":
		return u, false, nil // not running: start it in the mode
	case err != nil:
		return u, false, err
	}
	w := watched{service: service, unit: u, overlap: s.Handoff == site.HandoffOverlap}
	pid, _, err := e.servingPID(ctx, s, &w)
	if err == nil {
		err = e.checkServed(s.Name, m, pid)
	}
	if err != nil {
		e.progress("%s: mode %s is recorded but not shown to serve (%v): switching again", s.Name, m.Name, err)
		return u, false, nil
	}
	return u, true, nil
}

// inService refuses to change a site taken out of service: starting its
// service would start its sockets with it (Requires=), and a restart, a
// mode switch or a deployer's reload would put back in service a site
// that root took out, until sitectl enable, across reboots too.
func (e *Env) inService(s *site.Site) error {
	out, since, err := e.Store.OutOfService(s.Name)
	if err != nil || !out {
		return err
	}
	return fmt.Errorf("site %s was taken out of service (sitectl disable) on %s; nothing was done: %w",
		s.Name, since.UTC().Format("2006-01-02 15:04:05 UTC"), ErrOutOfService)
}

// plan decides how the new mode comes up, before anything is recorded:
// handed over inside the running unit, or by a restart, which must be
// able to start (startable). A refusal here changes nothing.
func (sw *switchRun) plan(ctx context.Context) error {
	up, why, err := sw.socketsUp(ctx)
	if err != nil {
		return err
	}
	sw.socketsWereUp = up
	if len(sw.maskedSockets) > 0 {
		// The restart would stop the service and could not start it
		// (it requires its sockets), nor could the rollback: not a
		// site file that changed, nor a site that is down.
		names := strings.Join(sw.maskedSockets, " and ")
		return fmt.Errorf("site %s: %s is masked, and systemd starts no masked unit: a restart would stop the site and could start neither the new mode nor the old; nothing was done (`systemctl unmask %s` lets it start): %w",
			sw.s.Name, names, strings.Join(sw.maskedSockets, " "), ErrCannotStart)
	}
	if err := sw.unitsLoaded(); err != nil {
		return err
	}
	// The copy of the site file the service last started from, read
	// once: what the change tidies up (goneUnits; a copy that cannot be
	// read leaves none, as tidying up is not what the change is for) and
	// whether a handover can apply the file (overlapping).
	started := sw.e.started(sw.s.Name)
	if started.err == nil {
		sw.gone = goneUnits(started.site, sw.s)
	}
	if !up && sw.e.KeepStopped {
		return fmt.Errorf("site %s is stopped (%s): its service would start its sockets, and only root starts a stopped site (`sitectl enable %s`, or `systemctl start %s`); nothing was done: %w",
			sw.s.Name, why, sw.s.Name, units.MainSocketName(sw.s.Name), ErrSiteStopped)
	}
	if sw.overlapped, sw.rep.FullRestart, err = sw.e.overlapping(ctx, sw.s, sw.opts, started); err != nil {
		return err
	}
	if err := sw.checkSockets(ctx); err != nil {
		return err
	}
	if !up {
		if err := sw.stoppedBindable(ctx); err != nil {
			return err
		}
	}
	return sw.checkStart(ctx)
}

// checkStart refuses, before anything is recorded, what would surely not
// come up: for a restart, a socket unit it must start (ownable) or the
// service (startable); for a handover to a maintenance mode, the page or
// static_dir the new generation opens (servable).
func (sw *switchRun) checkStart(ctx context.Context) error {
	if sw.overlapped {
		if sw.mode.Serve == site.ServeMaintenance {
			return sw.e.servable(ctx, sw.s, sw.mode)
		}
		return nil
	}
	if err := sw.ownable(ctx, append(slices.Clone(sw.lostHolders), sw.idleSockets...)); err != nil {
		return err
	}
	stale, err := sw.e.startable(ctx, sw.s, sw.mode)
	if err != nil {
		return err
	}
	if stale != "" {
		sw.warn("the site file changed since systemd loaded %s: the restart runs the command line, user, sockets and settings systemd has, with the mode's environment from the file as it is now (%s)", units.ServiceName(sw.s.Name), stale)
	}
	return nil
}

// warn adds a warning to the report, which the caller shows once the
// change is done.
func (sw *switchRun) warn(format string, args ...any) {
	sw.rep.Warnings = append(sw.rep.Warnings, fmt.Sprintf(format, args...))
}

// record writes the intent first, so that a sitectl killed from here on
// leaves a pending switch that status reports and the next switch closes;
// then the new mode. A restart in the same mode needs no new mode file:
// prepare renders it from the site file at the start. A handover inside
// the unit has no prepare, so there the file is rendered afresh, changed
// variables and all.
func (sw *switchRun) record(ctx context.Context) error {
	from, to := sw.rep.From, sw.rep.To
	if err := sw.e.Writer.Begin(sw.s, from, to); err != nil {
		return fmt.Errorf("site %s: the change could not be recorded before it began; nothing was done: %w", sw.s.Name, err)
	}
	if sw.rep.FullRestart != "" {
		sw.e.progress("%s: %s", sw.s.Name, sw.rep.FullRestart)
	}
	sw.e.progress("%s: %s → %s", sw.s.Name, from, to)
	if from != to || sw.overlapped {
		if err := sw.e.Writer.SetMode(sw.s, to); err != nil {
			_, err = sw.finish(modes.ResultRolledBack, "the mode could not be recorded: "+err.Error(), err)
			return err
		}
	}
	return nil
}

// up brings the new mode up with the site's handoff.
func (sw *switchRun) up(ctx context.Context) (int, error) {
	if sw.overlapped {
		return sw.handOver(ctx, sw.mode)
	}
	return sw.restartIn(ctx, sw.mode)
}

// succeed finishes a switch whose new mode serves.
func (sw *switchRun) succeed(pid int) (Report, error) {
	// Changed is what was seen: the site restarted or reloaded and runs
	// the new mode. Until then it is false, whatever the switch began.
	sw.rep.Result, sw.rep.MainPID, sw.rep.Changed = modes.ResultOK, pid, true
	sw.rep.Duration = sw.e.now().Sub(sw.start).Seconds()
	sw.e.progress("%s: serving in mode %s (main PID %d) after %.1fs", sw.s.Name, sw.rep.To, pid, sw.rep.Duration)
	return sw.finish(modes.ResultOK, "", nil)
}

// rollBack puts the previous mode back after upErr and brings it up. With
// overlap the old generation never stopped serving: with the mode file
// back, there is nothing to restart, only to check.
func (sw *switchRun) rollBack(ctx context.Context, upErr error) (Report, error) {
	e, s, from, to := sw.e, sw.s, sw.rep.From, sw.rep.To
	upErr = sw.abandonHandover(ctx, upErr)
	sw.rep.Reason = upErr.Error()
	if e.Journal != nil && !sw.interrupted {
		sw.rep.Journal, sw.rep.AppError, sw.rep.Hint = explain(s.Name, e.Journal(units.ServiceName(s.Name), sw.start))
	}
	e.progress("%s: mode %s did not come up: %v", s.Name, to, upErr)
	e.progress("%s: rolling back to %s", s.Name, from)
	pid, backErr := sw.back(ctx)
	sw.rep.Duration = e.now().Sub(sw.start).Seconds()
	if errors.Is(backErr, ErrStopped) {
		return sw.stopped(fmt.Errorf("%w; before that, mode %s did not come up: %v", backErr, to, upErr))
	}
	if errors.Is(backErr, ErrModeNotPutBack) {
		// What serves is the previous mode, and the report says so;
		// what is recorded is not, and the error says that.
		sw.rep.Result, sw.rep.MainPID, sw.rep.Changed = modes.ResultRolledBack, pid, false
		sw.rep.Reason = upErr.Error() + "; rollback: " + backErr.Error()
		e.progress("%s: %v", s.Name, backErr)
		return sw.finish(modes.ResultRolledBack, sw.rep.Reason, fmt.Errorf("site %s: mode %s: %v; rollback to %s: %w", s.Name, to, upErr, from, backErr))
	}
	if backErr != nil {
		sw.rep.Result, sw.rep.MainPID = modes.ResultRollbackFailed, sw.stillRunning(ctx, pid)
		sw.rep.Reason = upErr.Error() + "; rollback: " + backErr.Error()
		e.progress("%s: the rollback to %s failed too: %v", s.Name, from, backErr)
		return sw.finish(modes.ResultRollbackFailed, sw.rep.Reason,
			fmt.Errorf("site %s: mode %s: %v; rollback to %s: %v: %w", s.Name, to, upErr, from, backErr, ErrRollbackFailed))
	}
	sw.rep.Result, sw.rep.MainPID, sw.rep.Changed = modes.ResultRolledBack, pid, false
	e.progress("%s: serving in mode %s again (main PID %d)", s.Name, from, pid)
	return sw.finish(modes.ResultRolledBack, upErr.Error(), fmt.Errorf("site %s: mode %s: %v: %w", s.Name, to, upErr, ErrRolledBack))
}

// stillRunning is pid when the site's service runs with it as its main
// process, read afresh, or 0. A service that runs but failed its checks
// (a probe whose path is wrong fails in every mode) is not down, and the
// report says so with its PID.
func (sw *switchRun) stillRunning(ctx context.Context, pid int) int {
	if pid == 0 {
		return 0
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	u, err := sw.e.unit(ctx, units.ServiceName(sw.s.Name))
	if err != nil || u.ActiveState != "active" || u.MainPID != pid {
		return 0
	}
	return pid
}

// journalShown is how many of the last journal lines of a failed start a
// report shows; the cause is looked for in all the lines read.
const journalShown = 30

// explain keeps the last journal lines of a failed start for the report
// and finds the app's last error and a hint in all of them.
func explain(site string, lines []string) (shown, appError []string, hint string) {
	c := applog.Explain(lines)
	if c.AddrInUse {
		hint = applog.AddrInUseHint(site)
	}
	return lines[max(0, len(lines)-journalShown):], c.Error, hint
}

// back records the previous mode again and brings it up. With overlap,
// the old generation usually never stopped serving: if the launcher's
// serving generation runs the previous mode, there is nothing to restart.
func (sw *switchRun) back(ctx context.Context) (int, error) {
	back, ok := sw.s.Mode(sw.rep.From)
	recordIn := sw.s
	if !ok {
		if sw.goneFrom == nil {
			return 0, fmt.Errorf("the previous mode %q is no longer in %s, and its environment is not known", sw.rep.From, sw.s.File)
		}
		// The previous mode as the site ran it, from its mode file: the
		// site file no longer has it, but the site serves it (an overlap
		// site's old generation) or served it until this change.
		back = *sw.goneFrom
		recordIn = withMode(sw.s, back)
		sw.e.progress("%s: mode %s is no longer in %s: bringing it back as it ran (its recorded environment)", sw.s.Name, back.Name, sw.s.File)
		sw.warn("the site runs mode %s again, which %s no longer has, with the environment it ran with before: `sitectl mode %s MODE` switches it to a mode the file has (it has: %s)",
			back.Name, sw.s.File, sw.s.Name, strings.Join(sw.s.ModeNames(), ", "))
	}
	if err := sw.e.Writer.SetMode(recordIn, sw.rep.From); err != nil {
		err = fmt.Errorf("the mode file could not be put back to mode %s: %w", sw.rep.From, err)
		if !sw.overlapped {
			return 0, err
		}
		// The old generation may serve the previous mode all the same
		// (a handover that never took over): the site is up, and must
		// not be reported down, but the mode file records the mode
		// that did not come up.
		pid, gen, serr := sw.e.servingGenerationOf(ctx, sw.s, back, sw.abandoned)
		if serr != nil || (gen != sw.servedBefore && sw.servedBefore != 0) {
			return 0, err
		}
		return pid, fmt.Errorf("the generation that served before serves mode %s again (main PID %d), but its mode file still records mode %s, which did not come up, and the site's next start or reload runs it: %w (`sitectl mode %s %s` records mode %s once the state directory can be written): %w",
			sw.rep.From, pid, sw.rep.To, err, sw.s.Name, sw.rep.From, sw.rep.From, ErrModeNotPutBack)
	}
	if sw.overlapped {
		// The old generation still serving the previous mode is the
		// rollback, when the new one never took over. A new generation
		// that took over and failed its checks is no rollback, even when
		// it runs the same mode (a reload of a new release): the site is
		// restarted in the previous mode instead.
		pid, gen, err := sw.e.servingGenerationOf(ctx, sw.s, back, sw.abandoned)
		if err == nil && (gen == sw.servedBefore || sw.servedBefore == 0) {
			return pid, nil
		}
		if err == nil {
			sw.e.progress("%s: the new generation (pid %d) took over and failed its checks: restarting in mode %s", sw.s.Name, gen, back.Name)
		}
	}
	return sw.restartBack(ctx, back)
}

// withMode is a copy of site s with mode m added, for recording a mode the
// site file no longer has from its mode file.
func withMode(s *site.Site, m site.Mode) *site.Site {
	c := *s
	c.Modes = append(slices.Clone(s.Modes), m)
	slices.SortFunc(c.Modes, func(a, b site.Mode) int { return strings.Compare(a.Name, b.Name) })
	return &c
}

// restartBack restarts the site in back, the previous mode, from the site
// file as it is, or, when that is sure to fail or fails, from the version
// the site ran before (pinBack).
func (sw *switchRun) restartBack(ctx context.Context, back site.Mode) (int, error) {
	if sw.rep.From == sw.rep.To {
		// The same mode from the same file just failed: only the
		// version of the file the site ran before can bring it back.
		m, pinned := sw.pinBack(ctx, back)
		if pinned {
			back = m
		}
		pid, err := sw.restartIn(ctx, back)
		if err != nil && pinned {
			sw.unpin(ctx, err)
		}
		return pid, err
	}
	pid, err := sw.restartIn(ctx, back)
	if err == nil || errors.Is(err, ErrStopped) {
		return pid, err
	}
	m, ok := sw.pinBack(ctx, back)
	if !ok {
		return pid, err
	}
	sw.e.progress("%s: mode %s did not come up from the site file as it is either (%v): restarting in it from the version the site ran before", sw.s.Name, back.Name, err)
	if pid, err = sw.restartIn(ctx, m); err != nil {
		sw.unpin(ctx, err)
	}
	return pid, err
}

// unpinTimeout bounds the undoing of a pin, which reloads systemd, after
// the rollback's own deadline.
const unpinTimeout = time.Minute

// unpin undoes a pin whose version did not come up either (err): then it
// is not the site file that fails (a release the app cannot run, say),
// and the file as it is must not stay marked as failed.
func (sw *switchRun) unpin(ctx context.Context, err error) {
	if sw.e.Unpin == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), unpinTimeout)
	defer cancel()
	if uerr := sw.e.Unpin(ctx, sw.s); uerr != nil {
		sw.warn("the version the site ran before did not come up either (%v), and its pin could not be undone: %v", err, uerr)
		return
	}
	sw.rep.Pinned = ""
	sw.e.progress("%s: the version of its site file it ran before did not come up either: the site file is not pinned", sw.s.Name)
}

// pinBack goes back to the version of the site file the site ran before
// (Env.PinBack) for the restart into mode m; ok is false when there is
// none, and the restart runs the file as it is.
func (sw *switchRun) pinBack(ctx context.Context, m site.Mode) (site.Mode, bool) {
	if sw.e.PinBack == nil || sw.interrupted {
		return m, false
	}
	good, err := sw.e.PinBack(ctx, sw.s, m.Name, sw.rep.Reason)
	if err != nil {
		sw.e.progress("%s: cannot go back to the version of its site file it ran before: %v", sw.s.Name, err)
		sw.warn("the rollback could not go back to the version of the site file the site ran before: %v", err)
		return m, false
	}
	if good == nil {
		return m, false
	}
	gm, ok := good.Mode(m.Name)
	if !ok {
		return m, false
	}
	sw.rep.Pinned = fmt.Sprintf("%s failed to start as it is: the site runs the version it ran before (%s), pinned until the file changes; fix the file and run `systemctl daemon-reload`, then `sitectl restart %s`", sw.s.File, good.File, sw.s.Name)
	sw.e.progress("%s: pinned to the version of its site file it ran before (%s)", sw.s.Name, good.File)
	sw.s = good
	// The pin's daemon-reload closes the sockets of a socket unit whose
	// listeners it changed back.
	sw.socketsLost = true
	return gm, true
}

// finish closes the switch in the history with a result and a reason, and
// returns the report with err (and a failure to write, if any).
func (sw *switchRun) finish(result, reason string, err error) (Report, error) {
	ferr := sw.e.Writer.Finish(sw.s, result, reason)
	sw.e.trace("%s: recorded the outcome (%s) in the history", sw.s.Name, result)
	if ferr != nil && result == modes.ResultOK {
		return sw.rep, errors.Join(err, notRecorded(&sw.rep, ferr))
	}
	return sw.rep, errors.Join(err, ferr)
}

// notRecorded is the failure of a change that served (rep.Result ok) but
// whose end could not be written to the history (ferr): the result stays
// what was observed, and the reason says that the history lacks it, with
// the error, which the exit code follows (ErrNotRecorded).
func notRecorded(rep *Report, ferr error) error {
	rep.Reason = fmt.Sprintf("the site serves in mode %s, but its history could not be written (the next change records this one as interrupted): %v", rep.To, ferr)
	return fmt.Errorf("site %s: %s: %w", rep.Site, rep.Reason, ErrNotRecorded)
}

// lastDone is the last change of a history that served: ok.
func lastDone(h []modes.Entry) (modes.Entry, bool) {
	for i := len(h) - 1; i >= 0; i-- {
		if h[i].Result == modes.ResultOK {
			return h[i], true
		}
	}
	return modes.Entry{}, false
}

// Restart restarts a site in its current mode and verifies it serves.
func Restart(ctx context.Context, e *Env, s *site.Site, timeout time.Duration) (Report, error) {
	cur, err := currentInFile(e, s)
	if err != nil {
		return Report{Site: s.Name}, err
	}
	return SwitchMode(ctx, e, s, cur, Options{Force: true, Restart: true, Timeout: timeout})
}

// Reload moves a site to a new generation in its current mode with the
// site's handoff: overlapped for handoff = "overlap", a restart otherwise.
func Reload(ctx context.Context, e *Env, s *site.Site, timeout time.Duration) (Report, error) {
	cur, err := currentInFile(e, s)
	if err != nil {
		return Report{Site: s.Name}, err
	}
	return SwitchMode(ctx, e, s, cur, Options{Force: true, Timeout: timeout})
}

// currentInFile is the mode site s is recorded in, which a restart or
// reload keeps: a mode the site file no longer has cannot be, and the
// error says how to leave it.
func currentInFile(e *Env, s *site.Site) (string, error) {
	cur, err := Current(e.Store, s)
	if err != nil {
		return "", err
	}
	if _, ok := s.Mode(cur); !ok {
		return "", fmt.Errorf("site %s is in mode %s, which %s no longer has (it has: %s); nothing was done: `sitectl mode %s %s` switches it to one it has: %w",
			s.Name, cur, s.File, strings.Join(s.ModeNames(), ", "), s.Name, s.DefaultMode, ErrModeNotFound)
	}
	return cur, nil
}

// Rollback switches a site back: for a site with keep_previous, to its
// warm generation when it has one (see warmRollback), unless cold; else,
// or when that is not possible, to its previous mode, started afresh.
func Rollback(ctx context.Context, e *Env, s *site.Site, timeout time.Duration, cold bool) (Report, error) {
	noWarm := ""
	if s.KeepPrevious > 0 {
		noWarm = "--cold given"
		if !cold {
			rep, err, done := warmRollback(ctx, e, s, timeout)
			if done {
				return rep, err
			}
			noWarm = rep.NoWarm
			e.progress("%s: no warm rollback: %s; rolling back cold", s.Name, noWarm)
		}
	}
	state, err := e.Store.ReadState(s.Name)
	if err != nil {
		return Report{Site: s.Name, NoWarm: noWarm}, err
	}
	target, err := rollbackTarget(e, s, state)
	if err != nil {
		return Report{Site: s.Name, NoWarm: noWarm}, err
	}
	if target == "" {
		return Report{Site: s.Name, NoWarm: noWarm}, fmt.Errorf("site %s: %w", s.Name, ErrNoPrevious)
	}
	if _, ok := s.Mode(target); !ok {
		// Its environment was in the site file, which no longer has it,
		// and no mode file keeps it: nothing says how it ran.
		return Report{Site: s.Name, NoWarm: noWarm}, fmt.Errorf("site %s: a rollback goes back to mode %s, which %s no longer has (it has: %s); nothing was done: `sitectl mode %s MODE` switches it to one it has: %w",
			s.Name, target, s.File, strings.Join(s.ModeNames(), ", "), s.Name, ErrModeNotFound)
	}
	if last, ok := lastDone(state.History); ok && s.KeepPrevious > 0 && !cold && last.From == last.To {
		// What the operator rolls back on a keep_previous site is the
		// last change: a reload in one mode (a new release) is undone
		// only by its warm generation. Switching modes instead would
		// undo an older switch and leave the release serving.
		return Report{Site: s.Name, NoWarm: noWarm}, fmt.Errorf("site %s: no warm generation (%s), and the last change was a reload in mode %s, which only that generation undoes; switching to mode %s, the mode before the last switch, would not: nothing was done (--cold does that): %w",
			s.Name, noWarm, last.To, target, ErrNoPrevious)
	}
	if since, ok := reloadedUnrecorded(ctx, e, s, state); ok && s.KeepPrevious > 0 && !cold {
		// The same, for a reload sitectl did not record: a touch of
		// the reload trigger or systemctl reload (a release deployed
		// by moving the symlink), which write no history.
		return Report{Site: s.Name, NoWarm: noWarm}, fmt.Errorf("site %s: no warm generation (%s), and the generation that serves was ready at %s, after the last change sitectl recorded (%s): a touch of the reload trigger, systemctl reload, a restart by systemd or a change that did not end ok started it, and it may run another release; switching to mode %s, the mode before the last switch, would keep that release: nothing was done (--cold does that): %w",
			s.Name, noWarm, since.UTC().Format(time.RFC3339), state.ChangedAt.UTC().Format(time.RFC3339), target, ErrNoPrevious)
	}
	rep, err := SwitchMode(ctx, e, s, target, Options{Timeout: timeout})
	rep.Rollback, rep.NoWarm = "cold", noWarm
	return rep, err
}

// reloadedUnrecorded says when the generation serving an overlap site was
// ready, if that was after the last change sitectl recorded (a reload it
// did not make). A launcher that cannot be asked, or says no time, says
// nothing.
func reloadedUnrecorded(ctx context.Context, e *Env, s *site.Site, state modes.State) (time.Time, bool) {
	if s.Handoff != site.HandoffOverlap || e.Launcher == nil || state.ChangedAt.IsZero() {
		return time.Time{}, false
	}
	st, err := e.Launcher(ctx, s)
	if err != nil || st.Serving == nil || st.Serving.Ready.IsZero() {
		return time.Time{}, false
	}
	return st.Serving.Ready, st.Serving.Ready.After(state.ChangedAt)
}

// rollbackTarget is the mode a cold rollback switches to: the previous
// mode, or, when the mode recorded is not the last one shown to serve (a
// switch whose sitectl was killed before it could tell), that one.
func rollbackTarget(e *Env, s *site.Site, state modes.State) (string, error) {
	cur, err := Current(e.Store, s)
	if err != nil {
		return "", err
	}
	if v := state.VerifiedMode; v != "" && v != cur {
		return v, nil
	}
	return state.PreviousMode, nil
}
