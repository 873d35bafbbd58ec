package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/sitectl/sitectl/activation"
	"github.com/sitectl/sitectl/internal/cleanup"
	"github.com/sitectl/sitectl/internal/flow"
	"github.com/sitectl/sitectl/internal/gunicorn"
	"github.com/sitectl/sitectl/internal/journal"
	"github.com/sitectl/sitectl/internal/launcher"
	"github.com/sitectl/sitectl/internal/modes"
	"github.com/sitectl/sitectl/internal/pubpath"
	"github.com/sitectl/sitectl/internal/site"
	"github.com/sitectl/sitectl/internal/sitecheck"
	"github.com/sitectl/sitectl/internal/term"
	"github.com/sitectl/sitectl/internal/units"
)

// loadSite reads and validates one site of the config directory.
func (e *env) loadSite(name string) (*site.Site, error) {
	s, _, err := e.readSite(name)
	return s, err
}

// readSite is loadSite that also returns the file's content.
func (e *env) readSite(name string) (*site.Site, []byte, error) {
	if err := site.ValidateName(name); err != nil {
		return nil, nil, withCode(exitUsage, err)
	}
	// Root's alone, as the generator reads it: the state service grants
	// from this file, and prepare keeps it as the last good copy the
	// generator falls back to.
	data, err := site.ReadSiteFile(e.dirs.SiteFile(name))
	if errors.Is(err, fs.ErrNotExist) {
		var hints []string
		if _, serr := os.Stat(e.dirs.SiteState(name)); serr == nil {
			// Its file went, its state stayed: its units may run on.
			hints = append(hints, fmt.Sprintf("site %s has run here: if its file was deleted or renamed, its units may still run (`sitectl status %s` shows them), and `sitectl remove %s` stops them", name, name, name))
		}
		return nil, nil, withCode(exitNotFound, noSuchSite{fmt.Sprintf("site %s does not exist: there is no %s", name, e.dirs.SiteFile(name))}, hints...)
	}
	if err != nil {
		return nil, nil, withCode(siteReadCode(err), fmt.Errorf("cannot read site %s: %w", name, err))
	}
	s, err := site.Parse(e.dirs.SiteFile(name), data)
	if err == nil {
		err = site.SocketDirMistakes(s)
	}
	if err != nil {
		return nil, nil, withCode(exitUsage, fmt.Errorf("site %s has mistakes:\n%w", name, err), e.fixHint(name))
	}
	return s, data, nil
}

// fixHint tells how to fix the file of site name: a command that checks
// that file (sitectl check refuses to run without one) against the same
// directories, then the daemon-reload that applies it.
func (e *env) fixHint(name string) string {
	argv := append([]string{"sitectl"}, e.dirs.Flags()...)
	argv = append(argv, "check", e.dirs.SiteFile(name))
	return "fix them, check with `" + strings.Join(argv, " ") + "`, then `systemctl daemon-reload`"
}

// noSuchSite is why a site cannot be loaded when its file does not exist.
// It is an fs.ErrNotExist, so that sitectl's state service tells a
// deployer that the site does not exist (exit 3), not that its file cannot
// be used, which it says, hiding why, of a file that exists.
type noSuchSite struct{ msg string }

func (n noSuchSite) Error() string        { return n.msg }
func (n noSuchSite) Is(target error) bool { return target == fs.ErrNotExist }

