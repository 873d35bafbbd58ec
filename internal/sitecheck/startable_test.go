package sitecheck

import (
	"errors"
	"golang.org/x/sys/unix"
	"io/fs"
	"os"
	"strings"
	"syscall"
	"testing"
	"testing/fstest"

	"github.com/sitectl/sitectl/internal/site"
)

func TestStartable(t *testing.T) {
	host := fakeHost(fstest.MapFS{
		"usr/bin/app":           {Mode: 0o755},
		"usr/bin/data":          {Mode: 0o644},
		"srv/karl":              {Mode: fs.ModeDir | 0o755},
		"srv/file":              {Mode: 0o644},
		"srv/page-max.html":     {Mode: 0o644, Data: make([]byte, site.MaxPageSize)},
		"srv/page-big.html":     {Mode: 0o644, Data: make([]byte, site.MaxPageSize+1)},
		"srv/venv/bin/gunicorn": {Mode: 0o755, Data: []byte("#!/srv/venv/bin/python3\nimport sys\n")},
		"srv/old/bin/gunicorn":  {Mode: 0o755, Data: []byte("#!/usr/bin/python3.9 -u\n")},
		"srv/venv/bin/python3":  {Mode: 0o755, Data: []byte("\x7fELF")},
		"srv/loop/a":            {Mode: 0o755, Data: []byte("#!/srv/loop/a\n")},
		"srv/rel/run":           {Mode: 0o755, Data: []byte("#! python3\n")},
		"srv/win/run":           {Mode: 0o755, Data: []byte("#!/srv/venv/bin/python3\r\nimport sys\r\n")},
		"srv/win/arg":           {Mode: 0o755, Data: []byte("#!/srv/venv/bin/python3 -u\r\n")},
		"etc/karl/db":           {Mode: 0o600},
		"root/script":           {Mode: 0o700, Data: []byte("#!/secret/first/line\n")},
	}, nil)
	secret := host
	secret.Stat = func(p string) (fs.FileInfo, error) { return nil, fs.ErrPermission }
	checkStartable(t, []startableCase{
		{"fine", host, Start{Program: "/usr/bin/app", User: "karl", Group: "www-data", WorkingDirectory: "/srv/karl"}, nil},
		{"no program to run", host, Start{User: "karl", WorkingDirectory: "/srv/karl"}, nil},
		{"numeric ids, home", host, Start{Program: "/usr/bin/app", User: "1001", Group: "1001", WorkingDirectory: "~"}, nil},
		{"all wrong", host, Start{Program: "/usr/bin/gunicornn", User: "kral", Group: "wwwdata", WorkingDirectory: "/srv/karl/current"},
			[]string{"the program /usr/bin/gunicornn does not exist on this host: the start would fail",
				`user "kral" does not exist on this host: the start would fail with 217/USER`,
				`group "wwwdata" does not exist on this host: the start would fail with 216/GROUP`,
				"the working directory /srv/karl/current does not exist: the start would fail with 200/CHDIR"}},
		{"not executable, not a directory", host, Start{Program: "/usr/bin/data", WorkingDirectory: "/srv/file"},
			[]string{"the program /usr/bin/data is not executable (mode 0644)", "the working directory /srv/file is not a directory"}},
		{"a script and its interpreter", host, Start{Program: "/srv/venv/bin/gunicorn"}, nil},
		{"a script whose interpreter is gone", host, Start{Program: "/srv/old/bin/gunicorn"},
			[]string{"the program /srv/old/bin/gunicorn runs /usr/bin/python3.9 (its #! line), which does not exist on this host"}},
		{"a script that runs itself", host, Start{Program: "/srv/loop/a"}, nil},
		{"a relative interpreter", host, Start{Program: "/srv/rel/run"}, nil},
		{"a script with Windows line endings", host, Start{Program: "/srv/win/run", Commands: []Command{{"ExecStartPre=", "/srv/win/run", true}}},
			[]string{`the program /srv/win/run has a #! line that ends with a carriage return (the file has Windows line endings): the kernel looks for the interpreter "/srv/venv/bin/python3\r", which does not exist, and the start would fail with 203/EXEC`,
				`the program /srv/win/run (ExecStartPre=) has a #! line that ends with a carriage return`}},
		{"the carriage return in the interpreter's argument is the interpreter's to judge", host, Start{Program: "/srv/win/arg"}, nil},
		{"a script not everyone may read is not read", host, Start{Program: "/root/script"}, nil},
		{"credentials", host, Start{Credentials: []string{"/etc/karl/db", "/etc/karl/api", "db"}},
			[]string{"the credential file /etc/karl/api does not exist: the start would fail with 243/CREDENTIALS"}},
		{"paths of the sandbox", host, Start{Paths: []Needed{{"ReadWritePaths=", "/srv/karl"}, {"ReadWritePaths=", "/srv/karl/uploadz"}, {"BindReadOnlyPaths=", "/etc/karl/conf"}, {"ReadOnlyPaths=", "relative"}}},
			[]string{"the path /srv/karl/uploadz (ReadWritePaths=) does not exist: systemd could not set up the unit's mount namespace, and the start would fail with 226/NAMESPACE",
				"the path /etc/karl/conf (BindReadOnlyPaths=) does not exist"}},
		{"supplementary groups", host, Start{SupplementaryGroups: []string{"www-data", "wwwdata", "1001"}},
			[]string{`SupplementaryGroups=: group "wwwdata" does not exist on this host: the start would fail with 216/GROUP`}},
		{"commands and environment files", host, Start{Commands: []Command{{"ExecStartPre=", "/usr/bin/app", false}, {"ExecStartPost=", "/usr/local/bin/notify", true}}, EnvironmentFiles: []string{"/etc/karl/db", "/etc/default/karl", "relative"}},
			[]string{"the program /usr/local/bin/notify (ExecStartPost=) does not exist on this host: the start would fail with 203/EXEC",
				"the environment file /etc/default/karl (EnvironmentFile=) does not exist: systemd would not start the unit (result: resources)"}},
		{"maintenance page and static_dir", host, Start{Page: "/srv/file", StaticDir: "/srv/karl"}, nil},
		{"maintenance page and static_dir missing", host, Start{Page: "/srv/karl/down.html", StaticDir: "/srv/file"},
			[]string{"the maintenance page /srv/karl/down.html does not exist: the maintenance server would not start",
				"the static_dir /srv/file is not a directory: the maintenance server would not start"}},
		{"a maintenance page of 1 MiB", host, Start{Page: "/srv/page-max.html"}, nil},
		{"a maintenance page over 1 MiB", host, Start{Page: "/srv/page-big.html"},
			[]string{"the maintenance page /srv/page-big.html is 1048577 bytes long, and a maintenance page may have at most 1048576 bytes (1 MiB): the maintenance server would not start"}},
		// Doubt is no reason: a path sitectl may not search, a user from a
		// source sitectl cannot ask.
		{"cannot tell", secret, Start{Program: "/usr/bin/gunicornn", User: "ldap-user", WorkingDirectory: "/srv/x", Paths: []Needed{{"ReadWritePaths=", "/srv/x"}}}, nil},
	})
}

