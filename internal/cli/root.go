// Package cli is the sitectl command line: one cobra command per verb, errors
// printed as "sitectl: error: ..." with hints, and documented exit codes.
package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/sitectl/sitectl/internal/site"
	"github.com/sitectl/sitectl/internal/units"
)

// Version is set at build time with -ldflags "-X ...cli.Version=...".
var Version = "dev"

// env holds what every verb needs: directories and output streams.
type env struct {
	configDir string
	stateDir  string
	stdout    io.Writer
	stderr    io.Writer
	// interactive: progress lines go to stderr (a terminal).
	interactive bool
}

// unitOptions are the options the generator uses too, so that rendered units
// are the generator's units byte for byte.
func (e *env) unitOptions() units.Options {
	return units.Options{ConfigDir: e.configDir, StateDir: e.stateDir}
}

// globalFlags are the flags that carry this sitectl's directories to
// another sitectl it starts, when they are not the defaults.
func (e *env) globalFlags() []string {
	var f []string
	if e.configDir != site.DefaultConfigDir {
		f = append(f, "--config-dir", e.configDir)
	}
	if e.stateDir != units.DefaultStateDir {
		f = append(f, "--state-dir", e.stateDir)
	}
	return f
}

// sitePath is the site file of a site in the config dir.
func (e *env) sitePath(name string) string { return e.configDir + "/" + name + ".toml" }

// NewRoot builds the command tree.
func NewRoot(stdout, stderr io.Writer) *cobra.Command {
	e := &env{stdout: stdout, stderr: stderr, interactive: isTerminal(stderr)}
	root := &cobra.Command{
		Use:   "sitectl",
		Short: "Host many web sites on one systemd host and change one without anyone noticing",
		Long: `sitectl runs each web site of a host as its own set of systemd units: a socket unit
that holds the listeners, a hardened service that runs the app, and a path unit for
touch-to-reload. The units are generated from one file per site in the config
directory (default ` + site.DefaultConfigDir + `) by a systemd generator.

` + exitCodesHelp,
		SilenceUsage:      true,
		SilenceErrors:     true,
		Version:           Version,
		CompletionOptions: cobra.CompletionOptions{HiddenDefaultCmd: false},
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return withCode(ExitUsage, err, "see `"+c.CommandPath()+" --help`")
	})
	pf := root.PersistentFlags()
	pf.StringVar(&e.configDir, "config-dir", envOr("SITECTL_CONFIG_DIR", site.DefaultConfigDir), "directory of site files (env SITECTL_CONFIG_DIR)")
	pf.StringVar(&e.stateDir, "state-dir", envOr("SITECTL_STATE_DIR", units.DefaultStateDir), "directory of mode state (env SITECTL_STATE_DIR)")

	root.AddGroup(&cobra.Group{ID: "run", Title: "Running sites:"},
		&cobra.Group{ID: "sites", Title: "Site files and units:"},
		&cobra.Group{ID: "internal", Title: "Run by the generated units:"})
	root.AddCommand(modeCmd(e), reloadCmd(e), restartCmd(e), rollbackCmd(e), statusCmd(e), listCmd(e), historyCmd(e),
		checkCmd(e), unitsCmd(e), prepareCmd(e), launchCmd(e), cleanupCmd(e), touchedCmd(e), stateServerCmd(e), docsCmd(root))
	hideInternalVerbs(root)
	return root
}

// args validates the number of positional arguments as a usage error.
func args(min, max int, what string) cobra.PositionalArgs {
	return func(c *cobra.Command, a []string) error {
		if len(a) < min || max >= 0 && len(a) > max {
			return withCode(ExitUsage, fmt.Errorf("%s takes %s", c.CommandPath(), what), "see `"+c.CommandPath()+" --help`")
		}
		return nil
	}
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// Main runs sitectl with args and returns the exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	root := NewRoot(stdout, stderr)
	root.SetArgs(args)
	err := root.Execute()
	if err == nil {
		return ExitOK
	}
	var r reported
	if errors.As(err, &r) {
		return r.code
	}
	code := codeOf(err)
	if strings.HasPrefix(err.Error(), "unknown command") {
		code = ExitUsage // cobra's own error for a mistyped verb
	}
	fmt.Fprintf(stderr, "sitectl: error: %v\n", err)
	for _, h := range hintsOf(err) {
		fmt.Fprintf(stderr, "sitectl: hint: %s\n", h)
	}
	return code
}