// startingSite is the site its service starts from: its site file, or,
// when that has mistakes, the last good copy of it that an earlier start
// kept, which is what the generator wrote the units from (a restart by
// systemd itself, after a crash or on an idle site's first request, must
// not fail over a typo). data is nil in that case: there is nothing new
// to keep. A file that cannot be read (a symlink to nowhere, a file root
// may not read) is a mistake too, as the generator has it: only a file
// whose directory entry is gone is a site removed.
func (e *env) startingSite(name string, st modes.Store) (*site.Site, []byte, error) {
	s, data, err := e.readSite(name)
	if err == nil {
		// A file that failed to start, unchanged since, is pinned to
		// the version the site ran before (modes.Pin): the generator
		// wrote the units from that copy, and the mode's environment
		// comes from it too.
		pin, good, perr := st.Pinned(name, data)
		if perr != nil {
			term.Fprintf(e.stderr, "site %s: %v; starting from its site file\n", name, perr)
		}
		if pin == nil {
			return s, data, nil
		}
		term.Fprintf(e.stderr, "site %s: %s failed to start on %s and is pinned: starting from its last good copy %s until the file changes\n",
			name, e.dirs.SiteFile(name), pin.Since.Format("2006-01-02 15:04:05 MST"), good.File)
		return good, nil, nil
	}
	good, what := e.lastGoodFallback(name, err, st)
	if good == nil {
		return nil, nil, err
	}
	term.Fprintf(e.stderr, "site %s: %s %s; starting from its last good copy %s: fix the file (sitectl check shows how) and run systemctl daemon-reload\n",
		name, e.dirs.SiteFile(name), what, good.File)
	return good, nil, nil
}

// lastGoodFallback is what runs of a site whose file readSite refused
// with err: the last good copy of its file that a start kept, which the
// generator writes its units from, and what is wrong with the file ("has
// mistakes", "cannot be read"). It is nil when the name is not a site's,
// when the file's directory entry is gone (the site was removed: nothing
// falls back), or when no start kept a copy.
func (e *env) lastGoodFallback(name string, err error, st modes.Store) (*site.Site, string) {
	if site.ValidateName(name) != nil {
		return nil, ""
	}
	if _, lerr := os.Lstat(e.dirs.SiteFile(name)); lerr != nil {
		return nil, ""
	}
	good, gerr := st.ReadLastGood(name)
	if gerr != nil || good == nil {
		return nil, ""
	}
	if codeOf(err) == exitUsage {
		// Mistakes in the file, or a file root does not trust.
		return good, "has mistakes"
	}
	return good, "cannot be read"
}

func prepareCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:     "prepare SITE",
		GroupID: "internal",
		Short:   "Record the default mode of a site that has none yet (ExecStartPre=)",
		Long: `Run as root by the site's service before each start: a site that has no mode
recorded under the state directory gets its default mode, and the environment file of
the recorded mode is brought up to date with the site file. It keeps a copy of the site
file the service starts from (last-good.toml in the site's state directory): when the
site file has mistakes, the generator writes the site's units from that copy, and
prepare starts from it too, so that a typo never takes a site off its socket. So they
do while the site is pinned: a rollback found that the file, as it is, does not start,
put back the version the site ran before and pinned the site to it until the file
changes (pinned/NAME.json in the state directory). A start from a file that then fails
overwrites the last good copy all the same, so the version a rollback goes back to is
kept apart: first, when the service's last run ended cleanly (its ExecStopPost= left a
mark), prepare keeps the copy that run started from as last-ran.toml.`,
		Args: args(1, 1, "one site name"),
		RunE: func(c *cobra.Command, a []string) error {
			st := modes.Store{Dir: e.dirs.State}
			if err := site.ValidateName(a[0]); err != nil {
				return withCode(exitUsage, err)
			}
			if err := st.EnsureLock(a[0]); err != nil {
				// The site starts all the same; only a touch during its
				// first change would not wait for it.
				term.Fprintf(e.stderr, "site %s: %v\n", a[0], err)
			}
			if _, err := st.PromoteRan(a[0]); err != nil {
				// The site starts all the same; only a rollback after a
				// failed start would go back to an older version.
				term.Fprintf(e.stderr, "site %s: %v\n", a[0], err)
			}
			s, data, err := e.startingSite(a[0], st)
			if err != nil {
				return err
			}
			if err := e.prepareMode(s, st); err != nil {
				return err
			}
			if s.Server == site.ServerGunicorn && s.FastExit {
				// The units name it; without it gunicorn would not start.
				if err := gunicorn.Ensure(gunicorn.Path); errors.Is(err, gunicorn.ErrKept) {
					term.Fprintf(e.stderr, "site %s: %v: free space on the file system of %s and restart the site to bring it up to date\n", s.Name, err, gunicorn.Path)
				} else if err != nil {
					return fmt.Errorf("site %s: %w", s.Name, err)
				}
			}
			if data != nil {
				// Started from a file the pin is not for: the edit
				// lifted it for good, and the old content back (a
				// backup restored) is tried afresh. An undone pin of
				// this very content stays (modes.Pin.Undone).
				if _, err := os.Lstat(e.dirs.PinFile(s.Name)); err == nil {
					if p, err := st.ReadPin(s.Name); err != nil || !p.Matches(data) {
						if _, err := st.Unpin(s.Name); err != nil {
							term.Fprintf(e.stderr, "site %s: %v\n", s.Name, err)
						}
					}
				}
				if err := st.SaveLastGood(s, data); err != nil {
					// The site starts all the same; only a later typo
					// would find no copy.
					term.Fprintf(e.stderr, "site %s: %v\n", s.Name, err)
				}
			}
			return nil
		},
	}
}