// An error that does not say the path is missing leaves it unknown.
func TestStartableOtherErrorsAreNoReason(t *testing.T) {
	h := OS
	h.Stat = func(string) (fs.FileInfo, error) {
		return nil, &fs.PathError{Op: "stat", Path: "/srv/x", Err: errors.New("input/output error")}
	}
	if got := Startable(h, Start{Program: "/srv/x", WorkingDirectory: "/srv/x"}); len(got) != 0 {
		t.Errorf("an error that is not ENOENT or ENOTDIR counts: %q", got)
	}
	h.Stat = func(string) (fs.FileInfo, error) {
		return nil, &fs.PathError{Op: "stat", Path: "/srv/x", Err: syscall.ENOTDIR}
	}
	if got := Startable(h, Start{Program: "/srv/file/x"}); len(got) != 1 {
		t.Errorf("a path through a file: %q", got)
	}
}

// On this host: root is known, from /etc/passwd; a name that is nowhere
// is surely missing when NSS reads only local sources, else unknown.
func TestLookupNameOnThisHost(t *testing.T) {
	if found, err := lookupName("passwd", "root"); !found || err != nil {
		t.Errorf("root: %v %v", found, err)
	}
	if found, err := lookupName("group", "root"); !found || err != nil {
		t.Errorf("group root: %v %v", found, err)
	}
	conf, confErr := os.ReadFile("/etc/nsswitch.conf")
	found, err := lookupName("passwd", "no-such-user-sitectl")
	switch {
	case confErr != nil:
		if found || err == nil {
			t.Errorf("a missing user without nsswitch.conf: %v %v", found, err)
		}
	case localSources(conf, "passwd"):
		if found || err != nil {
			t.Errorf("a missing user with local sources: %v %v", found, err)
		}
	case !errors.Is(err, errUnsure):
		t.Errorf("a missing user with other sources: %v %v", found, err)
	}
}

