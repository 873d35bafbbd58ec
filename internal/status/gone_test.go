package status

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/sitectl/sitectl/internal/control"
)

// A site file deleted (or renamed) while its site served: its units run on
// until sitectl remove. list and status show it as gone, with what its
// units do; a site whose units are all inactive is not there at all, and
// the trigger's service is never taken for a site.
func TestSitesWhoseFileIsGoneButWhoseUnitsRun(t *testing.T) {
	d, sd := setup(t)
	if err := os.MkdirAll(filepath.Dir(d.LastGoodFile("deleted")), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(d.LastGoodFile("deleted"), []byte("exec = [\"/usr/bin/app\"]\n[[listen]]\naddress = \"127.0.0.1:9100\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	sd.units = append(sd.units,
		loaded("site-deleted.socket", "active", "listening"), control.Unit{Name: "site-deleted.service", LoadState: "not-found", ActiveState: "active", SubState: "running", MainPID: 99},
		loaded("site-nocopy.socket", "active", "listening"), loaded("site-nocopy.service", "inactive", "dead"),
		loaded("site-stale.socket", "inactive", "dead"), loaded("site-stale.service", "inactive", "dead"),
		loaded("site-run-reload.service", "activating", "start"),
	)
	for _, brief := range []bool{true, false} {
		res, err := Gather(context.Background(), Sources{Dirs: d, Systemd: sd}, Request{Brief: brief})
		if err != nil {
			t.Fatal(err)
		}
		got := bySite(res.Sites)
		del, nocopy := got["deleted"], got["nocopy"]
		if del.SiteFile.State != "gone" || del.State != "running" || del.MainPID != 99 || !slices.Equal(del.Listen, []string{"127.0.0.1:9100"}) || del.Sockets[0].Unit != "site-deleted.socket" {
			t.Errorf("brief %v: deleted %+v", brief, del)
		}
		if nocopy.SiteFile.State != "gone" || nocopy.State != "idle" || nocopy.Socket != "listening" {
			t.Errorf("brief %v: nocopy %+v", brief, nocopy)
		}
		for _, name := range []string{"stale", "run-reload"} {
			if s, ok := got[name]; ok {
				t.Errorf("brief %v: %s is listed: %+v", brief, name, s)
			}
		}
		if got["run"].SiteFile.State != "ok" {
			t.Errorf("a site with its file is %+v", got["run"].SiteFile)
		}
	}
	res, err := Gather(context.Background(), Sources{Dirs: d, Systemd: sd}, Request{Names: []string{"deleted", "stale", "never"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Sites) != 1 || res.Sites[0].Site != "deleted" || res.Sites[0].SiteFile.State != "gone" || !slices.Equal(res.Missing, []string{"stale", "never"}) {
		t.Errorf("status deleted stale never: sites %+v, missing %v", res.Sites, res.Missing)
	}
}

// A socket unit that systemd loaded again from no file while it listened
// (the site file deleted or renamed, or the unit masked, then a
// daemon-reload) says active, but systemd closed its sockets: with no
// process serving on a copy of them, nothing listens there and visitors
// are refused. list and status said the site was idle, exit 0.
func TestSocketUnitLoadedFromNoFileHoldsNoSocket(t *testing.T) {
	d, sd := setup(t)
	sd.units = append(sd.units,
		control.Unit{Name: "site-deleted.socket", LoadState: "not-found", ActiveState: "active", SubState: "listening"},
		control.Unit{Name: "site-deleted.service", LoadState: "not-found", ActiveState: "inactive", SubState: "dead"},
		control.Unit{Name: "site-served.socket", LoadState: "not-found", ActiveState: "active", SubState: "running"},
		control.Unit{Name: "site-served.service", LoadState: "not-found", ActiveState: "active", SubState: "running", MainPID: 99},
	)
	// A valid site whose socket unit was masked while it listened.
	if err := os.WriteFile(d.SiteFile("masked"), []byte("exec = [\"/usr/bin/app\"]\n[[listen]]\naddress = \"127.0.0.1:9300\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	sd.units = append(sd.units,
		control.Unit{Name: "site-masked.socket", LoadState: "masked", ActiveState: "active", SubState: "listening"},
		loaded("site-masked.service", "inactive", "dead"))
	check := func(what string, got map[string]Site) {
		t.Helper()
		for _, name := range []string{"deleted", "masked"} {
			s, ok := got[name]
			if !ok || s.State != "stopped" || s.Running || s.Socket != "stopped" || s.Sockets[0].State != "stopped" {
				t.Errorf("%s: %s %+v, want stopped, not running", what, name, s)
			}
		}
		// A process that serves holds its own copy of the sockets.
		if s := got["served"]; s.State != "running" || !s.Running || s.Socket != "listening" {
			t.Errorf("%s: served %+v, want running", what, s)
		}
	}
	for _, brief := range []bool{true, false} {
		res, err := Gather(context.Background(), Sources{Dirs: d, Systemd: sd}, Request{Brief: brief})
		if err != nil {
			t.Fatal(err)
		}
		check(fmt.Sprintf("every site, brief %v", brief), bySite(res.Sites))
	}
	res, err := Gather(context.Background(), Sources{Dirs: d, Systemd: sd}, Request{Names: []string{"deleted", "masked", "served"}})
	if err != nil {
		t.Fatal(err)
	}
	check("by name", bySite(res.Sites))
}
