package sitecheck

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"testing/fstest"

	"github.com/sitectl/sitectl/internal/pubpath"
	"github.com/sitectl/sitectl/internal/units"
	"golang.org/x/sys/unix"
)

const (
	testPasswd = "root:x:0:0:root:/root:/bin/sh\nshop:x:1001:1001::/srv/shop:/usr/sbin/nologin\nkarl:x:1002:1002::/srv/karl:/usr/sbin/nologin\n"
	testGroup  = "root:x:0:\nwww-data:x:33:karl,shop\nshop:x:1001:\nkarl:x:1002:\ndeploy:x:1500:karl\nmedia:x:1600:\n"
)

// accessHost is a host with the files of m, each with the owner and
// group of its Sys (a *syscall.Stat_t), the symlinks of links (a
// leading part of a path to what it leads to), the accounts above, and
// ACLs on the paths of acl.
func accessHost(m fstest.MapFS, links map[string]string, acl ...string) Host {
	resolve := func(p string) string {
		for from, to := range links {
			if p == from || strings.HasPrefix(p, from+"/") {
				return to + strings.TrimPrefix(p, from)
			}
		}
		return p
	}
	return Host{
		Stat: func(p string) (fs.FileInfo, error) {
			p = strings.TrimPrefix(resolve(p), "/")
			if p == "" {
				p = "."
			}
			if strings.HasPrefix(p, "srv/unreadable") {
				return nil, &fs.PathError{Op: "stat", Path: "/" + p, Err: syscall.EIO}
			}
			if strings.HasPrefix(p, "srv/locked/") { // as Public sees it
				return nil, &fs.PathError{Op: "stat", Path: "/" + p, Err: fs.ErrPermission}
			}
			return m.Stat(p)
		},
		EvalSymlinks: func(p string) (string, error) {
			r := resolve(p)
			if strings.HasPrefix(r, "/srv/locked/") {
				return "", fs.ErrPermission
			}
			if _, err := m.Stat(strings.TrimPrefix(r, "/")); err != nil && r != "/" {
				return "", err
			}
			return r, nil
		},
		ReadHead: func(p string, n int) ([]byte, error) {
			f, ok := m[strings.TrimPrefix(resolve(p), "/")]
			if !ok {
				return nil, fs.ErrNotExist
			}
			return f.Data[:min(n, len(f.Data))], nil
		},
		LookupName: func(db, name string) (bool, error) { return true, nil },
		Accounts:   func() ([]byte, []byte, error) { return []byte(testPasswd), []byte(testGroup), nil },
		ModeDecides: func(p string) (bool, error) {
			for _, a := range acl {
				if p == a {
					return false, nil
				}
			}
			return true, nil
		},
	}
}

// owned is a file or directory of mode owned by uid and gid.
func owned(mode fs.FileMode, uid, gid uint32, data string) *fstest.MapFile {
	return &fstest.MapFile{Mode: mode, Data: []byte(data), Sys: &syscall.Stat_t{Uid: uid, Gid: gid}}
}

