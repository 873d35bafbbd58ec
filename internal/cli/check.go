package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/sitectl/sitectl/internal/generator"
	"github.com/sitectl/sitectl/internal/modes"
	"github.com/sitectl/sitectl/internal/site"
	"github.com/sitectl/sitectl/internal/sitecheck"
	"github.com/sitectl/sitectl/internal/term"
	"github.com/sitectl/sitectl/internal/units"
)

func checkCmd(e *env) *cobra.Command {
	var name, display string
	var asJSON bool
	c := &cobra.Command{
		Use:     "check FILE...",
		GroupID: "sites",
		Short:   "Check site files and report every mistake as FILE:LINE:COL",
		Long: `Check site files. Every mistake of every file is reported on its own line as
FILE:LINE:COL: what is wrong (of a file with more than 100, the first 100, and a line
that says how many more there are; an error repeats at most 64 bytes of a key or value
of the file). The files are also checked against the other sites
of the config directory, so a listener two sites would share is found before the
file is put in place. Each site's units are also read back the way systemd reads
them: a value they would not carry as written is a mistake too. A file that is not
a regular file (a pipe, a device, a directory) or is larger than 64 KiB is refused
without being read, and so is one that someone other than root may change (owned by
another user, or writable by others). Nothing is written.

Given - as its file, sitectl check reads the file from standard input (at most
64 KiB), and needs --name or --display-name. With --display-name, mistakes are reported
under the name the file will have once in place, not the name of the file checked: a
deployment tool that checks a temporary copy reports /etc/sitectl/sites/NAME.toml:LINE:COL.
The file is then checked as the site that name is for, unless --name says otherwise,
and the directories that must be root's alone are those on the way to that place, not
to the copy (which Ansible's become puts in the connecting user's ~/.ansible/tmp).

Warnings follow, as FILE:LINE:COL: warning: what would go wrong on this host although
the file is valid: the program of exec (or the interpreter of its #! line) does not
exist or is not executable; the user, the group, the working directory or a
credential's file does not exist; the program or the working directory lies under a
path the site's unit hides from the app (PrivateTmp= hides /tmp and /var/tmp,
ProtectHome= /home, /root and /run/user); the file holds environment values and
anyone may read it; a variable of the top-level environment looks like a secret (a
name like ..._TOKEN or ..._PASSWORD, a URL with a password), which the unit shows to
every user; the site runs as the user another site of the config directory runs as;
settle_time is so long that no change's timeout can outlast it; keep_previous is set
for a server whose exec line keeps connections alive in a way sitectl cannot switch
off (gunicorn's --threads or gthread, gevent, eventlet workers without --keep-alive 0;
uWSGI's --http11-socket or --http-keepalive); or a gunicorn site undoes its preset
(GUNICORN_CMD_ARGS in its or a mode's environment replaces the preset's, and a
config file on gunicorn's command line makes fast_exit do nothing). Warnings do not change
the exit code: the host a file is checked on need not be the one it runs on.

Exits 0 when every file is valid, warnings or not, and prints nothing unless there
are warnings; exits 2 otherwise.`,
		Example: `  sitectl check /etc/sitectl/sites/*.toml
  sitectl check --name karl /tmp/karl.toml.new    # validate before moving into place
  render-site | sitectl check --name karl --display-name /etc/sitectl/sites/karl.toml -`,
		Args: args(1, -1, "at least one site file"),
		RunE: func(c *cobra.Command, files []string) error {
			var names map[string]string
			if name != "" || display != "" || slices.Contains(files, "-") {
				if len(files) != 1 {
					return usageErrorf("--name, --display-name and - work with exactly one file")
				}
				if name == "" && display != "" {
					// The file checked will be display: it is that
					// site, not one named after a temporary copy,
					// whose installed file it would otherwise be
					// checked against and collide with.
					name = site.NameFromFile(display)
				}
				names = map[string]string{files[0]: name}
			}
			var res site.Result
			var warnings site.Errors
			if files[0] == "-" {
				if name == "" {
					return usageErrorf("a site file on standard input needs --name or --display-name")
				}
				var data []byte
				var err error
				if res, data, err = checkStdin(e, c.InOrStdin(), name, display); err != nil {
					return err
				}
				for _, s := range res.Sites {
					warnings = append(warnings, sitecheck.Warnings(sitecheck.OS, s, data, 0, e.unitOptions())...)
					warnings = append(warnings, sitecheck.SharedUser(s, data, sitecheck.Users(installedSites(e, nil, name)))...)
				}
			} else {
				files = uniqueFiles(files)
				installed := installedSites(e, files, name)
				if display != "" {
					// A copy of the file to be put at display: the
					// directories that count are display's.
					res = site.LoadFileAs(files[0], display, name, installed, e.held())
				} else {
					res = site.LoadFiles(files, installed, names, e.held())
				}
				warnings = fileWarnings(e, res.Sites, installed)
				res = renameFile(res, files[0], display)
				renameErrors(warnings, files[0], display)
			}
			res = generator.Checked(res, e.unitOptions())
			if name == "" && display == "" {
				res.Errors = append(res.Errors, unreadByTheGenerator(e, files)...)
			}
			if display != "" {
				files = []string{display}
			}
			if asJSON {
				if err := writeCheckJSON(e, files, res, warnings); err != nil {
					return err
				}
			} else {
				for _, m := range res.Errors {
					term.Fprintln(e.stderr, m.Error())
				}
				for _, w := range warnings {
					term.Fprintln(e.stderr, w.Error())
				}
			}
			if len(res.Errors) > 0 {
				return reported{exitUsage}
			}
			return nil
		},
	}
	c.Flags().StringVar(&name, "name", "", "check the file as site `NAME` (for files not yet named NAME.toml; default: the name of --display-name)")
	c.Flags().StringVar(&display, "display-name", "", "report mistakes as in `PATH`, where the file will be, instead of the file checked")
	c.Flags().BoolVar(&asJSON, "json", false, "report as JSON")
	return c
}

