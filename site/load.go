package site

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// DefaultConfigDir is where site files live unless --config-dir or
// SITECTL_CONFIG_DIR say otherwise.
const DefaultConfigDir = "/etc/sitectl/sites"

// Conflicts finds listeners that two sites both claim. Among sites, the
// later one by name gets the error, pointing at the earlier one; others are
// sites already in place, and a site colliding with one of them always gets
// the error. Nothing is changed.
func Conflicts(sites []*Site, others ...*Site) Errors {
	sorted := slices.Clone(sites)
	slices.SortFunc(sorted, func(a, b *Site) int { return strings.Compare(a.Name, b.Name) })
	var errs Errors
	for i, s := range sorted {
		against := append(slices.Clone(sorted[:i]), others...)
	listeners:
		for _, l := range s.Listeners {
			for _, other := range against {
				for _, ol := range other.Listeners {
					if Overlap(ol, l) {
						errs = append(errs, &Error{File: s.File, Line: l.Line, Col: l.Col,
							Msg: fmt.Sprintf("listener %s %s", l.Endpoint(), collision(ol, fmt.Sprintf("%s:%d:%d of site %s", other.File, ol.Line, ol.Col, other.Name)))})
						continue listeners
					}
				}
			}
		}
	}
	return errs
}

// Result is what reading a directory of site files gives: the sites that are
// valid, and the mistakes of the others.
type Result struct {
	Sites  []*Site
	Errors Errors
}

// LoadDir reads every NAME.toml in dir. A file with mistakes, or whose
// listeners collide with another site's, is left out of Sites and its
// mistakes are in Errors. A missing directory is no sites. The error return is
// for a directory that cannot be read at all.
func LoadDir(dir string) (Result, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return Result{}, nil
	}
	if err != nil {
		return Result{}, fmt.Errorf("cannot read the site directory: %w", err)
	}
	var paths []string
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".toml") || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		paths = append(paths, filepath.Join(dir, e.Name()))
	}
	return LoadFiles(paths, nil), nil
}

// LoadFiles parses the given files and checks them against each other (and
// against others, already valid sites that are not among the files, such as
// the rest of the site directory when one new file is checked). names may
// override the name of a file (path → name); missing entries use the file
// name.
func LoadFiles(paths []string, others []*Site, names ...map[string]string) Result {
	var res Result
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			res.Errors = append(res.Errors, &Error{File: p, Line: 1, Col: 1, Msg: fmt.Sprintf("cannot read the file: %v", unwrapPath(err))})
			continue
		}
		name := NameFromFile(p)
		if len(names) > 0 && names[0][p] != "" {
			name = names[0][p]
		}
		s, err := ParseNamed(p, name, data)
		if err != nil {
			res.Errors = append(res.Errors, err.(Errors)...)
			continue
		}
		res.Sites = append(res.Sites, s)
	}
	res.Sites, res.Errors = dropConflicting(res.Sites, others, res.Errors)
	return res
}

// dropConflicting moves sites whose listeners collide (with each other or
// with others) from the valid list to the errors.
func dropConflicting(sites, others []*Site, errs Errors) ([]*Site, Errors) {
	seen := map[string]bool{}
	for _, s := range sites {
		if seen[s.Name] {
			errs = append(errs, &Error{File: s.File, Line: 1, Col: 1, Msg: fmt.Sprintf("site %s is declared by two files", s.Name)})
		}
		seen[s.Name] = true
	}
	var rest []*Site
	for _, o := range others {
		if !seen[o.Name] {
			rest = append(rest, o)
		}
	}
	conflicts := Conflicts(sites, rest...)
	bad := map[string]bool{}
	for _, e := range conflicts {
		bad[e.File] = true
	}
	errs = append(errs, conflicts...)
	valid := slices.DeleteFunc(slices.Clone(sites), func(s *Site) bool { return bad[s.File] })
	return valid, errs
}

func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
