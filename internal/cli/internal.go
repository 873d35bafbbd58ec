package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/sitectl/sitectl/activation"
	"github.com/sitectl/sitectl/internal/cleanup"
	"github.com/sitectl/sitectl/internal/journal"
	"github.com/sitectl/sitectl/internal/launcher"
	"github.com/sitectl/sitectl/internal/modes"
	"github.com/sitectl/sitectl/internal/site"
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
	data, err := site.ReadFile(e.dirs.SiteFile(name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, withCode(exitNotFound, fmt.Errorf("site %s does not exist: there is no %s", name, e.dirs.SiteFile(name)))
	}
	if err != nil {
		return nil, nil, withCode(siteReadCode(err), fmt.Errorf("cannot read site %s: %w", name, err))
	}
	s, err := site.Parse(e.dirs.SiteFile(name), data)
	if err != nil {
		return nil, nil, withCode(exitUsage, fmt.Errorf("site %s has mistakes:\n%w", name, err), "fix them, check with `sitectl check`, then `systemctl daemon-reload`")
	}
	return s, data, nil
}

// startingSite is the site its service starts from: its site file, or,
// when that has mistakes, the last good copy of it that an earlier start
// kept, which is what the generator wrote the units from (a restart by
// systemd itself, after a crash or on an idle site's first request, must
// not fail over a typo). data is nil in that case: there is nothing new
// to keep.
func (e *env) startingSite(name string, st modes.Store) (*site.Site, []byte, error) {
	s, data, err := e.readSite(name)
	if err == nil || codeOf(err) != exitUsage {
		return s, data, err
	}
	good, gerr := st.ReadLastGood(name)
	if gerr != nil || good == nil {
		return nil, nil, err
	}
	fmt.Fprintf(e.stderr, "site %s: %s has mistakes; starting from its last good copy %s: fix the file (sitectl check shows how) and run systemctl daemon-reload\n",
		name, e.dirs.SiteFile(name), good.File)
	return good, nil, nil
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
prepare starts from it too, so that a typo never takes a site off its socket.`,
		Args: args(1, 1, "one site name"),
		RunE: func(c *cobra.Command, a []string) error {
			st := modes.Store{Dir: e.dirs.State}
			s, data, err := e.startingSite(a[0], st)
			if err != nil {
				return err
			}
			if err := e.prepareMode(s, st); err != nil {
				return err
			}
			if data != nil {
				if err := st.SaveLastGood(s, data); err != nil {
					// The site starts all the same; only a later typo
					// would find no copy.
					fmt.Fprintf(e.stderr, "site %s: %v\n", s.Name, err)
				}
			}
			return nil
		},
	}
}

// prepareMode records the default mode of a site that has none, and brings
// the environment file of its recorded mode up to date with the site file.
func (e *env) prepareMode(s *site.Site, st modes.Store) error {
	current, ok, err := st.Current(s.Name)
	if err != nil {
		return err
	}
	if !ok {
		if _, err := st.Ensure(s); err != nil {
			return err
		}
		fmt.Fprintf(e.stderr, "site %s has no mode recorded: starting in its default mode %s\n", s.Name, s.DefaultMode)
		return nil
	}
	m, found := s.Mode(current)
	if !found {
		fmt.Fprintf(e.stderr, "site %s is recorded in mode %s, which its site file no longer has: keeping the recorded environment\n", s.Name, current)
		return nil
	}
	want, err := modes.EnvFile(s, m)
	if err != nil {
		return err
	}
	if have, err := os.ReadFile(st.EnvPath(s.Name)); err == nil && string(have) == string(want) {
		return nil
	}
	return st.Write(s, m)
}

func launchCmd(e *env) *cobra.Command {
	var overlap, reload bool
	var drainTimeout, stopTimeout time.Duration
	c := &cobra.Command{
		Use:     "launch SITE [--overlap] -- PROGRAM [ARG...] | launch SITE --reload",
		GroupID: "internal",
		Short:   "Start what the site's current mode serves (ExecStart=, ExecReload=)",
		Long: `Run by the site's service as its main process. In a mode that serves the app,
sitectl replaces itself with PROGRAM (same process, so systemd's main PID, LISTEN_PID
and readiness stay the app's). sitectl's own variables are removed from the app's
environment. In a maintenance mode it serves the maintenance page itself.

With --overlap (handoff = "overlap"), sitectl stays the main process and runs the
app as a generation: a reload starts a new generation on the same sockets, waits
until it is ready, and only then lets the old one drain. A draining generation
that has not exited after --drain-timeout gets SIGTERM on every one of its
processes, and SIGKILL after --stop-timeout.

--reload (ExecReload=) asks the site's launcher to reload and waits for the result.`,
		Args: args(1, -1, "a site name, --, and the program to run"),
		RunE: func(c *cobra.Command, a []string) error {
			name := a[0]
			if reload {
				if err := launcher.Reload(os.Getenv("RUNTIME_DIRECTORY")); err != nil {
					return fmt.Errorf("site %s: reload failed: %w", name, err)
				}
				return nil
			}
			if c.ArgsLenAtDash() != 1 || len(a) < 2 {
				return usageErrorf("launch takes SITE -- PROGRAM [ARG...]")
			}
			argv := a[1:]
			if overlap {
				return e.runLauncher(c.Context(), name, argv, drainTimeout, stopTimeout)
			}
			return launcher.Exec(c.Context(), name, argv, e.logf(name))
		},
	}
	c.Flags().BoolVar(&overlap, "overlap", false, "stay the main process and run the app as generations (handoff = \"overlap\")")
	c.Flags().BoolVar(&reload, "reload", false, "ask the site's launcher to reload, and wait for the result")
	c.Flags().DurationVar(&drainTimeout, "drain-timeout", 0, "with --overlap: how long a generation told to drain may take to exit before every process of it is stopped (0: no limit)")
	c.Flags().DurationVar(&stopTimeout, "stop-timeout", 5*time.Second, "with --overlap: how long those processes get after SIGTERM before SIGKILL")
	return c
}

