package site

import (
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"

	"github.com/sitectl/sitectl/internal/par"
)

// Held says whether site s already had each of ls, listeners its file
// declares: its units had them at the generator's last run, or its
// service had them when it last started (modes.Store.Holders reads the
// generator's record and the last good copy sitectl keeps at each start).
// nil: no site is known to hold anything.
type Held func(s *Site, ls []Listener) bool

// findConflicts finds listeners that two sites both claim. Among sites, a
// site that already had all its contested listeners keeps them (held), and of two that both did or both did not, the later one by
// name gets the error, pointing at the earlier one. So a new site file
// that copies a running site's listener, or an edit that takes another
// site's, never takes the site that listens on it off its socket: the
// newcomer gets the error. others are sites already in place, and a site
// colliding with one of them always gets the error. Nothing is changed.
//
// Listeners are indexed by unix path, by TCP address and port, and by port
// for wildcard addresses, so the check is linear in the number of sites;
// held is asked only when there are collisions, and only of the sites in
// them.
func findConflicts(sites []*Site, held Held, others ...*Site) Errors {
	errs, contested := conflicts(sites, nil, others)
	if len(errs) == 0 || held == nil {
		return errs
	}
	in := make(map[*Site]bool, len(sites))
	for _, s := range sites {
		in[s] = true
	}
	var ss []*Site
	for s := range contested {
		if in[s] {
			ss = append(ss, s)
		}
	}
	holds := make([]bool, len(ss))
	par.Each(len(ss), func(i int) { holds[i] = held(ss[i], contested[ss[i]]) })
	holders := map[*Site]bool{}
	for i, s := range ss {
		if holds[i] {
			holders[s] = true
		}
	}
	errs, _ = conflicts(sites, holders, others)
	return errs
}

// conflicts is findConflicts with the sites in holders first, and the
// listeners of each site that collide with another's.
func conflicts(sites []*Site, holders map[*Site]bool, others []*Site) (Errors, map[*Site][]Listener) {
	sorted := slices.Clone(sites)
	slices.SortFunc(sorted, func(a, b *Site) int {
		if holders[a] != holders[b] {
			if holders[a] {
				return -1
			}
			return 1
		}
		return strings.Compare(a.Name, b.Name)
	})
	idx := newListenerIndex(len(sites) + len(others))
	installed := make(map[*Site]bool, len(others))
	for _, o := range others {
		idx.add(o)
		installed[o] = true
	}
	var errs Errors
	contested := map[*Site][]Listener{}
	for _, s := range sorted {
		for _, l := range s.Listeners {
			all := idx.collisions(l)
			if len(all) == 0 {
				continue
			}
			prev := all[0]
			// The error goes to s, unless the earlier site's path reaches
			// s's socket through a symlink and s's own path does not:
			// whoever may write a directory on the way could otherwise
			// make root drop any site whose socket the link points at.
			blamed, bl, other, ol := s, l, prev.site, *prev.l
			if !installed[prev.site] && throughSymlink(*prev.l, l) {
				blamed, bl, other, ol = prev.site, *prev.l, s, l
			}
			msg := fmt.Sprintf("listener %s %s", described(bl), collision(ol, fmt.Sprintf("%s:%d:%d of site %s", other.File, ol.Line, ol.Col, other.Name)))
			switch {
			case blamed != s:
				msg += "; its path reaches that socket through a symlink"
			case holders[prev.site] && !holders[s]:
				msg += fmt.Sprintf("; site %s keeps it, as its units already had it", prev.site.Name)
			}
			errs = append(errs, &Error{File: blamed.File, Line: bl.Line, Col: bl.Col, Msg: msg})
			contested[s] = append(contested[s], l)
			for _, o := range all {
				contested[o.site] = append(contested[o.site], *o.l)
			}
		}
		idx.add(s)
	}
	return errs, contested
}

// owned is a listener and its site. It points into the site: an index of
// 10,000 sites holds no copies of their listeners.
type owned struct {
	site *Site
	l    *Listener
}

// listenerIndex finds a listener that overlaps a given one without looking
// at all of them.
type listenerIndex struct {
	tcp      map[netip.AddrPort][]owned // TCP address:port, IPv4-mapped addresses unmapped
	unix     map[string][]owned         // unix path as written, and as resolved
	wildcard map[uint16][]owned         // TCP listeners on a wildcard address, by port
	byPort   map[uint16][]owned         // every TCP listener, by port
}

