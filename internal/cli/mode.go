package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/sitectl/sitectl/internal/applog"
	"github.com/sitectl/sitectl/internal/cgroup"
	"github.com/sitectl/sitectl/internal/control"
	"github.com/sitectl/sitectl/internal/flow"
	"github.com/sitectl/sitectl/internal/generator"
	"github.com/sitectl/sitectl/internal/modes"
	"github.com/sitectl/sitectl/internal/site"
	"github.com/sitectl/sitectl/internal/sockheld"
	"github.com/sitectl/sitectl/internal/stateservice"
	"github.com/sitectl/sitectl/internal/term"
	"github.com/sitectl/sitectl/internal/units"
)

// changeFlags are the flags of every verb that changes a site.
type changeFlags struct {
	noBlock bool
	timeout time.Duration
	asJSON  bool
	force   bool
	cold    bool
}

func (f *changeFlags) register(c *cobra.Command) {
	c.Flags().BoolVar(&f.noBlock, "no-block", false, "fail at once if another sitectl is changing the site, instead of waiting")
	c.Flags().DurationVar(&f.timeout, "timeout", 2*time.Minute, "give up after this long; 60% for the change, the rest for a rollback (and as long for another sitectl to finish with the site first)")
	c.Flags().BoolVar(&f.asJSON, "json", false, "report as JSON on standard output")
}

// request is the change as sitectl's state service would be asked for it:
// root's sitectl runs the same request itself.
func (f *changeFlags) request(verb, name, mode string) stateservice.Request {
	return stateservice.Request{Verb: verb, Site: name, Mode: mode, Force: f.force, Cold: f.cold, NoBlock: f.noBlock, TimeoutMS: f.timeout.Milliseconds()}
}

func modeCmd(e *env) *cobra.Command {
	var f changeFlags
	c := &cobra.Command{
		Use:     "mode SITE MODE",
		GroupID: "run",
		Short:   "Switch one site into a mode, verify it serves, roll back if it does not",
		Long: `Switch one site into a mode: record the mode, restart the site's service over D-Bus,
wait until it is running (READY=1 for notify sites), verify it through its own
listener when the site has a probe (maintenance modes always are), and report.
If the site does not come up, its previous mode is put back and brought up again
(one the site file no longer has, renamed or removed while the site ran it, as the
site ran it, from its mode file, with a warning), and sitectl exits 4 with the reason and the journal lines of the failed start,
ending with the app's last error (the exception line of its last Python traceback,
or its last lines; app_error in --json). When the app tried to bind an address
the site's socket holds, a hint says it must take systemd's sockets.

Only this site's service is restarted; its socket units keep the listeners open, so
no connection is refused. The exception is a socket unit that is active but holds no
socket for a listener (systemd closes them at a daemon-reload when the listeners
changed, a site moved to another port): the restart stops the service, restarts that
socket unit, which binds the listeners of the file, then starts the service, and says
so in a warning; connections to it are refused for that moment. With units older
than the site file that would bind the old listeners: nothing is done, and the error
says to run systemctl daemon-reload first. A second sitectl changing the same site waits for the
first (or fails at once with --no-block). Switching to the mode the site already
runs in does nothing unless --force is given.

A named listener or the reload_trigger removed from the site file leaves, after the
daemon-reload, units that systemd keeps running without a file ("not-found"): a
socket unit that listens on nothing, a path unit that still watches the old trigger.
Once the site serves, the change stops those of the listeners and trigger its
service last started with, says so, and lists them (units_stopped in --json).

A restart stops the serving process before the new one starts, and a rollback
restarts the same unit: so before it, sitectl checks that the unit systemd has
loaded can start at all. When its program (or a script's #! interpreter), user,
group, working directory or a credential file surely does not exist, nothing is
done and sitectl exits 1, saying what is missing; the site serves on. Maintenance
modes run no program of the site's. A restart of units older than the site file
(edited, not daemon-reloaded) goes ahead and warns that it ran the command line, user,
sockets and settings systemd has, with only the mode's environment from the file as it
is now (warnings in --json). Older is by content too: a file put in place with its old
modification time kept (cp -p, rsync -a) counts, though systemctl takes it for current.

Run by a user other than root, sitectl asks sitectl's state service to do all of
this as root, for a site whose file names the user in deployers (see
docs/deployers.md), and shows its progress and report. Once the change has
started, it finishes (or rolls back) even if this sitectl is stopped.

Root's sitectl interrupted (Ctrl-C: SIGINT, or SIGTERM) says so and does not die:
before the change has begun, nothing is done (exit 1); while the new mode comes up,
the previous mode is put back, brought up and verified, as after a failed start
(exit 4, or 5 if that fails too); a new mode already shown to serve stands. Further
signals are ignored, with a line that says so, until sitectl exits. A closed terminal
(SIGHUP) asks nobody to stop: the change runs to its end, and sitectl history says
how it ended. Only kill -9 cuts a change short: sitectl status shows it, the next
change closes it, and the mode it switched to, never shown to serve, does not
become the previous mode.

` + exitCodesHelp,
		Example: `  sitectl mode karl maintenance
  sitectl mode karl normal --timeout 1m --json`,
		Args:              args(2, 2, "a site and a mode"),
		ValidArgsFunction: e.completeSiteThenMode,
		RunE: func(c *cobra.Command, a []string) error {
			return e.change(c.Context(), f.request(stateservice.VerbMode, a[0], a[1]), f.asJSON)
		},
	}
	f.register(c)
	c.Flags().BoolVar(&f.force, "force", false, "restart even if the site already runs in the mode")
	return c
}