// launchFlags are sitectl launch's flags: what the launcher of an overlap
// site knows of its site. The site's service hides the site file and the
// state directory from the app and from the launcher with it, so
// internal/units renders these from the site file onto ExecStart=.
type launchFlags struct {
	overlap, reload           bool
	drainTimeout, stopTimeout time.Duration
	startTimeout              time.Duration
	readiness, workdir        string
	probePath                 string
	probeStatus               int
	probeTimeout              time.Duration
	keepPrevious              time.Duration
	startPriority             string
}

func (f *launchFlags) register(c *cobra.Command) {
	fl := c.Flags()
	fl.BoolVar(&f.overlap, "overlap", false, "stay the main process and run the app as generations (handoff = \"overlap\")")
	fl.BoolVar(&f.reload, "reload", false, "ask the site's launcher to reload into the recorded mode, and wait for the result (run as root)")
	fl.DurationVar(&f.drainTimeout, "drain-timeout", 0, "with --overlap: how long a generation told to drain may take to exit before every process of it is stopped (not given: no limit; at least 1ms, at most 48h)")
	fl.DurationVar(&f.stopTimeout, "stop-timeout", 5*time.Second, "with --overlap: how long those processes get after SIGTERM before SIGKILL")
	fl.DurationVar(&f.startTimeout, "start-timeout", time.Minute, "with --overlap: how long a new generation may take to be ready")
	fl.StringVar(&f.readiness, "readiness", string(site.ReadinessNone), "with --overlap: how a generation says it is ready: notify or none")
	fl.StringVar(&f.workdir, "workdir", "", "with --overlap: the working directory, its symlinks resolved afresh for each generation")
	fl.StringVar(&f.probePath, "probe-path", "", "with --overlap: the path of the site's probe (none: no probe)")
	fl.IntVar(&f.probeStatus, "probe-status", 200, "with --overlap: the status the probe expects")
	fl.DurationVar(&f.probeTimeout, "probe-timeout", site.DefaultProbeTimeout, "with --overlap: how long the probe may take")
	fl.DurationVar(&f.keepPrevious, "keep-previous", 0, "with --overlap: how long the generation a handover replaced stays warm for a rollback (not given: drained at once; at least 1ms, at most 48h)")
	fl.StringVar(&f.startPriority, "start-priority", string(site.StartIdle), "with --overlap: the priority of a reload's new generation until it is ready: idle (promoted by --reload) or normal")
}

// site is what the launcher knows of its site, from the flags.
func (f *launchFlags) site(name string) (*site.Site, error) {
	r := site.Readiness(f.readiness)
	if r != site.ReadinessNotify && r != site.ReadinessNone {
		return nil, usageErrorf("--readiness %q is not notify or none", f.readiness)
	}
	if f.startTimeout <= 0 || f.probeTimeout <= 0 {
		return nil, usageErrorf("--start-timeout and --probe-timeout must be longer than zero")
	}
	if f.keepPrevious < 0 {
		return nil, usageErrorf("--keep-previous must not be negative")
	}
	sp := site.StartPriority(f.startPriority)
	if sp != site.StartIdle && sp != site.StartNormal {
		return nil, usageErrorf("--start-priority %q is not idle or normal", f.startPriority)
	}
	s := &site.Site{Name: name, Readiness: r, StartTimeout: f.startTimeout, Workdir: f.workdir, KeepPrevious: f.keepPrevious, StartPriority: sp}
	if f.probePath != "" {
		s.Probe = &site.Probe{Path: f.probePath, Status: f.probeStatus, Timeout: f.probeTimeout}
	}
	return s, nil
}

