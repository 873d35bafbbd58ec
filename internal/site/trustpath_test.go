package site

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// Every directory on the way to a site file, and on the way through each
// symlink to it, must be root's alone: whoever may change one may put a
// symlink to any file of root's in the file's place.
func TestFileProblem(t *testing.T) {
	host := fakeFS{
		"/":                                dir(0, 0, 0o755),
		"/etc":                             dir(0, 0, 0o755),
		"/etc/sitectl":                     dir(0, 0, 0o755),
		"/etc/sitectl/sites":               dir(0, 0, 0o755),
		"/etc/sitectl/sites/a.toml":        fakeEntry{mode: unix.S_IFREG | 0o644},
		"/etc/sitectl/sites/checkout.toml": link("/srv/sites/a.toml"),
		"/etc/sitectl/sites/rel.toml":      link("../../../srv/sites/a.toml"),
		"/etc/sitectl/sites/deploy.toml":   link("/srv/deploy/a.toml"),
		"/etc/sitectl/sites/chain.toml":    link("/srv/sites/todeploy.toml"),
		"/etc/sitectl/sites/open.toml":     link("/srv/open/a.toml"),
		"/etc/sitectl/sites/staff.toml":    link("/srv/staff/a.toml"),
		"/etc/sitectl/sites/wheel.toml":    link("/srv/wheel/a.toml"),
		"/etc/sitectl/sites/tmp.toml":      link("/tmp/root/a.toml"),
		"/etc/sitectl/sites/tmpuser.toml":  link("/tmp/userlink"),
		"/etc/sitectl/sites/tmpgone.toml":  link("/tmp/gone/a.toml"),
		"/etc/sitectl/sites/up.toml":       link("/srv/deploy/../sites/a.toml"),
		"/etc/sitectl/sites/gone.toml":     link("/srv/sites/gone.toml"),
		"/srv":                             dir(0, 0, 0o755),
		"/srv/sites":                       dir(0, 0, 0o755),
		"/srv/sites/a.toml":                fakeEntry{mode: unix.S_IFREG | 0o644},
		"/srv/sites/todeploy.toml":         link("../deploy/a.toml"),
		"/srv/deploy":                      dir(1001, 1001, 0o755),
		"/srv/deploy/a.toml":               fakeEntry{mode: unix.S_IFREG | 0o644},
		"/srv/open":                        dir(0, 0, 0o777),
		"/srv/staff":                       dir(0, 50, 0o775),
		"/srv/wheel":                       dir(0, 0, 0o775),
		"/tmp":                             dir(0, 0, 0o1777),
		"/tmp/root":                        dir(0, 0, 0o755),
		"/tmp/root/a.toml":                 fakeEntry{mode: unix.S_IFREG | 0o644},
		"/tmp/userlink":                    fakeEntry{uid: 1000, mode: unix.S_IFLNK | 0o777, link: "/srv/sites/a.toml"},
		"/linked":                          link("/srv/deploy"),
	}
	for _, c := range []struct{ path, dir, why string }{
		{"/etc/sitectl/sites/a.toml", "", ""},
		{"/etc/sitectl/sites/checkout.toml", "", ""}, // a link of root's to a file of root's
		{"/etc/sitectl/sites/rel.toml", "", ""},
		{"/etc/sitectl/sites/wheel.toml", "", ""}, // group-writable by root's group
		{"/etc/sitectl/sites/tmp.toml", "", ""},   // root's directory in sticky /tmp
		{"/etc/sitectl/sites/gone.toml", "", ""},  // the open says it is missing
		{"/etc/sitectl/sites/missing.toml", "", ""},
		{"/etc/sitectl/sites/deploy.toml", "/srv/deploy", "is owned by uid 1001, not root"},
		{"/etc/sitectl/sites/chain.toml", "/srv/deploy", "is owned by uid 1001, not root"},
		{"/etc/sitectl/sites/up.toml", "/srv/deploy", "is owned by uid 1001, not root"},
		{"/etc/sitectl/sites/open.toml", "/srv/open", "may be changed by users other than root (mode 0777)"},
		{"/etc/sitectl/sites/staff.toml", "/srv/staff", "may be changed by users other than root (mode 0775)"},
		{"/etc/sitectl/sites/tmpuser.toml", "/tmp/userlink", "is owned by uid 1000, not root, in /tmp"},
		{"/etc/sitectl/sites/tmpgone.toml", "/tmp/gone", "does not exist, and anyone may create it in /tmp"},
		{"/linked/a.toml", "/srv/deploy", "is owned by uid 1001, not root"},
	} {
		pp := host.view().fileProblem(c.path)
		switch {
		case c.dir == "" && pp != nil:
			t.Errorf("%s: %+v, want none", c.path, *pp)
		case c.dir != "" && (pp == nil || pp.dir != c.dir || !strings.HasPrefix(pp.why, c.why)):
			t.Errorf("%s: %+v, want %s %s", c.path, pp, c.dir, c.why)
		}
	}
	// The site directory itself is checked as the last directory on
	// the way to its files.
	if pp := host.view().dirProblem("/linked"); pp == nil || pp.dir != "/srv/deploy" {
		t.Errorf("dirProblem(/linked): %+v", pp)
	}
	if pp := host.view().dirProblem("/etc/sitectl/sites"); pp != nil {
		t.Errorf("dirProblem(/etc/sitectl/sites): %+v", *pp)
	}
	// A user checking their own files may own the directories.
	own := host.view()
	own.euid = 1001
	if pp := own.fileProblem("/etc/sitectl/sites/deploy.toml"); pp != nil {
		t.Errorf("as uid 1001: %+v", *pp)
	}
}

