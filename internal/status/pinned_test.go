package status

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/sitectl/sitectl/internal/modes"
	"github.com/sitectl/sitectl/internal/site"
)

// list and status show a site pinned to its last good version while its
// file is what failed to start, and not once the file changed.
func TestPinnedSiteIsShown(t *testing.T) {
	d, sd := setup(t)
	failed, err := os.ReadFile(d.SiteFile("run"))
	if err != nil {
		t.Fatal(err)
	}
	st := modes.Store{Dir: d.State}
	if err := st.Pin(&site.Site{Name: "run"}, failed, failed, "exited with status 1", 0, time.Now()); err != nil {
		t.Fatal(err)
	}
	for _, req := range []Request{{Brief: true}, {}, {Names: []string{"run"}}} {
		res, err := Gather(context.Background(), Sources{Dirs: d, Systemd: sd}, req)
		if err != nil {
			t.Fatal(err)
		}
		run := bySite(res.Sites)["run"]
		if p := run.SiteFile.Pinned; p == nil || p.Reason != "exited with status 1" || p.Copy != d.LastGoodFile("run") || run.SiteFile.State != "ok" {
			t.Errorf("%+v: run's file %+v", req, run.SiteFile)
		}
		if p := bySite(res.Sites)["idle"].SiteFile.Pinned; p != nil {
			t.Errorf("%+v: a site without a pin is pinned: %+v", req, p)
		}
	}
	if err := os.WriteFile(d.SiteFile("run"), append(failed, "# fixed\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := Gather(context.Background(), Sources{Dirs: d, Systemd: sd}, Request{Brief: true})
	if err != nil {
		t.Fatal(err)
	}
	if p := bySite(res.Sites)["run"].SiteFile.Pinned; p != nil {
		t.Errorf("the changed file is still pinned: %+v", p)
	}
}