// prepareMode records the default mode of a site that has none, and brings
// the environment file of its recorded mode up to date with the site file,
// under the mode lock (modes.Store.Refresh): a switch that records another
// mode meanwhile is never undone.
func (e *env) prepareMode(s *site.Site, st modes.Store) error {
	r, err := st.Refresh(s)
	if err != nil {
		if _, serr := os.Stat(st.EnvPath(s.Name)); serr == nil {
			// A state directory that cannot be written (a file system
			// remounted read-only, a full disk) must not keep a site
			// that has run from starting again: its recorded mode
			// file is what it ran with.
			term.Fprintf(e.stderr, "site %s: its mode file could not be brought up to date (%v); starting with the one recorded\n", s.Name, err)
			return nil
		}
	}
	switch r {
	case modes.RefreshedDefault:
		term.Fprintf(e.stderr, "site %s has no mode recorded: starting in its default mode %s\n", s.Name, s.DefaultMode)
	case modes.RefreshedKept:
		current, _, _ := st.Current(s.Name)
		term.Fprintf(e.stderr, "site %s is recorded in mode %s, which its site file no longer has: keeping the recorded environment\n", s.Name, current)
	}
	return err
}

func launchCmd(e *env) *cobra.Command {
	var f launchFlags
	c := &cobra.Command{
		Use:     "launch SITE [--overlap] -- PROGRAM [ARG...] | launch SITE --reload",
		GroupID: "internal",
		Short:   "Start what the site's current mode serves (ExecStart=, ExecReload=)",
		Long: `Run by the site's service as its main process. In a mode that serves the app,
sitectl replaces itself with PROGRAM (same process, so systemd's main PID, LISTEN_PID
and readiness stay the app's). sitectl's own variables are removed from the app's
environment. In a maintenance mode it serves the maintenance page itself. The mode
comes from the environment, where systemd put the mode file (EnvironmentFile=):
neither the app nor sitectl launch can read the state directory or the site file.

With --overlap (handoff = "overlap"), sitectl stays the main process and runs the
app as a generation: a reload starts a new generation on the same sockets, waits
until it is ready, and only then lets the old one drain. A draining generation
that has not exited after --drain-timeout gets SIGTERM on every one of its
processes, and SIGKILL after --stop-timeout. The other flags are the site's
settings the launcher needs, rendered from the site file into the unit.

--reload (ExecReload=+, run as root) reads the site's recorded mode, sends it to
the site's launcher over its control socket, and waits for the result.`,
		Args: args(1, -1, "a site name, --, and the program to run"),
		RunE: func(c *cobra.Command, a []string) error {
			name := a[0]
			if f.reload {
				return e.reloadLauncher(name)
			}
			if c.ArgsLenAtDash() != 1 || len(a) < 2 {
				return usageErrorf("launch takes SITE -- PROGRAM [ARG...]")
			}
			argv := a[1:]
			if f.overlap {
				s, err := f.site(name)
				if err != nil {
					return err
				}
				return e.runLauncher(c.Context(), s, argv, f.drainTimeout, f.stopTimeout)
			}
			return launcher.Exec(c.Context(), name, argv, e.logf(name))
		},
	}
	f.register(c)
	return c
}

