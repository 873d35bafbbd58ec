package status

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sitectl/sitectl/internal/cleanup"
	"github.com/sitectl/sitectl/internal/control"
	"github.com/sitectl/sitectl/internal/paths"
	"github.com/sitectl/sitectl/internal/site"
)

// fakeSystemd answers as systemd's listing would: only loaded units.
type fakeSystemd struct {
	units  []control.Unit
	listed [][]string // patterns of each Units call
	named  [][]string
	briefs int // List calls
}

func (f *fakeSystemd) Units(_ context.Context, patterns ...string) ([]control.Unit, error) {
	f.listed = append(f.listed, patterns)
	var out []control.Unit
	for _, u := range f.units {
		for _, p := range patterns {
			if ok, _ := filepath.Match(p, u.Name); ok {
				out = append(out, u)
				break
			}
		}
	}
	return out, nil
}

// List is Units as a listing of thousands of sites reads it: an inactive
// service's details are not read (control.Manager.List).
func (f *fakeSystemd) List(ctx context.Context, patterns ...string) ([]control.Unit, error) {
	f.briefs++
	us, err := f.Units(ctx, patterns...)
	for i, u := range us {
		if u.ActiveState == "inactive" && strings.HasSuffix(u.Name, ".service") {
			us[i] = control.Unit{Name: u.Name, LoadState: u.LoadState, ActiveState: u.ActiveState, SubState: u.SubState, Result: "success"}
		}
	}
	return us, err
}

func (f *fakeSystemd) UnitsByName(_ context.Context, names ...string) ([]control.Unit, error) {
	f.named = append(f.named, names)
	var out []control.Unit
	for _, n := range names {
		i := slices.IndexFunc(f.units, func(u control.Unit) bool { return u.Name == n })
		if i < 0 {
			out = append(out, control.Unit{Name: n, LoadState: "not-found", ActiveState: "inactive", SubState: "dead"})
			continue
		}
		out = append(out, f.units[i])
	}
	return out, nil
}

func loaded(name, active, sub string) control.Unit {
	return control.Unit{Name: name, LoadState: "loaded", ActiveState: active, SubState: sub}
}

const siteTOML = "exec = [\"/usr/bin/app\"]\n[[listen]]\naddress = \"127.0.0.1:%PORT%\"\n"

