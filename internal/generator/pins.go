package generator

import (
	"fmt"
	"slices"

	"github.com/sitectl/sitectl/internal/modes"
	"github.com/sitectl/sitectl/internal/site"
	"github.com/sitectl/sitectl/internal/units"
)

// PinnedSite is a valid site file that failed to start and is pinned
// (modes.Pin): its units come from the last good copy of it.
type PinnedSite struct {
	File     string    // the site file that failed
	LastGood string    // the copy the units come from
	Pin      modes.Pin // when and why
}

// WithPins gives every valid site that is pinned the units of its last
// good copy instead of its file's: the file, as it is, failed to start,
// and sitectl rolled the site back to the version it ran before. A pin
// holds only while the file's content is what failed; a copy that cannot
// be read or no longer checks out holds nothing, and the site gets its
// file's units as before. Only sites with a pin cost anything beyond one
// read of the pins' directory.
//
// The copies are then settled against the other valid sites as the files
// of the directory are (site.Settle with held): a pinned site listens
// where its copy says, not where its failed file does, so a new file
// that claims the copy's listener (found free in the files) gets the
// error and is moved to res.Errors, where WithLastGood, which runs next,
// gives it its own last good copy if it has one. A copy that loses holds
// no pin. res holds valid files only (WithLastGood has not run).
func WithPins(res site.Result, opts units.Options, held site.Held) (site.Result, []PinnedSite) {
	st := modes.Store{Dir: opts.Dirs.State}
	names := st.PinnedNames()
	if len(names) == 0 {
		return res, nil
	}
	var pinned []PinnedSite
	sites := slices.Clone(res.Sites)
	files := map[*site.Site]*site.Site{} // a pinned copy: the site of its file
	for i, s := range res.Sites {
		if !names[s.Name] || s.File != opts.Dirs.SiteFile(s.Name) {
			continue
		}
		data, err := site.ReadFile(s.File)
		if err != nil {
			continue
		}
		p, err := st.ReadPin(s.Name)
		if err != nil || !p.Matches(data) || p.Undone {
			continue
		}
		others := slices.DeleteFunc(slices.Clone(sites), func(o *site.Site) bool { return o.Name == s.Name })
		// A pin is to the copy a start kept (modes.Pin), never to the
		// generator's record.
		good, _, err := lastGood(s.File, others, opts, "", func(string) ([]byte, bool) { return nil, false })
		if err != nil {
			continue
		}
		sites[i] = good
		files[good] = s
		pinned = append(pinned, PinnedSite{File: s.File, LastGood: good.File, Pin: *p})
	}
	// Each round ends, or takes a pin back or a site out: at most as
	// many rounds as sites.
	for len(files) > 0 {
		_, errs := site.Settle(sites, held)
		blamed := map[string]bool{}
		for _, e := range errs {
			blamed[e.File] = true
		}
		changed := false
		for i, s := range sites {
			if s == nil || !blamed[s.File] {
				continue
			}
			if file, ok := files[s]; ok {
				delete(files, s)
				sites[i] = file
				pinned = slices.DeleteFunc(pinned, func(p PinnedSite) bool { return p.LastGood == s.File })
			} else {
				sites[i] = nil
			}
			changed = true
		}
		for _, e := range errs {
			if !slices.ContainsFunc(pinned, func(p PinnedSite) bool { return p.LastGood == e.File }) && blamedFile(res.Sites, e.File) {
				res.Errors = append(res.Errors, e)
			}
		}
		sites = slices.DeleteFunc(sites, func(s *site.Site) bool { return s == nil })
		if !changed {
			break
		}
	}
	res.Sites = sites
	return res, pinned
}

// blamedFile says whether file is the file of one of sites (not a copy).
func blamedFile(sites []*site.Site, file string) bool {
	return slices.ContainsFunc(sites, func(s *site.Site) bool { return s.File == file })
}

// PinnedLine is the line that says a site runs its last good version
// because its file failed to start.
func PinnedLine(p PinnedSite) string {
	return fmt.Sprintf("%s failed to start on %s and is pinned: units generated from %s, the version the site ran before, until the file changes (%s)",
		p.File, p.Pin.Since.Format("2006-01-02 15:04:05 MST"), p.LastGood, p.Pin.Reason)
}
