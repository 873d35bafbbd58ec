package flow

import (
	"context"
	"errors"
	"io/fs"
	"strings"
	"syscall"
	"testing"
	"testing/fstest"

	"github.com/sitectl/sitectl/internal/control"
	"github.com/sitectl/sitectl/internal/paths"
	"github.com/sitectl/sitectl/internal/site"
	"github.com/sitectl/sitectl/internal/sitecheck"
	"github.com/sitectl/sitectl/internal/units"
)

// withSpec is a fake systemd that also says what the service starts with.
type withSpec struct {
	*fakeSystemd
	spec control.StartSpec
}

func (w *withSpec) StartSpec(ctx context.Context, unit string) (control.StartSpec, error) {
	return w.spec, nil
}

// specEnv is newEnv whose systemd has the unit spec, on a host with
// /usr/bin/app, /srv/karl and the user karl.
func specEnv(t *testing.T, spec control.StartSpec) (*Env, *withSpec) {
	e, f := newEnv(t)
	w := &withSpec{fakeSystemd: f, spec: spec}
	e.Systemd = w
	files := fstest.MapFS{"usr/bin/app": {Mode: 0o755}, "srv/karl": {Mode: fs.ModeDir | 0o755}}
	e.Host = &sitecheck.Host{
		Stat:       func(p string) (fs.FileInfo, error) { return files.Stat(strings.TrimPrefix(p, "/")) },
		LookupName: func(db, name string) (bool, error) { return name == "karl", nil },
	}
	return e, w
}

func launchArgv(program string) []string {
	return []string{"/usr/bin/sitectl", "launch", "karl", "--", program, "--bind", "x"}
}

// A unit that cannot start is not restarted: the old process keeps
// serving, and nothing is recorded. A mode sitectl serves itself runs no
// program of the site's, so a missing one does not stop a switch there.
func TestUnstartableUnitIsNotRestarted(t *testing.T) {
	good := control.StartSpec{Argv: launchArgv("/usr/bin/app"), User: "karl", WorkingDirectory: "/srv/karl"}
	for _, c := range []struct {
		name string
		edit func(*control.StartSpec)
		want string
	}{
		{"program", func(s *control.StartSpec) { s.Argv = launchArgv("/usr/bin/apq") }, "the program /usr/bin/apq does not exist on this host"},
		{"user", func(s *control.StartSpec) { s.User = "kral" }, `user "kral" does not exist on this host`},
		{"group", func(s *control.StartSpec) { s.Group = "www" }, `group "www" does not exist on this host`},
		{"workdir", func(s *control.StartSpec) { s.WorkingDirectory = "/srv/karl/current" }, "the working directory /srv/karl/current does not exist"},
		{"masked", func(s *control.StartSpec) { s.LoadState = "masked" }, "it is masked, and systemd starts no masked unit (`systemctl unmask site-karl.service`)"},
		{"noexec", func(s *control.StartSpec) { s.NoExecPaths = []string{"/usr"} }, "the program /usr/bin/app is on a path the unit mounts noexec (NoExecPaths=/usr)"},
	} {
		spec := good
		c.edit(&spec)
		e, f := specEnv(t, spec)
		rep, err := Restart(context.Background(), e, testSite(t), 0)
		if !errors.Is(err, ErrCannotStart) || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "nothing was done") {
			t.Errorf("%s: %v", c.name, err)
		}
		if c.name == "noexec" && (err == nil || !strings.Contains(err.Error(), "fix the program named (a #! line first, with no byte order mark before it) or its mount (exec)")) {
			t.Errorf("%s: the refusal does not say what to fix: %v", c.name, err)
		}
		st, _ := e.Store.ReadState("karl")
		if len(f.restarts) != 0 || rep.Changed || rep.Result != "" || st.Pending != nil || len(st.History) != 0 {
			t.Errorf("%s: restarted %v, report %+v, state %+v", c.name, f.restarts, rep, st)
		}
	}

	// Optional working directory, a user made up at each start: no reason.
	spec := good
	spec.WorkingDirectory, spec.WorkingDirectoryOptional = "/srv/none", true
	spec.User, spec.DynamicUser = "site-karl", true
	e, f := specEnv(t, spec)
	if _, err := Restart(context.Background(), e, testSite(t), 0); err != nil || len(f.restarts) != 1 {
		t.Errorf("optional workdir, dynamic user: %v, restarts %v", err, f.restarts)
	}

	spec = good
	spec.Argv = launchArgv("/usr/bin/apq")
	e, f = specEnv(t, spec)
	e.Probe = func(context.Context, *site.Site, site.Mode) error { return nil }
	s := testSite(t)
	if rep, err := SwitchMode(context.Background(), e, s, string(site.ServeMaintenance), Options{}); err != nil || rep.Result != "ok" {
		t.Errorf("to maintenance without the program: %v %+v", err, rep)
	}
	if _, err := SwitchMode(context.Background(), e, s, "normal", Options{}); !errors.Is(err, ErrCannotStart) {
		t.Errorf("back to normal without the program: %v", err)
	}
	if cur, _, _ := e.Store.Current("karl"); cur != string(site.ServeMaintenance) || len(f.restarts) != 1 {
		t.Errorf("after the refusal: mode %s, restarts %v", cur, f.restarts)
	}
}