// oneSiteCmd is a verb that runs a flow on one site in its current mode.
func oneSiteCmd(e *env, verb, short, long string) *cobra.Command {
	var f changeFlags
	c := &cobra.Command{
		Use:               verb + " SITE",
		GroupID:           "run",
		Short:             short,
		Long:              long + "\n\n" + exitCodesHelp,
		Args:              args(1, 1, "one site"),
		ValidArgsFunction: e.completeOneSite,
		RunE: func(c *cobra.Command, a []string) error {
			return e.change(c.Context(), f.request(verb, a[0], ""), f.asJSON)
		},
	}
	f.register(c)
	return c
}

func restartCmd(e *env) *cobra.Command {
	return oneSiteCmd(e, stateservice.VerbRestart, "Restart one site in its current mode and verify it serves",
		`Restart one site's service over D-Bus in its current mode, wait until it runs and
verify it as sitectl mode does, with the same check that the unit can start. The
socket units keep the listeners open.`)
}

func reloadCmd(e *env) *cobra.Command {
	return oneSiteCmd(e, stateservice.VerbReload, "Move one site to a new generation of its app with the site's handoff",
		`Move one site to a new generation of its app in its current mode. With
handoff = "overlap" the new generation starts beside the serving one, on the same
sockets, and the old one drains only once the new one is ready: no visitor waits for
a cold start. If the new generation does not come up, the old one keeps serving and
sitectl exits 4. For other sites this is sitectl restart.

A generation started inside the unit keeps what the unit was started with (sockets,
user, exec, timeouts, ...). When the site file changed any of that since the service
started (sitectl compares it with the last good copy prepare kept then), reload and
mode restart the service fully instead, after a daemon-reload if systemd's units are
older than the file, and say why in one line (full_restart in --json).`)
}

func rollbackCmd(e *env) *cobra.Command {
	var f changeFlags
	c := oneSiteCmd(e, stateservice.VerbRollback, "Switch one site back to its previous mode",
		`Switch one site back to the mode it was in before its last successful switch,
with the same checks and rollback as sitectl mode. Only modes a change showed to
serve count: after a switch cut short (sitectl killed before it could verify the
new mode), rollback goes back to the mode that switch came from. A previous mode
the site file no longer has (renamed or removed) is refused, exit 3, nothing done:
sitectl mode switches to one it has.

For a site with keep_previous whose launcher keeps the previous generation warm,
the rollback is a flip: that generation's mode is recorded again and its launcher
gives it the new connections at once (no process starts); the newer generation
drains. A warm rollback does not move a release symlink: the next reload starts
whatever it points at. With no warm generation (keep_previous ran out, it exited,
or the launcher cannot be reached), or one that runs an older version of its mode
than the site file has (the mode's environment was edited since it started), sitectl
says why and rolls back cold, as above;
--cold does that at once. --json says which (rollback: warm or cold).`)
	c.RunE = func(c *cobra.Command, a []string) error {
		return e.change(c.Context(), f.request(stateservice.VerbRollback, a[0], ""), f.asJSON)
	}
	c.ResetFlags()
	f.register(c)
	c.Flags().BoolVar(&f.cold, "cold", false, "skip the warm generation of a keep_previous site: start the previous mode afresh")
	return c
}

// flowOf is the flow a change request runs.
func flowOf(req stateservice.Request) func(context.Context, *flow.Env, *site.Site) (flow.Report, error) {
	return func(ctx context.Context, fe *flow.Env, s *site.Site) (flow.Report, error) {
		switch req.Verb {
		case stateservice.VerbMode:
			return flow.SwitchMode(ctx, fe, s, req.Mode, flow.Options{Force: req.Force, Timeout: req.Timeout()})
		case stateservice.VerbRestart:
			return flow.Restart(ctx, fe, s, req.Timeout())
		case stateservice.VerbReload:
			return flow.Reload(ctx, fe, s, req.Timeout())
		case stateservice.VerbRollback:
			return flow.Rollback(ctx, fe, s, req.Timeout(), req.Cold)
		}
		return flow.Report{Site: s.Name}, usageErrorf("%q is not a change", req.Verb)
	}
}