// The start is refused when the site's user surely cannot run its
// program (or an interpreter, or a command run as the user) or enter its
// working directory: the owner, group and other bits of each directory
// on the way, and of the file, against the user's uid and groups. What
// may be granted otherwise (an ACL, root, a user or group that is not in
// the files, a stat that fails) is no reason.
func TestStartableAccess(t *testing.T) {
	const dir = fs.ModeDir
	files := fstest.MapFS{
		".":                       owned(dir|0o755, 0, 0, ""),
		"srv":                     owned(dir|0o755, 0, 0, ""),
		"srv/shop":                owned(dir|0o750, 1001, 1001, ""),
		"srv/shop/app":            owned(0o755, 0, 0, ""),
		"srv/shop/own":            owned(0o070, 1001, 1001, ""), // the owner's bits count for the owner, not the group's
		"srv/shop/script":         owned(0o755, 0, 0, "#!/srv/py/bin/python3\n"),
		"srv/shop/www":            owned(dir|0o700, 0, 0, ""),
		"srv/locked":              owned(dir|0o700, 0, 0, ""),
		"srv/locked/app":          owned(0o755, 0, 0, ""),
		"srv/locked/www":          owned(dir|0o755, 0, 0, ""),
		"srv/web":                 owned(dir|0o750, 0, 33, ""),
		"srv/web/app":             owned(0o750, 0, 33, ""),
		"srv/deploy":              owned(dir|0o750, 0, 1500, ""),
		"srv/deploy/app":          owned(0o755, 0, 0, ""),
		"srv/media":               owned(dir|0o750, 0, 1600, ""),
		"srv/media/app":           owned(0o755, 0, 0, ""),
		"srv/others":              owned(dir|0o701, 0, 0, ""),
		"srv/others/app":          owned(0o711, 0, 0, ""),
		"srv/acl":                 owned(dir|0o700, 0, 0, ""),
		"srv/acl/app":             owned(0o755, 0, 0, ""),
		"srv/py":                  owned(dir|0o700, 0, 0, ""),
		"srv/py/bin/python3":      owned(0o755, 0, 0, ""),
		"srv/releases":            owned(dir|0o700, 0, 0, ""),
		"srv/releases/a":          owned(dir|0o755, 0, 0, ""),
		"srv/releases/a/app":      owned(0o755, 0, 0, ""),
		"srv/unreadable/x/app":    owned(0o755, 0, 0, ""),
		"usr/local/bin/hook":      owned(0o700, 0, 0, ""),
		"srv/shop/current":        owned(dir|0o755, 1001, 1001, ""),
		"srv/shop/current/public": owned(dir|0o755, 1001, 1001, ""),
	}
	host := accessHost(files, map[string]string{"/srv/shop/current": "/srv/releases/a"}, "/srv/acl")
	shop := &RunAs{User: "shop"}
	noAccounts := host
	noAccounts.Accounts = func() ([]byte, []byte, error) { return nil, nil, errUnsure }
	noModes := host
	noModes.ModeDecides = nil
	checkStartable(t, []startableCase{
		{"fine", host, Start{Program: "/srv/shop/app", WorkingDirectory: "/srv/shop", RunAs: shop}, nil},
		{"a directory on the way only root may search, which the host does not look into", host, Start{Program: "/srv/locked/app", RunAs: shop},
			[]string{`the program /srv/locked/app cannot be run by user "shop": /srv/locked is mode 0700 owned by root:root: the start would fail`}},
		{"a group that lists the user, Group= another", host, Start{Program: "/srv/deploy/app", RunAs: &RunAs{User: "karl", Group: "karl"}}, nil},
		{"a group it is not in, Group= another", host, Start{Program: "/srv/deploy/app", RunAs: &RunAs{User: "shop", Group: "shop"}},
			[]string{`the program /srv/deploy/app cannot be run by user "shop": /srv/deploy is mode 0750 owned by root:deploy: the start would fail`}},
		{"the owner's bits, not the group's", host, Start{Program: "/srv/shop/own", RunAs: shop},
			[]string{`the program /srv/shop/own cannot be run by user "shop": /srv/shop/own is mode 0070 owned by shop:shop`}},
		{"a group that lists the user", host, Start{Program: "/srv/web/app", RunAs: shop}, nil},
		{"a group it is not in", host, Start{Program: "/srv/deploy/app", RunAs: shop},
			[]string{`the program /srv/deploy/app cannot be run by user "shop": /srv/deploy is mode 0750 owned by root:deploy`}},
		{"SupplementaryGroups=", host, Start{Program: "/srv/deploy/app", RunAs: &RunAs{User: "shop", SupplementaryGroups: []string{"deploy"}}}, nil},
		{"SupplementaryGroups= by number", host, Start{Program: "/srv/deploy/app", RunAs: &RunAs{User: "shop", SupplementaryGroups: []string{"1500"}}}, nil},
		{"Group=", host, Start{Program: "/srv/media/app", RunAs: &RunAs{User: "shop", Group: "media"}}, nil},
		{"others may search and run", host, Start{Program: "/srv/others/app", RunAs: shop}, nil},
		{"an ACL may grant it", host, Start{Program: "/srv/acl/app", RunAs: shop}, nil},
		{"a filesystem that decides for itself", noModes, Start{Program: "/srv/locked/app", RunAs: shop}, nil},
		{"root", host, Start{Program: "/srv/locked/app", RunAs: &RunAs{User: "root"}}, nil},
		{"no user checked (DynamicUser=)", host, Start{Program: "/srv/locked/app"}, nil},
		{"a user by number", host, Start{Program: "/srv/locked/app", RunAs: &RunAs{User: "1001"}}, nil},
		{"a user not in the files", host, Start{Program: "/srv/locked/app", RunAs: &RunAs{User: "ldap-user"}}, nil},
		{"a group not in the files", host, Start{Program: "/srv/locked/app", RunAs: &RunAs{User: "shop", SupplementaryGroups: []string{"ldap-group"}}}, nil},
		{"accounts NSS may have elsewhere", noAccounts, Start{Program: "/srv/locked/app", RunAs: shop}, nil},
		{"a stat that fails", host, Start{Program: "/srv/unreadable/x/app", RunAs: shop}, nil},
		{"a working directory under one only root may search", host, Start{WorkingDirectory: "/srv/locked/www", RunAs: shop},
			[]string{`the working directory /srv/locked/www cannot be entered by user "shop": /srv/locked is mode 0700 owned by root:root: the start would fail with 200/CHDIR`}},
		{"a working directory only root may search", host, Start{WorkingDirectory: "/srv/shop/www", RunAs: shop},
			[]string{`the working directory /srv/shop/www cannot be entered by user "shop": /srv/shop/www is mode 0700 owned by root:root`}},
		{"an interpreter the user cannot run", host, Start{Program: "/srv/shop/script", RunAs: shop},
			[]string{`the program /srv/shop/script runs /srv/py/bin/python3 (its #! line), which cannot be run by user "shop": /srv/py is mode 0700 owned by root:root: the start would fail`}},
		{"through a symlink, the directories it leads through", host, Start{Program: "/srv/shop/current/app", WorkingDirectory: "/srv/shop/current", RunAs: shop},
			[]string{`the program /srv/shop/current/app cannot be run by user "shop": /srv/releases is mode 0700 owned by root:root`,
				`the working directory /srv/shop/current cannot be entered by user "shop": /srv/releases is mode 0700`}},
		{"a command run as the user", host, Start{Commands: []Command{{"ExecStartPre=", "/usr/local/bin/hook", true}}, RunAs: shop},
			[]string{`the program /usr/local/bin/hook (ExecStartPre=) cannot be run by user "shop": /usr/local/bin/hook is mode 0700 owned by root:root: the start would fail with 203/EXEC`}},
		{"a command run as root (+, !)", host, Start{Commands: []Command{{"ExecStartPre=", "/usr/local/bin/hook", false}}, RunAs: shop}, nil},
	})
}