// reloadLauncher is the root side of an overlap site's ExecReload=: it
// reads the recorded mode, which the launcher may not read, asks the
// launcher to reload into it and waits for the result. A stop of the site
// during the reload (systemd sends this process SIGTERM, the launcher
// answers that the site is stopping) makes the reload moot, not failed:
// exiting 0 then keeps an operator's stop from leaving the unit "failed".
func (e *env) reloadLauncher(name string) error {
	// Visitors first: this process's start and its part of the reload
	// come in the first moments of it; its promotion of the new
	// generation is not in a hurry.
	if err := e.yield(); err != nil {
		return err
	}
	mode, err := modes.Store{Dir: e.dirs.State}.ReadEnv(name)
	if err != nil {
		return fmt.Errorf("site %s: reload failed: %w", name, err)
	}
	data, err := modes.EncodeEnv(mode)
	if err != nil {
		return fmt.Errorf("site %s: reload failed: %w", name, err)
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM)
	defer signal.Stop(sigs)
	done := make(chan error, 1)
	// $MAINPID, which systemd sets for ExecReload=, is the launcher: the
	// control socket is in a directory the site's app can write, and only
	// a socket the launcher listens on is told the mode (launcher.Reload
	// checks). Without it nothing is sent.
	mainPID, _ := strconv.Atoi(os.Getenv("MAINPID"))
	go func() {
		done <- launcher.Reload(os.Getenv("RUNTIME_DIRECTORY"), mainPID, data, promoter(os.Getenv("MAINPID")))
	}()
	select {
	case err = <-done:
	case <-sigs:
		err = launcher.ErrStopping
	}
	switch {
	case errors.Is(err, launcher.ErrStopping):
		term.Fprintf(e.stderr, "site %s is stopping: the reload is abandoned\n", name)
		return nil
	case err != nil:
		return fmt.Errorf("site %s: reload failed: %w", name, err)
	}
	return nil
}

// promoter is how root's side of a reload promotes a generation the
// launcher started at idle priority: only processes of the launcher, which
// systemd names in $MAINPID of ExecReload=. Without it the launcher is not
// offered promotion, and starts the generation at normal priority.
func promoter(mainPID string) func(pid int) (string, error) {
	main, err := strconv.Atoi(mainPID)
	if err != nil || main <= 1 {
		return nil
	}
	return func(pid int) (string, error) {
		did, err := launcher.Promote("/proc", main, pid)
		return did.String(), err
	}
}