// change runs a change and prints its report: root runs it itself, anyone
// else through sitectl's state service, which runs the same code as root.
func (e *env) change(ctx context.Context, req stateservice.Request, asJSON bool) error {
	if err := e.yield(); err != nil {
		return err
	}
	var rep flow.Report
	var err error
	if e.remote() {
		// A signal is passed on: sitectl's state service interrupts
		// the change as a signal to root's sitectl does, and this
		// sitectl waits for its outcome.
		interrupt, stop := e.interruptible(req.Site)
		defer stop()
		var got *flow.Report
		if got, err = e.remoteChange(ctx, interrupt, req); got == nil {
			return err
		}
		e.trace.Step("sitectl's state service answered")
		rep = *got
	} else {
		// A signal must not kill sitectl in the middle of a change.
		interrupt, stop := e.interruptible(req.Site)
		defer stop()
		ctx = mergeCancel(ctx, interrupt)
		// systemd takes a few ms to accept a connection: it is made
		// while the site file is read and checked.
		conn := e.connectSoon(ctx, req.Timeout())
		var s *site.Site
		if s, err = e.loadSite(req.Site); err != nil {
			conn.discard()
			return err
		}
		e.trace.Step("read and checked the site file of %s", s.Name)
		who := modes.Local{Store: modes.Store{Dir: e.dirs.State}, UID: os.Getuid(), PID: os.Getpid()}
		rep, err = e.localChange(ctx, interrupt, req, s, who, e.progressf, conn, nil)
	}
	out := &reportOut{w: e.stdout}
	if asJSON {
		if rep.Journal == nil {
			rep.Journal = []string{}
		}
		_ = writeJSON(out, rep)
	} else {
		for _, w := range rep.Warnings {
			term.Fprintf(e.stderr, "sitectl: warning: %s: %s\n", rep.Site, w)
		}
		if err == nil {
			e.reportText(out, rep)
		}
	}
	if out.err != nil {
		e.reportLost(rep.Site, req.Verb, "`sitectl history "+rep.Site+"` what it did", out.err)
	}
	if err != nil && !asJSON {
		printFailedStart(e.stderr, rep)
	}
	e.trace.Step("printed the report")
	return err
}

// reportOut is standard output for the report of a change or a lifecycle
// verb: it keeps the first error of a write (a full disk, an output
// nobody reads any more), which the printers of the report do not return.
type reportOut struct {
	w   io.Writer
	err error
}

func (o *reportOut) Write(p []byte) (int, error) {
	if o.err != nil {
		return 0, o.err
	}
	n, err := o.w.Write(p)
	o.err = err
	return n, err
}

// reportLost says that the report of verb on site name could not be
// written (err): the site changed, or not, as the exit code says. It is
// not made a failure of its own: exit 1 would say that nothing was
// changed, and exit 0 after a restart that served, say, is the truth.
// where tells where to see what the verb did.
func (e *env) reportLost(name, verb, where string, err error) {
	term.Fprintf(e.stderr, "sitectl: warning: site %s: the report of sitectl %s could not be written to standard output: %s; the exit code still says how it ended, and %s\n", name, verb, err, where)
}

// localChange runs a change of site s as root, in the order that keeps bad
// input from changing anything: the mode and the timeout first, then the bus (conn, on
// its way since before the site file was read), then the lock, and only
// then state. who records it. ctx may end while it waits
// for the lock (the state service's caller hung up, root's sitectl was
// interrupted); once the change has started, it runs to its end, bounded
// by its own timeout, unless interrupt (root's sitectl: SIGINT or
// SIGTERM; the state service: the caller's Interrupt, its sitectl's
// SIGINT or SIGTERM) ends and rolls it back (flow.Env.Interrupt). This is
// the one
// code path of every change, root's own and a deployer's. still, for a
// deployer's change, is asked once the lock is held: the grant and the
// site file as they are then, not as they were before a wait for another
// sitectl. Root's change that waited for the lock reads the site file
// again the same way.
func (e *env) localChange(ctx, interrupt context.Context, req stateservice.Request, s *site.Site, who modes.Local, progress func(string, ...any), conn *pendingConn, still func() (*site.Site, error)) (flow.Report, error) {
	rep := flow.Report{Site: s.Name}
	who.Kind = req.Verb // history records what was asked for: mode, restart, ...
	if req.Verb == stateservice.VerbMode {
		if _, ok := s.Mode(req.Mode); !ok {
			conn.discard()
			return rep, withCode(exitNotFound, fmt.Errorf("site %s has no mode %s; its modes are: %s", s.Name, req.Mode, strings.Join(s.ModeNames(), ", ")))
		}
	}
	if err := flow.CheckTimeout(s, req.Timeout()); err != nil {
		// Before the lock, which would create the site's state.
		conn.discard()
		return rep, withCode(exitUsage, err)
	}
	mgr, err := conn.wait(ctx)
	if err != nil {
		return rep, err
	}
	defer mgr.Close()
	e.trace.Step("connected to systemd")
	lock, waited, err := lockSite(ctx, who.Store, s, req, modes.Holder{PID: who.PID, UID: who.UID, Verb: req.Verb}, progress)
	if err != nil {
		return rep, err
	}
	e.trace.Step("locked site %s", s.Name)
	defer lock.Unlock()
	if still == nil && waited {
		// Root's change: the file as it is now, after another
		// sitectl's change, not as it was before the wait.
		still = func() (*site.Site, error) { return e.loadSite(s.Name) }
	}
	if still != nil {
		if s, err = still(); err != nil {
			return rep, err
		}
	}
	s, pinBack, pinned := e.pinning(context.WithoutCancel(ctx), who, mgr, s)
	unpin := func(ctx context.Context, s *site.Site) error {
		if err := who.Store.Undo(s.Name); err != nil {
			return err
		}
		return mgr.DaemonReload(ctx)
	}
	fe := &flow.Env{Store: who.Store, Writer: who, Systemd: mgr, Progress: progress, Trace: e.trace.Step, Journal: journalLines, DialTCP: e.dialTCP,
		// The last good copy is root's: it is the file the running
		// service started from.
		Started:        who.Store.ReadLastGood,
		SocketsMissing: e.socketsMissingOf,
		Unbindable: func(s *site.Site, lost []string, own []int) ([]string, error) {
			return sockheld.Unbindable("/proc", s, lost, own)
		},
		Procs:       unitProcs,
		Host:        ptr(e.host()),
		PinBack:     pinBack,
		Unpin:       unpin,
		KeepStopped: who.UID != 0,
		Interrupt:   interrupt,
		Verifying:   e.takeBackPriority,
	}
	rep, err = runFlow(ctx, req, fe, s)
	if rep.Changed || rep.Result == modes.ResultRolledBack {
		// The site was seen to serve from the copy its service started
		// from: a later rollback may go back to it (versionBefore).
		if _, kerr := who.Store.KeepRan(s.Name); kerr != nil {
			rep.Warnings = append(rep.Warnings, kerr.Error())
		}
	}
	if pinned != "" {
		rep.Warnings = append([]string{pinned}, rep.Warnings...)
	}
	return rep, err
}

