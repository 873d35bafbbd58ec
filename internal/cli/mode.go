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
	"github.com/sitectl/sitectl/internal/control"
	"github.com/sitectl/sitectl/internal/flow"
	"github.com/sitectl/sitectl/internal/modes"
	"github.com/sitectl/sitectl/internal/paths"
	"github.com/sitectl/sitectl/internal/site"
	"github.com/sitectl/sitectl/internal/sockheld"
)

// changeFlags are the flags of every verb that changes a site.
type changeFlags struct {
	noBlock bool
	timeout time.Duration
	asJSON  bool
	force   bool
}

func (f *changeFlags) register(c *cobra.Command) {
	c.Flags().BoolVar(&f.noBlock, "no-block", false, "fail at once if another sitectl is changing the site, instead of waiting")
	c.Flags().DurationVar(&f.timeout, "timeout", 2*time.Minute, "give up after this long; 60% for the change, the rest for a rollback")
	c.Flags().BoolVar(&f.asJSON, "json", false, "report as JSON on standard output")
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
If the site does not come up, its previous mode is put back and brought up again,
and sitectl exits 4 with the reason and the journal lines of the failed start,
ending with the app's last error (the exception line of its last Python traceback,
or its last lines; app_error in --json). When the app tried to bind an address
the site's socket holds, a hint says it must take systemd's sockets.

Only this site's service is restarted; its socket units keep the listeners open, so
no connection is refused. A second sitectl changing the same site waits for the
first (or fails at once with --no-block). Switching to the mode the site already
runs in does nothing unless --force is given.

` + exitCodesHelp,
		Example: `  sitectl mode karl maintenance
  sitectl mode karl normal --timeout 1m --json`,
		Args:              args(2, 2, "a site and a mode"),
		ValidArgsFunction: e.completeSiteThenMode,
		RunE: func(c *cobra.Command, a []string) error {
			return e.change(c.Context(), a[0], f, func(ctx context.Context, fe *flow.Env, s *site.Site) (flow.Report, error) {
				return flow.SwitchMode(ctx, fe, s, a[1], flow.Options{Force: f.force, Timeout: f.timeout})
			}, &a[1])
		},
	}
	f.register(c)
	c.Flags().BoolVar(&f.force, "force", false, "restart even if the site already runs in the mode")
	return c
}

// oneSiteCmd is a verb that runs a flow on one site in its current mode.
func oneSiteCmd(e *env, use, short, long string, run func(context.Context, *flow.Env, *site.Site, time.Duration) (flow.Report, error)) *cobra.Command {
	var f changeFlags
	c := &cobra.Command{
		Use:               use + " SITE",
		GroupID:           "run",
		Short:             short,
		Long:              long + "\n\n" + exitCodesHelp,
		Args:              args(1, 1, "one site"),
		ValidArgsFunction: e.completeOneSite,
		RunE: func(c *cobra.Command, a []string) error {
			return e.change(c.Context(), a[0], f, func(ctx context.Context, fe *flow.Env, s *site.Site) (flow.Report, error) {
				return run(ctx, fe, s, f.timeout)
			}, nil)
		},
	}
	f.register(c)
	return c
}

func restartCmd(e *env) *cobra.Command {
	return oneSiteCmd(e, "restart", "Restart one site in its current mode and verify it serves",
		`Restart one site's service over D-Bus in its current mode, wait until it runs and
verify it as sitectl mode does. The socket units keep the listeners open.`, flow.Restart)
}

func reloadCmd(e *env) *cobra.Command {
	return oneSiteCmd(e, "reload", "Move one site to a new generation of its app with the site's handoff",
		`Move one site to a new generation of its app in its current mode. With
handoff = "overlap" the new generation starts beside the serving one, on the same
sockets, and the old one drains only once the new one is ready: no visitor waits for
a cold start. If the new generation does not come up, the old one keeps serving and
sitectl exits 4. For other sites this is sitectl restart.

A generation started inside the unit keeps what the unit was started with (sockets,
user, exec, timeouts, ...). When the site file changed any of that since the service
started (sitectl compares it with the last good copy prepare kept then), reload and
mode restart the service fully instead, after a daemon-reload if systemd's units are
older than the file, and say why in one line (full_restart in --json).`, flow.Reload)
}

func rollbackCmd(e *env) *cobra.Command {
	return oneSiteCmd(e, "rollback", "Switch one site back to its previous mode",
		`Switch one site back to the mode it was in before its last successful switch,
