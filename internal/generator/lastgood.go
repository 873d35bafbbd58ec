package generator

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/sitectl/sitectl/internal/modes"
	"github.com/sitectl/sitectl/internal/par"
	"github.com/sitectl/sitectl/internal/site"
	"github.com/sitectl/sitectl/internal/units"
)

// Outcome is what became of a site file with mistakes: its units come from
// the last good copy of it (LastGood), or it is skipped (NoCopy may say why
// no copy could be used).
type Outcome struct {
	File     string    // the site file with mistakes
	Mistakes int       // how many
	LastGood string    // the copy the units come from; "" when skipped
	Saved    time.Time // when that copy was saved
	NoCopy   string    // why the site is skipped rather than generated from a copy
	// Recovered is set when the site had no last good copy, and the
	// generator's record of the file its units were last generated from
	// stands in for one (a site that never started): the content the
	// generator keeps as the copy (modes.Store.SaveLastGood) before it
	// writes the units, which name the copy, and prepare starts from it.
	Recovered []byte
}

// StateProblem says why the state directory cannot be read at all, or ""
// when it can (or does not exist yet on a host where /var/lib does). A
// generator runs before local file systems are mounted: on a host with a
// separate /var, neither the state directory nor its parent exist then.
// Every other error to stat it is reported as it is.
func StateProblem(state string) string {
	_, err := os.Stat(state)
	switch {
	case err == nil:
		return ""
	case errors.Is(err, fs.ErrNotExist):
		if _, perr := os.Stat(filepath.Dir(state)); errors.Is(perr, fs.ErrNotExist) {
			return fmt.Sprintf("%s does not exist, nor does %s (is it on a file system not mounted yet?)", state, filepath.Dir(state))
		}
		return ""
	}
	return fmt.Sprintf("cannot read %s: %v", state, err)
}

// WithLastGood gives every site file with mistakes the units of the last
// good copy of it, which `sitectl prepare` keeps in the site's state
// directory each time the site's service starts: an operator's typo plus
// any daemon-reload (apt runs one on every upgrade) must not take a running
// site off its socket. The copy is read and checked exactly as a site file
// is; its Site.File is the copy's path, so its units say where they come
// from (units.FromLastGood). A file whose name is not a site name, or whose
// copy is missing, cannot be read or has mistakes of its own, is skipped as
// before. A site file that is gone is not here at all: deleting a file is
// intent, not a mistake. stateProblem is StateProblem of the state
// directory.
//
// The copies and the valid sites are then checked against each other as
// the files of the directory are (site.Settle with held): of two claiming
// a listener, the site that had it keeps it. A site running from its copy
// keeps its listener when a new or edited file claims it, as a site
// whose file is fine does; that file becomes a file with mistakes in turn
// (res.Errors), and goes back to its own copy, if it has one.
func WithLastGood(res site.Result, opts units.Options, stateProblem string, held site.Held) (site.Result, []Outcome) {
	var outcomes []Outcome
	index := map[string]int{}
	mistake := func(file string, n int) {
		if i, ok := index[file]; ok {
			outcomes[i].Mistakes += n
			return
		}
		index[file] = len(outcomes)
		outcomes = append(outcomes, Outcome{File: file, Mistakes: n})
	}
	for _, e := range res.Errors {
		mistake(e.File, max(1, e.More)) // one line stands for More not listed
	}
	res.Sites = slices.Clone(res.Sites)
	copies := map[string]*site.Site{} // by the file with mistakes
	recovered := map[string][]byte{}  // by the file with mistakes
	tried := map[string]bool{}
	var sources map[string]string
	sourcesRead := false
	recorded := func(name string) ([]byte, bool) {
		if !sourcesRead {
			sources, _ = modes.Store{Dir: opts.Dirs.State}.GeneratedSources()
			sourcesRead = true
		}
		src, ok := sources[name]
		return []byte(src), ok
	}
	// Each round either ends or moves a valid site to the files with
	// mistakes: at most as many rounds as sites.
	for {
		for i := range outcomes {
			file := outcomes[i].File
			if tried[file] {
				continue
			}
			tried[file] = true
			s, data, err := lastGood(file, res.Sites, opts, stateProblem, recorded)
			if err != nil {
				outcomes[i].NoCopy = err.Error()
				continue
			}
			copies[file] = s
			if data != nil {
				recovered[file] = data
			}
		}
		if len(copies) == 0 {
			break // the valid files were settled among themselves (site.LoadDir)
		}
		fileOf := map[string]string{} // a copy's path: its site file
		// The sites pinned to their copies (WithPins) were settled
		// with the valid files already, and keep their listeners.
		all, pins := splitPinned(res.Sites, opts)
		for file, s := range copies {
			fileOf[s.File] = file
			all = append(all, s)
		}
		_, errs := site.SettleAgainst(all, pins, held)
		lost := false
		for _, e := range errs {
			if file, ok := fileOf[e.File]; ok {
				if copies[file] != nil {
					outcomes[index[file]].NoCopy = "its last good copy is not usable either: " + e.Error()
					delete(copies, file)
				}
				continue
			}
			res.Errors = append(res.Errors, e)
			mistake(e.File, max(1, e.More))
			res.Sites = slices.DeleteFunc(res.Sites, func(s *site.Site) bool { return s.File == e.File })
			lost = true
		}
		if !lost {
			break
		}
	}
	for i := range outcomes {
		s := copies[outcomes[i].File]
		if s == nil {
			continue
		}
		outcomes[i].LastGood = s.File
		outcomes[i].Recovered = recovered[outcomes[i].File]
		if fi, err := os.Stat(s.File); err == nil {
			outcomes[i].Saved = fi.ModTime()
		}
		res.Sites = append(res.Sites, s)
	}
	return res, outcomes
}