// pinning reads, under the site's lock, what a change of site s goes back
// to if the site file as it is fails to start: the version of the file the
// site ran before (versionBefore), read before the failed start's prepare
// overwrites the last good copy. A site already pinned to that version
// (modes.Pin) runs it: the change is of that version, said in warning,
// and has nothing further back to go to.
func (e *env) pinning(ctx context.Context, who modes.Local, mgr *control.Manager, s *site.Site) (_ *site.Site, pinBack func(context.Context, *site.Site, string, string) (*site.Site, error), warning string) {
	data, derr := site.ReadSiteFile(e.dirs.SiteFile(s.Name))
	if derr != nil {
		return s, nil, ""
	}
	good, gerr := site.ReadFile(e.dirs.LastGoodFile(s.Name))
	if gerr == nil && !bytes.Equal(data, good) {
		if pin, copied, err := who.Store.Pinned(s.Name, data); err == nil && pin != nil {
			return copied, nil, fmt.Sprintf("%s failed to start on %s (%s) and is pinned: this change is of the version the site ran before (%s); fix the file and run `systemctl daemon-reload`",
				e.dirs.SiteFile(s.Name), pin.Since.UTC().Format("2006-01-02 15:04:05 UTC"), pin.Reason, copied.File)
		}
	}
	// A clean stop since the last start makes that start's copy one that
	// ran (its ExecStopPost= left the mark). If the mark cannot be taken
	// up, the copy that ran is older: still one that ran.
	_, _ = who.Store.PromoteRan(s.Name)
	ran, _ := who.Store.ReadRan(s.Name)
	back := versionBefore(data, good, ran, func() bool { return e.serviceRuns(ctx, mgr, s) })
	if back == nil {
		return s, nil, ""
	}
	return s, func(ctx context.Context, s *site.Site, mode, reason string) (*site.Site, error) {
		if p, err := who.Store.ReadPin(s.Name); err == nil && p.Matches(data) && p.Undone {
			return nil, nil // tried: the version before failed too
		}
		copied, err := site.ParseNamed(e.dirs.LastGoodFile(s.Name), s.Name, back)
		if err != nil {
			return nil, fmt.Errorf("its last good copy has mistakes: %w", err)
		}
		if _, ok := copied.Mode(mode); !ok {
			return nil, nil
		}
		if err := who.Store.Pin(s, back, data, reason, who.UID, time.Now()); err != nil {
			return nil, err
		}
		if err := mgr.DaemonReload(ctx); err != nil {
			// Units from the file with a start from the copy would mix
			// the two versions: no pin rather than half of one.
			if _, uerr := who.Store.Unpin(s.Name); uerr != nil {
				return nil, fmt.Errorf("systemd did not reload the site's units (%w), and the pin could not be undone: %w", err, uerr)
			}
			return nil, fmt.Errorf("systemd did not reload the site's units: %w", err)
		}
		return copied, nil
	}, ""
}