// deployHost is a site directory of root's whose a.toml is a symlink of
// root's to deploy/a.toml, in a directory of uid 1001's (a deployer's
// checkout), and whose b.toml holds site b's secret.
func deployHost(t *testing.T) (sites, deploy string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: a directory must be another user's")
	}
	root := t.TempDir()
	sites, deploy = filepath.Join(root, "sites"), filepath.Join(root, "deploy")
	for _, d := range []string{sites, deploy} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(deploy, "a.toml"), []byte(validSite), 0o644); err != nil {
		t.Fatal(err)
	}
	b := "exec = [\"/bin/b\"]\nenvironment = { B_SECRET = \"s3cret\" }\n[[listen]]\naddress = \"127.0.0.1:8081\"\n"
	if err := os.WriteFile(filepath.Join(sites, "b.toml"), []byte(b), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(deploy, "a.toml"), filepath.Join(sites, "a.toml")); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(deploy, 1001, 1001); err != nil {
		t.Fatal(err)
	}
	// What the deployer does: a.toml becomes a link to b's file.
	if err := os.Remove(filepath.Join(deploy, "a.toml")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(sites, "b.toml"), filepath.Join(deploy, "a.toml")); err != nil {
		t.Fatal(err)
	}
	return sites, deploy
}

// A deployer who may write the directory a site file is linked through
// cannot make root read another file as that site: every reader of a
// site file refuses it, and says which directory to fix.
func TestSiteFileThroughAnotherUsersDirectoryIsRefused(t *testing.T) {
	sites, deploy := deployHost(t)
	file := filepath.Join(sites, "a.toml")
	want := file + ": refusing it: " + deploy + " on its path is owned by uid 1001, not root: "
	data, err := ReadSiteFile(file)
	var fe *FileError
	if err == nil || !errors.As(err, &fe) || fe.Err != nil || !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("ReadSiteFile: %q, %v; want %q...", data, err, want)
	}
	if !strings.Contains(err.Error(), "chown root: "+deploy+"; chmod go-w "+deploy) {
		t.Errorf("the error does not say how to fix it: %v", err)
	}
	check := func(what string, res Result) {
		t.Helper()
		for _, s := range res.Sites {
			if s.File == file {
				t.Errorf("%s took %s: exec %v, environment %v", what, file, s.Exec, s.Environment)
			}
		}
		if len(res.Errors) != 1 || res.Errors[0].Error() != file+":1:1: "+strings.TrimPrefix(err.Error(), file+": ") {
			t.Errorf("%s: errors %v", what, res.Errors)
		}
	}
	res, lerr := LoadDir(sites, nil)
	if lerr != nil {
		t.Fatal(lerr)
	}
	check("LoadDir", res)
	check("LoadFiles", LoadFiles([]string{file}, nil, nil, nil))
	// A site reused from an earlier load is refused too.
	reuse := func(name string, id FileID) *Site {
		s, _ := ParseNamed(filepath.Join(sites, name), NameFromFile(name), []byte(validSite))
		return s
	}
	res, _, lerr = LoadDirReusing(sites, reuse, nil)
	if lerr != nil {
		t.Fatal(lerr)
	}
	check("LoadDirReusing", res)
	// Back to root's: the link is followed again.
	if err := os.Chown(deploy, 0, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadSiteFile(file); err != nil {
		t.Errorf("through a directory of root's: %v", err)
	}
}

// A site directory that another user may change is refused for every
// file in it, each one saying why.
func TestSiteDirectoryOthersMayChangeIsRefused(t *testing.T) {
	sites, _ := deployHost(t)
	if err := os.Chmod(sites, 0o777); err != nil {
		t.Fatal(err)
	}
	res, err := LoadDir(sites, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Sites) != 0 || len(res.Errors) != 2 {
		t.Fatalf("sites %v, errors %v", res.Sites, res.Errors)
	}
	for _, e := range res.Errors {
		if !strings.Contains(e.Msg, "refusing it: "+sites+" on its path may be changed by users other than root (mode 0777)") {
			t.Errorf("%v", e)
		}
	}
}

