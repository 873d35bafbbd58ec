package generator

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sitectl/sitectl/internal/modes"
	"github.com/sitectl/sitectl/internal/paths"
	"github.com/sitectl/sitectl/internal/site"
	"github.com/sitectl/sitectl/internal/units"
)

// A valid site file that failed to start and is pinned gets the units of
// the version the site ran before, until its content changes; other sites,
// and a site whose file changed since its pin, get their files' units.
func TestPinnedSiteGetsTheUnitsOfTheVersionThatRan(t *testing.T) {
	root := t.TempDir()
	dirs := paths.Dirs{Config: filepath.Join(root, "etc"), State: filepath.Join(root, "state")}
	failed := "exec = [\"/bin/app\", \"--module\", \"nosuch\"]\n[[listen]]\naddress = \"127.0.0.1:8080\"\n"
	write := func(name, content string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(name, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(dirs.SiteFile("shop"), failed)
	write(dirs.SiteFile("blog"), strings.Replace(failed, "8080", "8082", 1)+"# fixed since\n")
	write(dirs.SiteFile("ok"), "exec = [\"/bin/app\"]\n[[listen]]\naddress = \"127.0.0.1:8081\"\n")
	st := modes.Store{Dir: dirs.State}
	for _, name := range []string{"shop", "blog"} {
		good := strings.Replace(goodSite, "8080", map[string]string{"shop": "8080", "blog": "8082"}[name], 1)
		if err := st.Pin(&site.Site{Name: name}, []byte(good), []byte(strings.Replace(failed, "8080", map[string]string{"shop": "8080", "blog": "8082"}[name], 1)), "it exited", 0, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	res, err := site.LoadDir(dirs.Config, nil)
	if err != nil || len(res.Sites) != 3 {
		t.Fatal(err, res.Errors)
	}
	opts := units.Options{Dirs: dirs}
	res, pinned := WithPins(res, opts)
	from := map[string]string{}
	for _, s := range res.Sites {
		from[s.Name] = s.File
	}
	if from["shop"] != dirs.LastGoodFile("shop") || from["blog"] != dirs.SiteFile("blog") || from["ok"] != dirs.SiteFile("ok") {
		t.Errorf("units from %v", from)
	}
	if len(pinned) != 1 || pinned[0].File != dirs.SiteFile("shop") || !strings.Contains(PinnedLine(pinned[0]), "failed to start on") {
		t.Errorf("pinned %+v", pinned)
	}
	for _, s := range res.Sites {
		if s.Name != "shop" {
			continue
		}
		svc := units.Render(s, opts)[1].Content
		if strings.Contains(svc, "nosuch") || !strings.Contains(svc, "failed to start") {
			t.Errorf("the pinned site's service:\n%s", svc)
		}
	}
}
