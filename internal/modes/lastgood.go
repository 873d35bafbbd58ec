package modes

import "github.com/sitectl/sitectl/internal/site"

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
