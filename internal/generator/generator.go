// Package generator turns the site directory into unit files, for the
// systemd generator (cmd/sitectl-generator) and for `sitectl units render`,
// so both write exactly the same files.
//
// A site with mistakes is skipped and its mistakes are returned; every valid
// site is still generated. The generator never fails the boot for one bad
// file.
package generator

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/sitectl/sitectl/internal/atomicfile"
	"github.com/sitectl/sitectl/internal/site"
	"github.com/sitectl/sitectl/internal/units"
)

// File is one file of the output: a unit, or a .wants/ symlink to one.
type File struct {
	Path    string // relative to the output directory
	Content []byte // for a unit
	Link    string // for a symlink: its target
}

// Files renders the units of the given sites, with the .wants/ links that
// make their sockets and path units start at boot, and sitectl.slice when
// there is any site. Sites are taken in name order so the output is stable.
func Files(sites []*site.Site, opts units.Options) []File {
	sorted := slices.Clone(sites)
	slices.SortFunc(sorted, func(a, b *site.Site) int { return strings.Compare(a.Name, b.Name) })
	var out []File
	if len(sorted) > 0 {
		sl := units.RenderSlice()
		out = append(out, File{Path: sl.Name, Content: []byte(sl.Content)})
	}
	for _, s := range sorted {
		for _, u := range units.Render(s, opts) {
			out = append(out, File{Path: u.Name, Content: []byte(u.Content)})
			if u.WantedBy != "" {
				out = append(out, File{Path: filepath.Join(u.WantedBy+".wants", u.Name), Link: "../" + u.Name})
			}
		}
	}
	return out
}

// Write puts the files into dir. Units are written atomically; an existing
// symlink is replaced.
func Write(dir string, files []File) error {
	for _, f := range files {
		p := filepath.Join(dir, f.Path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return fmt.Errorf("cannot create %s: %w", filepath.Dir(p), err)
		}
		if f.Link == "" {
			if err := atomicfile.Write(p, f.Content, 0o644); err != nil {
				return err
			}
			continue
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("cannot replace %s: %w", p, err)
		}
		if err := os.Symlink(f.Link, p); err != nil {
			return fmt.Errorf("cannot link %s: %w", p, err)
		}
	}
	return nil
}

// Print writes the files as the generator's --dryrun shows them.
func Print(w io.Writer, files []File) error {
	for _, f := range files {
		var err error
		if f.Link != "" {
			_, err = fmt.Fprintf(w, "---%s -> %s---\n", f.Path, f.Link)
		} else {
			_, err = fmt.Fprintf(w, "---%s---\n%s\n", f.Path, f.Content)
		}
		if err != nil {
			return err
		}
	}
	return nil
}
