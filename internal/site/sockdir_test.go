package site

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// fakeFS is a file system of directories and symlinks, by path.
type fakeFS map[string]fakeEntry

type fakeEntry struct {
	uid, gid uint32
	mode     uint32 // type and permission bits
	link     string
}

func (f fakeFS) view() fsView {
	return fsView{
		lstat: func(p string) (unix.Stat_t, error) {
			e, ok := f[p]
			if !ok {
				return unix.Stat_t{}, fs.ErrNotExist
			}
			return unix.Stat_t{Uid: e.uid, Gid: e.gid, Mode: e.mode}, nil
		},
		readlink: func(p string) (string, error) { return f[p].link, nil },
	}
}

func dir(uid, gid, perm uint32) fakeEntry {
	return fakeEntry{uid: uid, gid: gid, mode: unix.S_IFDIR | perm}
}
func link(to string) fakeEntry { return fakeEntry{mode: unix.S_IFLNK | 0o777, link: to} }

func TestSockDirProblem(t *testing.T) {
	host := fakeFS{
		"/":                 dir(0, 0, 0o755),
		"/run":              dir(0, 0, 0o755),
		"/run/a":            dir(0, 0, 0o755),
		"/run/staff":        dir(0, 50, 0o775),
		"/run/wheel":        dir(0, 0, 0o775),
		"/srv":              dir(0, 0, 0o755),
		"/srv/a":            dir(1000, 1000, 0o755),
		"/srv/a/run":        dir(0, 0, 0o755),
		"/srv/open":         dir(0, 0, 0o777),
		"/tmp":              dir(0, 0, 0o1777),
		"/tmp/root":         dir(0, 0, 0o755),
		"/tmp/users":        dir(1000, 0, 0o755),
		"/tmp/userlink":     fakeEntry{uid: 1000, mode: unix.S_IFLNK | 0o777, link: "/run/a"},
		"/run/tolink":       link("/srv/a/run"),
		"/run/toroot":       link("a"),
		"/run/loop":         link("/run/loop"),
		"/run/sticky":       dir(0, 0, 0o1777),
		"/run/sticky/inner": dir(0, 0, 0o755),
	}
	for _, c := range []struct {
		path, want string
	}{
		{"/run/a/http.sock", ""},
		{"/run/new/deeper/http.sock", ""},     // systemd creates them, as root
		{"/run/wheel/http.sock", ""},          // group-writable, by root's group
		{"/run/toroot/http.sock", ""},         // a link of root's, to a directory of root's
		{"/tmp/root/http.sock", ""},           // sticky /tmp, root's directory in it
		{"/run/sticky/inner/x/http.sock", ""}, // a missing directory below root's
		{"/run/loop/http.sock", ""},           // cannot be told: binding fails anyway
		{"/srv/a/run/http.sock", "directory /srv/a is owned by uid 1000"},
		{"/srv/open/http.sock", "directory /srv/open may be changed by users other than root (mode 0777)"},
		{"/run/staff/http.sock", "directory /run/staff may be changed by users other than root (mode 0775)"},
		{"/run/tolink/http.sock", "directory /srv/a is owned by uid 1000"},
		{"/tmp/http.sock", "directory /tmp may be changed by users other than root (it is sticky"},
		{"/tmp/missing/http.sock", "directory /tmp/missing does not exist and anyone may create it in /tmp"},
		{"/tmp/users/http.sock", "/tmp/users is owned by uid 1000, not root, in /tmp"},
		{"/tmp/userlink/http.sock", "/tmp/userlink is owned by uid 1000, not root, in /tmp"},
	} {
		got := sockDirProblem(host.view(), c.path)
		if (c.want == "") != (got == "") || !strings.HasPrefix(got, c.want) {
			t.Errorf("%s: %q, want %q", c.path, got, c.want)
		}
	}
	// A user checking their own files may own the directories, as root
	// does; others' still count, and so does what anyone may write.
	own := host.view()
	own.euid = 1000
	for p, want := range map[string]string{
		"/srv/a/run/http.sock": "",
		"/tmp/users/http.sock": "",
		"/srv/open/http.sock":  "directory /srv/open may be changed by users other than root (mode 0777)",
	} {
		if got := sockDirProblem(own, p); (want == "") != (got == "") || !strings.HasPrefix(got, want) {
			t.Errorf("as uid 1000, %s: %q, want %q", p, got, want)
		}
	}
}

