package cli

import (
	"encoding/json"
	"fmt"
	"slices"

	"github.com/spf13/cobra"

	"github.com/sitectl/sitectl/internal/generator"
	"github.com/sitectl/sitectl/internal/site"
)

func checkCmd(e *env) *cobra.Command {
	var name string
	var asJSON bool
	c := &cobra.Command{
		Use:     "check FILE...",
		GroupID: "sites",
		Short:   "Check site files and report every mistake as FILE:LINE:COL",
		Long: `Check site files. Every mistake of every file is reported on its own line as
FILE:LINE:COL: what is wrong. The files are also checked against the other sites
of the config directory, so a listener two sites would share is found before the
file is put in place. Each site's units are also read back the way systemd reads
them: a value they would not carry as written is a mistake too. A file that is not
a regular file (a pipe, a device, a directory) or is larger than 1 MiB is refused
without being read. Nothing is written.

Prints nothing and exits 0 when every file is valid; exits 2 otherwise.`,
		Example: `  sitectl check /etc/sitectl/sites/*.toml
  sitectl check --name karl /tmp/karl.toml.new    # validate before moving into place`,
		Args: args(1, -1, "at least one site file"),
		RunE: func(c *cobra.Command, files []string) error {
			var names map[string]string
			if name != "" {
				if len(files) != 1 {
					return usageErrorf("--name works with exactly one file")
				}
				names = map[string]string{files[0]: name}
			}
			res := generator.Checked(site.LoadFiles(files, installedSites(e, files, name), names), e.unitOptions())
			if asJSON {
				if err := writeCheckJSON(e, files, res); err != nil {
					return err
				}
			} else {
				for _, m := range res.Errors {
					fmt.Fprintln(e.stderr, m.Error())
				}
			}
			if len(res.Errors) > 0 {
				return reported{exitUsage}
			}
			return nil
		},
	}
	c.Flags().StringVar(&name, "name", "", "check the file as site `NAME` (for files not yet named NAME.toml)")
	c.Flags().BoolVar(&asJSON, "json", false, "report as JSON")
	return c
}

// installedSites are the valid sites of the config directory other than
// those being checked; a checked file must not collide with them.
func installedSites(e *env, files []string, name string) []*site.Site {
	res, err := site.LoadDir(e.dirs.Config)
	if err != nil {
		return nil
	}
	checked := map[string]bool{name: name != ""}
	for _, f := range files {
		checked[site.NameFromFile(f)] = true
	}
	return slices.DeleteFunc(res.Sites, func(s *site.Site) bool { return checked[s.Name] })
}

type checkJSON struct {
	Files []checkFileJSON `json:"files"`
	Valid bool            `json:"valid"`
}

type checkFileJSON struct {
	File   string           `json:"file"`
	Site   string           `json:"site,omitempty"`
	Valid  bool             `json:"valid"`
	Errors []checkErrorJSON `json:"errors"`
}

type checkErrorJSON struct {
	Line    int    `json:"line"`
	Column  int    `json:"column"`
	Message string `json:"message"`
}

func writeCheckJSON(e *env, files []string, res site.Result) error {
	out := checkJSON{Valid: len(res.Errors) == 0}
	for _, f := range files {
		fj := checkFileJSON{File: f, Errors: []checkErrorJSON{}}
		for _, s := range res.Sites {
			if s.File == f {
				fj.Site = s.Name
			}
		}
		for _, m := range res.Errors {
			if m.File == f {
				fj.Errors = append(fj.Errors, checkErrorJSON{m.Line, m.Col, m.Msg})
			}
		}
		fj.Valid = len(fj.Errors) == 0
		out.Files = append(out.Files, fj)
	}
	enc := json.NewEncoder(e.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}