func setup(t *testing.T) (paths.Dirs, *fakeSystemd) {
	t.Helper()
	d := paths.Dirs{Config: t.TempDir(), State: t.TempDir()}
	write := func(p, content string) {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for i, name := range []string{"idle", "down", "loop", "run", "failed"} {
		write(d.SiteFile(name), strings.ReplaceAll(siteTOML, "%PORT%", string(rune('1'+i))+"000"))
	}
	// Two sockets, one of them stopped.
	write(d.SiteFile("half"), "exec = [\"/usr/bin/app\"]\n[[listen]]\naddress = \"127.0.0.1:7000\"\n[[listen]]\nname = \"admin\"\naddress = \"127.0.0.1:7001\"\n")
	// Invalid, with a last good version that has a trigger.
	write(d.SiteFile("broken"), "exec = [\"/usr/bin/app\"]\ndrain_timout = \"5s\"\n[[listen]]\naddress = \"127.0.0.1:8000\"\n")
	write(d.LastGoodFile("broken"), "exec = [\"/usr/bin/app\"]\nreload_trigger = \"/srv/broken/restart.txt\"\n[[listen]]\naddress = \"127.0.0.1:8000\"\n")
	// Invalid, never good.
	write(d.SiteFile("gone"), "exec = 1\n")
	// Not a site name: skipped with a warning.
	write(filepath.Join(d.Config, "Bad_Name.toml"), siteTOML)
	sd := &fakeSystemd{units: []control.Unit{
		loaded("site-idle.socket", "active", "listening"), loaded("site-idle.service", "inactive", "dead"),
		loaded("site-down.socket", "inactive", "dead"), loaded("site-down.service", "inactive", "dead"),
		loaded("site-loop.socket", "active", "listening"), {Name: "site-loop.service", LoadState: "loaded", ActiveState: "activating", SubState: "auto-restart", NRestarts: 4},
		loaded("site-run.socket", "active", "running"), {Name: "site-run.service", LoadState: "loaded", ActiveState: "active", SubState: "running", MainPID: 42},
		loaded("site-failed.socket", "active", "listening"), {Name: "site-failed.service", LoadState: "loaded", ActiveState: "failed", SubState: "failed", Result: "start-limit-hit", Since: time.Unix(1700000000, 0)},
		loaded("site-half.socket", "active", "listening"), loaded("site-half@admin.socket", "failed", "failed"), loaded("site-half.service", "inactive", "dead"),
		loaded("site-broken.socket", "active", "listening"), {Name: "site-broken.service", LoadState: "loaded", ActiveState: "active", SubState: "running", MainPID: 7},
		loaded("site-broken-reload.path", "active", "waiting"),
	}}
	return d, sd
}

func bySite(ss []Site) map[string]Site {
	m := map[string]Site{}
	for _, s := range ss {
		m[s.Site] = s
	}
	return m
}

// TestStatesTellDownFromIdle: a stopped socket, an idle site, a crash loop
// and a failed socket each have their own state and exit status.
func TestStatesTellDownFromIdle(t *testing.T) {
	d, sd := setup(t)
	res, err := Gather(context.Background(), Sources{Dirs: d, Systemd: sd}, Request{Brief: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(sd.listed) != 1 || len(sd.named) != 0 || sd.briefs != 1 {
		t.Errorf("list asked systemd %d listings (%d brief) and %d by name, want one brief listing", len(sd.listed), sd.briefs, len(sd.named))
	}
	if len(res.Skipped) != 1 || !strings.Contains(res.Skipped[0].Error(), "Bad_Name.toml") {
		t.Errorf("skipped: %v", res.Skipped)
	}
	got := bySite(res.Sites)
	for name, want := range map[string]struct {
		state, socket string
		running       bool
	}{
		"idle":   {"idle", "listening", true},
		"down":   {"stopped", "stopped", false},
		"loop":   {"restarting", "listening", false},
		"run":    {"running", "listening", true},
		"failed": {"failed", "listening", false},
		"half":   {"failed", "failed", false},
		"broken": {"running", "listening", true},
		"gone":   {"stopped", "stopped", false},
	} {
		s, ok := got[name]
		if !ok {
			t.Errorf("no status for %s", name)
			continue
		}
		if s.State != want.state || s.Socket != want.socket || s.Running != want.running {
			t.Errorf("%s: state %s socket %s running %v, want %+v", name, s.State, s.Socket, s.Running, want)
		}
	}
	if n := len(res.Sites); n != 8 {
		t.Errorf("%d sites, want 8", n)
	}
	if l := got["loop"]; l.NRestarts != 4 {
		t.Errorf("loop: n_restarts %d", l.NRestarts)
	}
	if h := got["half"]; len(h.Sockets) != 2 || h.Sockets[1].Unit != "site-half@admin.socket" || h.Sockets[1].State != "failed" {
		t.Errorf("half: sockets %+v", h.Sockets)
	}
}

// TestInvalidSinceIsWhenTheFileChanged: a broken file copied in with its
// old modification time (cp -p, rsync -t) is invalid since it was put in
// place, not since the time it carries.
func TestInvalidSinceIsWhenTheFileChanged(t *testing.T) {
	d, sd := setup(t)
	before := time.Now().Add(-time.Second)
	old := time.Date(2020, 11, 21, 6, 20, 0, 0, time.UTC)
	if err := os.Chtimes(d.SiteFile("broken"), old, old); err != nil {
		t.Fatal(err)
	}
	res, err := Gather(context.Background(), Sources{Dirs: d, Systemd: sd}, Request{Names: []string{"broken"}})
	if err != nil {
		t.Fatal(err)
	}
	f := bySite(res.Sites)["broken"].SiteFile
	if f.State != "invalid" || f.InvalidSince == nil || f.InvalidSince.Before(before) {
		t.Errorf("invalid since %v, want when the file was changed (after %s): %+v", f.InvalidSince, before, f)
	}
}

// TestInvalidSiteFile: a site whose file is invalid is reported with its
// mistakes, since when, and whether its last good version runs.
func TestInvalidSiteFile(t *testing.T) {
	d, sd := setup(t)
	// A modification time later than the change time is the file's; an
	// earlier one (cp -p) is not: see TestInvalidSinceIsWhenTheFileChanged.
	mtime := time.Now().Add(48 * time.Hour).Truncate(time.Second).UTC()
	if err := os.Chtimes(d.SiteFile("broken"), mtime, mtime); err != nil {
		t.Fatal(err)
	}
	res, err := Gather(context.Background(), Sources{Dirs: d, Systemd: sd}, Request{Names: []string{"broken", "gone", "idle"}})
	if err != nil {
		t.Fatal(err)
	}
	got := bySite(res.Sites)
	b := got["broken"]
	f := b.SiteFile
	if f.State != "invalid" || !f.LastGood || f.InvalidSince == nil || !f.InvalidSince.Equal(mtime) || len(f.Errors) != 1 ||
		!strings.Contains(f.Errors[0].Message, "drain_timout") || f.Errors[0].Line != 2 {
		t.Errorf("broken: site file %+v", f)
	}
	if b.File != d.SiteFile("broken") || len(b.Listen) != 1 || b.Trigger == nil || !b.Trigger.Armed || b.Trigger.Path != "/srv/broken/restart.txt" {
		t.Errorf("broken: the last good version's file, listeners and trigger: %+v", b)
	}
	g := got["gone"].SiteFile
	if g.State != "invalid" || g.LastGood || len(g.Errors) == 0 {
		t.Errorf("gone: site file %+v", g)
	}
	if i := got["idle"]; i.SiteFile.State != "ok" || i.SiteFile.Errors == nil || i.Trigger != nil {
		t.Errorf("idle: %+v", i)
	}
}

// A site named twice is shown once: each costs reads of systemd, the
// journal and the launcher.
func TestNamedTwiceIsShownOnce(t *testing.T) {
	d, sd := setup(t)
	res, err := Gather(context.Background(), Sources{Dirs: d, Systemd: sd}, Request{Names: []string{"idle", "run", "idle", "nope", "nope"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Sites) != 2 || len(res.Missing) != 1 {
		t.Fatalf("%d sites, missing %v; want idle and run once, nope once", len(res.Sites), res.Missing)
	}
}

func TestNamedSites(t *testing.T) {
	d, sd := setup(t)
	res, err := Gather(context.Background(), Sources{Dirs: d, Systemd: sd}, Request{Names: []string{"nosuch", "failed"}})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Missing, []string{"nosuch"}) || len(res.Sites) != 1 {
		t.Fatalf("missing %v, %d sites", res.Missing, len(res.Sites))
	}
	f := res.Sites[0]
	// Without a journal, a failed service's own result is its last failure.
	if f.LastFailure == nil || f.LastFailure.Result != "start-limit-hit" || f.LastFailure.Time == nil {
		t.Errorf("failed: last failure %+v", f.LastFailure)
	}
	if _, err := Gather(context.Background(), Sources{Dirs: d, Systemd: sd}, Request{Names: []string{"../x"}}); !errors.Is(err, ErrBadName) {
		t.Errorf("a bad name: %v", err)
	}
	// The journal's record wins.
	when := time.Unix(1700000100, 0).UTC()
	src := Sources{Dirs: d, Systemd: sd, Journal: func(_ context.Context, name string) (*Failure, *cleanup.Record) {
		return &Failure{Result: "exit-code", Time: &when, ExitCode: "exited", ExitStatus: "3"}, nil
	}}
	res, _ = Gather(context.Background(), src, Request{Names: []string{"failed"}})
	if lf := res.Sites[0].LastFailure; lf == nil || lf.Result != "exit-code" || lf.ExitStatus != "3" {
		t.Errorf("last failure from the journal: %+v", lf)
	}
}

// status (not list) reads the mode the serving process runs, for running
// sites only, with the site as its file says and the main PID, and which
// of the recorded mode's variables it runs with other values than the
// file's (an older version of the mode), by name.
func TestServedMode(t *testing.T) {
	d, sd := setup(t)
	if err := os.WriteFile(d.SiteFile("run"), []byte(strings.ReplaceAll(siteTOML, "%PORT%", "4000")+
		"[modes.normal]\nenvironment = { A = \"1\", B = \"2\", C = \"3\" }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	asked := map[string]int{}
	var mu sync.Mutex // Gather asks for sites at once
	src := Sources{Dirs: d, Systemd: sd, Served: func(_ context.Context, s *site.Site, pid int) ServedProcess {
		mu.Lock()
		defer mu.Unlock()
		asked[s.Name] = pid
		if s.Name == "run" {
			return ServedProcess{Env: []string{"SITE_MODE=normal", "A=1", "B=secret"}, Release: "/srv/run/releases/2"}
		}
		return ServedProcess{Env: []string{"SITE_MODE=read-only", "A=1"}}
	}}
	res, err := Gather(context.Background(), src, Request{})
	if err != nil {
		t.Fatal(err)
	}
	if len(asked) != 2 || asked["run"] != 42 || asked["broken"] != 7 {
		t.Errorf("asked of %v, want run (pid 42) and broken (pid 7)", asked)
	}
	got := bySite(res.Sites)
	if got["run"].ServedRelease != "/srv/run/releases/2" || got["broken"].ServedRelease != "" {
		t.Errorf("served releases: run %q, broken %q", got["run"].ServedRelease, got["broken"].ServedRelease)
	}
	if got["run"].ServedMode != "normal" || got["broken"].ServedMode != "read-only" || got["idle"].ServedMode != "" {
		t.Errorf("served modes: run %q, broken %q, idle %q", got["run"].ServedMode, got["broken"].ServedMode, got["idle"].ServedMode)
	}
	// broken's service started after its mode was recorded (it has no
	// mode file), yet its process says it runs another mode.
	if !got["run"].ModeApplied || got["broken"].ModeApplied {
		t.Errorf("mode applied: run %v, broken %v (serving read-only, recorded %s)", got["run"].ModeApplied, got["broken"].ModeApplied, got["broken"].Mode)
	}
	if d := got["run"].ServedDiffers; !slices.Equal(d, []string{"B", "C"}) {
		t.Errorf("run's served variables that differ: %q, want B and C", d)
	}
	if d := got["broken"].ServedDiffers; d == nil || len(d) != 0 {
		t.Errorf("broken runs another mode, yet its variables differ: %#v", d)
	}
	asked = map[string]int{}
	if _, err := Gather(context.Background(), src, Request{Brief: true}); err != nil || len(asked) != 0 {
		t.Errorf("list asked for served modes: %v %v", asked, err)
	}
}

// status (not list) says why a loaded service would not start, in the
// mode recorded for it.
func TestStartProblems(t *testing.T) {
	d, sd := setup(t)
	var mu sync.Mutex
	asked := map[string]string{}
	src := Sources{Dirs: d, Systemd: sd, StartProblems: func(_ context.Context, s *site.Site, mode string) []string {
		mu.Lock()
		defer mu.Unlock()
		asked[s.Name] = mode
		if s.Name == "run" {
			return []string{"the program /usr/bin/app does not exist on this host: the start would fail"}
		}
		return nil
	}}
	res, err := Gather(context.Background(), src, Request{})
	if err != nil {
		t.Fatal(err)
	}
	got := bySite(res.Sites)
	if len(got["run"].StartProblems) != 1 || asked["run"] != got["run"].Mode || got["idle"].StartProblems == nil || len(got["idle"].StartProblems) != 0 {
		t.Errorf("start problems: run %q (asked in mode %q), idle %q", got["run"].StartProblems, asked["run"], got["idle"].StartProblems)
	}
	asked = map[string]string{}
	res, err = Gather(context.Background(), src, Request{Brief: true})
	if err != nil || len(asked) != 0 || bySite(res.Sites)["run"].StartProblems == nil {
		t.Errorf("list asked for start problems (%v), or has null for none: %v", asked, err)
	}
}

func TestModeOf(t *testing.T) {
	for env, want := range map[string]string{
		"PATH=/bin\x00SITE_MODE=read-only\x00X=1": "read-only",
		"SITE_MODES=x\x00PATH=/bin":               "",
		"":                                        "",
	} {
		if got := modeOf(strings.Split(env, "\x00")); got != want {
			t.Errorf("modeOf(%q) = %q, want %q", env, got, want)
		}
	}
}

// TestModeAndStateOfSitesWithState: list looks for the mode and state
// files only of sites that have a state directory (one read of the
// directory that holds them); a site that has one reports what is
// recorded there, one that has none its default mode, and a site whose
// state directory is there but empty is not mistaken for either.
func TestModeAndStateOfSitesWithState(t *testing.T) {
	d, sd := setup(t)
	write := func(p, content string, mtime time.Time) {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	// The service started after the files were written: their change
	// times (now) count too, not only the modification times set here.
	since := time.Now().Add(time.Hour).Truncate(time.Second).UTC()
	for i, u := range sd.units {
		if u.Name == "site-run.service" {
			sd.units[i].Since = since
		}
	}
	// run: a mode recorded before its service started, a switch cut short.
	write(d.ModeEnvFile("run"), "SITE_MODE=maintenance\nSITE_SERVE=page\n", since.Add(-time.Minute))
	write(d.StateFile("run"), `{"previous_mode":"normal","pending":{"since":"2023-11-14T22:13:20Z","kind":"mode","from":"normal","to":"maintenance","uid":0,"pid":1},"history":[]}`, since)
	// idle: a state directory without files.
	if err := os.MkdirAll(d.SiteState("idle"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, req := range []Request{{Brief: true}, {}, {Names: []string{"run", "idle", "down"}}} {
		res, err := Gather(context.Background(), Sources{Dirs: d, Systemd: sd}, req)
		if err != nil {
			t.Fatal(err)
		}
		got := bySite(res.Sites)
		run := got["run"]
		if run.Mode != "maintenance" || run.PreviousMode != "normal" || run.Pending == nil || run.Pending.To != "maintenance" || !run.ModeApplied {
			t.Errorf("%+v: run: mode %q, previous %q, pending %+v, applied %v; want maintenance, normal, a switch to maintenance, applied",
				req, run.Mode, run.PreviousMode, run.Pending, run.ModeApplied)
		}
		for _, name := range []string{"idle", "down"} {
			if s := got[name]; s.Mode != "normal" || s.PreviousMode != "" || s.Pending != nil || s.ModeApplied {
				t.Errorf("%+v: %s: mode %q, previous %q, pending %+v, applied %v; want its default mode and nothing recorded",
					req, name, s.Mode, s.PreviousMode, s.Pending, s.ModeApplied)
			}
		}
	}
}

// failingSystemd cannot list units (the bus went away).
type failingSystemd struct{ fakeSystemd }

var errNoBus = errors.New("no bus")

func (f *failingSystemd) List(context.Context, ...string) ([]control.Unit, error) {
	return nil, errNoBus
}

func (f *failingSystemd) Units(context.Context, ...string) ([]control.Unit, error) {
	return nil, errNoBus
}

// TestListingFailsWhileFilesAreRead: list asks systemd while it reads the
// site files; a listing that fails is list's error, and a config
// directory that cannot be read is reported first, as before.
func TestListingFailsWhileFilesAreRead(t *testing.T) {
	d, _ := setup(t)
	for _, brief := range []bool{true, false} {
		if res, err := Gather(context.Background(), Sources{Dirs: d, Systemd: &failingSystemd{}}, Request{Brief: brief}); !errors.Is(err, errNoBus) || res.Sites != nil {
			t.Errorf("brief %v: %d sites, %v; want no sites and the listing's error", brief, len(res.Sites), err)
		}
	}
	notDir := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notDir, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	d.Config = notDir
	if _, err := Gather(context.Background(), Sources{Dirs: d, Systemd: &failingSystemd{}}, Request{Brief: true}); err == nil || errors.Is(err, errNoBus) {
		t.Errorf("config directory not a directory: %v, want its error", err)
	}
}

// One site's damaged state file hides no other site: that site is shown
// with its mode unknown, and a warning says why.
func TestDamagedStateOfOneSite(t *testing.T) {
	d, sd := setup(t)
	p := filepath.Join(d.State, "sites", "run", "state.json")
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, brief := range []bool{false, true} {
		res, err := Gather(context.Background(), Sources{Dirs: d, Systemd: sd}, Request{Brief: brief})
		if err != nil {
			t.Fatalf("brief %v: %v", brief, err)
		}
		got := bySite(res.Sites)
		if r, ok := got["run"]; !ok || r.Mode != "" || r.MainPID != 42 || got["idle"].Mode != "normal" {
			t.Errorf("brief %v: run %+v, idle mode %q", brief, got["run"], got["idle"].Mode)
		}
		found := false
		for _, e := range res.Skipped {
			found = found || strings.Contains(e.Error(), "site run: its mode and state are not shown")
		}
		if !found {
			t.Errorf("brief %v: no warning of the damaged state: %v", brief, res.Skipped)
		}
	}
}

// perSite is a SocketsMissing that says of each site what missing says,
// and counts how often PID 1's sockets are read (calls) and for how many
// sites.
func perSite(missing func(s *site.Site) []string, calls, sites *int) func([]*site.Site) (func(*site.Site) []string, error) {
	return func(of []*site.Site) (func(*site.Site) []string, error) {
		if calls != nil {
			*calls++
			*sites += len(of)
		}
		return missing, nil
	}
}

// A listening socket unit that holds no socket (its listeners changed
// while it ran) is no running site: status says which listeners, and
// exits as for a site that does not run. list, and status of all sites,
// ask once for every site on which listeners nothing listens: where
// nothing does, not even a copy the running process holds, the socket is
// lost as surely as status SITE finds it in PID 1's open files.
func TestSocketsLost(t *testing.T) {
	d, sd := setup(t)
	lost := func(s *site.Site) []string {
		if s.Name == "run" {
			return []string{"127.0.0.1:4000"}
		}
		return nil
	}
	held, heldSites, listening, listeningSites := 0, 0, 0, 0
	src := Sources{Dirs: d, Systemd: sd, SocketsMissing: perSite(lost, &held, &heldSites), Unlistened: perSite(lost, &listening, &listeningSites)}
	res, err := Gather(context.Background(), src, Request{Names: []string{"run", "idle"}})
	if err != nil {
		t.Fatal(err)
	}
	got := bySite(res.Sites)
	if r := got["run"]; r.Running || len(r.SocketsLost) != 1 || r.SocketsLost[0] != "127.0.0.1:4000" {
		t.Errorf("run: running %v, sockets lost %q", r.Running, r.SocketsLost)
	}
	if i := got["idle"]; !i.Running || i.SocketsLost == nil || len(i.SocketsLost) != 0 {
		t.Errorf("idle: running %v, sockets lost %q", i.Running, i.SocketsLost)
	}
	if held != 1 || heldSites != 2 || listening != 0 {
		t.Errorf("status of two sites read PID 1's sockets %d times for %d sites, and what listens %d times; want once for both, and never", held, heldSites, listening)
	}
	for _, req := range []Request{{Brief: true}, {}} {
		held, heldSites, listening, listeningSites = 0, 0, 0, 0
		res, err := Gather(context.Background(), src, req)
		if err != nil {
			t.Fatal(err)
		}
		if r := bySite(res.Sites)["run"]; r.Running || len(r.SocketsLost) != 1 || r.SocketsLost[0] != "127.0.0.1:4000" {
			t.Errorf("%+v: run, nothing listening on 127.0.0.1:4000: running %v, sockets lost %q", req, r.Running, r.SocketsLost)
		}
		if held != 0 || listening != 2 || listeningSites < 3 {
			t.Errorf("%+v: PID 1's sockets read %d times, what listens %d times for %d sites; want never, and once for every site and once more for run", req, held, listening, listeningSites)
		}
	}
}

// An idle site whose active socket unit holds no socket has nothing that
// listens: no process serves on a copy of it, so its socket is stopped and
// visitors are refused now; status of it, list and status of every site
// say so.
func TestSocketsLostOfAnIdleSite(t *testing.T) {
	d, sd := setup(t)
	lost := perSite(func(s *site.Site) []string {
		var missing []string
		for _, l := range s.Listeners {
			if e := l.Endpoint(); e == "127.0.0.1:1000" {
				missing = append(missing, e)
			}
		}
		return missing
	}, nil, nil)
	src := Sources{Dirs: d, Systemd: sd, SocketsMissing: lost, Unlistened: lost}
	for _, req := range []Request{{Names: []string{"idle", "run"}}, {Brief: true}, {}} {
		res, err := Gather(context.Background(), src, req)
		if err != nil {
			t.Fatal(err)
		}
		got := bySite(res.Sites)
		if i := got["idle"]; i.Running || i.State != "stopped" || i.Socket != "stopped" || i.Sockets[0].State != "stopped" || i.Sockets[0].ActiveState != "active" ||
			strings.Join(i.SocketsLost, ",") != "127.0.0.1:1000" {
			t.Errorf("%+v: idle without its socket: state %s, socket %s, running %v, sockets %+v, lost %q", req, i.State, i.Socket, i.Running, i.Sockets, i.SocketsLost)
		}
		// Nothing is missing of a site on other ports.
		if r := got["run"]; !r.Running || r.State != "running" || r.Socket != "listening" {
			t.Errorf("%+v: run: state %s, socket %s, running %v", req, r.State, r.Socket, r.Running)
		}
	}
}

// What listens is read while systemd lists the units: a socket that
// starts meanwhile was not seen listening. An idle site found without one
// is looked at again after the listing, and only what is missing then
// counts.
func TestSocketStartedDuringTheListingIsNotLost(t *testing.T) {
	d, sd := setup(t)
	calls := 0
	var asked [][]string
	src := Sources{Dirs: d, Systemd: sd, Unlistened: func(of []*site.Site) (func(*site.Site) []string, error) {
		calls++
		var names []string
		for _, s := range of {
			names = append(names, s.Name)
		}
		asked = append(asked, names)
		first := calls == 1
		return func(s *site.Site) []string {
			if first && s.Name == "idle" {
				return []string{"127.0.0.1:1000"} // not listening yet
			}
			return nil
		}, nil
	}}
	res, err := Gather(context.Background(), src, Request{Brief: true})
	if err != nil {
		t.Fatal(err)
	}
	if i := bySite(res.Sites)["idle"]; !i.Running || i.State != "idle" || i.Socket != "listening" || len(i.SocketsLost) != 0 {
		t.Errorf("idle, listening by the end of the listing: state %s, socket %s, running %v, lost %q", i.State, i.Socket, i.Running, i.SocketsLost)
	}
	if calls != 2 || len(asked[1]) != 1 || asked[1][0] != "idle" {
		t.Errorf("asked %d times, for %q; want twice, the second time for idle alone", calls, asked)
	}
}

// Listeners of a site file that systemd has not loaded yet (its socket
// units are older than the file) are pending, not lost: systemd holds the
// listeners it loaded, and the site runs on them.
func TestListenersPendingWithUnitsOlderThanTheFile(t *testing.T) {
	d, sd := setup(t)
	stale := map[string]bool{}
	src := Sources{Dirs: d, Systemd: sd,
		SocketsMissing: perSite(func(*site.Site) []string { return []string{"127.0.0.1:4000"} }, nil, nil),
		UnitsStale:     func(_ context.Context, unit string) (bool, error) { return stale[unit], nil }}
	stale["site-run.socket"] = true
	res, err := Gather(context.Background(), src, Request{Names: []string{"run"}})
	if err != nil {
		t.Fatal(err)
	}
	if r := bySite(res.Sites)["run"]; !r.Running || len(r.SocketsLost) != 0 || strings.Join(r.ListenersPending, ",") != "127.0.0.1:4000" {
		t.Errorf("units older than the file: running %v, lost %q, pending %q", r.Running, r.SocketsLost, r.ListenersPending)
	}
	stale["site-run.socket"] = false
	res, err = Gather(context.Background(), src, Request{Names: []string{"run"}})
	if err != nil {
		t.Fatal(err)
	}
	if r := bySite(res.Sites)["run"]; r.Running || strings.Join(r.SocketsLost, ",") != "127.0.0.1:4000" || r.ListenersPending == nil || len(r.ListenersPending) != 0 {
		t.Errorf("units as the file: running %v, lost %q, pending %q", r.Running, r.SocketsLost, r.ListenersPending)
	}
}

// In a crash loop the app runs for a moment between failures: a service
// systemd restarted after a failure is "restarting", not running, until
// it has run for crashWindow.
func TestCrashLoopIsNotRunning(t *testing.T) {
	now := time.Unix(1700000000, 0)
	just, long := now.Add(-2*time.Second), now.Add(-time.Minute)
	for _, c := range []struct {
		name  string
		s     Site
		state string
	}{
		{"up again after a crash", Site{ActiveState: "active", SubState: "running", NRestarts: 3, activeEnter: just, Since: &just, Socket: "listening"}, "restarting"},
		{"up for a minute after a crash", Site{ActiveState: "active", SubState: "running", NRestarts: 3, activeEnter: long, Since: &long, Socket: "listening"}, "running"},
		// A reload moves when its state changed, not when it became active.
		{"reloaded just now, up for a minute after a crash", Site{ActiveState: "active", SubState: "running", NRestarts: 3, activeEnter: long, Since: &just, Socket: "listening"}, "running"},
		{"started deliberately", Site{ActiveState: "active", SubState: "running", Since: &just, Socket: "listening"}, "running"},
		{"waiting to restart", Site{ActiveState: "activating", SubState: "auto-restart", NRestarts: 3, Socket: "listening"}, "restarting"},
		{"stopping after a failure", Site{ActiveState: "deactivating", SubState: "stop-post", Result: "exit-code", Socket: "listening"}, "restarting"},
		{"stopped by someone", Site{ActiveState: "deactivating", SubState: "stop-sigterm", Result: "success", Socket: "listening"}, "stopping"},
	} {
		if got := siteState(c.s, now); got != c.state {
			t.Errorf("%s: %s, want %s", c.name, got, c.state)
		}
	}
}

// status (not list) says when the valid site file lost the recorded mode
// or the previous one; a file with mistakes, whose last good version
// runs, says nothing of it.
func TestModesGone(t *testing.T) {
	d, sd := setup(t)
	for _, name := range []string{"run", "broken"} {
		if err := os.MkdirAll(d.SiteState(name), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(d.ModeEnvFile(name), []byte("SITE_MODE=read-only\nSITECTL_SERVE=app\nSITECTL_MODE_VARS=\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(d.StateFile(name), []byte(`{"previous_mode":"old","history":[]}`), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, req := range []Request{{}, {Brief: true}} {
		res, err := Gather(context.Background(), Sources{Dirs: d, Systemd: sd}, req)
		if err != nil {
			t.Fatal(err)
		}
		got := bySite(res.Sites)
		if run := got["run"]; run.Mode != "read-only" || run.ModeGone != !req.Brief || run.PreviousGone != !req.Brief {
			t.Errorf("%+v: run: mode %q, gone %v, previous %q, gone %v", req, run.Mode, run.ModeGone, run.PreviousMode, run.PreviousGone)
		}
		if b := got["broken"]; b.ModeGone || b.PreviousGone {
			t.Errorf("%+v: broken, running its last good version: gone %v, previous gone %v", req, b.ModeGone, b.PreviousGone)
		}
		if idle := got["idle"]; idle.ModeGone || idle.PreviousGone {
			t.Errorf("%+v: idle: gone %v, previous gone %v", req, idle.ModeGone, idle.PreviousGone)
		}
	}
}

// A warm generation is shown while it runs, whatever the site file says
// now: keep_previous (or overlap) taken out of the file does not end it.
func TestWarmShownAfterTheFileDroppedKeepPrevious(t *testing.T) {
	d, sd := setup(t)
	asked := map[string]int{}
	src := Sources{Dirs: d, Systemd: sd, Warm: func(_ context.Context, s *site.Site, mainPID int) *Warm {
		asked[s.Name] = mainPID
		if s.Name == "run" {
			return &Warm{Generation: 1, MainPID: 43, Mode: "normal"}
		}
		return nil
	}}
	res, err := Gather(context.Background(), src, Request{Names: []string{"run", "idle"}})
	if err != nil {
		t.Fatal(err)
	}
	got := bySite(res.Sites)
	if w := got["run"].Warm; w == nil || w.MainPID != 43 || w.RollbackFlips {
		t.Errorf("run, a generation kept warm, no keep_previous in its file: warm %+v", w)
	}
	if _, ok := asked["idle"]; ok || asked["run"] != 42 {
		t.Errorf("asked %v: want run's launcher (42) alone, not an idle site", asked)
	}
}

// A site file someone other than root may change is invalid for status
// by name as for list and the generator: status does not show its
// listeners, trigger or modes as the site's.
func TestNamedSiteFileOthersMayChangeIsInvalid(t *testing.T) {
	d, sd := setup(t)
	if err := os.Chmod(d.SiteFile("idle"), 0o666); err != nil {
		t.Fatal(err)
	}
	res, err := Gather(context.Background(), Sources{Dirs: d, Systemd: sd}, Request{Names: []string{"idle"}})
	if err != nil {
		t.Fatal(err)
	}
	f := res.Sites[0].SiteFile
	if f.State != "invalid" || len(f.Errors) != 1 || !strings.Contains(f.Errors[0].Message, "may be changed by others than its owner") {
		t.Errorf("idle, mode 0666: site file %+v", f)
	}
}

// A service masked while it does not run (systemctl mask, by hand or by a
// configuration tool) behind listening sockets: systemd starts no masked
// unit, so the first request fails the sockets, and every visitor after it
// is refused. list and status said the site was idle (exit 0). Its start
// problems say it is masked; one that runs serves on.
func TestMaskedServiceIsNotIdle(t *testing.T) {
	d, sd := setup(t)
	for i, u := range sd.units {
		switch u.Name {
		case "site-idle.service", "site-run.service":
			sd.units[i].LoadState = "masked"
		}
	}
	src := Sources{Dirs: d, Systemd: sd, StartProblems: func(_ context.Context, s *site.Site, mode string) []string {
		return []string{"it is masked, and systemd starts no masked unit (`systemctl unmask site-" + s.Name + ".service`)"}
	}}
	for _, req := range []Request{{Brief: true}, {}, {Names: []string{"idle", "run"}}} {
		res, err := Gather(context.Background(), src, req)
		if err != nil {
			t.Fatal(err)
		}
		got := bySite(res.Sites)
		if s := got["idle"]; s.State != "stopped" || s.Running || s.Socket != "listening" {
			t.Errorf("%+v: masked and inactive: %+v, want stopped, not running, its socket listening", req, s)
		}
		if s := got["run"]; s.State != "running" || !s.Running {
			t.Errorf("%+v: masked and running: %+v, want running", req, s)
		}
		if !req.Brief && (len(got["idle"].StartProblems) != 1 || len(got["run"].StartProblems) != 1) {
			t.Errorf("%+v: start problems of masked services: %q, %q", req, got["idle"].StartProblems, got["run"].StartProblems)
		}
	}
}

// A warm generation sitectl rollback would not flip to is not shown as
// one it flips to: its mode left the site file, or the file's version of
// the mode differs from what the generation runs (rollback checks both
// and goes cold).
func TestWarmRollbackFlipsAsRollbackDecides(t *testing.T) {
	cases := map[string]struct {
		mode   string
		env    []string
		flips  bool
		noFlip string
	}{
		"same":      {"read-only", []string{"SITE_MODE=read-only", "SHOP_RO=1"}, true, ""},
		"edited":    {"read-only", []string{"SITE_MODE=read-only", "SHOP_RO=0"}, false, "it runs an older version of mode read-only than the site file has (SHOP_RO changed)"},
		"mode gone": {"old", []string{"SITE_MODE=old"}, false, "the site file no longer has its mode old"},
		"unread":    {"read-only", nil, false, "its environment cannot be read"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			d, sd := setup(t)
			file := "exec = [\"/usr/bin/app\"]\nhandoff = \"overlap\"\nkeep_previous = \"10m\"\n[[listen]]\naddress = \"127.0.0.1:4000\"\n[modes.read-only]\nenvironment = { SHOP_RO = \"1\" }\n"
			if err := os.WriteFile(d.SiteFile("run"), []byte(file), 0o644); err != nil {
				t.Fatal(err)
			}
			src := Sources{Dirs: d, Systemd: sd, Warm: func(context.Context, *site.Site, int) *Warm {
				return &Warm{Generation: 1, MainPID: 43, Mode: c.mode, Env: c.env}
			}}
			res, err := Gather(context.Background(), src, Request{Names: []string{"run"}})
			if err != nil {
				t.Fatal(err)
			}
			if w := bySite(res.Sites)["run"].Warm; w == nil || w.RollbackFlips != c.flips || w.NoFlip != c.noFlip {
				t.Errorf("warm %+v: want flips %v (%q)", w, c.flips, c.noFlip)
			}
		})
	}
}

// TestLocalChanges: status names the site's units that systemd loaded from
// a copy that shadows the generator's file (and whether the copy was made
// from another version of the site file), and their drop-ins, the ones
// systemctl revert takes out apart from those shared with other units;
// the distribution's and generators' drop-ins are not an operator's
// change. list reads none of it.
func TestLocalChanges(t *testing.T) {
	d, sd := setup(t)
	for i := range sd.units {
		u := &sd.units[i]
		u.Fragment = "/run/systemd/generator/" + u.Name
		switch u.Name {
		case "site-run.service":
			u.Fragment = "/etc/systemd/system/site-run.service"
			u.DropIns = []string{
				"/usr/lib/systemd/system/service.d/10-timeout-abort.conf",
				"/run/systemd/generator/site-run.service.d/50-gen.conf",
				"/etc/systemd/system/site-.service.d/limits.conf",
				"/etc/systemd/system/site-run.service.d/override.conf",
				"/run/systemd/system.control/site-run.service.d/50-CPUWeight.conf",
			}
		case "site-run.socket":
			u.DropIns = []string{"/etc/systemd/system/site-run.socket.d/backlog.conf"}
		case "site-idle.service":
			u.DropIns = []string{"/lib/systemd/system/service.d/10-timeout-abort.conf"}
		case "site-broken-reload.path":
			u.Fragment = "/etc/systemd/system/site-broken-reload.path"
		}
	}
	var asked []string
	src := Sources{Dirs: d, Systemd: sd, SourceChanged: func(fragment, source string) (bool, error) {
		asked = append(asked, fragment+" "+source)
		return fragment == "/etc/systemd/system/site-run.service", nil
	}}
	res, err := Gather(context.Background(), src, Request{Names: []string{"run", "idle", "broken"}})
	if err != nil {
		t.Fatal(err)
	}
	got := bySite(res.Sites)
	run := got["run"].LocalChanges
	if len(run) != 2 {
		t.Fatalf("run: %+v, want the service and the socket", run)
	}
	svc := run[0]
	if svc.Unit != "site-run.service" || svc.Shadow != "/etc/systemd/system/site-run.service" || !svc.ShadowStale ||
		!slices.Equal(svc.DropIns, []string{"/etc/systemd/system/site-run.service.d/override.conf", "/run/systemd/system.control/site-run.service.d/50-CPUWeight.conf"}) ||
		!slices.Equal(svc.Shared, []string{"/etc/systemd/system/site-.service.d/limits.conf"}) || svc.Revert != "systemctl revert site-run.service" {
		t.Errorf("site-run.service: %+v", svc)
	}
	if so := run[1]; so.Unit != "site-run.socket" || so.Shadow != "" || so.ShadowStale || len(so.DropIns) != 1 || so.Shared == nil {
		t.Errorf("site-run.socket: %+v", so)
	}
	if idle := got["idle"].LocalChanges; idle == nil || len(idle) != 0 {
		t.Errorf("idle, with only the distribution's drop-in: %+v", idle)
	}
	if b := got["broken"].LocalChanges; len(b) != 1 || b[0].Unit != "site-broken-reload.path" || b[0].Shadow == "" || b[0].DropIns == nil {
		t.Errorf("broken: %+v", b)
	}
	if want := "/etc/systemd/system/site-run.service " + d.SiteFile("run"); !slices.Contains(asked, want) {
		t.Errorf("asked %q, want %q among them", asked, want)
	}
	res, err = Gather(context.Background(), src, Request{Brief: true})
	if err != nil {
		t.Fatal(err)
	}
	if l := bySite(res.Sites)["run"].LocalChanges; l == nil || len(l) != 0 {
		t.Errorf("list: %+v, want []", l)
	}
}
