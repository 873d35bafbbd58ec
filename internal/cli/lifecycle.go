package cli

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/sitectl/sitectl/internal/control"
	"github.com/sitectl/sitectl/internal/generator"
	"github.com/sitectl/sitectl/internal/lifecycle"
	"github.com/sitectl/sitectl/internal/modes"
	"github.com/sitectl/sitectl/internal/site"
	"github.com/sitectl/sitectl/internal/stateservice"
	"github.com/sitectl/sitectl/internal/term"
)

// The lifecycle verbs are named as systemctl names what they resemble:
// enable and disable change what happens at boot and, like systemctl's
// --now, what runs now; remove is supervisorctl's and dokku's word for
// forgetting a site whose configuration is gone.

func enableCmd(e *env) *cobra.Command {
	return lifecycleCmd(e, "enable", "Put a site in service, now and after every boot",
		`Put a site in service: its sockets listen (the first connection starts the app) and its
reload trigger is armed, now and after every boot. This undoes sitectl disable. A new
site file needs nothing else: enable has systemd reload its units when they are missing
or older than the site file. A site already in service whose units all run is left as
it runs, with a note, even when they are older than its file: that reload would close
the sockets of a socket unit whose listeners changed (systemctl daemon-reload, then
sitectl restart, applies the file). The site keeps its recorded mode.

Like every lifecycle verb it is idempotent ("already in service" changes nothing),
and refuses a site file with mistakes.`,
		e.enable)
}

// enable is lifecycle.Enable of a site the generator gives its file's
// units. A valid file whose listener another site keeps (a copied file
// whose port was not changed) gets none: the generator skips it, or runs
// the site from its last good copy. Enabling it would have systemd reload
// every unit of the host and start what the file does not say, or fail
// on units that are not there; it is the file's mistake, and nothing is
// done.
func (e *env) enable(ctx context.Context, le *lifecycle.Env, s *site.Site) (lifecycle.Report, error) {
	fs, err := generator.SiteFileState(e.dirs, s.Name)
	if err != nil {
		return lifecycle.Report{}, refusedSite{fmt.Errorf("site %s: cannot read the site directory as the generator does: %w; nothing was done", s.Name, err)}
	}
	if fs.Invalid {
		return lifecycle.Report{}, refusedSite{withCode(exitUsage, fmt.Errorf("site %s has mistakes against the other sites, so the generator gives it no units of its own; nothing was done:\n%w", s.Name, fs.Errors),
			e.fixHint(s.Name))}
	}
	return lifecycle.Enable(ctx, le, s)
}

func disableCmd(e *env) *cobra.Command {
	return lifecycleCmd(e, "disable", "Take a site out of service, and keep it out after reboots",
		`Take a site out of service: its reload trigger, its service (the app drains as on any
stop) and its sockets are stopped, and it stays so after every boot until sitectl
enable. Its site file, mode and history stay. systemctl disable cannot do this for
generated units; sitectl keeps a marker in the site's state directory that the
generator honours.

Like every lifecycle verb it is idempotent. A site file with mistakes does not stop it:
such a site runs from the last good copy of its file that sitectl kept when the site
last started (the generator falls back to it), and disable takes out of service what
that copy declares, saying so. A site whose file has mistakes and which never started
has no units to stop: disable refuses it, as every other verb does.`,
		func(ctx context.Context, le *lifecycle.Env, s *site.Site) (lifecycle.Report, error) {
			return lifecycle.Disable(ctx, le, s)
		})
}

// readSiteToStop is readSite for a verb that only takes a site out of
// service (disable): a typo in the file must not keep an operator from
// stopping the site, and what runs of a site whose file has mistakes is
// its last good copy (modes.Store.LastGood), whose units the generator
// still writes. fromCopy is "" when the file was read, else what is wrong
// with it; the error is readSite's when there is no copy to fall back to.
//
// As for the generator and prepare (startingSite), a file that is there
// but cannot be read (a symlink to nowhere, a file root may not read) is
// a mistake too; only a file whose directory entry is gone is no site.
func (e *env) readSiteToStop(name string) (s *site.Site, data []byte, fromCopy string, err error) {
	s, data, err = e.readSite(name)
	if err == nil {
		return s, data, "", nil
	}
	good, what := e.lastGoodFallback(name, err, modes.Store{Dir: e.dirs.State})
	if good == nil {
		return nil, nil, "", err
	}
	return good, nil, what, nil
}