// newListenerIndex is an index for about n listeners.
func newListenerIndex(n int) *listenerIndex {
	return &listenerIndex{tcp: make(map[netip.AddrPort][]owned, n), unix: map[string][]owned{},
		wildcard: map[uint16][]owned{}, byPort: make(map[uint16][]owned, n)}
}

func (x *listenerIndex) add(s *Site) {
	for i := range s.Listeners {
		x.addListener(owned{s, &s.Listeners[i]})
	}
}

// addListener indexes one listener of a site.
func (x *listenerIndex) addListener(o owned) {
	l := o.l
	if l.Kind != TCP {
		x.unix[l.Path] = append(x.unix[l.Path], o)
		if l.Resolved != "" && l.Resolved != l.Path {
			x.unix[l.Resolved] = append(x.unix[l.Resolved], o)
		}
		return
	}
	ap := tcpKey(*l)
	x.tcp[ap] = append(x.tcp[ap], o)
	x.byPort[ap.Port()] = append(x.byPort[ap.Port()], o)
	if ap.Addr().IsUnspecified() {
		x.wildcard[ap.Port()] = append(x.wildcard[ap.Port()], o)
	}
}

// firstCollision is the first of ls[:i] (by index in ls, as at[l] says)
// that overlaps ls[i] and passes also, or -1: the site's own listeners
// are indexed one by one, so that a site of many listeners costs a look
// up for each, not a comparison of every pair.
func (x *listenerIndex) firstCollision(l Listener, at map[*Listener]int, also func(prev Listener) bool) int {
	first := -1
	for _, c := range x.collisions(l) {
		if j := at[c.l]; (first < 0 || j < first) && also(*c.l) {
			first = j
		}
	}
	return first
}