// A site without user runs as one systemd makes up at each start
// (DynamicUser=yes, the default), who is neither the owner nor in the
// group of any file outside systemd's dynamic range: only the other bits
// count for it. What may be its own (owned by a uid or gid in the
// range, under the directories of its StateDirectory= and the like) is
// no reason; nor is any of it for a unit whose capabilities override
// the modes (RunAs nil).
func TestStartableAccessOfADynamicUser(t *testing.T) {
	const dir = fs.ModeDir
	files := fstest.MapFS{
		".":                     owned(dir|0o755, 0, 0, ""),
		"srv":                   owned(dir|0o755, 0, 0, ""),
		"srv/locked":            owned(dir|0o700, 0, 0, ""),
		"srv/locked/app":        owned(0o755, 0, 0, ""),
		"srv/group":             owned(dir|0o750, 0, 1500, ""),
		"srv/group/app":         owned(0o755, 0, 0, ""),
		"srv/others":            owned(dir|0o711, 1001, 1001, ""),
		"srv/others/app":        owned(0o701, 1001, 1001, ""),
		"srv/www":               owned(dir|0o755, 0, 0, ""),
		"srv/www/secret.html":   owned(0o600, 0, 0, "<h1>down</h1>"),
		"srv/www/group.html":    owned(0o640, 0, 1500, "<h1>down</h1>"),
		"srv/www/index.html":    owned(0o644, 0, 0, "<h1>down</h1>"),
		"srv/www/static":        owned(dir|0o711, 0, 0, ""),
		"srv/www/open":          owned(dir|0o755, 0, 0, ""),
		"srv/closed":            owned(dir|0o700, 0, 0, ""),
		"srv/closed/index.html": owned(0o644, 0, 0, ""),
		"srv/dyn":               owned(dir|0o700, 61190, 61190, ""),
		"srv/dyn/app":           owned(0o700, 61190, 61190, ""),
		"var/lib/private":       owned(dir|0o700, 0, 0, ""),
		"var/lib/private/shop":  owned(dir|0o755, 0, 0, ""),
	}
	host := accessHost(files, map[string]string{"/var/lib/shop": "/var/lib/private/shop", "/srv/www/link.html": "/srv/closed/index.html"})
	dyn := &RunAs{Dynamic: true}
	const who = "the site's dynamic user (DynamicUser=yes)"
	checkStartable(t, []startableCase{
		{"a directory on the way only root may search", host, Start{Program: "/srv/locked/app", RunAs: dyn},
			[]string{`the program /srv/locked/app cannot be run by ` + who + `: /srv/locked is mode 0700 owned by root:root: the start would fail`}},
		{"a group's directory", host, Start{Program: "/srv/group/app", RunAs: dyn},
			[]string{`the program /srv/group/app cannot be run by ` + who + `: /srv/group is mode 0750 owned by root:deploy`}},
		{"the group's, with SupplementaryGroups=", host, Start{Program: "/srv/group/app", RunAs: &RunAs{Dynamic: true, SupplementaryGroups: []string{"deploy"}}}, nil},
		{"others may search and run", host, Start{Program: "/srv/others/app", WorkingDirectory: "/srv/others", RunAs: dyn}, nil},
		{"a working directory only root may search", host, Start{WorkingDirectory: "/srv/locked", RunAs: dyn},
			[]string{`the working directory /srv/locked cannot be entered by ` + who + `: /srv/locked is mode 0700 owned by root:root: the start would fail with 200/CHDIR`}},
		{"owned by a dynamic uid: maybe its own", host, Start{Program: "/srv/dyn/app", WorkingDirectory: "/srv/dyn", RunAs: dyn}, nil},
		{"its StateDirectory=, under /var/lib/private", host, Start{WorkingDirectory: "/var/lib/shop", Page: "/var/lib/private/shop", RunAs: dyn},
			[]string{"the maintenance page /var/lib/private/shop is not a regular file: the maintenance server would not start"}},
		{"capabilities that override the modes", host, Start{Program: "/srv/locked/app", Page: "/srv/www/secret.html"}, nil},
		{"a page anyone may read", host, Start{Page: "/srv/www/index.html", StaticDir: "/srv/www/open", RunAs: dyn}, nil},
		{"a page only root may read", host, Start{Page: "/srv/www/secret.html", RunAs: dyn},
			[]string{`the maintenance page /srv/www/secret.html cannot be read by ` + who + `: /srv/www/secret.html is mode 0600 owned by root:root: the maintenance server would not start`}},
		{"a page of a group it is not in", host, Start{Page: "/srv/www/group.html", RunAs: dyn},
			[]string{`the maintenance page /srv/www/group.html cannot be read by ` + who + `: /srv/www/group.html is mode 0640 owned by root:deploy`}},
		{"a page of a group it is in", host, Start{Page: "/srv/www/group.html", RunAs: &RunAs{Dynamic: true, SupplementaryGroups: []string{"deploy"}}}, nil},
		{"a page in a directory it may not search", host, Start{Page: "/srv/closed/index.html", RunAs: dyn},
			[]string{`the maintenance page /srv/closed/index.html cannot be read by ` + who + `: /srv/closed is mode 0700 owned by root:root`}},
		{"a page linked into a directory it may not search", host, Start{Page: "/srv/www/link.html", RunAs: dyn},
			[]string{`the maintenance page /srv/www/link.html cannot be read by ` + who + `: /srv/closed is mode 0700 owned by root:root`}},
		{"a static_dir it may search but not read", host, Start{StaticDir: "/srv/www/static", RunAs: dyn},
			[]string{`the static_dir /srv/www/static cannot be read by ` + who + `: /srv/www/static is mode 0711 owned by root:root: the maintenance server would not start`}},
		{"a page a named user may read as its owner", host, Start{Page: "/srv/others/app", RunAs: &RunAs{User: "shop"}}, nil},
		{"a page a named user may not read", host, Start{Page: "/srv/www/secret.html", RunAs: &RunAs{User: "shop"}},
			[]string{`the maintenance page /srv/www/secret.html cannot be read by user "shop": /srv/www/secret.html is mode 0600 owned by root:root`}},
	})
}