// lifecycleSignalsHelp is what a signal does to a lifecycle verb
// (runsToItsEnd), in its --help.
const lifecycleSignalsHelp = `Once begun, a verb is not stopped by a signal: Ctrl-C (SIGINT), SIGTERM and SIGHUP
are answered with a line saying that it runs to its end, within --timeout, so that
nothing is left half done (say, a site's socket stopped and the socket of the site
taking its listeners over never started); it then prints its report and exits as
the verb ended. Only a wait for another sitectl's lock of the site ends at the first
SIGINT or SIGTERM (exit 1, nothing done). kill -9 can still leave a verb half done:
run it again, as every lifecycle verb is idempotent.`

// lifecycleFlags are the flags of the lifecycle verbs.
func lifecycleFlags(c *cobra.Command, f *changeFlags) {
	c.Flags().BoolVar(&f.noBlock, "no-block", false, "fail at once if another sitectl is changing the site, instead of waiting")
	c.Flags().DurationVar(&f.timeout, "timeout", lifecycleTimeout, "give up after this long (a stop waits for the app to drain)")
	c.Flags().BoolVar(&f.asJSON, "json", false, "report as JSON on standard output")
}

// lifecycleCmd is enable or disable: a verb on one valid site.
func lifecycleCmd(e *env, verb, short, long string, run func(context.Context, *lifecycle.Env, *site.Site) (lifecycle.Report, error)) *cobra.Command {
	var f changeFlags
	c := &cobra.Command{
		Use:               verb + " SITE",
		GroupID:           "run",
		Short:             short,
		Long:              long + "\n\n" + lifecycleSignalsHelp + "\n\n" + exitCodesHelp,
		Args:              args(1, 1, "one site"),
		ValidArgsFunction: e.completeOneSite,
		RunE: func(c *cobra.Command, a []string) error {
			s, _, _, err := e.readSiteFor(verb, a[0])
			if err != nil {
				return err
			}
			return e.lifecycle(c.Context(), verb, s.Name, f, s, e.onFileAsItIs(verb, s.Name, run))
		},
	}
	lifecycleFlags(c, &f)
	return c
}

// readSiteFor reads the site a lifecycle verb acts on: readSiteToStop
// for disable, readSite for the others.
func (e *env) readSiteFor(verb, name string) (*site.Site, []byte, string, error) {
	if verb == "disable" {
		return e.readSiteToStop(name)
	}
	s, data, err := e.readSite(name)
	return s, data, "", err
}

// onFileAsItIs runs a lifecycle verb, under the site's lock, on the site
// file as it is then: a wait for another sitectl's change of the site can
// take minutes, and an edit made meanwhile would be ignored, a file broken
// meanwhile would not stop the verb (as root's change reads it again,
// localChange). A file that is gone or has mistakes now: nothing is done.
//
// A file that failed to start and is pinned (modes.Pin) runs as its last
// good copy: systemd's units come from that, and so do the units the verb
// starts or stops (a listener of the file's that the copy lacks has no
// unit).
func (e *env) onFileAsItIs(verb, name string, run func(context.Context, *lifecycle.Env, *site.Site) (lifecycle.Report, error)) func(context.Context, *lifecycle.Env) (lifecycle.Report, error) {
	return func(ctx context.Context, le *lifecycle.Env) (lifecycle.Report, error) {
		s, data, fromCopy, err := e.readSiteFor(verb, name)
		if err != nil {
			return lifecycle.Report{}, refusedSite{err}
		}
		if fromCopy != "" {
			argv := append(append([]string{"sitectl"}, e.dirs.Flags()...), "check", e.dirs.SiteFile(name))
			term.Fprintf(e.stderr, "sitectl: site %s: %s %s (`%s` says why); %s goes on with the last good copy of it, which sitectl kept when the site last started\n",
				name, e.dirs.SiteFile(name), fromCopy, strings.Join(argv, " "), verb)
			return run(ctx, le, s)
		}
		return run(ctx, le, e.asPinned(s, data))
	}
}

