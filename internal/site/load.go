package site

import (
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/sitectl/sitectl/internal/par"
)

// DefaultConfigDir is where site files live unless --config-dir or
// SITECTL_CONFIG_DIR say otherwise.
const DefaultConfigDir = "/etc/sitectl/sites"

// Conflicts finds listeners that two sites both claim. Among sites, the
// later one by name gets the error, pointing at the earlier one; others are
// sites already in place, and a site colliding with one of them always gets
// the error. Nothing is changed.
//
// Listeners are indexed by unix path, by TCP address and port, and by port
// for wildcard addresses, so the check is linear in the number of sites.
func Conflicts(sites []*Site, others ...*Site) Errors {
	sorted := slices.Clone(sites)
	slices.SortFunc(sorted, func(a, b *Site) int { return strings.Compare(a.Name, b.Name) })
	idx := newListenerIndex()
	for _, o := range others {
		idx.add(o)
	}
	var errs Errors
	for _, s := range sorted {
		for _, l := range s.Listeners {
			if prev, ok := idx.collision(l); ok {
				errs = append(errs, &Error{File: s.File, Line: l.Line, Col: l.Col,
					Msg: fmt.Sprintf("listener %s %s", l.Endpoint(), collision(prev.l, fmt.Sprintf("%s:%d:%d of site %s", prev.site.File, prev.l.Line, prev.l.Col, prev.site.Name)))})
			}
		}
		idx.add(s)
	}
	return errs
}

type owned struct {
	site *Site
	l    Listener
}

// listenerIndex finds a listener that overlaps a given one without looking
// at all of them.
type listenerIndex struct {
	exact    map[string][]owned // unix path, or TCP address:port
	wildcard map[uint16][]owned // TCP listeners on a wildcard address, by port
	byPort   map[uint16][]owned // every TCP listener, by port
}

func newListenerIndex() *listenerIndex {
	return &listenerIndex{exact: map[string][]owned{}, wildcard: map[uint16][]owned{}, byPort: map[uint16][]owned{}}
}

func (x *listenerIndex) add(s *Site) {
	for _, l := range s.Listeners {
		o := owned{s, l}
		x.exact[l.Endpoint()] = append(x.exact[l.Endpoint()], o)
		if l.Kind == TCP {
			ap := netip.MustParseAddrPort(l.Address)
			x.byPort[ap.Port()] = append(x.byPort[ap.Port()], o)
			if ap.Addr().IsUnspecified() {
				x.wildcard[ap.Port()] = append(x.wildcard[ap.Port()], o)
			}
		}
	}
}

func (x *listenerIndex) collision(l Listener) (owned, bool) {
	candidates := x.exact[l.Endpoint()]
	if l.Kind == TCP {
		ap := netip.MustParseAddrPort(l.Address)
		if ap.Addr().IsUnspecified() {
			candidates = x.byPort[ap.Port()] // a wildcard may collide with any address
		} else {
			candidates = append(slices.Clone(candidates), x.wildcard[ap.Port()]...)
		}
	}
	for _, c := range candidates {
		if Overlap(c.l, l) {
			return c, true
		}
	}
	return owned{}, false
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
// name. Files are read and parsed on all CPUs (10,000 sites are read on
// every daemon-reload and by `sitectl list`); the result is in the order of
// paths.
func LoadFiles(paths []string, others []*Site, names ...map[string]string) Result {
	type parsed struct {
		site *Site
		errs Errors
	}
	out := make([]parsed, len(paths))
	par.Each(len(paths), func(i int) {
		p := paths[i]
		data, err := ReadFile(p)
		if err != nil {
			out[i].errs = Errors{&Error{File: p, Line: 1, Col: 1, Msg: fmt.Sprintf("cannot read the file: %v", unwrapPath(err))}}
			return
		}
		name := NameFromFile(p)
		if len(names) > 0 && names[0][p] != "" {
			name = names[0][p]
		}
		s, err := ParseNamed(p, name, data)
		if err != nil {
			out[i].errs = err.(Errors)
			return
		}
		out[i].site = s
	})
	var res Result
	for _, o := range out {
		if o.site != nil {
			res.Sites = append(res.Sites, o.site)
		}
		res.Errors = append(res.Errors, o.errs...)
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

// MaxFileSize bounds a site file; a larger one is a mistake, not a site.
const MaxFileSize = 1 << 20

// ReadFile reads a site file of at most MaxFileSize bytes, with plain system
// calls: os.ReadFile also asks each file whether it can be polled, which
// costs a third of the time of reading 10,000 small files.
func ReadFile(path string) ([]byte, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	buf := make([]byte, 0, 4096)
	for {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, cap(buf))
		}
		n, err := unix.Read(fd, buf[len(buf):cap(buf)])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, &fs.PathError{Op: "read", Path: path, Err: err}
		}
		if n == 0 {
			return buf, nil
		}
		buf = buf[:len(buf)+n]
		if len(buf) > MaxFileSize {
			return nil, &fs.PathError{Op: "read", Path: path, Err: fmt.Errorf("the file is larger than %d KiB", MaxFileSize>>10)}
		}
	}
}