// What the unit hides from its processes (PrivateTmp=, ProtectHome=,
// InaccessiblePaths=) is not there for them, whatever the host has
// there: a program, working directory, page or static_dir under it
// refuses the start, as written or through a symlink. A unit that
// mounts something of its own (MountsOver) may put it back: no reason.
func TestStartableHidden(t *testing.T) {
	const dir = fs.ModeDir
	files := fstest.MapFS{
		".":                   owned(dir|0o755, 0, 0, ""),
		"root":                owned(dir|0o755, 0, 0, ""),
		"root/down.html":      owned(0o644, 0, 0, "<h1>down</h1>"),
		"root/app":            owned(0o755, 0, 0, ""),
		"tmp":                 owned(dir|0o777, 0, 0, ""),
		"tmp/static":          owned(dir|0o755, 0, 0, ""),
		"srv":                 owned(dir|0o755, 0, 0, ""),
		"srv/www":             owned(dir|0o755, 0, 0, ""),
		"srv/www/index.html":  owned(0o644, 0, 0, ""),
		"home":                owned(dir|0o755, 0, 0, ""),
		"home/ann":            owned(dir|0o755, 0, 0, ""),
		"home/ann/index.html": owned(0o644, 0, 0, ""),
	}
	host := accessHost(files, map[string]string{"/srv/page.html": "/home/ann/index.html"})
	hidden := append(units.Hides("PrivateTmp", []string{"yes"}), units.Hides("ProtectHome", []string{"yes"})...)
	hidden = append(hidden, units.Hides("InaccessiblePaths", []string{"-/srv/www"})...)
	checkStartable(t, []startableCase{
		{"a page in root's home", host, Start{Page: "/root/down.html", Hidden: hidden},
			[]string{"the maintenance page /root/down.html lies under /root, which the site's unit hides from its processes (ProtectHome=yes): the maintenance server would not start"}},
		{"a static_dir in /tmp", host, Start{StaticDir: "/tmp/static", Hidden: hidden},
			[]string{"the static_dir /tmp/static lies under /tmp, which the site's unit hides from its processes (PrivateTmp=yes): the maintenance server would not start"}},
		{"InaccessiblePaths=", host, Start{Page: "/srv/www/index.html", Hidden: hidden},
			[]string{"the maintenance page /srv/www/index.html lies under /srv/www, which the site's unit hides from its processes (InaccessiblePaths=-/srv/www)"}},
		{"through a symlink", host, Start{Page: "/srv/page.html", Hidden: hidden},
			[]string{"the maintenance page /srv/page.html lies under /home, which the site's unit hides from its processes (ProtectHome=yes)"}},
		{"a program and working directory", host, Start{Program: "/root/app", WorkingDirectory: "/root", Hidden: hidden},
			[]string{"the program /root/app lies under /root, which the site's unit hides from its processes (ProtectHome=yes): the start would fail",
				"the working directory /root lies under /root, which the site's unit hides from its processes (ProtectHome=yes): the start would fail with 200/CHDIR"}},
		{"ReadWritePaths= in the private /tmp", host, Start{Paths: []Needed{{"ReadWritePaths=", "/tmp/static"}, {"BindReadOnlyPaths=", "/tmp/static"}, {"ReadOnlyPaths=", "/root/app"}}, Hidden: hidden},
			[]string{"the path /tmp/static (ReadWritePaths=) lies under /tmp, which the unit replaces with an empty one of its own (PrivateTmp=yes): systemd could not find it as it sets up the unit's mount namespace, and the start would fail with 226/NAMESPACE"}},
		{"a mount of the unit's own", host, Start{Page: "/root/down.html", Program: "/root/app", Hidden: hidden, MountsOver: true}, nil},
		{"nothing hidden", host, Start{Page: "/root/down.html", StaticDir: "/tmp/static"}, nil},
	})
}