// A restart of units older than the site file goes ahead, and says that
// it ran systemd's units, not the file.
func TestStaleUnitsAreSaid(t *testing.T) {
	e, _ := specEnv(t, control.StartSpec{Argv: launchArgv("/usr/bin/app"), NeedDaemonReload: true})
	rep, err := Restart(context.Background(), e, testSite(t), 0)
	if err != nil || rep.Result != "ok" || len(rep.Warnings) != 1 || !strings.Contains(rep.Warnings[0], "the site file changed since systemd loaded site-karl.service") {
		t.Errorf("%v %+v", err, rep)
	}
	e, _ = specEnv(t, control.StartSpec{Argv: launchArgv("/usr/bin/app")})
	if rep, err := Restart(context.Background(), e, testSite(t), 0); err != nil || len(rep.Warnings) != 0 {
		t.Errorf("units as new as the file: %v %+v", err, rep)
	}
}

func TestAppProgram(t *testing.T) {
	for argv, want := range map[string]string{
		"/usr/bin/sitectl launch karl -- /usr/bin/gunicorn app":                             "/usr/bin/gunicorn",
		"/usr/bin/sitectl launch karl --overlap -- /srv/x":                                  "/srv/x",
		"/usr/bin/sitectl --config-dir /etc/x --state-dir /var/lib/x launch karl -- /srv/y": "/srv/y",
		"/usr/bin/sitectl launch karl --":                                                   "",
		"/usr/bin/app --flag":                                                               "/usr/bin/app",
		"":                                                                                  "",
	} {
		if got := appProgram(strings.Fields(argv)); got != want {
			t.Errorf("appProgram(%q) = %q, want %q", argv, got, want)
		}
	}
}

// The program is found in the command line the units are rendered with,
// whatever directories they name.
func TestAppProgramOfRenderedUnits(t *testing.T) {
	s := testSite(t)
	for _, dirs := range []paths.Dirs{{Config: paths.DefaultConfigDir, State: paths.DefaultStateDir}, {Config: "/etc/x", State: "/var/lib/x"}} {
		var argv []string
		for _, u := range units.Render(s, units.Options{Dirs: dirs}) {
			for _, line := range strings.Split(u.Content, "\n") {
				if rest, ok := strings.CutPrefix(line, "ExecStart="); ok && u.Name == "site-karl.service" {
					argv = strings.Fields(rest)
				}
			}
		}
		if got := appProgram(argv); got != s.Exec[0] {
			t.Errorf("dirs %+v: appProgram(%q) = %q, want %s", dirs, argv, got, s.Exec[0])
		}
	}
}