// asPinned is site s, read from data, or the last good copy a pin holds
// it to while its file is data (modes.Store.Pinned), which it says.
func (e *env) asPinned(s *site.Site, data []byte) *site.Site {
	pin, good, err := modes.Store{Dir: e.dirs.State}.Pinned(s.Name, data)
	if err != nil {
		term.Fprintf(e.stderr, "sitectl: warning: site %s: %v; going on with its site file\n", s.Name, err)
	}
	if pin == nil {
		return s
	}
	term.Fprintf(e.stderr, "sitectl: site %s runs its last good version %s (%s failed to start on %s and is pinned until it changes): going on with that\n",
		s.Name, good.File, e.dirs.SiteFile(s.Name), pin.Since.Format("2006-01-02 15:04:05 MST"))
	return good
}

func removeCmd(e *env) *cobra.Command {
	var f changeFlags
	c := &cobra.Command{
		Use:     "remove SITE",
		GroupID: "run",
		Short:   "Stop a site whose file is gone and forget everything sitectl kept of it",
		Long: `Remove a site whose site file was deleted: stop every unit it still has, have systemd
unload them, and forget its state (mode, previous mode, history, its last good copy,
its out-of-service mark), so that a new site of that name starts afresh in its default
mode. The site file is the operator's (or Ansible's): remove refuses while it exists,
and never deletes it. To keep the file and stop the site, use sitectl disable.

A renamed site file (mv OLD.toml NEW.toml) is a new site that declares the old one's
listeners, whose socket cannot listen while the old one holds them: remove finds, before
it stops anything, every site whose file declares a listener the removed site held (as
its last good copy says, or, for a site whose service never started, as the sockets
systemd holds open for a site whose own socket is not active show), unless that site is
out of service, and starts its sockets as soon as the old ones have let go of them. So
the port is refused only for the moment between. If one does not start, the removed
site's state is kept, and remove again hands the listeners over once it is fixed. Run
remove without a daemon-reload first (it runs one): the reload closes the old socket
unless its service runs, and then remove can only say which sites do not listen.

It is idempotent: removing a site that is gone already changes nothing.

` + lifecycleSignalsHelp + "\n\n" + exitCodesHelp,
		Example:           "  rm /etc/sitectl/sites/karl.toml && sitectl remove karl\n  mv /etc/sitectl/sites/karl.toml /etc/sitectl/sites/carl.toml && sitectl remove karl",
		Args:              args(1, 1, "one site"),
		ValidArgsFunction: e.completeGoneSites,
		RunE: func(c *cobra.Command, a []string) error {
			name := a[0]
			if err := site.ValidateName(name); err != nil {
				return withCode(exitUsage, err)
			}
			if err := e.siteFileGone(name); err != nil {
				return err
			}
			var s *site.Site
			if _, err := os.Stat(e.dirs.SiteState(name)); err == nil {
				s = &site.Site{Name: name} // lock it while its state goes
			}
			return e.lifecycle(c.Context(), "remove", name, f, s, e.removeUnderLock(name))
		},
	}
	lifecycleFlags(c, &f)
	return c
}

// removeUnderLock is remove of site name once its lock is held: the file
// is looked for again, since it may have come back while remove waited
// for another sitectl.
func (e *env) removeUnderLock(name string) func(context.Context, *lifecycle.Env) (lifecycle.Report, error) {
	return func(ctx context.Context, le *lifecycle.Env) (lifecycle.Report, error) {
		if err := e.siteFileGone(name); err != nil {
			return lifecycle.Report{}, refusedSite{err}
		}
		return lifecycle.Remove(ctx, le, name, true)
	}
}