func TestIdentity(t *testing.T) {
	h := accessHost(nil, nil)
	id, ok := h.identity(&RunAs{User: "karl", Group: "media", SupplementaryGroups: []string{"shop"}})
	if !ok || id.uid != 1002 {
		t.Fatalf("identity of karl: %+v %v", id, ok)
	}
	for _, g := range []uint32{1002, 33, 1500, 1600, 1001} {
		if !containsGID(id.gids, g) {
			t.Errorf("karl's groups %v lack %d", id.gids, g)
		}
	}
	if containsGID(id.gids, 0) {
		t.Errorf("karl's groups %v have root's", id.gids)
	}
	h.Accounts = func() ([]byte, []byte, error) { return nil, nil, errors.New("cannot read") }
	if _, ok := h.identity(&RunAs{User: "karl"}); ok {
		t.Error("identity without the account files")
	}
}

func containsGID(gids []uint32, g uint32) bool {
	for _, x := range gids {
		if x == g {
			return true
		}
	}
	return false
}

func TestHasLine(t *testing.T) {
	conf := []byte("passwd: files\n# initgroups: ldap\ngroup: files\n")
	if hasLine(conf, "initgroups") || !hasLine(conf, "group") {
		t.Errorf("hasLine")
	}
}

// On this host: a directory of the test's is decided by its mode (the
// test's temporary directory is on a local filesystem, most likely).
func TestModeDecidesOnThisHost(t *testing.T) {
	d := t.TempDir()
	decides, err := modeDecides(d)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: the mode decides: %v", d, decides)
	if _, err := modeDecides(d + "/no-such"); err == nil {
		t.Error("modeDecides of a path that is not there: no error")
	}
}