// splitPinned parts sites into those from their site files and those
// pinned to their last good copies (WithPins).
func splitPinned(sites []*site.Site, opts units.Options) (files, pinned []*site.Site) {
	for _, s := range sites {
		if s.File == opts.Dirs.LastGoodFile(s.Name) {
			pinned = append(pinned, s)
		} else {
			files = append(files, s)
		}
	}
	return files, pinned
}

// Settled is what the generator makes of the site directory's valid
// files and mistakes (res, from site.LoadDir and Checked): the pinned
// sites get their copies (WithPins), then the files with mistakes theirs
// (WithLastGood), each settled against the sites before it.
func Settled(res site.Result, opts units.Options, stateProblem string, held site.Held) (site.Result, []Outcome, []PinnedSite) {
	res, pinned := WithPins(res, opts, held)
	res, outcomes := WithLastGood(res, opts, stateProblem, held)
	return res, outcomes, pinned
}

// errNoName: the file is not named after a site, so it never had a copy.
var errNoName = errors.New("")

// lastGood reads and checks the last good copy of the site file file, on
// its own: WithLastGood checks it against the other sites. A site without
// a copy whose file the generator recorded when it last generated its
// units (recorded: a site that never started, whose socket listens on
// those units) gets that content as its copy, returned as data for the
// generator to keep there (Outcome.Recovered).
func lastGood(file string, valid []*site.Site, opts units.Options, stateProblem string, recorded func(name string) ([]byte, bool)) (s *site.Site, recovered []byte, err error) {
	name := site.NameFromFile(file)
	if site.ValidateName(name) != nil || file != opts.Dirs.SiteFile(name) {
		return nil, nil, errNoName
	}
	for _, s := range valid {
		if s.Name == name {
			return nil, nil, errNoName // declared by another file
		}
	}
	copyPath := opts.Dirs.LastGoodFile(name)
	what := "its last good copy"
	data, err := site.ReadFile(copyPath)
	switch {
	case errors.Is(err, fs.ErrNotExist) && stateProblem != "":
		return nil, nil, fmt.Errorf("its last good copy cannot be read: %s", stateProblem)
	case errors.Is(err, fs.ErrNotExist):
		src, ok := recorded(name)
		if !ok {
			return nil, nil, errors.New("it has no last good copy (its service has not started since sitectl keeps one)")
		}
		data, recovered, what = src, src, "the version its units were last generated from, which stands in for a last good copy (its service has not started since sitectl keeps one),"
	case err != nil:
		return nil, nil, fmt.Errorf("its last good copy cannot be read: %w", err)
	}
	r := site.LoadCopy(copyPath, name, data)
	if len(r.Errors) > 0 {
		return nil, nil, fmt.Errorf("%s is not usable either: %v", what, r.Errors[0])
	}
	s = r.Sites[0]
	if err := units.Check(s, opts); err != nil {
		return nil, nil, fmt.Errorf("%s is not usable either: %w", what, err)
	}
	// The units record what the site file was, so that a fix of it
	// (SourcePath= is the copy) is seen as a change (SourceChanged).
	if data, err := site.ReadFile(file); err == nil {
		s.FileDigest = site.Digest(data)
	}
	return s, recovered, nil
}

// OutOfService returns the names of the sites taken out of service with
// `sitectl disable`: those whose marker is in the state directory. Where
// the state directory cannot be read (StateProblem), no site is.
func OutOfService(sites []*site.Site, opts units.Options) map[string]bool {
	out := map[string]bool{}
	marked := make([]bool, len(sites))
	par.Each(len(sites), func(i int) {
		_, err := os.Lstat(opts.Dirs.OutOfServiceFile(sites[i].Name))
		marked[i] = err == nil
	})
	for i, s := range sites {
		if marked[i] {
			out[s.Name] = true
		}
	}
	return out
}