// versionBefore is the version of a site file a rollback goes back to when
// data, the file as it is, fails to start; nil when there is none other
// than data. good is the copy the service last started from, ran the copy
// it last ran from and was seen to work with (a clean stop, a verified
// change); either may be nil. good is the version before while it is not
// known to fail: it is ran, or the service runs it now (runs, asked only
// then). Otherwise its start failed (a start systemd made by itself from a
// broken file, after a crash or at boot, overwrote the copy) or nobody saw
// it work: ran is the version before.
func versionBefore(data, good, ran []byte, runs func() bool) []byte {
	back := good
	if ran != nil && !bytes.Equal(ran, good) && (good == nil || !runs()) {
		back = ran
	}
	if back == nil || bytes.Equal(back, data) {
		return nil
	}
	return back
}

// serviceRuns says whether the site's service is active now; a service
// systemd cannot be asked about does not.
func (e *env) serviceRuns(ctx context.Context, mgr *control.Manager, s *site.Site) bool {
	us, err := mgr.States(ctx, units.ServiceName(s.Name))
	return err == nil && len(us) == 1 && us[0].ActiveState == "active"
}

// flowMargin is what a change's flow may take beyond twice its timeout
// (see runFlow). A variable for tests.
var flowMargin = time.Minute

// runFlow runs the flow of a change. Once begun, it runs to its end: a
// Ctrl-C (which only interrupts it through flow.Env.Interrupt), or a
// caller of the state service that hangs up, must not leave a switch half
// done. Its bringing up and its rollback have deadlines of
// their own (60% and 40% of the request's timeout), but what comes before
// them (reading the unit, the sockets' check, recording the switch, which
// may wait for a daemon-reload) waits as long as systemd does, with the
// site's lock held. Twice the timeout and flowMargin bound the whole flow
// and leave those steps at least the timeout and the margin: only a
// systemd that does not answer meets this bound. The flow reports it as
// any other failure, rolled back or not.
func runFlow(ctx context.Context, req stateservice.Request, fe *flow.Env, s *site.Site) (flow.Report, error) {
	bound := 2*req.Timeout() + flowMargin
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), bound)
	defer cancel()
	rep, err := flowOf(req)(ctx, fe, s)
	if err != nil && ctx.Err() != nil {
		err = fmt.Errorf("site %s: sitectl %s did not finish within %s (twice its timeout, and %s for systemd to answer): %w", s.Name, req.Verb, bound, flowMargin, err)
	}
	return rep, flowExit(err, rep)
}

// lockSite takes the site's lock, waiting at most the request's timeout
// (or until ctx's deadline, if sooner: a lifecycle verb's --timeout counts
// the wait) for another sitectl to finish with the site, unless it may not
// wait. waited says whether it did: the site file may have changed
// meanwhile. Once held, the lock names who holds it (me, from then on),
// and a sitectl that finds it held says who does, when it can tell. Root
// goes first: while root's sitectl waits, it marks that it does
// (modes.Store.RootWaits), and a deployer's change, run by the state
// service, does not take the lock meanwhile.
func lockSite(ctx context.Context, st modes.Store, s *site.Site, req stateservice.Request, me modes.Holder, progress func(string, ...any)) (_ *modes.Lock, waited bool, _ error) {
	held := func(lock *modes.Lock, waited bool, err error) (*modes.Lock, bool, error) {
		if err != nil {
			return nil, waited, stateError(err)
		}
		me.Since = time.Now()
		lock.Hold(me)
		return lock, waited, nil
	}
	try := func() (*modes.Lock, error) {
		if me.UID != 0 && st.RootWaiting(s.Name) {
			// Root goes first (Store.RootWaits).
			return nil, modes.ErrLocked
		}
		return st.LockSite(s, false)
	}
	lock, err := try()
	if !errors.Is(err, modes.ErrLocked) {
		return held(lock, false, err)
	}
	if req.NoBlock {
		return nil, false, withCode(exitFailed, fmt.Errorf("site %s is being changed by another sitectl%s; nothing was done", s.Name, lockHolder(st, s.Name)), "run again without --no-block to wait for it")
	}
	progress("%s: waiting for another sitectl to finish with this site%s", s.Name, lockHolder(st, s.Name))
	deadline := time.Now().Add(req.Timeout())
	stillLocked := func() error {
		return withCode(exitFailed, fmt.Errorf("site %s was still being changed by another sitectl after %s%s; nothing was done", s.Name, req.Timeout(), lockHolder(st, s.Name)))
	}
	var rootWaits *modes.Lock // root's mark, while it waits
	defer func() {
		if rootWaits != nil {
			rootWaits.Unlock()
		}
	}()
	for errors.Is(err, modes.ErrLocked) {
		if me.UID == 0 && rootWaits == nil {
			// Best effort: without the mark root waits as anyone.
			rootWaits, _ = st.RootWaits(s.Name)
		}
		if time.Now().After(deadline) {
			return nil, true, stillLocked()
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return nil, true, stillLocked()
			}
			return nil, true, withCode(exitFailed, fmt.Errorf("gave up waiting for site %s: %w; nothing was done", s.Name, context.Cause(ctx)))
		case <-time.After(100 * time.Millisecond):
		}
		lock, err = try()
	}
	return held(lock, true, err)
}