with the same checks and rollback as sitectl mode.`, flow.Rollback)
}

type flowFunc func(context.Context, *flow.Env, *site.Site) (flow.Report, error)

// change runs a flow that changes one site, in the order that keeps bad
// input from changing anything: names and files first, then the bus, then
// the lock, and only then state. mode is the mode asked for, if any.
func (e *env) change(ctx context.Context, name string, f changeFlags, run flowFunc, mode *string) error {
	s, err := e.loadSite(name)
	if err != nil {
		return err
	}
	if mode != nil {
		if err := site.ValidateModeName(*mode); err != nil {
			return withCode(exitUsage, err)
		}
		if _, ok := s.Mode(*mode); !ok {
			return withCode(exitNotFound, fmt.Errorf("site %s has no mode %s; its modes are: %s", s.Name, *mode, strings.Join(s.ModeNames(), ", ")))
		}
	}
	mgr, err := e.connect(ctx)
	if err != nil {
		return err
	}
	defer mgr.Close()

	st := modes.Store{Dir: e.dirs.State}
	writer := e.stateWriter(st)
	if c, ok := writer.(modes.Client); ok {
		// A deployer: the state service creates what root would.
		if err := c.Prepare(s); err != nil {
			return withCode(exitDenied, err, "is sitectl-state.socket running, and are you in the sitectl-deploy group?")
		}
	}
	lock, err := st.LockSite(s, false)
	if errors.Is(err, modes.ErrLocked) {
		if f.noBlock {
			return withCode(exitFailed, fmt.Errorf("site %s is being changed by another sitectl; nothing was done", s.Name), "run again without --no-block to wait for it")
		}
		e.progressf("%s: waiting for another sitectl to finish with this site", s.Name)
		lock, err = st.LockSite(s, true)
	}
	if err != nil {
		return stateError(err)
	}
	defer lock.Unlock()

	fe := &flow.Env{
		Store:    st,
		Writer:   writer,
		Systemd:  mgr,
		Progress: e.progressf,
		Journal:  journalLines,
	}
	if os.Geteuid() == 0 {
		// The last good copy is root's: it is the file the running
		// service started from.
		fe.Started = st.ReadLastGood
		fe.SocketsMissing = func(s *site.Site) ([]string, error) { return sockheld.Missing("/proc", s) }
	}
	rep, err := run(ctx, fe, s)
	if f.asJSON {
		if rep.Journal == nil {
			rep.Journal = []string{}
		}
		if jerr := writeJSON(e.stdout, rep); jerr != nil {
			return jerr
		}
	} else if err == nil {
		e.reportText(rep)
	}
	if err != nil {
		return flowError(err, rep, f.asJSON, e.stderr)
	}
	return nil
}

func (e *env) reportText(rep flow.Report) {
	if rep.FullRestart != "" {
		fmt.Fprintf(e.stdout, "%s: %s\n", rep.Site, rep.FullRestart)
	}
	switch {
	case rep.Reason != "":
		fmt.Fprintf(e.stdout, "%s: %s (main PID %d)\n", rep.Site, rep.Reason, rep.MainPID)
	case rep.From == rep.To:
		fmt.Fprintf(e.stdout, "%s: serving afresh in mode %s after %.1fs (main PID %d)\n", rep.Site, rep.To, rep.Duration, rep.MainPID)
	default:
		fmt.Fprintf(e.stdout, "%s: %s → %s in %.1fs (main PID %d)\n", rep.Site, rep.From, rep.To, rep.Duration, rep.MainPID)
	}
}

// stateWriter writes mode state directly for root, and through sitectl's
// state service for everyone else (members of sitectl-deploy).
func (e *env) stateWriter(st modes.Store) modes.Writer {
	if os.Geteuid() == 0 {
		return modes.Local{Store: st, UID: os.Getuid(), PID: os.Getpid()}
	}
	return modes.Client{Socket: paths.StateSocket(os.Getenv)}
}

// flowError maps a flow's failure to an exit code, printing the journal of
// the failed start for a person.
func flowError(err error, rep flow.Report, asJSON bool, stderr io.Writer) error {
	if !asJSON {
		printFailedStart(stderr, rep)
	}
	var hints []string
	if rep.Hint != "" {
		hints = append(hints, rep.Hint)
	}
	switch {
	case errors.Is(err, flow.ErrRolledBack):
		return withCode(exitRolledBack, err, append(hints, fmt.Sprintf("the site serves in mode %s again", rep.From))...)
	case errors.Is(err, flow.ErrRollbackFailed):
		return withCode(exitRollbackFail, err, append(hints, "the site is down: see `systemctl status site-"+rep.Site+".service` and its journal")...)
	case errors.Is(err, flow.ErrModeNotFound):
		return withCode(exitNotFound, err)
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
		fmt.Fprintf(w, "sitectl: journal of the failed start:\n")
		for _, l := range rep.Journal {
			fmt.Fprintf(w, "    %s\n", l)
		}
	}
	if len(rep.AppError) > 0 {
		fmt.Fprintf(w, "sitectl: the app's last error:\n")
		for _, l := range rep.AppError {
			fmt.Fprintf(w, "    %s\n", l)
		}
	}
}

// stateError words failures to write the state directory.
func stateError(err error) error {
	if errors.Is(err, fs.ErrPermission) {
		return withCode(exitDenied, err, "changing a site needs root, or membership of the sitectl-deploy group")
	}
	return err
}

// connect reaches systemd, with the exit codes for a bus that is missing or
// refuses.
func (e *env) connect(ctx context.Context) (*control.Manager, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	m, err := control.Connect(ctx)
	if err != nil {
		return nil, withCode(exitUnavailable, err, "is systemd running, and dbus.service with it?")
	}
	return m, nil
}

// progressf prints a progress line when standard error is a terminal.
func (e *env) progressf(format string, args ...any) {
	if e.interactive {
		fmt.Fprintf(e.stderr, "sitectl: "+format+"\n", args...)
	}
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

// journalWait bounds journalLines; journalRead bounds what it reads.
const (
	journalWait  = 5 * time.Second
	journalLimit = 300
	journalBytes = 1 << 20
)

// readJournal runs journalctl for the last journalLimit lines of a unit
// since a time, reading at most journalBytes of them.
func readJournal(ctx context.Context, unit string, since time.Time) ([]string, error) {
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, "journalctl", "--no-pager", "--quiet", "-o", "short-precise",
		"-u", unit, "--since", "@"+strconv.FormatFloat(float64(since.UnixMicro())/1e6, 'f', 6, 64), "-n", strconv.Itoa(journalLimit))
	pipe, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	_, rerr := io.Copy(&out, io.LimitReader(pipe, journalBytes))
	_, _ = io.Copy(io.Discard, pipe)
	if err := cmd.Wait(); err != nil {
		return nil, err
	}
	if rerr != nil {
		return nil, rerr
	}
	text := strings.TrimRight(out.String(), "\n")
	if text == "" {
		return nil, nil
	}
	return strings.Split(text, "\n"), nil
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