// sitectl check warns of the same for the site file's user: its exec,
// its cleanup hooks (run as the user at each stop), its workdir and its
// modes' pages and static directories. A site without user is checked as
// the dynamic user systemd makes up for it.
func TestWarningsOfTheUsersAccess(t *testing.T) {
	files := fstest.MapFS{
		".":                    owned(fs.ModeDir|0o755, 0, 0, ""),
		"srv":                  owned(fs.ModeDir|0o755, 0, 0, ""),
		"srv/closed":           owned(fs.ModeDir|0o700, 0, 0, ""),
		"srv/closed/app":       owned(0o755, 0, 0, ""),
		"srv/closed/www":       owned(fs.ModeDir|0o755, 0, 0, ""),
		"srv/closed/down.html": owned(0o644, 0, 0, ""),
	}
	host := accessHost(files, nil)
	const rest = "exec = [\"/srv/closed/app\"]\nworkdir = \"/srv/closed/www\"\ncleanup = [[\"/srv/closed/app\"]]\n[[listen]]\naddress = \"127.0.0.1:1\"\n"
	s, data := parse(t, "user = \"shop\"\n"+rest)
	var got []string
	for _, w := range Warnings(host, s, data, 0o640, units.Options{}) {
		got = append(got, w.Error())
	}
	want := []string{
		`2:9: warning: exec: the program /srv/closed/app cannot be run by user "shop": /srv/closed is mode 0700 owned by root:root: the start would fail`,
		`4:13: warning: cleanup[0]: the program /srv/closed/app cannot be run by user "shop": /srv/closed is mode 0700 owned by root:root: the hook would fail at every stop`,
		`3:1: warning: workdir: the working directory /srv/closed/www cannot be entered by user "shop": /srv/closed is mode 0700 owned by root:root: the start would fail with 200/CHDIR`,
	}
	if len(got) != len(want) {
		t.Fatalf("warnings %q, want %d", got, len(want))
	}
	for i, w := range want {
		if !strings.HasSuffix(got[i], w) {
			t.Errorf("warning %q, want it to end with %q", got[i], w)
		}
	}
	s, data = parse(t, rest+"[modes.down]\nserve = \"maintenance\"\npage = \"/srv/closed/down.html\"\n")
	got = nil
	for _, w := range Warnings(host, s, data, 0o640, units.Options{}) {
		got = append(got, w.Error())
	}
	const who = "the site's dynamic user (DynamicUser=yes)"
	want = []string{
		`1:9: warning: exec: the program /srv/closed/app cannot be run by ` + who + `: /srv/closed is mode 0700 owned by root:root: the start would fail`,
		`3:13: warning: cleanup[0]: the program /srv/closed/app cannot be run by ` + who + `: /srv/closed is mode 0700 owned by root:root: the hook would fail at every stop`,
		`2:1: warning: workdir: the working directory /srv/closed/www cannot be entered by ` + who + `: /srv/closed is mode 0700 owned by root:root: the start would fail with 200/CHDIR`,
		`8:8: warning: modes.down.page: the maintenance page /srv/closed/down.html cannot be read by ` + who + `: /srv/closed is mode 0700 owned by root:root: the maintenance server would not start: a switch to mode down would fail`,
	}
	if len(got) != len(want) {
		t.Fatalf("a site of a dynamic user: warnings %q, want %d", got, len(want))
	}
	for i, w := range want {
		if !strings.HasSuffix(got[i], w) {
			t.Errorf("warning %q, want it to end with %q", got[i], w)
		}
	}
}