// maxStdinSiteFile bounds a site file read from standard input: what
// ReadFile accepts of a file.
const maxStdinSiteFile = site.MaxFileSize

// checkStdin checks a site file read from standard input as site name,
// reported as display (or "-"), against the installed sites.
func checkStdin(e *env, stdin io.Reader, name, display string) (site.Result, []byte, error) {
	data, err := io.ReadAll(io.LimitReader(stdin, maxStdinSiteFile+1))
	if err != nil {
		return site.Result{}, nil, fmt.Errorf("cannot read the site file from standard input: %w", err)
	}
	if display == "" {
		display = "-"
	}
	if len(data) > maxStdinSiteFile {
		return site.Result{}, nil, usageErrorf("the site file on standard input is larger than %d bytes", maxStdinSiteFile)
	}
	res := site.LoadBytes(display, name, data, installedSites(e, nil, name))
	// As for a file in the site directory: its unix sockets' directories
	// must be root's alone (the loader checks those; LoadBytes does not,
	// since the generator reads last good copies with it).
	var ok []*site.Site
	for _, s := range res.Sites {
		if err := site.SocketDirMistakes(s); err != nil {
			var errs site.Errors
			if errors.As(err, &errs) {
				res.Errors = append(res.Errors, errs...)
				continue
			}
		}
		ok = append(ok, s)
	}
	res.Sites = ok
	return res, data, nil
}

// uniqueFiles are files without a file named again (by another path to
// it, or by a second glob that matches it too), in their order: a file
// checked twice collided with itself, "declared by two files".
func uniqueFiles(files []string) []string {
	var out []string
	var seen []os.FileInfo
	abs := map[string]bool{}
	for _, f := range files {
		a, err := filepath.Abs(f)
		if err == nil && abs[a] {
			continue
		}
		abs[a] = true
		fi, err := os.Stat(f)
		if err == nil && slices.ContainsFunc(seen, func(o os.FileInfo) bool { return os.SameFile(o, fi) }) {
			continue
		}
		if err == nil {
			seen = append(seen, fi)
		}
		out = append(out, f)
	}
	return out
}

// unreadByTheGenerator are the mistakes of files in the config directory
// that the generator does not read, as their names do not end in .toml:
// checked as sites, they would pass, and never run.
func unreadByTheGenerator(e *env, files []string) site.Errors {
	var errs site.Errors
	dir, err := filepath.Abs(e.dirs.Config)
	if err != nil {
		return nil
	}
	for _, f := range files {
		a, err := filepath.Abs(f)
		if err != nil || filepath.Dir(a) != dir || strings.HasSuffix(a, ".toml") {
			continue
		}
		errs = append(errs, &site.Error{File: f, Line: 1, Col: 1, Msg: fmt.Sprintf(
			"the generator reads only the files of %s whose names end in .toml: this one is no site; rename it to NAME.toml", dir)})
	}
	return errs
}

