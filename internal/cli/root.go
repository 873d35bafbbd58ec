// Package cli is the sitectl command line: one cobra command per verb, errors
// printed as "sitectl: error: ..." with hints, and documented exit codes.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/sitectl/sitectl/internal/paths"
	"github.com/sitectl/sitectl/internal/pubpath"
	"github.com/sitectl/sitectl/internal/sitecheck"
	"github.com/sitectl/sitectl/internal/term"
	"github.com/sitectl/sitectl/internal/trace"
	"github.com/sitectl/sitectl/internal/units"
)

// Version is set at build time with -ldflags "-X ...cli.Version=...".
var Version = "dev"

// env holds what every verb needs: directories and output streams.
type env struct {
	dirs   paths.Dirs
	stdout io.Writer
	stderr io.Writer
	// interactive: progress lines go to stderr (a terminal).
	interactive bool
	// style is how stdout may look: glyphs for the locale, colour on a
	// terminal without NO_COLOR.
	style term.Style
	// now is the time "3min ago" counts from.
	now func() time.Time
	// dialTCP connects a change's probe to a TCP listener; nil: directly.
	// Set in sitectl's state service, which has no network of its own.
	dialTCP func(ctx context.Context, address string) (net.Conn, error)
	// public is set where root answers another user (sitectl's state
	// service, the reload unit's touched): the checks of a site's paths
	// then look at them as any user could (sitecheck.Public); nil: as root.
	public *pubpath.Resolver
	// yielded is the priority this sitectl gave up for a change (yield).
	yielded priority
	// trace times the command's steps on stderr (SITECTL_TRACE); nil:
	// not asked for.
	trace *trace.Tracer
}

// host is the host the checks of a site's paths read: as root sees it,
// or as any user could where root answers another user.
func (e *env) host() sitecheck.Host {
	if e.public != nil {
		return sitecheck.Public(*e.public)
	}
	return sitecheck.OS
}

// resolve resolves a site's path for status, as host does.
func (e *env) resolve(p string) (string, error) {
	if e.public != nil {
		return e.public.Resolve(p)
	}
	return filepath.EvalSymlinks(p)
}

// unitOptions are the options the generator uses too, so that rendered units
// are the generator's units byte for byte.
func (e *env) unitOptions() units.Options {
	return units.Options{Dirs: e.dirs}
}

// newRoot builds the command tree.
func newRoot(stdout, stderr io.Writer) *cobra.Command {
	return newTracedRoot(stdout, stderr, nil)
}

// newTracedRoot builds the command tree, whose commands mark their steps
// with tr.
func newTracedRoot(stdout, stderr io.Writer, tr *trace.Tracer) *cobra.Command {
	e := &env{stdout: stdout, stderr: stderr, interactive: isTerminal(stderr),
		style: term.StyleFor(os.Getenv, isTerminal(stdout)), now: time.Now, trace: tr}
	root := &cobra.Command{
		Use:   "sitectl",
		Short: "Host many web sites on one systemd host and change one without anyone noticing",
		Long: `sitectl runs each web site of a host as its own set of systemd units: a socket unit
that holds the listeners, a hardened service that runs the app, and a path unit for
touch-to-reload. The units are generated from one file per site in the config
directory (default ` + paths.DefaultConfigDir + `) by a systemd generator.

` + exitCodesHelp,
		SilenceUsage:      true,
		SilenceErrors:     true,
		Version:           Version,
		CompletionOptions: cobra.CompletionOptions{HiddenDefaultCmd: false},
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.PersistentPreRunE = func(c *cobra.Command, _ []string) error {
		e.trace.Step("read the command line: %s", c.CommandPath())
		// --config-dir and --state-dir as given on the command line.
		e.dirs = e.dirs.Abs()
		return notDirectories(e.dirs)
	}
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return withCode(exitUsage, err, "see `"+c.CommandPath()+" --help`")
	})
	pf := root.PersistentFlags()
	fromEnv := paths.FromEnv(os.Getenv)
	pf.StringVar(&e.dirs.Config, "config-dir", fromEnv.Config, "directory of site files (env "+paths.EnvConfigDir+")")
	pf.StringVar(&e.dirs.State, "state-dir", fromEnv.State, "directory of mode state (env "+paths.EnvStateDir+")")

	root.AddGroup(&cobra.Group{ID: "run", Title: "Running sites:"},
		&cobra.Group{ID: "sites", Title: "Site files and units:"},
		&cobra.Group{ID: "internal", Title: "Run by the generated units:"})
	root.AddCommand(modeCmd(e), reloadCmd(e), restartCmd(e), rollbackCmd(e), statusCmd(e), listCmd(e), historyCmd(e), logsCmd(e),
		enableCmd(e), disableCmd(e), removeCmd(e),
		checkCmd(e), unitsCmd(e), prepareCmd(e), launchCmd(e), cleanupCmd(e), touchedCmd(e), stateServerCmd(e), dialServerCmd(e), docsCmd(root))
	guardInputs(root)
	hideInternalVerbs(root)
	return root
}

// notDirectories refuses a --config-dir or --state-dir (or its variable)
// that names something other than a directory, a bad flag: a directory
// that does not exist is one without sites or state yet.
func notDirectories(d paths.Dirs) error {
	for _, f := range []struct{ flag, env, dir string }{
		{"--config-dir", paths.EnvConfigDir, d.Config}, {"--state-dir", paths.EnvStateDir, d.State},
	} {
		if fi, err := os.Stat(f.dir); err == nil && !fi.IsDir() {
			return withCode(exitUsage, fmt.Errorf("%s (or %s) %s is not a directory", f.flag, f.env, f.dir))
		}
	}
	return nil
}

// args validates the number of positional arguments as a usage error.
func args(min, max int, what string) cobra.PositionalArgs {
	return func(c *cobra.Command, a []string) error {
		if len(a) < min || max >= 0 && len(a) > max {
			return withCode(exitUsage, fmt.Errorf("%s takes %s", c.CommandPath(), what), "see `"+c.CommandPath()+" --help`")
		}
		return nil
	}
}

// Main runs sitectl with args and returns the exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	tr := trace.FromEnv(os.Getenv, stderr)
	code := run(newTracedRoot(stdout, stderr, tr), args, stderr)
	tr.Step("exit %d", code)
	return code
}

// run runs root with args, prints its error and returns the exit code.
func run(root *cobra.Command, args []string, stderr io.Writer) int {
	root.SetArgs(args)
	err := root.Execute()
	if err == nil {
		return exitOK
	}
	var r reported
	if errors.As(err, &r) {
		return r.code
	}
	code := codeOf(err)
	if strings.HasPrefix(err.Error(), "unknown command") {
		code = exitUsage // cobra's own error for a mistyped verb
	}
	// A message of several lines (every mistake of a site file) keeps its
	// lines; each is escaped.
	for i, line := range strings.Split(err.Error(), "\n") {
		// cobra indents its suggestion of a verb with a tab, which the
		// escaping below would print as \t.
		line = strings.ReplaceAll(line, "\t", "  ")
		prefix := ""
		if i == 0 {
			prefix = "sitectl: error: "
		}
		term.Fprintf(stderr, prefix+"%s\n", line)
	}
	for _, h := range hintsOf(err) {
		term.Fprintf(stderr, "sitectl: hint: %s\n", h)
	}
	return code
}