// An operator's drop-in (systemctl edit) or copy of the unit whose
// ExecStart= runs the app itself, not sitectl's launcher: in a
// maintenance mode the app would start in place of the maintenance
// server, with SITE_MODE=maintenance, and an app that answers every path
// passed the probe, so the switch said ok while the app served. It is
// refused before anything is done, naming the override; app modes, which
// the app serves with the mode's environment all the same, go ahead.
func TestMaintenanceNeedsTheLauncher(t *testing.T) {
	const dropIn = "/etc/systemd/system/site-karl.service.d/override.conf"
	for _, c := range []struct {
		name string
		spec control.StartSpec
		want string
	}{
		{"drop-in", control.StartSpec{Argv: []string{"/usr/bin/app", "--bind", "x"}, Fragment: "/run/systemd/generator/site-karl.service", DropIns: []string{dropIn}}, dropIn},
		{"copy", control.StartSpec{Argv: []string{"/usr/bin/app"}, Fragment: "/etc/systemd/system/site-karl.service"}, "/etc/systemd/system/site-karl.service"},
		{"another site's launcher", control.StartSpec{Argv: []string{"/usr/bin/sitectl", "launch", "other", "--", "/usr/bin/app"}, DropIns: []string{dropIn}}, dropIn},
	} {
		e, f := specEnv(t, c.spec)
		e.Probe = func(context.Context, *site.Site, site.Mode) error { return nil } // an app that answers every path
		rep, err := SwitchMode(context.Background(), e, testSite(t), string(site.ServeMaintenance), Options{})
		if !errors.Is(err, ErrCannotStart) || !strings.Contains(err.Error(), "does not run sitectl's launcher") || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "systemctl revert site-karl.service") {
			t.Errorf("%s: to maintenance: %v, report %+v", c.name, err, rep)
		}
		if cur, _, _ := e.Store.Current("karl"); cur != "normal" && cur != "" || len(f.restarts) != 0 || rep.Result != "" {
			t.Errorf("%s: after the refusal: mode %q, restarts %v, report %+v", c.name, cur, f.restarts, rep)
		}
		if rep, err := SwitchMode(context.Background(), e, testSite(t), "read-only", Options{}); err != nil || rep.Result != "ok" {
			t.Errorf("%s: to an app mode: %v %+v", c.name, err, rep)
		}
	}
	for _, argv := range [][]string{
		launchArgv("/usr/bin/app"),
		{"/usr/bin/sitectl", "--config-dir", "/etc/x", "launch", "karl", "--overlap", "--", "/usr/bin/app"},
	} {
		if !launches(argv, "karl") {
			t.Errorf("launches(%q) = false", argv)
		}
	}
}

// A restart of units older than the site file, where systemd loads the
// service from a file that shadows the generator's (systemctl edit
// --full, a copy in /etc/systemd/system): a daemon-reload does not help,
// and the warning names the file instead of promising that it does.
func TestStaleShadowingCopyIsNamed(t *testing.T) {
	const copied = "/etc/systemd/system/site-karl.service"
	e, _ := specEnv(t, control.StartSpec{Argv: launchArgv("/usr/bin/app"), NeedDaemonReload: true, Fragment: copied})
	s := testSite(t)
	rep, err := Restart(context.Background(), e, s, 0)
	// sitectl units render --dir needs its DIR: the hint names it, and
	// the site file, so that it writes that copy anew as it is.
	render := "`sitectl units render --dir /etc/systemd/system " + s.File + "`"
	if err != nil || rep.Result != "ok" || len(rep.Warnings) != 1 || !strings.Contains(rep.Warnings[0], copied) ||
		!strings.Contains(rep.Warnings[0], "systemctl revert site-karl.service") || !strings.Contains(rep.Warnings[0], render) ||
		strings.Contains(rep.Warnings[0], "the next restart applies it") {
		t.Errorf("%v %+v", err, rep)
	}
	e, _ = specEnv(t, control.StartSpec{Argv: launchArgv("/usr/bin/app"), NeedDaemonReload: true, Fragment: "/run/systemd/generator/site-karl.service"})
	if rep, err := Restart(context.Background(), e, testSite(t), 0); err != nil || len(rep.Warnings) != 1 || !strings.Contains(rep.Warnings[0], "`systemctl daemon-reload` loads the rest") {
		t.Errorf("the generator's unit: %v %+v", err, rep)
	}
}

