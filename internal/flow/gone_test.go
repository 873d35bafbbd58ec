package flow

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/sitectl/sitectl/internal/control"
	"github.com/sitectl/sitectl/internal/site"
)

// startedWith makes the site's service started from src, as the last good
// copy says.
func startedWith(t *testing.T, e *Env, src string) {
	t.Helper()
	was, err := site.Parse("/etc/sitectl/sites/karl.toml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	e.Started = func(string) (*site.Site, error) { return was, nil }
}

// karl as it was started: an admin listener and a reload trigger, which
// testSite no longer has.
const karlWithMore = `exec = ["/bin/app"]
readiness = "notify"
reload_trigger = "/srv/karl/restart.txt"
[[listen]]
address = "127.0.0.1:8080"
[[listen]]
address = "127.0.0.1:8081"
name = "admin"
`

// A restart after a named listener and the reload trigger were removed
// from the file stops the units systemd still runs for them without a
// file, and says so; units that have a file, or are stopped already, are
// left alone.
func TestChangeStopsTheUnitsOfWhatTheFileNoLongerDeclares(t *testing.T) {
	for _, c := range []struct {
		name   string
		others map[string]control.Unit
		stuck  bool
		want   []string // stopped and reported
		warned bool
	}{
		{"not-found and active", map[string]control.Unit{
			"site-karl@admin.socket":   {Name: "site-karl@admin.socket", LoadState: "not-found", ActiveState: "active", SubState: "running"},
			"site-karl-reload.path":    {Name: "site-karl-reload.path", LoadState: "not-found", ActiveState: "active", SubState: "waiting"},
			"site-karl-reload.service": {Name: "site-karl-reload.service", LoadState: "not-found", ActiveState: "inactive", SubState: "dead"},
		}, false, []string{"site-karl@admin.socket", "site-karl-reload.path"}, false},
		{"units not reloaded yet: they still have their files", map[string]control.Unit{
			"site-karl@admin.socket":   {Name: "site-karl@admin.socket", LoadState: "loaded", ActiveState: "active"},
			"site-karl-reload.path":    {Name: "site-karl-reload.path", LoadState: "loaded", ActiveState: "active"},
			"site-karl-reload.service": {Name: "site-karl-reload.service", LoadState: "loaded", ActiveState: "inactive"},
		}, false, nil, false},
		{"a stop that leaves the unit active is a warning", map[string]control.Unit{
			"site-karl@admin.socket":   {Name: "site-karl@admin.socket", LoadState: "not-found", ActiveState: "active"},
			"site-karl-reload.path":    {Name: "site-karl-reload.path", LoadState: "not-found", ActiveState: "inactive"},
			"site-karl-reload.service": {Name: "site-karl-reload.service", LoadState: "not-found", ActiveState: "inactive"},
		}, true, nil, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			e, f := newEnv(t)
			startedWith(t, e, karlWithMore)
			f.others = c.others
			if c.stuck {
				f.stuck = map[string]bool{"site-karl@admin.socket": true}
			}
			rep, err := Restart(context.Background(), e, testSite(t), 0)
			if err != nil {
				t.Fatal(err)
			}
			if rep.Result != "ok" || !slices.Equal(rep.UnitsStopped, c.want) {
				t.Errorf("result %s, units stopped %v, want %v", rep.Result, rep.UnitsStopped, c.want)
			}
			for _, u := range c.want {
				if !slices.Contains(f.stops, u) {
					t.Errorf("%s was not stopped: stops %v", u, f.stops)
				}
			}
			for _, u := range f.stops {
				if u != "site-karl.service" && !slices.Contains(c.want, u) && !c.stuck {
					t.Errorf("%s was stopped", u)
				}
			}
			warned := slices.ContainsFunc(rep.Warnings, func(w string) bool { return strings.Contains(w, "`systemctl stop site-karl@admin.socket`") })
			if warned != c.warned {
				t.Errorf("warnings %q", rep.Warnings)
			}
		})
	}
}

// A change of a file that declares all it did stops nothing, and its
// report says so with an empty list.
func TestChangeWithNothingGoneStopsNothing(t *testing.T) {
	e, f := newEnv(t)
	startedWith(t, e, `exec = ["/bin/app"]
readiness = "notify"
[[listen]]
address = "127.0.0.1:8080"
`)
	f.others = map[string]control.Unit{}
	rep, err := Restart(context.Background(), e, testSite(t), 0)
	if err != nil || len(rep.UnitsStopped) != 0 || len(f.stops) != 0 {
		t.Fatalf("err %v, units stopped %v, stops %v", err, rep.UnitsStopped, f.stops)
	}
	b, _ := json.Marshal(rep)
	if !strings.Contains(string(b), `"units_stopped":[]`) {
		t.Errorf("json: %s", b)
	}
}

// The copy of the site file the service started from is read once per
// change: for what is gone and for whether a handover can apply the file
// (an overlap site's reload needs both).
func TestStartedCopyIsReadOncePerChange(t *testing.T) {
	e, f := newEnv(t)
	s := overlapSite(t, "")
	started := *s
	started.ReloadTrigger = "/srv/karl/restart.txt"
	reads := 0
	e.Started = func(string) (*site.Site, error) { reads++; return &started, nil }
	f.others = map[string]control.Unit{}
	if _, err := Reload(context.Background(), e, s, 0); err != nil {
		t.Fatal(err)
	}
	if reads != 1 {
		t.Errorf("the started copy was read %d times, want 1", reads)
	}
}