// runLauncher runs the overlapped handoff of site s as its main process.
// The first generation's mode is the launcher's own environment; each
// reload brings its own (see reloadLauncher). The release symlink is
// resolved afresh for each generation.
func (e *env) runLauncher(ctx context.Context, s *site.Site, argv []string, drainTimeout, stopTimeout time.Duration) error {
	name := s.Name
	// Before any generation runs: the app, the same user, is kept out of
	// the launcher's memory and file descriptors.
	if err := launcher.Guard(); err != nil {
		return fmt.Errorf("site %s: %w", name, err)
	}
	started := modes.FromEnviron(os.Environ())
	base := launcher.BaseEnv(os.Environ(), started)
	files := activation.Files(true)
	if len(files) == 0 {
		return fmt.Errorf("site %s: the launcher got no sockets from systemd", name)
	}
	names := make([]string, len(files))
	for i, f := range files {
		names[i] = f.Name()
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	cfg := launcher.Config{
		Site: name, Argv: argv, Listeners: files, Names: names, Mode: started,
		RuntimeDir: os.Getenv("RUNTIME_DIRECTORY"), Shim: append([]string{self}, e.dirs.Flags()...),
		Notify: func(state string) { activation.Notify(state) },
		Logf:   e.logf(name),
		// The failsafe of a draining generation; INVOCATION_ID, which
		// every generation inherits, marks its daemons.
		DrainTimeout: drainTimeout, StopTimeout: stopTimeout, Invocation: os.Getenv("INVOCATION_ID"),
		KeepPrevious: s.KeepPrevious, StartIdle: s.StartPriority == site.StartIdle,
		Prepare: func(mode []site.EnvVar) (launcher.Spec, error) {
			dir := ""
			if s.Workdir != "" {
				var err error
				if dir, err = filepath.EvalSymlinks(s.Workdir); err != nil {
					return launcher.Spec{}, fmt.Errorf("the working directory: %w", err)
				}
			}
			return launcher.NewSpec(s, mode, base, dir), nil
		},
	}
	if cfg.RuntimeDir == "" {
		return fmt.Errorf("site %s: the launcher needs RuntimeDirectory= (RUNTIME_DIRECTORY is not set)", name)
	}
	return launcher.Run(ctx, cfg)
}

// logf writes a site's log lines to standard error, the journal under
// systemd.
func (e *env) logf(name string) func(format string, args ...any) {
	return func(format string, args ...any) { term.Fprintf(e.stderr, "site "+name+": "+format+"\n", args...) }
}

func cleanupCmd(e *env) *cobra.Command {
	var timeout, budget time.Duration
	var hooks []string
	c := &cobra.Command{
		Use:     "cleanup SITE",
		GroupID: "internal",
		Short:   "Stop what the app left behind and run the site's cleanup hooks (ExecStopPost=)",
		Long: `Run by the site's service after its main process exited. Processes left in the
unit's cgroup get SIGTERM and up to --timeout (the site's cleanup_timeout) to exit;
then the site's cleanup hooks run, each given as --hook with its command line as a
JSON array of strings, with SITE, SITE_MODE, SERVICE_RESULT, EXIT_CODE and
EXIT_STATUS in their environment. What it found and did goes to the journal,
after a record that it started: sitectl status tells a cleanup that did not finish.
Whatever still runs afterwards gets systemd's final SIGKILL. systemd bounds the
cleanup with the unit's TimeoutStopSec= (drain_timeout plus stop_timeout), given as
--budget: where the waits at their --timeout would not fit in it, they are shortened
to even shares of what is left, so that every hook runs and the record is written.
The hooks and the timeouts are rendered from the site file into the unit: the
site's service cannot read the site file. Since it stops every other process of its cgroup, it runs only
in the cgroup of the site's own service (site-SITE.service): anywhere else, a shell
or another unit, it stops nothing, runs no hook and exits 2.`,
		Args: args(1, 1, "one site name"),
		RunE: func(c *cobra.Command, a []string) error {
			name := a[0]
			if timeout <= 0 {
				return usageErrorf("--timeout must be longer than zero")
			}
			opts := cleanup.Options{Timeout: timeout, Budget: budget}
			for _, h := range hooks {
				var argv []string
				if err := json.Unmarshal([]byte(h), &argv); err != nil || len(argv) == 0 {
					return usageErrorf("--hook %q is not a command line as a JSON array of strings", h)
				}
				opts.Hooks = append(opts.Hooks, argv)
			}
			return e.cleanup(name, opts)
		},
	}
	c.Flags().DurationVar(&timeout, "timeout", 10*time.Second, "how long leftovers get after SIGTERM, and each hook gets to run")
	c.Flags().DurationVar(&budget, "budget", 0, "how long systemd lets the cleanup run (the unit's TimeoutStopSec=): the waits are shortened to fit, so that every hook runs (not given: no bound; at least 1ms, at most 48h)")
	c.Flags().StringArrayVar(&hooks, "hook", nil, "a cleanup hook's command line as a JSON array of strings (repeatable, run in order)")
	return c
}

// cleanup runs the cleanup of site name and logs what it did.
func (e *env) cleanup(name string, opts cleanup.Options) error {
	logf := func(pri int, format string, args ...any) {
		msg := fmt.Sprintf("site "+name+": "+format, args...)
		if cleanup.SendLine(name, pri, msg) != nil {
			term.Fprintln(e.stderr, msg)
		}
	}
	opts.Logf = func(f string, args ...any) { logf(journal.PriInfo, f, args...) }
	opts.Unit = units.ServiceName(name)
	// The records sitectl status looks up: one as the cleanup starts,
	// then its result. A last record that is the first says the last
	// cleanup did not finish (systemd's SIGKILL at TimeoutStopSec=), not
	// what an earlier one did.
	send := func(rec cleanup.Record) {
		if sendRecord(rec) != nil {
			term.Fprintln(e.stderr, rec.Message())
		}
	}
	opts.Started = func() { send(cleanup.StartedRecord(name)) }
	rep, err := runCleanup(context.Background(), opts)
	if errors.Is(err, cleanup.ErrNotInUnit) {
		return withCode(exitUsage, fmt.Errorf("site %s: %w", name, err))
	}
	if err != nil {
		logf(journal.PriErr, "cleanup failed: %v", err)
		send(cleanup.FailedRecord(name, err))
		return err
	}
	// A failed hook is reported, not turned into a failed stop.
	send(rep.Record(name))
	return nil
}

// runCleanup runs a cleanup, and sendRecord writes a cleanup record to
// the journal; variables for tests.
var (
	runCleanup = cleanup.Run
	sendRecord = cleanup.Record.Send
)

// touchedRounds bounds the reloads of one touchedCmd run: a file touched
// without pause reloads the site this often, then the path unit takes over.
const touchedRounds = units.TouchedRounds

// touchedSystemctl is the systemctl touched runs, and touchedRoundTimeout
// bounds each of its reloads: a job that never ends would keep the reload
// unit running, and the path unit from watching. The reload unit's
// TimeoutStartSec= is a bit above touchedRounds of them. Variables for
// tests.
var (
	touchedSystemctl    = units.DefaultSystemctl
	touchedCheck        = touchedStartable
	touchedOutOfService = touchedSocketStopped
	touchedRoundTimeout = units.TouchedRoundTimeout
)

func touchedCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:     "touched SITE",
		GroupID: "internal",
		Short:   "Reload a site because its reload_trigger was touched (site-NAME-reload.service)",
		Long: `Run by the site's reload unit, which its path unit starts when the site's
reload_trigger changes. It runs systemctl reload-or-restart on the site's service,
and does it again while the trigger was touched meanwhile: systemd's path unit does
not watch while the reload unit runs, so a touch during a reload (a deploy tool
switching the release symlink and touching again) would otherwise be lost. At most
` + strconv.Itoa(touchedRounds) + ` reloads per run. It holds the site's lock while it reloads: a
touch during a sitectl change of the site (mode, restart, rollback, a deployer's
change) reloads once that change is done.`,
		Args: args(1, 1, "one site name"),
		RunE: func(c *cobra.Command, a []string) error {
			name := a[0]
			s, err := e.loadSite(name)
			if err != nil {
				return err
			}
			if s.ReloadTrigger == "" {
				return fmt.Errorf("site %s has no reload_trigger", name)
			}
			// As root's side of the reload it asks for does.
			if err := e.yield(); err != nil {
				return err
			}
			lock, err := touchedLock(c.Context(), e, s)
			if err != nil {
				return err
			}
			if lock != nil {
				defer lock.Unlock()
			}
			for round := 1; ; round++ {
				// A change it waited for may have taken the site out
				// of service (sitectl stop, disable), and
				// reload-or-restart would start it again.
				out, err := touchedOutOfService(c.Context(), e, s)
				if err != nil {
					return err
				}
				if out != "" {
					term.Fprintf(e.stderr, "site %s: not reloaded after %s was touched: the site is out of service (%s)\n", name, s.ReloadTrigger, out)
					return nil
				}
				before := triggerID(s.ReloadTrigger)
				if err := reloadTouched(c.Context(), e, s); err != nil {
					return err
				}
				if triggerID(s.ReloadTrigger) == before {
					return nil
				}
				if round == touchedRounds {
					term.Fprintf(e.stderr, "site %s: %s is still being touched after %d reloads; the next touch reloads again\n", name, s.ReloadTrigger, round)
					return nil
				}
				term.Fprintf(e.stderr, "site %s: %s was touched again during the reload: reloading again\n", name, s.ReloadTrigger)
			}
		},
	}
}

