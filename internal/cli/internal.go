package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/sitectl/sitectl/activation"
	"github.com/sitectl/sitectl/cleanup"
	"github.com/sitectl/sitectl/internal/journal"
	"github.com/sitectl/sitectl/maintenance"
	"github.com/sitectl/sitectl/modes"
	"github.com/sitectl/sitectl/site"
)

// loadSite reads and validates one site of the config directory.
func (e *env) loadSite(name string) (*site.Site, error) {
	if err := site.ValidateName(name); err != nil {
		return nil, withCode(ExitUsage, err)
	}
	data, err := os.ReadFile(e.sitePath(name))
	if os.IsNotExist(err) {
		return nil, withCode(ExitNotFound, fmt.Errorf("site %s does not exist: there is no %s", name, e.sitePath(name)))
	}
	if err != nil {
		return nil, fmt.Errorf("cannot read site %s: %w", name, err)
	}
	s, err := site.Parse(e.sitePath(name), data)
	if err != nil {
		return nil, withCode(ExitUsage, fmt.Errorf("site %s has mistakes:\n%w", name, err), "fix them, check with `sitectl check`, then `systemctl daemon-reload`")
	}
	return s, nil
}

func prepareCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:     "prepare SITE",
		GroupID: "internal",
		Short:   "Record the default mode of a site that has none yet (ExecStartPre=)",
		Long: `Run as root by the site's service before each start: a site that has no mode
recorded under the state directory gets its default mode, and the environment file of
the recorded mode is brought up to date with the site file.`,
		Args: args(1, 1, "one site name"),
		RunE: func(c *cobra.Command, a []string) error {
			s, err := e.loadSite(a[0])
			if err != nil {
				return err
			}
			st := modes.Store{Dir: e.stateDir}
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
			want := modes.EnvFile(s, m)
			if have, err := os.ReadFile(st.EnvPath(s.Name)); err == nil && string(have) == string(want) {
				return nil
			}
			return st.Write(s, m)
		},
	}
}

func launchCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:     "launch SITE -- PROGRAM [ARG...]",
		GroupID: "internal",
		Short:   "Start what the site's current mode serves (ExecStart=)",
		Long: `Run by the site's service as its main process. In a mode that serves the app,
sitectl replaces itself with PROGRAM (same process, so systemd's main PID, LISTEN_PID
and readiness stay the app's). sitectl's own variables are removed from the app's
environment.`,
		Args: args(2, -1, "a site name, --, and the program to run"),
		RunE: func(c *cobra.Command, a []string) error {
			if c.ArgsLenAtDash() != 1 {
				return usageErrorf("launch takes SITE -- PROGRAM [ARG...]")
			}
			argv := a[1:]
			switch serve := os.Getenv(modes.VarServe); site.Serve(serve) {
			case "", site.ServeApp:
			case site.ServeMaintenance:
				return serveMaintenance(c.Context(), a[0])
			default:
				return fmt.Errorf("site %s: mode %s serves %q, which this sitectl does not know", a[0], os.Getenv(modes.VarMode), serve)
			}
			prog, err := exec.LookPath(argv[0])
			if err != nil {
				return fmt.Errorf("site %s: cannot run %s: %w", a[0], argv[0], err)
			}
			var env []string
			for _, kv := range os.Environ() {
				if !strings.HasPrefix(kv, "SITECTL_") {
					env = append(env, kv)
				}
			}
			return fmt.Errorf("site %s: cannot run %s: %w", a[0], prog, syscall.Exec(prog, argv, env))
		},
	}
}

// serveMaintenance runs the built-in maintenance server on the sockets
// systemd passed, until SIGTERM, then drains.
func serveMaintenance(ctx context.Context, name string) error {
	page, err := maintenance.LoadPage(os.Getenv(modes.VarPage))
	if err != nil {
		return fmt.Errorf("site %s: %w", name, err)
	}
	retry, _ := strconv.Atoi(os.Getenv(modes.VarRetryAfter))
	h, err := maintenance.Handler(maintenance.Config{
		Site: name, Page: page, StaticDir: os.Getenv(modes.VarStaticDir), RetryAfter: time.Duration(retry) * time.Second,
	})
	if err != nil {
		return fmt.Errorf("site %s: %w", name, err)
	}
	byName, err := activation.Listeners()
	if err != nil {
		return fmt.Errorf("site %s: %w", name, err)
	}
	var ls []net.Listener
	for _, l := range byName {
		ls = append(ls, l...)
	}
	if len(ls) == 0 {
		return fmt.Errorf("site %s: %w", name, maintenance.ErrNoListeners)
	}
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "SITECTL_") {
			os.Unsetenv(strings.SplitN(kv, "=", 2)[0])
		}
	}
	fmt.Fprintf(os.Stderr, "site %s: serving the maintenance page on %d sockets\n", name, len(ls))
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	if err := activation.Serve(ctx, srv, ls, activation.ServeOptions{}); err != nil && !errors.Is(err, activation.ErrDrainTimeout) {
		return fmt.Errorf("site %s: %w", name, err)
	}
	fmt.Fprintf(os.Stderr, "site %s: maintenance server stopped\n", name)
	return nil
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
				if journal.Send(pri, msg, map[string]string{"SITECTL_SITE": name}) != nil {
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
			summary := fmt.Sprintf("site %s: cleanup %s: %d processes left behind, %d still running after the timeout, %d hooks run, %d failed",
				name, rep.Result(), len(rep.Leftovers), len(rep.Remaining), rep.HooksRun, len(rep.HookFailures))
			pri := journal.PriInfo
			if rep.Result() != "ok" {
				pri = journal.PriWarning
			}
			fields := map[string]string{
				"SITECTL_SITE": name, "SITECTL_EVENT": "cleanup", "SITECTL_RESULT": rep.Result(),
				"SITECTL_LEFTOVERS": fmt.Sprint(len(rep.Leftovers)), "SITECTL_REMAINING": fmt.Sprint(len(rep.Remaining)),
				"SITECTL_HOOK_FAILURES": strings.Join(rep.HookFailures, "\n"),
			}
			if journal.Send(pri, summary, fields) != nil {
				fmt.Fprintln(e.stderr, summary)
			}
			return nil
		},
	}
}