// lockHolder says who holds site name's lock, as " (...)" to follow
// "another sitectl", or "" when that is not known: root's sitectl and
// its pid, or the deployer the state service acts for; the verb; since
// when. A lock held shared is a touch's reload (sitectl touched), which
// cannot write who it is.
func lockHolder(st modes.Store, name string) string {
	h, ok := st.LockHolder(name)
	if !ok {
		if st.HeldShared(name) {
			return " (a reload after its reload_trigger was touched)"
		}
		return ""
	}
	who := fmt.Sprintf("root's sitectl %s, pid %d", h.Verb, h.PID)
	if h.UID != 0 {
		who = fmt.Sprintf("sitectl %s of uid %d, run by sitectl's state service, pid %d", h.Verb, h.UID, h.PID)
	}
	return fmt.Sprintf(" (%s, since %s, %s ago)", term.Escape(who), h.Since.UTC().Format("2006-01-02 15:04:05 UTC"), time.Since(h.Since).Round(time.Second))
}

func (e *env) reportText(w io.Writer, rep flow.Report) {
	if rep.FullRestart != "" {
		term.Fprintf(w, "%s: %s\n", rep.Site, rep.FullRestart)
	}
	if rep.NoWarm != "" {
		term.Fprintf(w, "%s: no warm rollback: %s; rolled back cold\n", rep.Site, rep.NoWarm)
	}
	switch {
	case rep.Rollback == "warm":
		term.Fprintf(w, "%s: %s %s %s by a warm rollback in %.3fs: no process started (main PID %d)\n", rep.Site, rep.From, e.style.Arrow(), rep.To, rep.Duration, rep.MainPID)
	case rep.Reason != "":
		term.Fprintf(w, "%s: %s (main PID %d)\n", rep.Site, rep.Reason, rep.MainPID)
	case rep.From == rep.To:
		term.Fprintf(w, "%s: serving afresh in mode %s after %.1fs (main PID %d)\n", rep.Site, rep.To, rep.Duration, rep.MainPID)
	default:
		term.Fprintf(w, "%s: %s %s %s in %.1fs (main PID %d)\n", rep.Site, rep.From, e.style.Arrow(), rep.To, rep.Duration, rep.MainPID)
	}
	for _, u := range rep.UnitsStopped {
		term.Fprintf(w, "%s: stopped %s, which the site file no longer declares\n", rep.Site, u)
	}
}

// flowExit maps a flow's failure to an exit code.
func flowExit(err error, rep flow.Report) error {
	var hints []string
	if rep.Hint != "" {
		hints = append(hints, rep.Hint)
	}
	switch {
	case err == nil:
		return nil
	case errors.Is(err, flow.ErrNotRecorded):
		// Not "nothing was changed", and not a permission of the
		// caller's: the site serves the new mode, unrecorded.
		return withCode(exitFailed, errors.New("site "+rep.Site+": "+rep.Reason), append(hints, "the site changed: `sitectl status "+rep.Site+"` shows what serves; free space or fix the state directory's file system, and the next change closes this one")...)
	case errors.Is(err, flow.ErrModeNotPutBack):
		// The previous mode serves; its record does not say so.
		return withCode(exitRollbackFail, err, append(hints, fmt.Sprintf("the site serves in mode %s again, but would start in mode %s: free space or fix the state directory's file system, then `sitectl mode %s %s`", rep.From, rep.To, rep.Site, rep.From))...)
	case errors.Is(err, flow.ErrRolledBack):
		return withCode(exitRolledBack, err, append(hints, fmt.Sprintf("the site serves in mode %s again", rep.From))...)
	case errors.Is(err, flow.ErrRollbackFailed):
		down := "the site is down: see `systemctl status site-" + rep.Site + ".service` and its journal"
		if rep.MainPID != 0 {
			down = fmt.Sprintf("site-%s.service runs (main PID %d) but was not shown to serve: if its probe fails in every mode, check the probe in the site file; see `sitectl status %s` and the journal", rep.Site, rep.MainPID, rep.Site)
		}
		return withCode(exitRollbackFail, err, append(hints, down)...)
	case errors.Is(err, flow.ErrStopped):
		return withCode(exitFailed, err, "it stays stopped, in mode "+rep.From+"; `systemctl start site-"+rep.Site+".socket` starts it again")
	case errors.Is(err, flow.ErrModeNotFound):
		return withCode(exitNotFound, err)
	case errors.Is(err, flow.ErrBadTimeout):
		return withCode(exitUsage, err)
	case errors.Is(err, flow.ErrCannotStart):
		return withCode(exitFailed, err, "the site was left as it was")
	case errors.Is(err, flow.ErrSiteStopped):
		return withCode(exitFailed, err, "the site was left as it was")
	case errors.Is(err, flow.ErrOutOfService):
		return withCode(exitFailed, err, "`sitectl enable "+rep.Site+"` puts it back in service")
	case errors.Is(err, flow.ErrInterrupted):
		return withCode(exitFailed, err)
	case errors.Is(err, flow.ErrNoPrevious):
		return withCode(exitFailed, err, "`sitectl history "+rep.Site+"` shows its switches")
	case errors.Is(err, control.ErrDenied):
		return withCode(exitDenied, err)
	case errors.Is(err, control.ErrUnavailable):
		return withCode(exitUnavailable, err)
	}
	return stateError(err)
}