// A credential whose path goes through a directory another user may
// change is a mistake: systemd reads it as root at each start, following
// symlinks, so that user (the site's own, say, whose app writes its
// directory) could have the app handed any file of root's.
func TestCredentialThroughAnotherUsersDirectoryIsAMistake(t *testing.T) {
	host := fakeFS{
		"/":                     dir(0, 0, 0o755),
		"/etc":                  dir(0, 0, 0o755),
		"/etc/credstore":        dir(0, 0, 0o700),
		"/etc/credstore/shop":   dir(0, 0, 0o700),
		"/srv":                  dir(0, 0, 0o755),
		"/srv/shop":             dir(1000, 1000, 0o755),
		"/srv/shop/db_password": fakeEntry{uid: 1000, mode: unix.S_IFREG | 0o600},
	}
	s, errs := ParseNamed("/etc/sitectl/sites/shop.toml", "shop", []byte("exec = [\"/bin/app\"]\n"+
		"credentials = { db = \"/etc/credstore/shop/db\", key = \"/srv/shop/db_password\" }\n"+
		"[[listen]]\naddress = \"127.0.0.1:8080\"\n"))
	if errs != nil {
		t.Fatal(errs)
	}
	got := sockDirErrors(host.view(), s)
	want := "/etc/sitectl/sites/shop.toml:2:54: credentials.key: /srv/shop on the way to /srv/shop/db_password is owned by uid 1000, not root: " +
		"that user could put a symlink to any file in its place"
	if len(got) != 1 || !strings.HasPrefix(got[0].Error(), want) {
		t.Errorf("%v, want %q...", got, want)
	}
}

// The same holds on the host, for a site file and for the content of its
// last good copy the generator falls back to.
func TestLoadBytesChecksCredentialDirectories(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the directory must be another user's")
	}
	dir := filepath.Join(t.TempDir(), "shop")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "key"), []byte("k"), 0o600); err != nil {
		t.Fatal(err)
	}
	content := []byte("exec = [\"/bin/app\"]\ncredentials = { key = \"" + dir + "/key\" }\n[[listen]]\naddress = \"127.0.0.1:8080\"\n")
	if res := LoadBytes("/var/lib/sitectl/sites/shop/last-good.toml", "shop", content, nil); len(res.Errors) != 0 {
		t.Fatalf("a root's directory: %v", res.Errors)
	}
	if err := os.Chown(dir, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	res := LoadBytes("/var/lib/sitectl/sites/shop/last-good.toml", "shop", content, nil)
	if len(res.Sites) != 0 || len(res.Errors) != 1 || !strings.Contains(res.Errors[0].Error(), "credentials.key: "+dir+" on the way to "+dir+"/key is owned by uid 65534") {
		t.Errorf("a directory of uid 65534: sites %v, errors %v", res.Sites, res.Errors)
	}
}

// One load of many files linked elsewhere looks at each directory on the
// way once (fsView.memo), and sees what the file system says.
func TestMemoLooksAtEachDirectoryOnce(t *testing.T) {
	host := fakeFS{
		"/":                  dir(0, 0, 0o755),
		"/etc":               dir(0, 0, 0o755),
		"/etc/sites":         dir(0, 0, 0o755),
		"/etc/sites/a.toml":  link("/srv/sites/a.toml"),
		"/etc/sites/b.toml":  link("/srv/sites/b.toml"),
		"/srv":               dir(0, 0, 0o755),
		"/srv/sites":         dir(0, 0, 0o755),
		"/srv/deploy":        dir(1001, 1001, 0o755),
		"/etc/sites/c.toml":  link("/srv/deploy/c.toml"),
		"/srv/sites/a.toml":  {mode: unix.S_IFREG | 0o600},
		"/srv/sites/b.toml":  {mode: unix.S_IFREG | 0o600},
		"/srv/deploy/c.toml": {mode: unix.S_IFREG | 0o600},
	}
	lstats := map[string]int{}
	v := host.view()
	inner := v.lstat
	v.lstat = func(p string) (unix.Stat_t, error) {
		lstats[p]++
		return inner(p)
	}
	m := v.memo()
	for _, f := range []string{"/etc/sites/a.toml", "/etc/sites/b.toml"} {
		if pp := m.fileProblem(f); pp != nil {
			t.Errorf("%s: %+v", f, *pp)
		}
	}
	if pp := m.fileProblem("/etc/sites/c.toml"); pp == nil || pp.dir != "/srv/deploy" {
		t.Errorf("c.toml, through another user's directory: %+v", pp)
	}
	for _, d := range []string{"/", "/etc", "/etc/sites", "/srv", "/srv/sites"} {
		if lstats[d] != 1 {
			t.Errorf("%s looked at %d times, want once", d, lstats[d])
		}
	}
}
