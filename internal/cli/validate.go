package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/sitectl/sitectl/internal/flow"
	"github.com/sitectl/sitectl/internal/site"
)

// guardInputs makes every command of the tree refuse bad input before it
// does anything, whoever wrote the command:
//
//   - a positional argument that the command's usage line calls SITE (or
//     SITE..., [SITE...]) must be a valid site name, MODE a valid mode
//     name. Internal verbs (launch, cleanup, prepare, touched) included:
//     they run as root.
//   - every duration flag must be at least MinTimeout and at most
//     MaxTimeout; those of the verbs the generated units run (launch,
//     cleanup, ...), whose values are rendered from a site file, within
//     what a site file allows (renderedMin, renderedMax).
//
// Both are usage errors (exit 2), found after the flags are parsed and
// before RunE runs. It is called once, on the finished tree.
func guardInputs(root *cobra.Command) {
	walkCommands(root, func(c *cobra.Command) {
		if kinds := argKinds(c.Use); len(kinds) > 0 {
			counted := c.Args
			c.Args = func(c *cobra.Command, a []string) error {
				if counted != nil {
					if err := counted(c, a); err != nil {
						return err
					}
				}
				return checkNameArgs(c, a, kinds)
			}
		}
		bound := boundDuration
		if c.GroupID == groupInternal {
			bound = boundRendered
		}
		c.Flags().VisitAll(bound)
		c.PersistentFlags().VisitAll(bound)
	})
}

// walkCommands calls fn for c and every command below it.
func walkCommands(c *cobra.Command, fn func(*cobra.Command)) {
	fn(c)
	for _, sub := range c.Commands() {
		walkCommands(sub, fn)
	}
}

// argKind is what a positional argument names.
type argKind int

const (
	argOther argKind = iota
	argSite
	argMode
	argSites // SITE...: this and every later argument
)

// argKinds reads the positional arguments of a usage line such as
// "mode SITE MODE", "status [SITE...]" or "launch SITE [--overlap] --
// PROGRAM [ARG...]". What follows "--" is not sitectl's to check, and "|"
// starts another form of the same command (whose arguments come first
// too, so the first form is enough). Nil if no argument names a site or a
// mode.
func argKinds(use string) []argKind {
	words := strings.Fields(use)
	var kinds []argKind
	named := false
	for _, w := range words[min(1, len(words)):] {
		if w == "--" || w == "|" {
			break
		}
		if strings.HasPrefix(w, "-") || strings.HasPrefix(w, "[-") {
			continue
		}
		switch strings.Trim(w, "[]") {
		case "SITE":
			kinds, named = append(kinds, argSite), true
		case "MODE":
			kinds, named = append(kinds, argMode), true
		case "SITE...":
			kinds, named = append(kinds, argSites), true
		default:
			kinds = append(kinds, argOther)
		}
	}
	if !named {
		return nil
	}
	return kinds
}

// checkNameArgs validates the arguments before "--" against their kinds.
func checkNameArgs(c *cobra.Command, a []string, kinds []argKind) error {
	if dash := c.ArgsLenAtDash(); dash >= 0 {
		a = a[:dash]
	}
	kind := argOther
	for i, arg := range a {
		if i < len(kinds) && kind != argSites {
			kind = kinds[i]
		}
		var validate func(string) error
		switch kind {
		case argSite, argSites:
			validate = site.ValidateName
		case argMode:
			validate = site.ValidateModeName
		}
		if validate == nil {
			continue
		}
		if err := validate(arg); err != nil {
			var hints []string
			if near := nearName(arg); near != arg && validate(near) == nil {
				hints = append(hints, fmt.Sprintf("did you mean %s?", near))
			}
			return withCode(exitUsage, fmt.Errorf("%w; nothing was done", err), hints...)
		}
	}
	return nil
}

// nearName is a name written as a name is often mistyped (read_only,
// Shop, maintenance.): lowercase, with hyphens for underscores, dots and
// spaces, without them at either end.
func nearName(name string) string {
	return strings.Trim(strings.NewReplacer("_", "-", ".", "-", " ", "-").Replace(strings.ToLower(name)), "-")
}

// MinTimeout is the shortest duration any flag accepts. Every duration flag
// of sitectl is a timeout for work that involves systemd (a D-Bus job, an
// app's start, a probe, and for a change a rollback in the remaining 40%):
// none of that fits in less than a second on a loaded host, so a shorter
// value is a typo ("1ns", "0", "-1s") that would only produce a rollback or
// a failure.
const MinTimeout = time.Second

// MaxTimeout is the longest duration any flag accepts: a day, the longest
// timeout a site file may give. A longer value is a typo, and one large
// enough overflows the deadlines computed from it (a change's 60% for
// bringing the site up came out negative, and the change "rolled back" a
// site it never started).
const MaxTimeout = flow.MaxTimeout

// renderedMin and renderedMax bound the duration flags of the verbs the
// generated units run (launch, cleanup): the units render them from a site
// file, which allows any whole number of milliseconds up to a day for each
// timeout, and cleanup's --budget is two of them summed (drain_timeout
// and stop_timeout). A flag that refused such a value (a probe timeout of
// 500ms, a drain_timeout of a day) would fail the site's ExecStart= or its
// ExecStopPost= at every start or stop, for a file sitectl check accepts.
const (
	renderedMin = time.Millisecond
	renderedMax = 2 * site.MaxDuration
)

// boundedDuration wraps a duration flag's value so that Set refuses what is
// not a usable timeout: shorter than min or longer than max.
type boundedDuration struct {
	pflag.Value
	min, max time.Duration
}

func (b boundedDuration) Set(s string) error {
	d, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("not a duration: write it like 30s, 2m or 1m30s")
	}
	if d < b.min {
		return fmt.Errorf("%s is too short: a timeout must be at least %s", s, b.min)
	}
	if d > b.max {
		return fmt.Errorf("%s is too long: a timeout must be at most %s", s, b.max)
	}
	return b.Value.Set(s)
}

func boundDuration(f *pflag.Flag) { boundWithin(f, MinTimeout, MaxTimeout) }

func boundRendered(f *pflag.Flag) { boundWithin(f, renderedMin, renderedMax) }

func boundWithin(f *pflag.Flag, min, max time.Duration) {
	if _, done := f.Value.(boundedDuration); !done && f.Value.Type() == "duration" {
		f.Value = boundedDuration{f.Value, min, max}
		if f.DefValue == "0s" {
			// pflag shows no default of "0" for a wrapped value, as it
			// shows none of "0s" for a plain duration: the flag's help
			// says what leaving it out does, and 0 is refused.
			f.DefValue = "0"
		}
	}
}

// siteReadCode is the exit code for a site file that could not be read: a
// file that is not one (a pipe, a device, too large) is bad input, one the
// caller may not read is a denial, anything else a failure.
func siteReadCode(err error) int {
	var fe *site.FileError
	switch {
	case errors.As(err, &fe) && fe.Err == nil:
		return exitUsage
	case errors.Is(err, fs.ErrPermission):
		return exitDenied
	}
	return exitFailed
}