// An operator's drop-in that makes the service Type=oneshot (or forking,
// or dbus) has systemd wait for something sitectl's launcher never does:
// the restart's start job ran until the unit's start timeout, sitectl
// gave up with exit 5 while the new process served, and systemd then
// stopped the site. Such a restart is refused before anything is done,
// naming the drop-in and the way out; the types that start are let be.
func TestTypeThatNeverStartsIsRefused(t *testing.T) {
	const dropIn = "/etc/systemd/system/site-karl.service.d/type.conf"
	for _, typ := range []string{"oneshot", "forking", "dbus"} {
		e, f := specEnv(t, control.StartSpec{Argv: launchArgv("/usr/bin/app"), Type: typ, Fragment: "/run/systemd/generator/site-karl.service", DropIns: []string{dropIn}})
		rep, err := SwitchMode(context.Background(), e, testSite(t), "read-only", Options{})
		if !errors.Is(err, ErrCannotStart) || !strings.Contains(err.Error(), "Type="+typ+", as "+dropIn+" set it") ||
			!strings.Contains(err.Error(), "take that Type= out") || !strings.Contains(err.Error(), "nothing was done") {
			t.Errorf("Type=%s: %v", typ, err)
		}
		if cur, _, _ := e.Store.Current("karl"); cur != "normal" && cur != "" || len(f.restarts) != 0 || rep.Result != "" {
			t.Errorf("Type=%s: after the refusal: mode %q, restarts %v, report %+v", typ, cur, f.restarts, rep)
		}
	}
	for _, typ := range []string{"", "notify", "exec", "simple", "idle"} {
		e, _ := specEnv(t, control.StartSpec{Argv: launchArgv("/usr/bin/app"), Type: typ})
		if rep, err := SwitchMode(context.Background(), e, testSite(t), "read-only", Options{}); err != nil || rep.Result != "ok" {
			t.Errorf("Type=%q: %v %+v", typ, err, rep)
		}
	}
}

// A path the unit's mount namespace needs that does not exist (a typo in
// the site's writable_paths, a drop-in's ReadOnlyPaths=): systemd fails
// the start with 226/NAMESPACE, and the rollback restarts the same unit.
// The restart is refused before anything is done.
func TestMissingSandboxPathIsRefused(t *testing.T) {
	e, f := specEnv(t, control.StartSpec{Argv: launchArgv("/usr/bin/app"), Paths: []control.RequiredPath{{Setting: "ReadWritePaths=", Path: "/srv/karl"}, {Setting: "ReadWritePaths=", Path: "/srv/karl/uploadz"}}})
	rep, err := SwitchMode(context.Background(), e, testSite(t), "read-only", Options{})
	if !errors.Is(err, ErrCannotStart) || !strings.Contains(err.Error(), "the path /srv/karl/uploadz (ReadWritePaths=) does not exist") || strings.Contains(err.Error(), "/srv/karl ") {
		t.Errorf("a missing writable path: %v", err)
	}
	if len(f.restarts) != 0 || rep.Result != "" {
		t.Errorf("after the refusal: restarts %v, report %+v", f.restarts, rep)
	}
}

// The same for what the start runs or reads before the app: an operator's
// drop-in with an ExecStartPre= program or an EnvironmentFile= that is
// not there.
func TestMissingCommandOrEnvironmentFileIsRefused(t *testing.T) {
	e, f := specEnv(t, control.StartSpec{Argv: launchArgv("/usr/bin/app"),
		Commands:         []control.Command{{Setting: "ExecStartPre=", Path: "/usr/bin/app"}, {Setting: "ExecStartPre=", Path: "/usr/local/bin/fetch-secrets"}},
		EnvironmentFiles: []string{"/etc/default/karl"}, DropIns: []string{"/etc/systemd/system/site-karl.service.d/local.conf"}})
	rep, err := SwitchMode(context.Background(), e, testSite(t), "read-only", Options{})
	if !errors.Is(err, ErrCannotStart) || !strings.Contains(err.Error(), "the program /usr/local/bin/fetch-secrets (ExecStartPre=) does not exist") ||
		!strings.Contains(err.Error(), "the environment file /etc/default/karl (EnvironmentFile=) does not exist") ||
		!strings.Contains(err.Error(), "if it comes from a local change of the unit (/etc/systemd/system/site-karl.service.d/local.conf), take it out: `systemctl revert site-karl.service`") {
		t.Errorf("a missing ExecStartPre= program and environment file: %v", err)
	}
	if len(f.restarts) != 0 || rep.Result != "" {
		t.Errorf("after the refusal: restarts %v, report %+v", f.restarts, rep)
	}
}