// touchedLock takes the site's lock for touched's reloads, waiting at most
// touchedRoundTimeout for a change of the site under way (sitectl mode,
// restart, a deployer's change) to end: a restart of the site in the middle
// of a change would make the change fail and roll back, blaming the app,
// and undo the deploy's reload with it. Nil, without error, for a site no
// change has ever locked. The reload unit's state directory is read-only:
// the lock is taken on the file as it is (flock needs no write access).
func touchedLock(ctx context.Context, e *env, s *site.Site) (*modes.Lock, error) {
	st := modes.Store{Dir: e.dirs.State}
	wait := touchedRoundTimeout(s)
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	for said := false; ; said = true {
		lock, err := st.TryLockExisting(s.Name)
		if !errors.Is(err, modes.ErrLocked) {
			return lock, err
		}
		if !said {
			term.Fprintf(e.stderr, "site %s: %s was touched while another sitectl changes the site: reloading once it is done\n", s.Name, s.ReloadTrigger)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("site %s: not reloaded after %s was touched: another sitectl was still changing the site after %s; touch it again once that change is done", s.Name, s.ReloadTrigger, wait)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// reloadTouched runs one reload of touched: systemctl reload-or-restart
// of the site's service, for at most touchedRoundTimeout.
func reloadTouched(ctx context.Context, e *env, s *site.Site) error {
	wait := touchedRoundTimeout(s)
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	if err := touchedCheck(ctx, e, s); err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, touchedSystemctl, "reload-or-restart", units.ServiceName(s.Name))
	cmd.Stdout, cmd.Stderr = e.stdout, e.stderr
	// Once systemctl is killed, a copy of its output is not waited for
	// long either.
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	if err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("site %s: the reload after %s was touched did not finish within %s; systemd may still carry it out: %w",
			s.Name, s.ReloadTrigger, wait, ctx.Err())
	}
	if err != nil {
		return fmt.Errorf("site %s: reload after %s was touched failed: %w", s.Name, s.ReloadTrigger, err)
	}
	return nil
}

// touchedSocketStopped says why site s is out of service, "" when it is
// in service: its main socket is active, with no stop queued for it.
func touchedSocketStopped(ctx context.Context, e *env, s *site.Site) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, touchedRoundTimeout(s))
	defer cancel()
	mgr, err := e.connect(ctx)
	if err != nil {
		return "", err
	}
	defer mgr.Close()
	name := units.MainSocketName(s.Name)
	us, err := mgr.States(ctx, name)
	if err != nil {
		return "", fmt.Errorf("site %s: not reloaded after %s was touched: %w", s.Name, s.ReloadTrigger, err)
	}
	switch {
	case len(us) != 1:
		return "", fmt.Errorf("site %s: not reloaded after %s was touched: systemd did not say how %s is", s.Name, s.ReloadTrigger, name)
	case us[0].Job == "stop":
		return name + " is being stopped", nil
	case us[0].ActiveState != "active":
		return fmt.Sprintf("%s is %s", name, us[0].ActiveState), nil
	}
	return "", nil
}