// siteFileGone refuses remove of a site whose file is there.
func (e *env) siteFileGone(name string) error {
	file := e.dirs.SiteFile(name)
	_, err := os.Lstat(file)
	if err == nil {
		return withCode(exitUsage, fmt.Errorf("site %s still has its file %s; nothing was done", name, file),
			"remove never deletes a site file, which is yours: delete it first (`rm "+file+" && sitectl remove "+name+"`)",
			"to stop the site and keep its file, use `sitectl disable "+name+"`")
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return withCode(exitFailed, fmt.Errorf("cannot tell whether site %s still has its file: %w", name, err))
	}
	return nil
}

// lifecycle runs a lifecycle verb: as root, on the bus, under the site's
// lock when locked is not nil, within --timeout, and prints its report.
func (e *env) lifecycle(ctx context.Context, verb, name string, f changeFlags, locked *site.Site, run func(context.Context, *lifecycle.Env) (lifecycle.Report, error)) error {
	if os.Geteuid() != 0 {
		return withCode(exitDenied, fmt.Errorf("putting a site in or out of service needs root; nothing was done"))
	}
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	mgr, err := e.connect(ctx)
	if err != nil {
		return err
	}
	defer mgr.Close()
	return e.lifecycleOn(ctx, mgr, verb, name, f, locked, run)
}

// lifecycleOn is lifecycle once systemd is reached, within ctx's deadline
// (--timeout). A signal ends a wait for another sitectl's lock of the
// site, and nothing else: once begun, the verb runs to its end, prints its
// report and exits as it would have without the signal (runsToItsEnd).
func (e *env) lifecycleOn(ctx context.Context, sd lifecycle.Systemd, verb, name string, f changeFlags, locked *site.Site, run func(context.Context, *lifecycle.Env) (lifecycle.Report, error)) error {
	wait, begin, stop := e.runsToItsEnd(verb, name, f.timeout)
	defer stop()
	st := modes.Store{Dir: e.dirs.State}
	if locked != nil {
		// The wait for another sitectl counts in --timeout.
		lock, _, err := lockSite(mergeCancel(ctx, wait), st, locked, stateservice.Request{Site: locked.Name, NoBlock: f.noBlock, TimeoutMS: f.timeout.Milliseconds()},
			modes.Holder{PID: os.Getpid(), UID: os.Getuid(), Verb: verb}, e.progressf)
		if err != nil {
			return err
		}
		defer lock.Unlock()
	}
	if err := begin(); err != nil {
		return withCode(exitFailed, fmt.Errorf("site %s: sitectl %s was given up before it began: %w; nothing was done", name, verb, err))
	}
	le := &lifecycle.Env{Store: st, Systemd: sd, UID: os.Getuid(), Progress: e.progressf,
		SocketsMissing: e.socketsMissingOf,
		Sites: func() ([]*site.Site, error) {
			res, err := site.LoadDir(e.dirs.Config, st.Holders())
			return res.Sites, err
		},
		Bindable: bindable}
	rep, err := run(ctx, le)
	if errors.As(err, new(refusedSite)) {
		return err
	}
	out := &reportOut{w: e.stdout}
	if f.asJSON {
		_ = writeJSON(out, rep)
	} else if err == nil {
		// One line each: Fprintln escapes a newline inside a line.
		for _, line := range strings.Split(lifecycleText(rep, e.dirs.SiteState(name)), "\n") {
			term.Fprintln(out, line)
		}
	}
	if out.err != nil {
		e.reportLost(name, verb, "`sitectl status "+name+"` where the site stands", out.err)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		err = fmt.Errorf("site %s: %s did not finish within %s: %w", name, rep.Action, f.timeout, err)
		if !changedAnything(rep) {
			return withCode(exitFailed, err)
		}
	}
	return lifecycleError(rep, err)
}

// refusedSite is why a lifecycle verb refused its site before it did
// anything: a file with mistakes (alone or against the other sites), gone,
// or back for remove, found under the site's lock. It prints no report,
// as the same refusal found before the lock prints none: a report would
// say what the verb did, and in_service false of a site in service.
type refusedSite struct{ error }