func TestHasEntry(t *testing.T) {
	data := []byte("root:x:0:0::/root:/bin/sh\nkarl:x:1001:1001::/srv/karl:/usr/sbin/nologin\n")
	for name, want := range map[string]bool{"root": true, "karl": true, "kar": false, "x": false, "arl": false} {
		if got := hasEntry(data, name); got != want {
			t.Errorf("hasEntry(%q) = %v", name, got)
		}
	}
}

func TestLocalSources(t *testing.T) {
	for _, c := range []struct {
		conf string
		want bool
	}{
		{"passwd:         files systemd\ngroup:          files systemd\n", true},
		{"passwd: files [NOTFOUND=return] systemd # local\n", true},
		{"passwd: files ldap\n", false},
		{"passwd: compat\n", false},
		{"passwd: sss files\n", false},
		{"group: files\n", false}, // no passwd line: glibc's default
		{"# passwd: ldap\npasswd: files\n", true},
	} {
		if got := localSources([]byte(c.conf), "passwd"); got != c.want {
			t.Errorf("localSources(%q) = %v, want %v", c.conf, got, c.want)
		}
	}
}

func TestReadHead(t *testing.T) {
	p := t.TempDir() + "/script"
	if err := os.WriteFile(p, []byte("#!/bin/sh\necho hi\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if got, err := readHead(p, 4); err != nil || string(got) != "#!/b" {
		t.Errorf("readHead(4) = %q, %v", got, err)
	}
	if got, err := readHead(p, 256); err != nil || string(got) != "#!/bin/sh\necho hi\n" {
		t.Errorf("readHead(256) of a shorter file = %q, %v", got, err)
	}
	head, _ := OS.head(p)
	if path, arg := interpreterOf(head); path != "/bin/sh" || arg != "" {
		t.Errorf("interpreter = %q, %q", path, arg)
	}
	// What is not a regular file is not read, whatever a stat before
	// said: a FIFO (which a plain open would block on without a writer)
	// and a device, also through a symlink.
	fifo := t.TempDir() + "/fifo"
	if err := unix.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	dev := t.TempDir() + "/dev"
	if err := os.Symlink("/dev/zero", dev); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{fifo, dev} {
		if got, err := readHead(p, 4); err == nil || !strings.Contains(err.Error(), "is not a regular file") {
			t.Errorf("readHead(%s) = %q, %v", p, got, err)
		}
	}
}

// The #! line is split as the kernel splits it: at the first space or
// tab, with only spaces and tabs stripped from its ends, so that a
// carriage return stays where the kernel sees it.
func TestInterpreter(t *testing.T) {
	for head, want := range map[string][2]string{
		"#!/bin/sh\necho hi\n":         {"/bin/sh", ""},
		"#! /bin/sh -e \n":             {"/bin/sh", "-e"},
		"#!/bin/sh\t-e\tx\n":           {"/bin/sh", "-e\tx"},
		"#!/usr/bin/env  python3 -u\n": {"/usr/bin/env", "python3 -u"},
		"#!/bin/sh\r\n":                {"/bin/sh\r", ""},
		"#!/bin/sh\r \n":               {"/bin/sh\r", ""},
		"#!/bin/sh \r\n":               {"/bin/sh", "\r"},
		"#!/usr/bin/env python3\r\n":   {"/usr/bin/env", "python3\r"},
		"#! python3\n":                 {"", ""},
		"\x7fELF":                      {"", ""},
	} {
		if path, arg := interpreterOf([]byte(head)); path != want[0] || arg != want[1] {
			t.Errorf("interpreter of %q = %q, %q; want %q, %q", head, path, arg, want[0], want[1])
		}
	}
}

// startableCase is a case of Startable: what it finds on host for st,
// each problem by how it begins.
type startableCase struct {
	name string
	host Host
	st   Start
	want []string
}

func checkStartable(t *testing.T, cases []startableCase) {
	t.Helper()
	for _, c := range cases {
		got := Startable(c.host, c.st)
		if len(got) != len(c.want) {
			t.Errorf("%s: %q, want %d problems", c.name, got, len(c.want))
			continue
		}
		for i, w := range c.want {
			if !strings.HasPrefix(got[i], w) {
				t.Errorf("%s: %q, want it to start with %q", c.name, got[i], w)
			}
		}
	}
}
