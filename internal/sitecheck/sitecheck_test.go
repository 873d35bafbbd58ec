package sitecheck

import (
	"io/fs"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/sitectl/sitectl/internal/site"
	"github.com/sitectl/sitectl/internal/units"
)

// fakeHost has the files of m (paths without the leading /) and the
// symlinks of links.
func fakeHost(m fstest.MapFS, links map[string]string) Host {
	return Host{
		Stat: func(p string) (fs.FileInfo, error) {
			if t, ok := links[p]; ok {
				p = t
			}
			return m.Stat(strings.TrimPrefix(p, "/"))
		},
		EvalSymlinks: func(p string) (string, error) {
			if t, ok := links[p]; ok {
				return t, nil
			}
			return p, nil
		},
		ReadHead: func(p string, n int) ([]byte, error) {
			if t, ok := links[p]; ok {
				p = t
			}
			f, ok := m[strings.TrimPrefix(p, "/")]
			if !ok {
				return nil, fs.ErrNotExist
			}
			return f.Data[:min(n, len(f.Data))], nil
		},
		LookupName: func(db, name string) (bool, error) {
			switch name {
			case "karl", "www-data":
				return true, nil
			case "ldap-user":
				return false, errUnsure
			}
			return false, nil
		},
	}
}

func parse(t *testing.T, text string) (*site.Site, []byte) {
	t.Helper()
	s, err := site.Parse("/etc/sitectl/sites/karl.toml", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	return s, []byte(text)
}

func TestWarnings(t *testing.T) {
	host := fakeHost(fstest.MapFS{
		"usr/bin/app":         {Mode: 0o755},
		"usr/bin/data":        {Mode: 0o644},
		"usr/bin":             {Mode: fs.ModeDir | 0o755},
		"var/tmp/build/app":   {Mode: 0o755},
		"srv/karl/current/ok": {Mode: 0o644},
		"root/site":           {Mode: fs.ModeDir | 0o700},
	}, map[string]string{"/usr/local/bin/app": "/var/tmp/build/app"})
	for _, c := range []struct {
		name, toml string
		mode       fs.FileMode
		want       []string
	}{
		{"fine", "exec = [\"/usr/bin/app\"]\nenvironment = { A = \"1\" }\n[[listen]]\naddress = \"127.0.0.1:1\"\n", 0o640, nil},
		{"missing", "exec = [\"/usr/bin/nope\"]\n[[listen]]\naddress = \"127.0.0.1:1\"\n", 0o644,
			[]string{"1:9: warning: exec: the program /usr/bin/nope does not exist on this host"}},
		{"not executable", "exec = [\"/usr/bin/data\"]\n[[listen]]\naddress = \"127.0.0.1:1\"\n", 0o644,
			[]string{"1:9: warning: exec: the program /usr/bin/data is not executable (mode 0644)"}},
		{"a directory", "exec = [\"/usr/bin\"]\n[[listen]]\naddress = \"127.0.0.1:1\"\n", 0o644,
			[]string{"1:9: warning: exec: the program /usr/bin is not a regular file"}},
		{"a symlink into /var/tmp", "exec = [\"/usr/local/bin/app\", \"x\"]\n[[listen]]\naddress = \"127.0.0.1:1\"\n", 0o644,
			[]string{"1:9: warning: exec: the program /usr/local/bin/app lies under /var/tmp, which the site's unit hides from the app (PrivateTmp=yes)"}},
		{"cleanup hooks", "exec = [\"/usr/bin/app\"]\ncleanup = [[\"/usr/bin/app\", \"x\"], [\"/usr/bin/nope\"], [\"/usr/bin/data\"], [\"/usr/local/bin/app\"]]\n[[listen]]\naddress = \"127.0.0.1:1\"\n", 0o600,
			[]string{"2:36: warning: cleanup[1]: the program /usr/bin/nope does not exist on this host: the hook would fail at every stop",
				"2:55: warning: cleanup[2]: the program /usr/bin/data is not executable (mode 0644): the hook would fail at every stop",
				"2:74: warning: cleanup[3]: the program /usr/local/bin/app lies under /var/tmp, which the site's unit hides from the app and its cleanup hooks (PrivateTmp=yes)"}},
		{"workdir in /root", "exec = [\"/usr/bin/app\"]\nworkdir = \"/root/site\"\n[[listen]]\naddress = \"127.0.0.1:1\"\n", 0o600,
			[]string{"2:1: warning: workdir /root/site lies under /root, which the site's unit hides from the app (ProtectHome=yes)"}},
		{"workdir missing", "exec = [\"/usr/bin/app\"]\nworkdir = \"/srv/nope\"\n[[listen]]\naddress = \"127.0.0.1:1\"\n", 0o600,
			[]string{"2:1: warning: workdir: the working directory /srv/nope does not exist: the start would fail with 200/CHDIR"}},
		{"workdir a file", "exec = [\"/usr/bin/app\"]\nworkdir = \"/srv/karl/current/ok\"\n[[listen]]\naddress = \"127.0.0.1:1\"\n", 0o600,
			[]string{"2:1: warning: workdir: the working directory /srv/karl/current/ok is not a directory"}},
		{"user and group known", "exec = [\"/usr/bin/app\"]\nuser = \"karl\"\ngroup = \"www-data\"\n[[listen]]\naddress = \"127.0.0.1:1\"\n", 0o600, nil},
		{"user and group missing", "exec = [\"/usr/bin/app\"]\nuser = \"kral\"\ngroup = \"www\"\n[[listen]]\naddress = \"127.0.0.1:1\"\n", 0o600,
			[]string{"2:1: warning: user \"kral\" does not exist on this host: the start would fail with 217/USER",
				"3:1: warning: group \"www\" does not exist on this host: the start would fail with 216/GROUP"}},
		{"credential missing", "exec = [\"/usr/bin/app\"]\n[[listen]]\naddress = \"127.0.0.1:1\"\n[credentials]\ndb = \"/etc/karl/db\"\n", 0o600,
			[]string{"5:1: warning: credentials.db: the credential file /etc/karl/db does not exist: the start would fail with 243/CREDENTIALS"}},
		{"writable path missing", "exec = [\"/usr/bin/app\"]\n[[listen]]\naddress = \"127.0.0.1:1\"\n[hardening]\nwritable_paths = [\"/srv/karl/current\", \"/srv/karl/uploadz\"]\n", 0o600,
			[]string{"5:40: warning: hardening.writable_paths[1]: the path /srv/karl/uploadz (ReadWritePaths=) does not exist: systemd could not set up the unit's mount namespace, and the start would fail with 226/NAMESPACE; create it before the site starts"}},
		{"writable path in the private /tmp", "exec = [\"/usr/bin/app\"]\n[[listen]]\naddress = \"127.0.0.1:1\"\n[hardening]\nwritable_paths = [\"/var/tmp/build\", \"/srv/karl/current\"]\n", 0o600,
			[]string{"5:19: warning: hardening.writable_paths[0]: the path /var/tmp/build (ReadWritePaths=) lies under /var/tmp, which the unit replaces with an empty one of its own (PrivateTmp=yes): systemd could not find it as it sets up the unit's mount namespace, and the start would fail with 226/NAMESPACE; the app may write its own /var/tmp anyway: leave it out"}},
		{"maintenance page missing", "exec = [\"/usr/bin/app\"]\n[[listen]]\naddress = \"127.0.0.1:1\"\n[modes.down]\nserve = \"maintenance\"\npage = \"/srv/karl/down.html\"\n", 0o600,
			[]string{"6:8: warning: modes.down.page: the maintenance page /srv/karl/down.html does not exist: the maintenance server would not start: a switch to mode down would fail"}},
		{"user from elsewhere", "exec = [\"/usr/bin/app\"]\nuser = \"ldap-user\"\n[[listen]]\naddress = \"127.0.0.1:1\"\n", 0o600, nil},
		{"mode environment readable", "exec = [\"/usr/bin/app\"]\n[[listen]]\naddress = \"127.0.0.1:1\"\n[modes.ro]\nenvironment = { RO = \"1\" }\n", 0o604,
			[]string{"4:2: warning: the file holds environment values and anyone on this host may read it (mode 0604)"}},
		{"secrets in the environment", "exec = [\"/usr/bin/app\"]\nenvironment = { API_TOKEN = \"x\", DATABASE_URL = \"postgres://shop:pw@db/shop\", LOG_URL = \"http://log@h/\", MONKEY = \"1\" }\n[[listen]]\naddress = \"127.0.0.1:1\"\n", 0o600,
			[]string{"2:17: warning: environment: API_TOKEN looks like a secret, and a site's environment is written into its unit, which every user on this host can read (systemctl show site-karl.service -p Environment)",
				"2:34: warning: environment: DATABASE_URL holds a URL with a password"}},
		{"no environment, readable", "exec = [\"/usr/bin/app\"]\n[[listen]]\naddress = \"127.0.0.1:1\"\n", 0o644, nil},
		{"keep_previous, gunicorn threads", "exec = [\"/usr/bin/gunicorn\", \"--threads\", \"4\", \"app\"]\nhandoff = \"overlap\"\nkeep_previous = \"10m\"\n[[listen]]\naddress = \"127.0.0.1:1\"\n", 0o644,
			[]string{"1:9: warning: exec: the program /usr/bin/gunicorn does not exist", "3:1: warning: keep_previous: gunicorn --threads 4 keeps connections alive, and sitectl cannot tell it"}},
		{"keep_previous, gunicorn gevent, keep-alive 0", "exec = [\"/usr/bin/gunicorn\", \"-k\", \"gevent\", \"--keep-alive=0\", \"app\"]\nhandoff = \"overlap\"\nkeep_previous = \"10m\"\n[[listen]]\naddress = \"127.0.0.1:1\"\n", 0o644,
			[]string{"1:9: warning: exec: the program /usr/bin/gunicorn does not exist"}},
		{"keep_previous, gunicorn sync", "exec = [\"/usr/bin/gunicorn\", \"--workers\", \"2\", \"app\"]\nhandoff = \"overlap\"\nkeep_previous = \"10m\"\n[[listen]]\naddress = \"127.0.0.1:1\"\n", 0o644,
			[]string{"1:9: warning: exec: the program /usr/bin/gunicorn does not exist"}},
		{"keep_previous, uwsgi http11", "exec = [\"/usr/bin/uwsgi\", \"--http11-socket\", \"=0\"]\nhandoff = \"overlap\"\nkeep_previous = \"10m\"\n[[listen]]\naddress = \"127.0.0.1:1\"\n", 0o644,
			[]string{"1:9: warning: exec: the program /usr/bin/uwsgi does not exist", "3:1: warning: keep_previous: uwsgi --http11-socket =0 keeps connections alive"}},
		{"keep_previous, gunicorn --threads=4", "exec = [\"/usr/bin/gunicorn\", \"--threads=4\", \"app\"]\nhandoff = \"overlap\"\nkeep_previous = \"10m\"\n[[listen]]\naddress = \"127.0.0.1:1\"\n", 0o644,
			[]string{"1:9: warning: exec: the program /usr/bin/gunicorn does not exist", "3:1: warning: keep_previous: gunicorn --threads=4 keeps connections alive,"}},
		{"gunicorn preset replaced by the environment", "exec = [\"/usr/bin/gunicorn\", \"app\"]\nserver = \"gunicorn\"\nenvironment = { GUNICORN_CMD_ARGS = \"--workers 3\" }\n[[listen]]\naddress = \"127.0.0.1:1\"\n[modes.ro]\nenvironment = { RO = \"1\", GUNICORN_CMD_ARGS = \"-w 1\" }\n", 0o600,
			[]string{"1:9: warning: exec: the program /usr/bin/gunicorn does not exist",
				"3:17: warning: environment: GUNICORN_CMD_ARGS replaces the gunicorn preset's (its --graceful-timeout, so gunicorn no longer drains for drain_timeout, and its -c /run/sitectl/gunicorn.conf.py, so fast_exit does nothing)",
				"7:27: warning: modes.ro.environment: GUNICORN_CMD_ARGS replaces the gunicorn preset's in that mode"}},
		{"gunicorn preset replaced, fast_exit off", "exec = [\"/usr/bin/gunicorn\", \"app\"]\nserver = \"gunicorn\"\nfast_exit = false\nenvironment = { GUNICORN_CMD_ARGS = \"--workers 3\" }\n[[listen]]\naddress = \"127.0.0.1:1\"\n", 0o600,
			[]string{"1:9: warning: exec: the program /usr/bin/gunicorn does not exist",
				"4:17: warning: environment: GUNICORN_CMD_ARGS replaces the gunicorn preset's (its --graceful-timeout, so gunicorn no longer drains for drain_timeout): put"}},
		{"gunicorn's own config file", "exec = [\"/usr/bin/gunicorn\", \"--workers\", \"2\", \"--conf=/etc/karl/g.py\", \"app\"]\nserver = \"gunicorn\"\n[[listen]]\naddress = \"127.0.0.1:1\"\n", 0o600,
			[]string{"1:9: warning: exec: the program /usr/bin/gunicorn does not exist",
				"1:48: warning: exec: --conf=/etc/karl/g.py names gunicorn's config file, which replaces sitectl's (/run/sitectl/gunicorn.conf.py): fast_exit does nothing"}},
		{"gunicorn's own config file, fast_exit off", "exec = [\"/usr/bin/gunicorn\", \"-c\", \"/etc/karl/g.py\", \"app\"]\nserver = \"gunicorn\"\nfast_exit = false\n[[listen]]\naddress = \"127.0.0.1:1\"\n", 0o600,
			[]string{"1:9: warning: exec: the program /usr/bin/gunicorn does not exist"}},
		{"a unix listener's owner and group the host lacks", "exec = [\"/usr/bin/app\"]\n[[listen]]\naddress = \"127.0.0.1:1\"\n[[listen]]\nname = \"admin\"\npath = \"/run/karl/admin.sock\"\nowner = \"nginx\"\ngroup = \"www\"\n[[listen]]\npath = \"/run/karl/web.sock\"\nowner = \"karl\"\ngroup = \"www-data\"\n", 0o600,
			[]string{"7:9: warning: listen[1].owner: user \"nginx\" does not exist on this host: systemd could not start site-karl@admin.socket, and the site would not listen on /run/karl/admin.sock",
				"8:9: warning: listen[1].group: group \"www\" does not exist on this host: systemd could not start site-karl@admin.socket"}},
		{"a unix listener's owner from elsewhere", "exec = [\"/usr/bin/app\"]\n[[listen]]\npath = \"/run/karl/web.sock\"\nowner = \"ldap-user\"\n", 0o600, nil},
		{"gunicorn --daemon", "exec = [\"/usr/bin/gunicorn\", \"--workers\", \"2\", \"--daem\", \"app\"]\nserver = \"gunicorn\"\n[[listen]]\naddress = \"127.0.0.1:1\"\n", 0o600,
			[]string{"1:9: warning: exec: the program /usr/bin/gunicorn does not exist",
				"1:48: warning: exec: --daem makes gunicorn fork into the background and end its first process: systemd takes that for a failed start, so every start of the site would fail and be rolled back; take it out"}},
		{"gunicorn -D, no preset", "exec = [\"/usr/bin/gunicorn\", \"-D\", \"app\"]\n[[listen]]\naddress = \"127.0.0.1:1\"\n", 0o600,
			[]string{"1:9: warning: exec: the program /usr/bin/gunicorn does not exist", "1:30: warning: exec: -D makes gunicorn fork into the background"}},
		{"uwsgi --daemonize=FILE", "exec = [\"/usr/bin/uwsgi\", \"--master\", \"--daemonize=/var/log/u.log\"]\nserver = \"uwsgi\"\n[[listen]]\naddress = \"127.0.0.1:1\"\n", 0o600,
			[]string{"1:9: warning: exec: the program /usr/bin/uwsgi does not exist", "1:39: warning: exec: --daemonize=/var/log/u.log makes uwsgi fork into the background"}},
		{"gunicorn --dump-config and others", "exec = [\"/usr/bin/gunicorn\", \"--d\", \"-d\", \"--daemonize\", \"app\"]\nserver = \"gunicorn\"\n[[listen]]\naddress = \"127.0.0.1:1\"\n", 0o600,
			[]string{"1:9: warning: exec: the program /usr/bin/gunicorn does not exist"}},
		{"a generic app's -D", "exec = [\"/usr/bin/app\", \"-D\", \"--daemon\"]\n[[listen]]\naddress = \"127.0.0.1:1\"\n", 0o600, nil},
		{"gunicorn threads without keep_previous", "exec = [\"/usr/bin/gunicorn\", \"--threads=4\", \"app\"]\nhandoff = \"overlap\"\n[[listen]]\naddress = \"127.0.0.1:1\"\n", 0o644,
			[]string{"1:9: warning: exec: the program /usr/bin/gunicorn does not exist"}},
	} {
		s, data := parse(t, c.toml)
		got := Warnings(host, s, data, c.mode, units.Options{})
		if len(got) != len(c.want) {
			t.Errorf("%s: %d warnings, want %d: %v", c.name, len(got), len(c.want), got)
			continue
		}
		for i, w := range c.want {
			if msg := got[i].Error(); !strings.HasPrefix(msg, "/etc/sitectl/sites/karl.toml:"+w) {
				t.Errorf("%s: %q, want it to start with %q", c.name, msg, w)
			}
		}
	}
}

// TestHiddenPathsFollowTheUnit: the hidden paths are read from the
// rendered service, so a directive added to the units is seen.
func TestHiddenPathsFollowTheUnit(t *testing.T) {
	s, _ := parse(t, "exec = [\"/usr/bin/app\"]\n[[listen]]\naddress = \"127.0.0.1:1\"\n")
	var paths []string
	for _, h := range units.HiddenPaths(s, units.Options{}) {
		paths = append(paths, h.Path+" "+h.Directive)
	}
	got := strings.Join(paths, ", ")
	for _, want := range []string{"/tmp PrivateTmp=yes", "/var/tmp PrivateTmp=yes", "/home ProtectHome=yes", "/root ProtectHome=yes", "/run/user ProtectHome=yes"} {
		if !strings.Contains(got, want) {
			t.Errorf("hidden paths %s lack %s", got, want)
		}
	}
}

// gunicorn's config file is named by -c in any spelling argparse takes,
// and by nothing else on its command line.
func TestNamesConfig(t *testing.T) {
	for a, want := range map[string]bool{
		"-c": true, "-cg.py": true, "--config": true, "--config=g.py": true, "--co": true, "--conf=g.py": true,
		"--c": false, "--chdir": false, "--check-config": false, "--capture-output": false, "-k": false,
		"app:application": false, "--workers": false, "--configx": false,
	} {
		if got := namesConfig(a); got != want {
			t.Errorf("namesConfig(%q) = %v, want %v", a, got, want)
		}
	}
}

// A user many sites share is named in each warning with a few of the
// others and a count of the rest, not with every one: a host whose 10,000
// sites all run as www-data would otherwise print each warning 10,000
// names long. Sites of a dynamic user share nothing.
func TestSharedUserNamesAFewOthers(t *testing.T) {
	var sites []*site.Site
	for _, n := range []string{"f", "b", "a", "e", "c", "d"} {
		sites = append(sites, &site.Site{Name: n, User: "www-data", File: "/etc/sitectl/sites/" + n + ".toml"})
	}
	sites = append(sites, &site.Site{Name: "dyn"}, &site.Site{Name: "dyn2"}, &site.Site{Name: "own", User: "own"})
	users := Users(append(sites, sites[0])) // a site checked and installed counts once
	if got := users["www-data"]; strings.Join(got, ",") != "a,b,c,d,e,f" {
		t.Fatalf("Users: www-data runs %v", got)
	}
	data := []byte("exec = [\"/bin/sh\"]\nuser = \"www-data\"\n")
	w := SharedUser(sites[1], data, users) // b
	if len(w) != 1 || w[0].Line != 2 || !strings.Contains(w[0].Msg, "user www-data is also the user of site a, c, d and 2 more:") {
		t.Errorf("b: %v", w)
	}
	for _, s := range sites[6:] {
		if w := SharedUser(s, nil, users); len(w) != 0 {
			t.Errorf("%s shares no user: %v", s.Name, w)
		}
	}
	two := Users(sites[:2])
	if w := SharedUser(sites[0], data, two); len(w) != 1 || !strings.Contains(w[0].Msg, "of site b:") {
		t.Errorf("f beside b: %v", w)
	}
}

// The units hide /etc/sitectl from every app, not what a site file links
// to elsewhere: a site file linked to a file others may read, which holds
// environment values, is readable by every site's app there, and the
// warning says so, and names that file.
func TestLinkedSiteFileReadableByApps(t *testing.T) {
	toml := "exec = [\"/usr/bin/app\"]\n[[listen]]\naddress = \"127.0.0.1:1\"\n[modes.secret]\nenvironment = { DB_PASSWORD = \"x\" }\n"
	for _, c := range []struct {
		name, target, want string
	}{
		{"not a link", "", "4:2: warning: the file holds environment values and anyone on this host may read it (mode 0644): chmod o-r /etc/sitectl/sites/karl.toml"},
		{"a link within /etc/sitectl", "/etc/sitectl/files/karl.toml", "4:2: warning: the file holds environment values and anyone on this host may read it (mode 0644)"},
		{"a link to /srv", "/srv/sites/karl.toml", "4:2: warning: the file holds environment values and anyone on this host, every site's app included, may read it where it links to (/srv/sites/karl.toml: the units hide /etc/sitectl from apps, not what its links lead to) (mode 0644): chmod o-r /srv/sites/karl.toml"},
	} {
		links := map[string]string{}
		if c.target != "" {
			links["/etc/sitectl/sites/karl.toml"] = c.target
		}
		host := fakeHost(fstest.MapFS{"usr/bin/app": {Mode: 0o755}}, links)
		s, data := parse(t, toml)
		got := Warnings(host, s, data, 0o644, units.Options{})
		if len(got) != 1 || !strings.HasPrefix(got[0].Error(), "/etc/sitectl/sites/karl.toml:"+c.want) {
			t.Errorf("%s: %v, want one warning starting %q", c.name, got, c.want)
		}
	}
}