// runLauncher runs the overlapped handoff of a site as its main process.
// The files it needs (the site file, the mode file, the release symlink)
// are read here, for each generation; the launcher gets the result.
func (e *env) runLauncher(ctx context.Context, name string, argv []string, drainTimeout, stopTimeout time.Duration) error {
	st := modes.Store{Dir: e.dirs.State}
	started, _ := st.ReadEnv(name)
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
		Site: name, Argv: argv, Listeners: files, Names: names,
		RuntimeDir: os.Getenv("RUNTIME_DIRECTORY"), Shim: append([]string{self}, e.dirs.Flags()...),
		Notify: func(state string) { activation.Notify(state) },
		Logf:   e.logf(name),
		// The failsafe of a draining generation; INVOCATION_ID, which
		// every generation inherits, marks its daemons.
		DrainTimeout: drainTimeout, StopTimeout: stopTimeout, Invocation: os.Getenv("INVOCATION_ID"),
		Prepare: func() (launcher.Spec, error) {
			s, err := e.loadSite(name)
			if err != nil {
				return launcher.Spec{}, err
			}
			mode, err := st.ReadEnv(name)
			if err != nil {
				return launcher.Spec{}, err
			}
			dir := ""
			if s.Workdir != "" {
				// Each generation resolves the release symlink afresh.
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
	return func(format string, args ...any) { fmt.Fprintf(e.stderr, "site "+name+": "+format+"\n", args...) }
}

func stateServerCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:     "state-server",
		GroupID: "internal",
		Short:   "Write mode state for a deployer (sitectl-state@.service, one connection)",
		Long: `Run by sitectl-state@.service for one connection to /run/sitectl/state.sock
(group sitectl-deploy), with the connection as standard input and output. It
answers one request: begin a switch, set a mode, or finish a switch, of a site of
the config directory. Modes are checked against the site file and rendered from
it; the caller's uid comes from the kernel (SO_PEERCRED). Deployers thus change
mode state without being able to write anything else.`,
		Args: args(0, 0, "no arguments"),
		RunE: func(c *cobra.Command, _ []string) error {
			cred, err := unix.GetsockoptUcred(0, unix.SOL_SOCKET, unix.SO_PEERCRED)
			if err != nil {
				return fmt.Errorf("standard input is not the connection (run by sitectl-state@.service): %w", err)
			}
			caller := modes.Caller{UID: int(cred.Uid), PID: int(cred.Pid)}
			rw := struct {
				io.Reader
				io.Writer
			}{os.Stdin, os.Stdout}
			err = modes.Serve(rw, caller, modes.Store{Dir: e.dirs.State}, e.loadSite)
			if err != nil {
				fmt.Fprintf(e.stderr, "uid %d (pid %d): %v\n", caller.UID, caller.PID, err)
			}
			return nil
		},
	}
}

func cleanupCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:     "cleanup SITE",
		GroupID: "internal",
		Short:   "Stop what the app left behind and run the site's cleanup hooks (ExecStopPost=)",
		Long: `Run by the site's service after its main process exited. Processes left in the
unit's cgroup get SIGTERM and up to cleanup_timeout to exit; then the site's cleanup
hooks run, with SITE, SITE_MODE, SERVICE_RESULT, EXIT_CODE and EXIT_STATUS in their
environment. What it found and did goes to the journal. Whatever still runs afterwards
gets systemd's final SIGKILL.`,
		Args: args(1, 1, "one site name"),
		RunE: func(c *cobra.Command, a []string) error {
			name := a[0]
			logf := func(pri int, format string, args ...any) {
				msg := fmt.Sprintf("site "+name+": "+format, args...)
				if cleanup.SendLine(name, pri, msg) != nil {
					fmt.Fprintln(e.stderr, msg)
				}
			}
			opts := cleanup.Options{Logf: func(f string, args ...any) { logf(journal.PriInfo, f, args...) }}
			s, err := e.loadSite(name)
			if err != nil {
				// Still stop the leftovers: a broken site file must not leave
				// processes behind.
				logf(journal.PriWarning, "cannot read the site file, so no cleanup hooks run: %v", err)
			} else {
				opts.Hooks, opts.Timeout = s.Cleanup, s.CleanupTimeout
			}
			rep, err := cleanup.Run(context.Background(), opts)
			if err != nil {
				logf(journal.PriErr, "cleanup failed: %v", err)
				return err
			}
			// One record that sitectl status looks up. A failed hook is
			// reported, not turned into a failed stop.
			rec := rep.Record(name)
			if rec.Send() != nil {
				fmt.Fprintln(e.stderr, rec.Message())
			}
			return nil
		},
	}
}

// touchedRounds bounds the reloads of one touchedCmd run: a file touched
// without pause reloads the site this often, then the path unit takes over.
const touchedRounds = 5

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
` + strconv.Itoa(touchedRounds) + ` reloads per run.`,
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
			for round := 1; ; round++ {
				before := modTime(s.ReloadTrigger)
				cmd := exec.CommandContext(c.Context(), units.DefaultSystemctl, "reload-or-restart", units.ServiceName(name))
				cmd.Stdout, cmd.Stderr = e.stdout, e.stderr
				if err := cmd.Run(); err != nil {
					return fmt.Errorf("site %s: reload after %s was touched failed: %w", name, s.ReloadTrigger, err)
				}
				if modTime(s.ReloadTrigger).Equal(before) {
					return nil
				}
				if round == touchedRounds {
					fmt.Fprintf(e.stderr, "site %s: %s is still being touched after %d reloads; the next touch reloads again\n", name, s.ReloadTrigger, round)
					return nil
				}
				fmt.Fprintf(e.stderr, "site %s: %s was touched again during the reload: reloading again\n", name, s.ReloadTrigger)
			}
		},
	}
}

// modTime is a file's modification time, zero when it cannot be read.
func modTime(path string) time.Time {
	fi, err := os.Stat(path)
	if err != nil {
		return time.Time{}
	}
	return fi.ModTime()
}
