package units_test

import (
	"slices"
	"testing"

	"github.com/sitectl/sitectl/internal/site"
	"github.com/sitectl/sitectl/internal/units"
)

func parseSite(t *testing.T, src string) *site.Site {
	t.Helper()
	s, err := site.Parse("/etc/sitectl/sites/shop.toml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

const (
	shopOne = "exec = [\"/bin/app\"]\n[[listen]]\naddress = \"127.0.0.1:8080\"\n"
	// two listener names, the second in a unit of its own, and a trigger
	shopTwo = "exec = [\"/bin/app\"]\nreload_trigger = \"/srv/shop/restart.txt\"\n" +
		"[[listen]]\naddress = \"127.0.0.1:8080\"\nname = \"http\"\n" +
		"[[listen]]\naddress = \"127.0.0.1:8081\"\nname = \"admin\"\n"
	// the admin listener only: it takes the site's plain socket unit
	shopAdmin = "exec = [\"/bin/app\"]\n[[listen]]\naddress = \"127.0.0.1:8081\"\nname = \"admin\"\n"
)

// Names must be the units Render writes, whatever the site declares: the
// tidy-up after a change stops what is in Gone, so a name Names misses
// would be left running, and one it adds would be stopped.
func TestNamesAreWhatRenderWrites(t *testing.T) {
	for _, src := range []string{shopOne, shopTwo, shopAdmin,
		"exec = [\"/bin/app\"]\n[[listen]]\naddress = \"127.0.0.1:8080\"\n[[listen]]\npath = \"/run/shop/s\"\nname = \"b\"\n[[listen]]\naddress = \"[::1]:8080\"\nname = \"b\"\n"} {
		s := parseSite(t, src)
		var rendered []string
		for _, u := range units.Render(s, units.Options{}) {
			rendered = append(rendered, u.Name)
		}
		if got := units.Names(s); !slices.Equal(got, rendered) {
			t.Errorf("Names = %v, Render writes %v\n%s", got, rendered, src)
		}
	}
}

func TestGone(t *testing.T) {
	one, two, admin := parseSite(t, shopOne), parseSite(t, shopTwo), parseSite(t, shopAdmin)
	for _, c := range []struct {
		name     string
		was, now *site.Site
		want     []string
	}{
		{"nothing removed", one, one, nil},
		{"a listener and the trigger added", one, two, nil},
		{"a named listener and the trigger removed", two, one, []string{"site-shop@admin.socket", "site-shop-reload.path", "site-shop-reload.service"}},
		{"the first listener removed: the second takes the plain socket unit", two, admin, []string{"site-shop@admin.socket", "site-shop-reload.path", "site-shop-reload.service"}},
	} {
		if got := units.Gone(c.was, c.now); !slices.Equal(got, c.want) {
			t.Errorf("%s: Gone = %v, want %v", c.name, got, c.want)
		}
	}
}