// fileWarnings are the warnings of valid sites read from their files (see
// package sitecheck): what would fail on this host although the file is
// valid, and a user another of the checked or installed sites runs as.
func fileWarnings(e *env, sites, installed []*site.Site) site.Errors {
	var out site.Errors
	users := sitecheck.Users(append(slices.Clone(sites), installed...))
	for _, s := range sites {
		data, err := site.ReadFile(s.File)
		if err != nil {
			continue
		}
		var mode fs.FileMode
		if fi, err := os.Stat(s.File); err == nil {
			mode = fi.Mode().Perm()
		}
		out = append(out, sitecheck.Warnings(sitecheck.OS, s, data, mode, e.unitOptions())...)
		out = append(out, sitecheck.SharedUser(s, data, users)...)
	}
	return out
}

// renameErrors reports the mistakes of file as display's.
func renameErrors(errs site.Errors, file, display string) {
	for _, m := range errs {
		if display != "" && m.File == file {
			m.File = display
		}
	}
}

// renameFile reports the mistakes and the site of file as display's.
func renameFile(res site.Result, file, display string) site.Result {
	if display == "" {
		return res
	}
	for _, m := range res.Errors {
		if m.File == file {
			m.File = display
		}
	}
	for _, s := range res.Sites {
		if s.File == file {
			s.File = display
		}
	}
	return res
}

// held is site.Held of the state directory, as the generator decides
// which of two sites whose listeners collide keeps them.
func (e *env) held() site.Held { return modes.Store{Dir: e.dirs.State}.Holders() }

// installedSites are the sites of the config directory other than those
// being checked, as the generator makes them: the valid files, and the
// last good copy of a file with mistakes, or of a pinned file, that a
// site runs from (its listeners are taken). A checked file must not
// collide with them.
func installedSites(e *env, files []string, name string) []*site.Site {
	held := e.held()
	res, err := site.LoadDir(e.dirs.Config, held)
	if err != nil {
		return nil
	}
	res, _, _ = generator.Settled(res, units.Options{Dirs: e.dirs}, generator.StateProblem(e.dirs.State), held)
	checked := map[string]bool{name: name != ""}
	for _, f := range files {
		checked[site.NameFromFile(f)] = true
	}
	return slices.DeleteFunc(res.Sites, func(s *site.Site) bool { return checked[s.Name] })
}

type checkJSON struct {
	Files []checkFileJSON `json:"files" doc:"each file checked"`
	Valid bool            `json:"valid" doc:"every file is valid"`
}

type checkFileJSON struct {
	File     string           `json:"file" doc:"the file as named on the command line (or by --display-name)"`
	Site     string           `json:"site" doc:"the site's name; empty when the file is not valid"`
	Valid    bool             `json:"valid" doc:"the file has no mistakes"`
	Errors   []checkErrorJSON `json:"errors" doc:"its mistakes"`
	Warnings []checkErrorJSON `json:"warnings" doc:"what would go wrong on this host although the file is valid: a program that is missing or not executable, a user, group, working directory or credential file that does not exist, a program or working directory under a path the unit hides, environment values in a file anyone may read, a secret in the environment the unit shows to everyone, a user another site runs as too, a settle_time no timeout can outlast, keep_previous with kept-alive connections, a gunicorn preset undone"`
}

type checkErrorJSON struct {
	Line    int    `json:"line" doc:"the line, from 1"`
	Column  int    `json:"column" doc:"the column, from 1"`
	Message string `json:"message" doc:"what is wrong (warnings start with \"warning: \")"`
}

func writeCheckJSON(e *env, files []string, res site.Result, warnings site.Errors) error {
	out := checkJSON{Valid: len(res.Errors) == 0}
	for _, f := range files {
		fj := checkFileJSON{File: f, Errors: []checkErrorJSON{}, Warnings: []checkErrorJSON{}}
		for _, w := range warnings {
			if w.File == f {
				fj.Warnings = append(fj.Warnings, checkErrorJSON{w.Line, w.Col, w.Msg})
			}
		}
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