// tcpKey is the index key under which a TCP listener meets an equal one:
// its address with an IPv4-mapped address unmapped.
func tcpKey(l Listener) netip.AddrPort {
	ap := netip.MustParseAddrPort(l.Address)
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// throughSymlink says whether unix listener a collides with b only
// because a's path resolves, through a symlinked directory, to b's, while
// b's path is its own.
func throughSymlink(a, b Listener) bool {
	symlinked := func(l Listener) bool { return l.Resolved != "" && l.Resolved != l.Path }
	return a.Kind == Unix && b.Kind == Unix && a.Path != b.Path && symlinked(a) && !symlinked(b)
}

// collisions are the indexed listeners that overlap l.
func (x *listenerIndex) collisions(l Listener) []owned {
	var candidates []owned
	if l.Kind == TCP {
		ap := tcpKey(l)
		if ap.Addr().IsUnspecified() {
			candidates = x.byPort[ap.Port()] // a wildcard may collide with any address
		} else {
			candidates = append(slices.Clip(x.tcp[ap]), x.wildcard[ap.Port()]...)
		}
	} else {
		candidates = x.unix[l.Path]
		if l.Resolved != "" && l.Resolved != l.Path {
			candidates = append(slices.Clip(candidates), x.unix[l.Resolved]...)
		}
	}
	var out []owned
	for _, c := range candidates {
		if overlaps(*c.l, l) {
			out = append(out, c)
		}
	}
	return out
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
//
// Where two sites' listeners collide, held decides which keeps them (see
// Held); nil: the earlier by name.
func LoadDir(dir string, held Held) (Result, error) {
	paths, hint, closeDir, err := readDir(dir)
	if err != nil || paths == nil {
		return Result{}, err
	}
	defer closeDir()
	return loadFiles(paths, hint, nil, nil, nil, held), nil
}

// LoadFiles parses the given files and checks them against each other (and
// against others, already valid sites that are not among the files, such as
// the rest of the site directory when one new file is checked). names may
// override the name of a file (path → name); files without an entry, and
// all files when names is nil, are named after the file. Files are read and
// parsed on all CPUs (10,000 sites are read on every daemon-reload and by
// `sitectl list`); the result is in the order of paths. held decides, as
// for LoadDir, which of two of the files claiming a listener keeps it.
func LoadFiles(paths []string, others []*Site, names map[string]string, held Held) Result {
	return loadFiles(paths, nil, others, names, nil, held)
}

// LoadFileAs is LoadFiles of one file, a copy of the site file that is
// to be put at path display, checked as site name: a deployment tool's
// temporary copy (sitectl check --display-name, which Ansible's validate
// runs). The copy itself must be root's alone, as the file will be (the
// tool gives it its owner and mode first); the directories that must be
// root's alone are those on the way to display, where the generator will
// read the file, not those on the way to the copy, which are the tool's:
// with become, Ansible puts it in the connecting user's ~/.ansible/tmp.
func LoadFileAs(file, display, name string, others []*Site, held Held) Result {
	return loadFiles([]string{file}, nil, others, map[string]string{file: name}, map[string]string{file: display}, held)
}

// dirHint is what LoadDir knows of the files it loads, all in one
// directory: its descriptor (or unix.AT_FDCWD) and, by index, whether each
// file's directory entry said it is a regular file (see readFile).
type dirHint struct {
	fd      int
	regular []bool
	// reuse, when set, may give a file's site from an earlier load
	// instead of reading it (LoadDirReusing); its answers go to origins.
	reuse   Reuse
	origins []Origin
	// dirProblem is why someone other than root may change the
	// directory or one on the way to it (fileProblem); nil: nobody.
	dirProblem *pathProblem
}

// loadFiles is LoadFiles of the files of one directory with hint, or of
// any files with a nil hint. ways may give, for a file read without a
// hint, the path whose directories are checked instead of its own
// (LoadFileAs).
func loadFiles(paths []string, hint *dirHint, others []*Site, names, ways map[string]string, held Held) Result {
	type parsed struct {
		site *Site
		errs Errors
	}
	out := make([]parsed, len(paths))
	view := hostView.memo()
	par.Each(len(paths), func(i int) {
		p := paths[i]
		// Before a reuse too: a directory may have been made another
		// user's since the file was last read.
		if hint != nil {
			if pp := hint.pathProblem(view, i, p); pp != nil {
				out[i].errs = Errors{fileError(p, untrustedPath(p, pp))}
				return
			}
		}
		if hint != nil && hint.reuse != nil {
			s, regular := hint.reused(i, p)
			if s != nil {
				out[i].site, out[i].errs = s, resolveListeners(s)
				if len(out[i].errs) == 0 {
					out[i].errs = sockDirErrors(view, s)
				}
				if len(out[i].errs) > 0 {
					out[i].site = nil
				}
				return
			}
			hint.regular[i] = hint.regular[i] || regular
		}
		var data []byte
		var err error
		if hint != nil {
			data, err = readFile(hint.fd, filepath.Base(p), p, hint.regular[i], true)
		} else if way := ways[p]; way != "" {
			data, err = readSiteFileAs(p, way)
		} else {
			data, err = ReadSiteFile(p)
		}
		if err != nil {
			out[i].errs = Errors{fileError(p, err)}
			return
		}
		name := NameFromFile(p)
		if n := names[p]; n != "" {
			name = n
		}
		s, errs := load(p, name, data)
		if len(errs) == 0 {
			errs = sockDirErrors(view, s)
		}
		if len(errs) > 0 {
			out[i].errs = errs
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
	res.Sites, res.Errors = dropConflicting(res.Sites, others, res.Errors, held)
	return res
}

// LoadBytes is LoadFiles for the content of one site file that was read
// already (from standard input, say): it is parsed as site name, its
// mistakes are reported as those of file, and it is checked against others.
//
// Its unix listeners' directories are checked as a file's are
// (sockDirProblem): whether a user may replace them is the host's, not
// the file's, so neither standard input nor a last good copy goes past it.
func LoadBytes(file, name string, data []byte, others []*Site) Result {
	return loadOne(file, name, data, others, sockDirErrors)
}

// LoadCopy is LoadBytes of a last good copy of site name's file (file,
// its path), which an earlier start ran from, on its own. A credential
// whose path goes through a directory another user may change
// (credentialDirErrors) is a mistake of a site file, so that no site
// takes one on; of a copy it is not: sitectl accepted that copy before
// the check existed, and the site runs on its units, which an upgrade's
// daemon-reload would otherwise take away (the file, which has the same
// credential, says why it is refused).
func LoadCopy(file, name string, data []byte) Result {
	return loadOne(file, name, data, nil, listenerDirErrors)
}

// loadOne is LoadBytes with the checks of the host's directories hostErrs.
func loadOne(file, name string, data []byte, others []*Site, hostErrs func(fsView, *Site) Errors) Result {
	var res Result
	s, errs := load(file, name, data)
	if len(errs) == 0 {
		errs = hostErrs(hostView, s)
	}
	if len(errs) > 0 {
		res.Errors = errs
		return res
	}
	res.Sites, res.Errors = dropConflicting([]*Site{s}, others, nil, nil)
	return res
}

// Settle checks sites that were loaded apart against each other, as
// LoadDir checks its files: of sites claiming one listener, the one that
// held it (held) keeps it. It returns the sites that keep every listener
// and the mistakes of the others. The generator settles the valid site
// files with the last good copies of the files with mistakes: a site that
// runs from its copy must keep its listener when a new or edited file
// claims it, as a site whose file is fine does.
func Settle(sites []*Site, held Held) ([]*Site, Errors) {
	return dropConflicting(sites, nil, nil, held)
}

// SettleAgainst is Settle with others, sites that keep their listeners
// whatever held says: a site of sites colliding with one of them gets the
// error. The generator settles the last good copies of files with
// mistakes against the sites pinned to theirs, which were settled with
// the valid files already.
func SettleAgainst(sites, others []*Site, held Held) ([]*Site, Errors) {
	return dropConflicting(sites, others, nil, held)
}

// load parses one site file's content and resolves its unix listeners.
func load(file, name string, data []byte) (*Site, Errors) {
	s, err := ParseNamed(file, name, data)
	if err != nil {
		return nil, err.(Errors)
	}
	// A fraction of a microsecond for a site file, next to tens for
	// parsing it.
	s.Digest = Digest(data)
	s.Source = data
	if errs := resolveListeners(s); len(errs) > 0 {
		return nil, errs
	}
	return s, nil
}

// resolveListeners sets Resolved on the site's unix listeners, and finds two
// of them that reach one socket through a symlinked directory (the parser,
// which reads no file system, finds those written alike). What cannot be
// resolved now is compared as written: a directory created later (under
// /run, say, at boot after the generator ran) or a symlink changed after
// the check.
func resolveListeners(s *Site) Errors {
	var errs Errors
	x, at := newListenerIndex(0), map[*Listener]int{}
	for i := range s.Listeners {
		l := &s.Listeners[i]
		if l.Kind != Unix {
			continue
		}
		l.Resolved = resolveExisting(l.Path)
		if j := x.firstCollision(*l, at, func(prev Listener) bool { return prev.Path != l.Path }); j >= 0 {
			prev := s.Listeners[j]
			errs = append(errs, &Error{File: s.File, Line: l.Line, Col: l.Col,
				Msg: fmt.Sprintf("listener %s %s", described(*l), collision(prev, fmt.Sprintf("line %d of this file", prev.Line)))})
		}
		at[l] = i
		x.addListener(owned{s, l})
	}
	return errs
}

// described names a listener, with its resolved path when that differs.
func described(l Listener) string {
	if l.Resolved != "" {
		return l.Path + " (" + l.Resolved + " once symlinks are resolved)"
	}
	return l.Endpoint()
}

// resolveExisting resolves the symlinks of the longest leading part of p
// that exists, and keeps the rest as written. It returns "" if nothing
// changes.
func resolveExisting(p string) string {
	dir, rest := filepath.Dir(p), filepath.Base(p)
	for {
		if real, err := filepath.EvalSymlinks(dir); err == nil {
			if r := filepath.Join(real, rest); r != p {
				return r
			}
			return ""
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		rest = filepath.Join(filepath.Base(dir), rest)
		dir = parent
	}
}

// dropConflicting moves sites whose listeners collide (with each other or
// with others) from the valid list to the errors; held is findConflicts'.
func dropConflicting(sites, others []*Site, errs Errors, held Held) ([]*Site, Errors) {
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
	conflicts := findConflicts(sites, held, rest...)
	bad := map[string]bool{}
	for _, e := range conflicts {
		bad[e.File] = true
	}
	errs = append(errs, conflicts...)
	valid := slices.DeleteFunc(slices.Clone(sites), func(s *Site) bool { return bad[s.File] })
	return valid, errs
}

// fileError puts a file that could not be read into the list of mistakes,
// at 1:1 so that every entry has a position.
func fileError(path string, err error) *Error {
	msg := err.Error()
	var fe *FileError
	if errors.As(err, &fe) {
		msg = fe.Reason
	}
	return &Error{File: path, Line: 1, Col: 1, Msg: msg}
}