func (r refusedSite) Unwrap() error { return r.error }

// lifecycleError maps a lifecycle verb's failure to an exit code. A verb
// has no rollback: one that failed after it changed something (rep) left
// the site neither as it was nor as asked, and exits 5, "the site needs
// attention", with what it did in the message; exit 1 says that nothing
// was changed.
func lifecycleError(rep lifecycle.Report, err error) error {
	switch {
	case err == nil:
		return nil
	case changedAnything(rep):
		return withCode(exitRollbackFail, fmt.Errorf("%w; %s", err, partly(rep)))
	case errors.Is(err, control.ErrDenied):
		return withCode(exitDenied, err)
	case errors.Is(err, control.ErrUnavailable):
		return withCode(exitUnavailable, err)
	}
	return stateError(err)
}

// changedAnything tells whether a lifecycle verb changed the site or its
// units before it ended.
func changedAnything(rep lifecycle.Report) bool {
	return rep.Changed || rep.DaemonReload || rep.StateForgotten || len(rep.Started) > 0 || len(rep.Stopped) > 0
}

// partly says what a lifecycle verb that failed had done.
func partly(rep lifecycle.Report) string {
	var did []string
	if rep.Changed {
		switch rep.Action {
		case "enable":
			did = append(did, "the site was marked in service")
		case "disable":
			did = append(did, "the site was marked out of service")
		}
	}
	if rep.StateForgotten {
		did = append(did, "its state was forgotten")
	}
	if len(rep.Stopped) > 0 {
		did = append(did, "stopped "+strings.Join(rep.Stopped, ", "))
	}
	if len(rep.Started) > 0 {
		did = append(did, "started "+strings.Join(rep.Started, ", "))
	}
	if rep.DaemonReload {
		did = append(did, "systemd reloaded its units")
	}
	if len(did) == 0 {
		did = append(did, "the site was changed")
	}
	return "sitectl " + rep.Action + " " + rep.Site + " did this much before it failed: " + strings.Join(did, "; ") + "; `sitectl status " + rep.Site + "` shows where it stands; the same command again goes on from there"
}

// lifecycleText is a lifecycle report's one line for a person.
func lifecycleText(rep lifecycle.Report, stateDir string) string {
	did := func(verb string, units []string) string {
		if len(units) == 0 {
			return ""
		}
		return " (" + verb + " " + strings.Join(units, ", ") + ")"
	}
	var text string
	switch {
	case rep.Action == "enable" && !rep.Changed:
		text = rep.Site + ": already in service"
	case rep.Action == "enable":
		text = rep.Site + ": in service" + did("started", rep.Started) + "; it stays so after reboots"
	case rep.Action == "disable" && !rep.Changed:
		text = rep.Site + ": already out of service"
	case rep.Action == "disable":
		text = rep.Site + ": out of service" + did("stopped", rep.Stopped) + "; it stays so after reboots, until `sitectl enable " + rep.Site + "`"
	case !rep.Changed:
		text = rep.Site + ": nothing to remove"
	default:
		forgot := ""
		if rep.StateForgotten {
			forgot = "; its state in " + stateDir + " is forgotten"
		}
		text = rep.Site + ": removed" + did("stopped", rep.Stopped) + forgot + ": a new site of this name starts afresh"
		if len(rep.TakenOverBy) > 0 {
			text += "\n" + strings.Join(rep.TakenOverBy, ", ") + ": took over its listeners" + did("started", rep.Started)
		}
	}
	for _, n := range rep.Notes {
		text += "\n" + n
	}
	return text
}

// lifecycleTimeout is the default --timeout of the lifecycle verbs: a stop
// waits for the app's drain.
const lifecycleTimeout = 2 * time.Minute

// bindable says why TCP listener l could not be bound now, by binding it
// and letting go at once. A unix listener always can: systemd replaces
// whatever is at its path.
func bindable(l site.Listener) error {
	if l.Kind == site.Unix {
		return nil
	}
	ln, err := net.Listen("tcp", l.Address)
	if err != nil {
		return err
	}
	return ln.Close()
}
