package modes

import (
	"github.com/sitectl/sitectl/internal/site"
)

// LastGood reads the copy of a site's file that sitectl prepare keeps
// when it starts the service (paths.Dirs.LastGoodFile:
// STATE/sites/NAME/last-good.toml, root-only): what the generator emits,
// and the site runs, while its current file is invalid. ok is false when
// there is no copy or it cannot be read or parsed; status and logs then
// know the site by its name only.
func (st Store) LastGood(name string) (s *site.Site, ok bool) {
	s, err := st.ReadLastGood(name)
	return s, err == nil && s != nil
}

// Held is site.Held of this state directory: site s held each of ls when
// its service last started if the last good copy of its file, which
// prepare keeps at each start, declares each of them. A site without a
// copy, or whose copy cannot be read (a user other than root, a state
// directory not mounted yet), is not known to hold any.
func (st Store) Held(s *site.Site, ls []site.Listener) bool {
	good, err := st.ReadLastGood(s.Name)
	if err != nil || good == nil {
		return false
	}
	return declaresAll(good.Listeners, ls)
}