// printFailedStart prints the journal of a failed start, ending with the
// app's last error, which a long traceback would otherwise bury.
func printFailedStart(w io.Writer, rep flow.Report) {
	if len(rep.Journal) > 0 {
		term.Fprintf(w, "sitectl: journal of the failed start:\n")
		for _, l := range rep.Journal {
			term.Fprintf(w, "    %s\n", l)
		}
	}
	if len(rep.AppError) > 0 {
		term.Fprintf(w, "sitectl: the app's last error:\n")
		for _, l := range rep.AppError {
			term.Fprintf(w, "    %s\n", l)
		}
	}
	if rep.Pinned != "" {
		term.Fprintf(w, "sitectl: %s\n", rep.Pinned)
	}
}

// stateError words failures to write the state directory.
func stateError(err error) error {
	if !errors.Is(err, fs.ErrPermission) {
		return err
	}
	if effectiveUID() == 0 {
		// Root refused: not a permission of the caller's, but a file
		// made immutable, or a security module.
		return withCode(exitFailed, err, "root may not write the state directory: look for an immutable file in it (lsattr -R) or a security module's refusal in the journal")
	}
	return withCode(exitDenied, err, "only root changes a site's state; deployers go through sitectl's state service")
}

// effectiveUID is os.Geteuid, a seam for tests.
var effectiveUID = os.Geteuid

// connect reaches systemd, with the exit codes for a bus that is missing or
// refuses. It waits until ctx's deadline (a lifecycle verb's --timeout, a
// change's timeout: connectSoon), or connectWait for a command without
// one (status, list): PID 1 answers nothing, a new connection included,
// while it reloads its units, which takes 15 to 20 s at 10,000 sites
// (docs/scale.md); another sitectl's enable, disable or remove, a package
// or an operator may have begun one.
func (e *env) connect(ctx context.Context) (*control.Manager, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, connectWait)
		defer cancel()
	}
	start := time.Now()
	m, err := connectSystemd(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil, withCode(exitUnavailable, fmt.Errorf("%w; waited %s", err, time.Since(start).Round(time.Second)),
				"systemd answers nothing while it reloads its units (`journalctl -b _PID=1 -n 5` says \"Reloading.\"), which takes 15 to 20 s at 10,000 sites: run the command again once it is done",
				"if it is not reloading: is systemd running, and dbus.service with it?")
		}
		return nil, withCode(exitUnavailable, err, "is systemd running, and dbus.service with it?")
	}
	// Units older than their site file are told by the file's content
	// too, not by its modification time alone as systemd does.
	m.SourceChanged = generator.SourceChanged
	return m, nil
}

// connectSystemd is control.Connect; connectWait bounds connect when its
// context has no deadline, as long as status's reads of systemd
// (systemdReadTimeout). Variables for tests.
var (
	connectSystemd = control.Connect
	connectWait    = 30 * time.Second
)

// connectGrace is how long a connection to systemd on its way is still
// waited for once the change's ctx ended (pendingConn.wait): systemd
// answers a connection in milliseconds unless it is busy reloading.
var connectGrace = time.Second

// pendingConn is a connection to systemd on its way (connectSoon). Its
// taker either waits for it, and then closes it, or discards it.
type pendingConn struct {
	done chan struct{}
	mgr  *control.Manager
	err  error
}

// connectSoon starts connecting to systemd, as connect does, while the
// caller goes on with what needs no systemd, waiting for systemd at most
// wait (a change's timeout: a busy PID 1 is waited for as another
// sitectl's lock of the site is). A request that arrived whole is carried
// out: the connection does not end with ctx.
func (e *env) connectSoon(ctx context.Context, wait time.Duration) *pendingConn {
	p := &pendingConn{done: make(chan struct{})}
	go func() {
		defer close(p.done)
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), wait)
		defer cancel()
		p.mgr, p.err = e.connect(ctx)
	}()
	return p
}

// wait returns the connection once it is made, or why it could not be. A
// ctx that ends first (root's sitectl interrupted, the state service's
// caller gone) ends a wait for a busy systemd, as it ends the wait for
// the site's lock: nothing was done, and the connection is closed once it
// is made. A connection on its way as usual is still taken, within
// connectGrace: a request that arrived whole is carried out whatever its
// caller does next, as a lock that is free is taken.
func (p *pendingConn) wait(ctx context.Context) (*control.Manager, error) {
	select {
	case <-p.done:
		return p.mgr, p.err
	case <-ctx.Done():
		select {
		case <-p.done:
			return p.mgr, p.err
		case <-time.After(connectGrace):
		}
		p.discard()
		return nil, withCode(exitFailed, fmt.Errorf("gave up waiting for systemd to answer: %w; nothing was done", context.Cause(ctx)))
	}
}

