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
	res, pinned := WithPins(res, opts, nil)
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

// A site pinned to its last good copy listens where the copy says, not
// where its failed file does: a new file that claims the copy's port
// (the operator reads the files to find a free one) must not get units
// on it too, or at the next boot either socket may take the port and the
// running site can lose it. The newcomer gets the error, as it would
// against a site running from the last good copy of a file with a typo.
func TestPinnedSiteKeepsTheListenerOfItsCopy(t *testing.T) {
	root := t.TempDir()
	dirs := paths.Dirs{Config: filepath.Join(root, "etc"), State: filepath.Join(root, "state")}
	if err := os.MkdirAll(dirs.Config, 0o755); err != nil {
		t.Fatal(err)
	}
	failed := strings.Replace(goodSite, "8080", "8090", 1) + "# moved, and failed to start\n"
	if err := os.WriteFile(dirs.SiteFile("shop"), []byte(failed), 0o644); err != nil {
		t.Fatal(err)
	}
	// able sorts first, and claims the port shop runs on.
	if err := os.WriteFile(dirs.SiteFile("able"), []byte(goodSite), 0o644); err != nil {
		t.Fatal(err)
	}
	st := modes.Store{Dir: dirs.State}
	if err := st.Pin(&site.Site{Name: "shop"}, []byte(goodSite), []byte(failed), "it exited", 0, time.Now()); err != nil {
		t.Fatal(err)
	}
	// The generator's last run gave shop's units the copy's listener.
	copied := site.LoadBytes(dirs.LastGoodFile("shop"), "shop", []byte(goodSite), nil)
	if err := st.WriteGenerated(copied.Sites); err != nil {
		t.Fatal(err)
	}

	held := st.Holders()
	res, err := site.LoadDir(dirs.Config, held)
	if err != nil || len(res.Sites) != 2 {
		t.Fatal(err, res.Errors)
	}
	opts := units.Options{Dirs: dirs}
	res, pinned, outcomes := generate(res, opts, held)
	on := map[string][]string{}
	from := map[string]string{}
	for _, s := range res.Sites {
		from[s.Name] = s.File
		for _, l := range s.Listeners {
			on[l.Endpoint()] = append(on[l.Endpoint()], s.Name)
		}
	}
	if got := on["127.0.0.1:8080"]; len(got) != 1 || got[0] != "shop" {
		t.Errorf("units on 127.0.0.1:8080 for %v (sites from %v)", got, from)
	}
	if len(pinned) != 1 || from["shop"] != dirs.LastGoodFile("shop") {
		t.Errorf("pinned %+v, shop's units from %s", pinned, from["shop"])
	}
	lines, _ := Mistakes(res.Errors, outcomes)
	if !strings.Contains(strings.Join(lines, "\n"), dirs.SiteFile("able")+":3:") {
		t.Errorf("able is not blamed:\n%s", strings.Join(lines, "\n"))
	}
}

// generate is what the generator makes of res, in its order.
func generate(res site.Result, opts units.Options, held site.Held) (site.Result, []PinnedSite, []Outcome) {
	res = Checked(res, opts)
	res, outcomes, pinned := Settled(res, opts, StateProblem(opts.Dirs.State), held)
	return res, pinned, outcomes
}