func TestSockDirErrorsNameTheListener(t *testing.T) {
	host := fakeFS{"/": dir(0, 0, 0o755), "/srv": dir(0, 0, 0o755), "/srv/a": dir(1000, 1000, 0o755)}
	s, errs := ParseNamed("/etc/sitectl/sites/a.toml", "a", []byte("exec = [\"/bin/app\"]\n[[listen]]\naddress = \"127.0.0.1:8080\"\n[[listen]]\nname = \"u\"\npath = \"/srv/a/http.sock\"\n"))
	if errs != nil {
		t.Fatal(errs)
	}
	got := sockDirErrors(host.view(), s)
	if len(got) != 1 || !strings.HasPrefix(got[0].Error(), "/etc/sitectl/sites/a.toml:6:8: listener /srv/a/http.sock: directory /srv/a is owned by uid 1000, not root: that user could put a symlink in its place") {
		t.Errorf("%v", got)
	}
}

// systemd deletes whatever is at a unix listener's path when its bind
// finds the path taken (socket_address_listen: unlink, bind again): a
// path onto /etc/passwd, another site's file or a symlink is a mistake;
// a socket there (the site's own, bound by systemd) or nothing is not.
func TestListenerOntoAFileIsAMistake(t *testing.T) {
	host := fakeFS{"/": dir(0, 0, 0o755), "/etc": dir(0, 0, 0o755), "/run": dir(0, 0, 0o755), "/run/a": dir(0, 0, 0o755),
		"/etc/passwd":      {mode: unix.S_IFREG | 0o644},
		"/etc/sitectl":     dir(0, 0, 0o755),
		"/run/a/http.sock": {mode: unix.S_IFSOCK | 0o666},
		"/run/a/link":      link("/etc/passwd"),
		"/run/a/fifo":      {mode: unix.S_IFIFO | 0o600},
	}
	for path, want := range map[string]string{
		"/run/a/http.sock": "",
		"/run/a/new.sock":  "",
		"/etc/passwd":      "listener /etc/passwd: /etc/passwd is a regular file, not a socket: systemd, which binds the socket as root, deletes whatever is at its path",
		"/etc/sitectl":     "/etc/sitectl is a directory, not a socket",
		"/run/a/link":      "/run/a/link is a symlink, not a socket",
		"/run/a/fifo":      "/run/a/fifo is a device, FIFO or other special file, not a socket",
	} {
		s, errs := ParseNamed("/etc/sitectl/sites/a.toml", "a", []byte("exec = [\"/bin/app\"]\n[[listen]]\npath = \""+path+"\"\n"))
		if errs != nil {
			t.Fatal(errs)
		}
		got := listenerDirErrors(host.view(), s)
		switch {
		case want == "" && len(got) > 0:
			t.Errorf("%s: %v, want no mistake", path, got)
		case want != "" && (len(got) != 1 || !strings.HasPrefix(got[0].Error(), "/etc/sitectl/sites/a.toml:3:8: ") || !strings.Contains(got[0].Error(), want)):
			t.Errorf("%s: %v, want %q", path, got, want)
		}
	}
}

// Content checked apart from a file (standard input, a last good copy the
// generator falls back to) gets the same check of its unix listeners'
// directories: whether a user may replace one is the host's, not the
// file's, and a site whose file was refused for it must not come back
// from its copy.
func TestLoadBytesChecksSocketDirectories(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the directory must be another user's")
	}
	dir := filepath.Join(t.TempDir(), "a")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Dir(dir), 0o755); err != nil {
		t.Fatal(err)
	}
	content := []byte("exec = [\"/bin/app\"]\n[[listen]]\npath = \"" + dir + "/http.sock\"\n")
	if res := LoadBytes("/var/lib/sitectl/sites/a/last-good.toml", "a", content, nil); len(res.Errors) != 0 {
		t.Fatalf("a root's directory: %v", res.Errors)
	}
	if err := os.Chown(dir, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	res := LoadBytes("/var/lib/sitectl/sites/a/last-good.toml", "a", content, nil)
	if len(res.Sites) != 0 || len(res.Errors) != 1 || !strings.Contains(res.Errors[0].Error(), "is owned by uid 65534, not root") {
		t.Errorf("a directory of uid 65534: sites %v, errors %v", res.Sites, res.Errors)
	}
}