// On this host, as root: a directory only root may search keeps user
// nobody from a program under it, as root sees the host and as any user
// does (Public, the state service's); an ACL that lets nobody search it
// leaves it unknown.
func TestAccessOnThisHost(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root, to own files other than the user's")
	}
	if _, _, err := readAccounts(); err != nil {
		t.Skipf("this host's accounts cannot be read surely: %v", err)
	}
	base := t.TempDir()
	// The test's directory and the one TempDir made for the test are its
	// own; those above must let anyone search them.
	for _, d := range []string{base, filepath.Dir(base)} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for d := filepath.Dir(filepath.Dir(base)); ; d = filepath.Dir(d) {
		if fi, err := os.Stat(d); err != nil || fi.Mode().Perm()&0o001 == 0 {
			t.Skipf("%s is not searchable by everyone: %v", d, err)
		}
		if d == "/" {
			break
		}
	}
	locked := filepath.Join(base, "locked")
	if err := os.Mkdir(locked, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(locked, "app"), []byte("\x7fELF"), 0o755); err != nil {
		t.Fatal(err)
	}
	if decides, err := modeDecides(locked); err != nil || !decides {
		t.Skipf("the test's directory is on a filesystem that decides for itself: %v %v", decides, err)
	}
	st := Start{Program: filepath.Join(locked, "app"), RunAs: &RunAs{User: "nobody"}}
	want := fmt.Sprintf(`the program %s/app cannot be run by user "nobody": %s is mode 0700 owned by root:`, locked, locked)
	for name, h := range map[string]Host{"OS": OS, "Public": Public(pubpath.Resolver{})} {
		if got := Startable(h, st); len(got) != 1 || !strings.HasPrefix(got[0], want) {
			t.Errorf("%s: %q, want one starting with %q", name, got, want)
		}
	}
	// An ACL (as setfacl -m u:nobody:x writes it): user::rwx,
	// user:nobody:--x, group::---, mask::--x, other::---.
	acl := []byte{2, 0, 0, 0}
	for _, e := range [][3]uint32{{0x01, 7, 0xffffffff}, {0x02, 1, 65534}, {0x04, 0, 0xffffffff}, {0x10, 1, 0xffffffff}, {0x20, 0, 0xffffffff}} {
		acl = binary.LittleEndian.AppendUint16(acl, uint16(e[0]))
		acl = binary.LittleEndian.AppendUint16(acl, uint16(e[1]))
		acl = binary.LittleEndian.AppendUint32(acl, e[2])
	}
	if err := unix.Setxattr(locked, "system.posix_acl_access", acl, 0); err != nil {
		t.Skipf("setting an ACL: %v", err)
	}
	for name, h := range map[string]Host{"OS": OS, "Public": Public(pubpath.Resolver{})} {
		if got := Startable(h, st); len(got) != 0 {
			t.Errorf("%s with an ACL: %q", name, got)
		}
	}
}