// A maintenance mode whose page file or static_dir is not there (a typo
// in the site file): the maintenance server does not start without them,
// so a switch to that mode restarted the site into a failing start and
// rolled back, the site down meanwhile. It is refused before anything is
// done; the same mode with the files there switches.
func TestMaintenancePageThatIsNotThereIsRefused(t *testing.T) {
	s, err := site.Parse("/etc/sitectl/sites/karl.toml", []byte(`exec = ["/bin/app"]
readiness = "notify"
[[listen]]
address = "127.0.0.1:8080"
[modes.down]
serve = "maintenance"
page = "/srv/karl/dwon.html"
[modes.gone]
serve = "maintenance"
static_dir = "/srv/karl/statc"
`))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ mode, want string }{
		{"down", "the maintenance page /srv/karl/dwon.html does not exist: the maintenance server would not start"},
		{"gone", "the static_dir /srv/karl/statc does not exist: the maintenance server would not start"},
	} {
		e, f := specEnv(t, control.StartSpec{Argv: launchArgv("/usr/bin/app")})
		rep, err := SwitchMode(context.Background(), e, s, c.mode, Options{})
		if !errors.Is(err, ErrCannotStart) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("to mode %s: %v", c.mode, err)
		}
		if len(f.restarts) != 0 || rep.Result != "" {
			t.Errorf("to mode %s, after the refusal: restarts %v, report %+v", c.mode, f.restarts, rep)
		}
	}
}

// A program or working directory that the site's user may not reach (a
// directory on the way only root may search) fails the start as that
// user, and the rollback's too: the restart is refused before anything is
// done. What runs as root (a "+" command), a user made up at each start,
// and a user whose capabilities pass over the files' permissions are not
// checked so.
func TestProgramTheUserCannotReachIsRefused(t *testing.T) {
	root := func(mode fs.FileMode) *fstest.MapFile {
		return &fstest.MapFile{Mode: mode, Sys: &syscall.Stat_t{Uid: 0, Gid: 0}}
	}
	files := fstest.MapFS{".": root(fs.ModeDir | 0o755), "srv": root(fs.ModeDir | 0o755), "srv/karl": root(fs.ModeDir | 0o700),
		"srv/karl/app": root(0o755), "usr": root(fs.ModeDir | 0o755), "usr/bin": root(fs.ModeDir | 0o755), "usr/bin/app": root(0o755),
		"usr/local": root(fs.ModeDir | 0o755), "usr/local/bin": root(fs.ModeDir | 0o755), "usr/local/bin/hook": root(0o700),
		"root": root(fs.ModeDir | 0o755), "root/app": root(0o755)}
	host := &sitecheck.Host{
		Stat: func(p string) (fs.FileInfo, error) {
			if p = strings.TrimPrefix(p, "/"); p == "" {
				p = "."
			}
			return files.Stat(p)
		},
		EvalSymlinks: func(p string) (string, error) { return p, nil },
		LookupName:   func(db, name string) (bool, error) { return true, nil },
		Accounts: func() ([]byte, []byte, error) {
			return []byte("root:x:0:0::/root:/bin/sh\nkarl:x:1001:1001::/srv/karl:/usr/sbin/nologin\n"), []byte("root:x:0:\nkarl:x:1001:\n"), nil
		},
		ModeDecides: func(string) (bool, error) { return true, nil },
	}
	good := control.StartSpec{Argv: launchArgv("/usr/bin/app"), User: "karl"}
	for _, c := range []struct {
		name string
		edit func(*control.StartSpec)
		want string // "": the restart goes ahead
	}{
		{"fine", func(s *control.StartSpec) {}, ""},
		{"program", func(s *control.StartSpec) { s.Argv = launchArgv("/srv/karl/app") },
			`the program /srv/karl/app cannot be run by user "karl": /srv/karl is mode 0700 owned by root:root: the start would fail; a restart would stop the site, and so would its rollback; nothing was done (give the site's user what it lacks on the path named`},
		{"workdir", func(s *control.StartSpec) { s.WorkingDirectory = "/srv/karl" },
			`the working directory /srv/karl cannot be entered by user "karl": /srv/karl is mode 0700 owned by root:root: the start would fail with 200/CHDIR`},
		{"command as the user", func(s *control.StartSpec) {
			s.Commands = []control.Command{{Setting: "ExecStartPre=", Path: "/usr/local/bin/hook", AsUser: true}}
		}, `the program /usr/local/bin/hook (ExecStartPre=) cannot be run by user "karl": /usr/local/bin/hook is mode 0700 owned by root:root: the start would fail with 203/EXEC`},
		{"command as root", func(s *control.StartSpec) {
			s.Commands = []control.Command{{Setting: "ExecStartPre=", Path: "/usr/local/bin/hook"}}
		}, ""},
		{"root", func(s *control.StartSpec) { s.User, s.Argv = "root", launchArgv("/srv/karl/app") }, ""},
		{"no user", func(s *control.StartSpec) { s.User, s.Argv = "", launchArgv("/srv/karl/app") }, ""},
		{"dynamic user", func(s *control.StartSpec) { s.DynamicUser, s.Argv = true, launchArgv("/srv/karl/app") },
			`the program /srv/karl/app cannot be run by the site's dynamic user (DynamicUser=yes): /srv/karl is mode 0700 owned by root:root: the start would fail`},
		{"dynamic user, a program anyone may run", func(s *control.StartSpec) { s.User, s.DynamicUser = "", true }, ""},
		{"a program the unit hides", func(s *control.StartSpec) { s.ProtectHome, s.Argv = "yes", launchArgv("/root/app") },
			`the program /root/app lies under /root, which the site's unit hides from its processes (ProtectHome=yes): the start would fail`},
		{"a program the unit hides, read-only", func(s *control.StartSpec) { s.ProtectHome, s.Argv = "read-only", launchArgv("/root/app") }, ""},
		{"a program in a directory InaccessiblePaths= names", func(s *control.StartSpec) { s.Inaccessible = []string{"-/usr/bin"} },
			`the program /usr/bin/app lies under /usr/bin, which the site's unit hides from its processes (InaccessiblePaths=-/usr/bin)`},
		{"CAP_DAC_READ_SEARCH", func(s *control.StartSpec) {
			s.AmbientCapabilities, s.WorkingDirectory = 1<<capDACReadSearch, "/srv/karl"
		}, ""},
	} {
		spec := good
		c.edit(&spec)
		e, f := specEnv(t, spec)
		e.Host = host
		rep, err := Restart(context.Background(), e, testSite(t), 0)
		switch {
		case c.want == "" && (err != nil || len(f.restarts) != 1):
			t.Errorf("%s: %v, restarts %v", c.name, err, f.restarts)
		case c.want != "" && (!errors.Is(err, ErrCannotStart) || !strings.Contains(err.Error(), c.want) || len(f.restarts) != 0 || rep.Result != ""):
			t.Errorf("%s: %v, restarts %v, report %+v; want it refused saying %q", c.name, err, f.restarts, rep, c.want)
		}
	}
}