// touchedStartable refuses a touch's reload of a site without overlap,
// which is a restart, when the site's unit surely cannot start: a deploy
// that switched to a release without the program would otherwise take
// the site down (flow.Startable). An overlap site's reload is a handover,
// and its old generation serves on if the new one fails.
func touchedStartable(ctx context.Context, e *env, s *site.Site) error {
	if s.Handoff == site.HandoffOverlap {
		return nil
	}
	cur, err := flow.Current(modes.Store{Dir: e.dirs.State}, s)
	if err != nil {
		return err
	}
	mgr, err := e.connect(ctx)
	if err != nil {
		return err
	}
	defer mgr.Close()
	// A deployer's touch: paths are looked at as any user could, and the
	// reload unit has its own /tmp (PrivateTmp=yes, units.reloadHardening).
	host := sitecheck.Public(pubpath.Resolver{Unseen: []string{"/tmp", "/var/tmp"}})
	if err := flow.Startable(ctx, &flow.Env{Systemd: mgr, Host: &host}, s, cur); err != nil {
		return fmt.Errorf("site %s: not reloaded after %s was touched: %w", s.Name, s.ReloadTrigger, err)
	}
	return nil
}

// triggerID tells one version of a reload trigger from another (the file
// it names, through symlinks): the zero FileID when it cannot be read. Not
// its modification time alone: a deploy that puts the trigger in place
// with a time of its own (cp -p, rsync -t, a reproducible archive whose
// files all have one time) may give it the time it had, and the touch
// during a reload would be lost. Its change time the kernel sets at every
// write, rename and touch.
func triggerID(path string) site.FileID {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return site.FileID{}
	}
	return site.FileIDOf(&st)
}