// discard closes the connection once it is made: it is not needed.
func (p *pendingConn) discard() {
	go func() {
		<-p.done
		if p.err == nil {
			p.mgr.Close()
		}
	}()
}

// progressf prints a progress line when standard error is a terminal. The
// flows word steps with →, which becomes -> where the locale is not UTF-8;
// what they quote from elsewhere (an error of the app, say) is escaped.
func (e *env) progressf(format string, args ...any) {
	if !e.interactive && e.trace == nil {
		return
	}
	line := fmt.Sprintf(format, args...)
	if !e.style.UTF8 {
		line = strings.ReplaceAll(line, "→", e.style.Arrow())
	}
	if e.trace != nil {
		// Each progress line is a step, with its time.
		e.trace.Step("%s", line)
		return
	}
	term.Fprintf(e.stderr, "sitectl: %s\n", line)
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// journalLines reads the journal of a unit since a time, for the report of a
// failed start. It is best effort: without journal access it says so.
// journald reads what the app wrote on its own time: when the app's last
// traceback has no exception line yet, it asks journald to catch up and
// reads again, for at most journalWait.
func journalLines(unit string, since time.Time) []string {
	ctx, cancel := context.WithTimeout(context.Background(), journalWait)
	defer cancel()
	for {
		// Best effort, root only: journald writes what it received.
		_ = exec.CommandContext(ctx, "journalctl", "--sync").Run()
		lines, err := readJournal(ctx, unit, since)
		if err != nil {
			return []string{"(the journal could not be read: " + err.Error() + ")"}
		}
		if !applog.Explain(lines).Incomplete {
			return lines
		}
		select {
		case <-ctx.Done():
			return lines
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// journalWait bounds journalLines; journalBytes bounds what it keeps of
// the journal (its newest lines).
const (
	journalWait  = 5 * time.Second
	journalLimit = 300
	journalBytes = 1 << 20
)

// readJournal runs journalctl for the last journalLimit lines of a unit
// since a time, keeping at most the last journalBytes of them.
func readJournal(ctx context.Context, unit string, since time.Time) ([]string, error) {
	// --all: a line with control characters is shown (escaped when
	// printed), not hidden as "[N blob data]" from whoever must read it.
	cmd := exec.CommandContext(ctx, "journalctl", "--no-pager", "--quiet", "--all", "-o", "short-precise",
		"-u", unit, "--since", "@"+strconv.FormatFloat(float64(since.UnixMicro())/1e6, 'f', 6, 64), "-n", strconv.Itoa(journalLimit))
	pipe, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	lines, rerr := tailLines(pipe, journalBytes)
	if err := cmd.Wait(); err != nil {
		return nil, err
	}
	if rerr != nil {
		return nil, rerr
	}
	return lines, nil
}

// tailLines reads r to its end and returns the lines of its last limit
// bytes, holding no more than twice that. journalctl writes the oldest
// line first, and the newest say why a start failed (the traceback's
// exception line, the app's last words), so a journal larger than limit
// (300 lines of an app that logs long ones) loses its oldest lines, not
// its newest: its first line then says how much was left out, and a line
// cut in two by the bound is dropped, unless it is the only one.
func tailLines(r io.Reader, limit int) ([]string, error) {
	buf := make([]byte, 0, 2*limit)
	dropped := 0
	for {
		if len(buf) == cap(buf) {
			n := copy(buf, buf[len(buf)-limit:])
			dropped += len(buf) - n
			buf = buf[:n]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	if len(buf) > limit {
		dropped += len(buf) - limit
		buf = buf[len(buf)-limit:]
	}
	text := strings.TrimRight(string(buf), "\n")
	if dropped > 0 {
		if i := strings.IndexByte(text, '\n'); i >= 0 {
			dropped += i + 1
			text = text[i+1:]
		} else {
			text = "…" + text
		}
	}
	if text == "" {
		return nil, nil
	}
	lines := strings.Split(text, "\n")
	if dropped > 0 {
		lines = append([]string{fmt.Sprintf("(%d bytes of the journal's earlier lines left out: only its last %d are read)", dropped, limit)}, lines...)
	}
	return lines, nil
}

// writeJSON prints v as indented JSON, with every character a terminal
// would act on escaped (term.IndentJSON).
func writeJSON(w io.Writer, v any) error {
	data, err := indentedJSON(v, "")
	if err != nil {
		return err
	}
	_, err = w.Write(append(data, '\n'))
	return err
}

// indentedJSON is v as json.MarshalIndent(v, prefix, "  ") writes it, made
// safe to print (term.IndentJSON).
func indentedJSON(v any, prefix string) ([]byte, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return term.IndentJSON(make([]byte, 0, 2*len(data)), data, prefix, "  "), nil
}

func ptr[T any](v T) *T { return &v }

// unitProcs are the processes of the cgroup of process pid, its unit's.
func unitProcs(pid int) ([]int, error) {
	group, err := cgroup.Of(pid)
	if err != nil {
		return nil, err
	}
	return cgroup.Procs(group)
}