// An overlap site's switch to a maintenance mode is a handover: a page
// the new generation surely could not open (not there, hidden by the
// unit) would fail it and be rolled back, the old generation serving on.
// It is refused before, changing nothing; a page it can open goes ahead.
func TestOverlapHandoverToAPageThatCannotBeServedIsRefused(t *testing.T) {
	files := fstest.MapFS{"root/down.html": {Mode: 0o644}, "srv/down.html": {Mode: 0o644}}
	host := &sitecheck.Host{Stat: func(p string) (fs.FileInfo, error) { return files.Stat(strings.TrimPrefix(p, "/")) }}
	for _, c := range []struct{ page, want string }{
		{"/root/down.html", "site karl: mode down would not serve: the maintenance page /root/down.html lies under /root, which the site's unit hides from its processes (ProtectHome=yes): the maintenance server would not start; a handover would start a generation that fails, and the one serving would go on; nothing was done"},
		{"/srv/gone.html", "the maintenance page /srv/gone.html does not exist"},
		{"/srv/down.html", ""},
	} {
		e, f := specEnv(t, control.StartSpec{Argv: launchArgv("/usr/bin/app"), DynamicUser: true, ProtectHome: "yes"})
		e.Host = host
		e.Probe = func(context.Context, *site.Site, site.Mode) error { return nil }
		s := overlapSite(t, "[modes.down]\nserve = \"maintenance\"\npage = \""+c.page+"\"\n")
		rep, err := SwitchMode(context.Background(), e, s, "down", Options{})
		switch {
		case c.want == "" && (err != nil || len(f.reloads) != 1):
			t.Errorf("%s: %v, reloads %v", c.page, err, f.reloads)
		case c.want != "" && (!errors.Is(err, ErrCannotStart) || !strings.Contains(err.Error(), c.want) || len(f.reloads)+len(f.restarts) != 0 || rep.Changed):
			t.Errorf("%s: %v, reloads %v, restarts %v, report %+v; want it refused saying %q", c.page, err, f.reloads, f.restarts, rep, c.want)
		}
		if st, _ := e.Store.ReadState("karl"); c.want != "" && len(st.History) != 0 {
			t.Errorf("%s: a refused switch recorded %+v", c.page, st.History)
		}
	}
}
