package cli

import (
	"errors"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/sitectl/sitectl/internal/generator"
	"github.com/sitectl/sitectl/internal/site"
	"github.com/sitectl/sitectl/internal/term"
)

func unitsCmd(e *env) *cobra.Command {
	c := &cobra.Command{
		Use:     "units",
		GroupID: "sites",
		Short:   "Show or write the systemd units of sites",
		// A verb that is not render is a mistake, not a request for help.
		Args: func(c *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageErrorf("unknown command %q for %q: its one command is render", args[0], c.CommandPath())
			}
			return usageErrorf("%s needs a command: render", c.CommandPath())
		},
		RunE: func(*cobra.Command, []string) error { return nil },
	}
	var dir string
	render := &cobra.Command{
		Use:   "render [FILE...]",
		Short: "Render the units of site files exactly as the generator writes them",
		Long: `Render the units of the given site files (default: every site of the config
directory) exactly as sitectl-generator writes them: to standard output, or into
--dir for inspection or for hosts that prefer static units (then put them in
/etc/systemd/system and run systemctl daemon-reload).

Without FILE, a site pinned to the version it ran before (its file, as it is, failed to
start) is rendered from that copy, as the generator writes it, with a line on standard
error that says so; FILE arguments are rendered as they are.

A site taken out of service (sitectl disable) gets its units and, as from the
generator, no link in sockets.target.wants/ that would start it at boot.

If any file has a mistake, the mistakes are printed and nothing is written.`,
		Example: `  sitectl units render /etc/sitectl/sites/karl.toml
  sitectl units render --dir /etc/systemd/system`,
		RunE: func(c *cobra.Command, files []string) error {
			var res site.Result
			if len(files) == 0 {
				var err error
				if res, err = site.LoadDir(e.dirs.Config, e.held()); err != nil {
					return err
				}
			} else {
				files = uniqueFiles(files)
				res = site.LoadFiles(files, installedSites(e, files, ""), nil, e.held())
			}
			res = generator.Checked(res, e.unitOptions())
			var pinned []generator.PinnedSite
			if len(files) == 0 && len(res.Errors) == 0 {
				// A file that claims the listener a pinned site's
				// copy has is a mistake too.
				res, pinned = generator.WithPins(res, e.unitOptions(), e.held())
			}
			for _, m := range res.Errors {
				term.Fprintln(e.stderr, m.Error())
			}
			if len(res.Errors) > 0 {
				return reported{exitUsage}
			}
			for _, p := range pinned {
				term.Fprintln(e.stderr, "sitectl: "+generator.PinnedLine(p))
			}
			// As the generator: a site taken out of service gets its
			// units and no link that starts it at boot.
			opts := e.unitOptions()
			out := generator.FilesFor(res.Sites, opts, generator.OutOfService(res.Sites, opts))
			if dir == "" {
				return generator.Print(e.stdout, out)
			}
			abs, err := filepath.Abs(dir)
			if err != nil {
				return err
			}
			if fi, err := os.Stat(abs); err != nil || !fi.IsDir() {
				return usageErrorf("--dir %s is not a directory", dir)
			}
			if err := generator.Write(abs, out); err != nil {
				if errors.Is(err, generator.ErrPartlyWritten) {
					return withCode(exitRollbackFail, err)
				}
				return err
			}
			return nil
		},
	}
	render.Flags().StringVar(&dir, "dir", "", "write the units into `DIR` instead of printing them")
	c.AddCommand(render)
	return c
}
