package site

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestValidateName(t *testing.T) {
	good := []string{"karl", "a", "shop-2", "a1-b2-c3", strings.Repeat("a", maxNameLength)}
	for _, n := range good {
		if err := ValidateName(n); err != nil {
			t.Errorf("ValidateName(%q) = %v, want ok", n, err)
		}
	}
	bad := map[string]string{
		"":                                   "site name is empty",
		"../x":                               "is not valid",
		"Karl":                               "is not valid",
		"1shop":                              "is not valid",
		"shop-":                              "is not valid",
		"a--b":                               "is not valid",
		"kärl":                               "is not valid",
		"a b":                                "is not valid",
		"x.service":                          "is not valid",
		strings.Repeat("a", maxNameLength+1): "bytes long",
		strings.Repeat("a", 300):             "bytes long",
		"karl-reload":                        "reserved for the reload units of site \"karl\"",
		"bad\x1b[31m":                        "is not valid",
	}
	for n, want := range bad {
		err := ValidateName(n)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ValidateName(%q) = %v, want an error containing %q", n, err, want)
		}
		if err != nil && strings.ContainsRune(err.Error(), 0x1b) {
			t.Errorf("ValidateName(%q): error carries a raw escape character", n)
		}
	}
}

func TestOverlap(t *testing.T) {
	tcp := func(a string) Listener { return Listener{Kind: TCP, Address: a} }
	unix := func(p string) Listener { return Listener{Kind: Unix, Path: p} }
	cases := []struct {
		a, b Listener
		want bool
	}{
		{tcp("127.0.0.1:80"), tcp("127.0.0.1:80"), true},
		{tcp("127.0.0.1:80"), tcp("127.0.0.2:80"), false},
		{tcp("127.0.0.1:80"), tcp("127.0.0.1:81"), false},
		{tcp("0.0.0.0:80"), tcp("127.0.0.1:80"), true},
		{tcp("127.0.0.1:80"), tcp("0.0.0.0:80"), true},
		{tcp("[::]:80"), tcp("127.0.0.1:80"), true}, // dual-stack wildcard
		{tcp("[::]:80"), tcp("[::1]:80"), true},
		{tcp("0.0.0.0:80"), tcp("[::1]:80"), false},
		{tcp("0.0.0.0:80"), tcp("[::]:80"), true},
		{tcp("[::ffff:127.0.0.1]:80"), tcp("127.0.0.1:80"), true}, // IPv4-mapped is IPv4
		{tcp("127.0.0.1:80"), tcp("[::ffff:127.0.0.1]:80"), true},
		{tcp("[::ffff:127.0.0.1]:80"), tcp("127.0.0.2:80"), false},
		{tcp("[::ffff:0.0.0.0]:80"), tcp("127.0.0.1:80"), true}, // the mapped IPv4 wildcard
		{tcp("[::ffff:0.0.0.0]:80"), tcp("[::1]:80"), false},
		{tcp("[::ffff:127.0.0.1]:80"), tcp("[::]:80"), true},
		{tcp("[::ffff:127.0.0.1]:80"), tcp("0.0.0.0:80"), true},
		{unix("/run/a.sock"), unix("/run/a.sock"), true},
		{Listener{Kind: Unix, Path: "/srv/link/a.sock", Resolved: "/srv/real/a.sock"}, unix("/srv/real/a.sock"), true},
		{unix("/srv/real/a.sock"), Listener{Kind: Unix, Path: "/srv/link/a.sock", Resolved: "/srv/real/a.sock"}, true},
		{Listener{Kind: Unix, Path: "/a/s", Resolved: "/r/s"}, Listener{Kind: Unix, Path: "/b/s", Resolved: "/r/s"}, true},
		{unix("/run/a.sock"), unix("/run/b.sock"), false},
		{unix("/run/a.sock"), tcp("127.0.0.1:80"), false},
	}
	for _, c := range cases {
		if got := overlaps(c.a, c.b); got != c.want {
			t.Errorf("Overlap(%s, %s) = %v, want %v", c.a.Endpoint(), c.b.Endpoint(), got, c.want)
		}
	}
}

func mustParse(t *testing.T, file, src string) *Site {
	t.Helper()
	s, err := Parse(file, []byte(src))
	if err != nil {
		t.Fatalf("Parse(%s): %v", file, err)
	}
	return s
}

func TestDefaultsAndImplicitModes(t *testing.T) {
	s := mustParse(t, "/etc/sitectl/sites/karl.toml", `
exec = ["/usr/bin/gunicorn", "app"]
server = "gunicorn"
listen = [{ address = "[::1]:8080" }, { path = "/run/karl.sock" }]
`)
	if s.Name != "karl" || s.Readiness != ReadinessNotify || s.DrainTimeout != defaultDrainTimeout {
		t.Errorf("defaults not applied: %+v", s)
	}
	if got := strings.Join(s.ModeNames(), ","); got != "maintenance,normal" {
		t.Errorf("modes = %s, want the implicit maintenance,normal", got)
	}
	if m, _ := s.Mode("maintenance"); m.Serve != ServeMaintenance || m.RetryAfter != defaultRetryAfter {
		t.Errorf("implicit maintenance mode = %+v", m)
	}
	if s.Listeners[1].Mode != 0o660 || s.Listeners[1].Name != defaultListenerName {
		t.Errorf("unix listener defaults = %+v", s.Listeners[1])
	}
	if s.Listeners[0].Address != "[::1]:8080" {
		t.Errorf("IPv6 address = %q", s.Listeners[0].Address)
	}
}

func TestDefaultModeMustExist(t *testing.T) {
	_, err := Parse("x.toml", []byte(`exec = ["/bin/a"]
default_mode = "live"
[[listen]]
address = "127.0.0.1:1"
`))
	want := `x.toml:2:16: default_mode "live" is not one of the site's modes (maintenance, normal)`
	if err == nil || err.Error() != want {
		t.Fatalf("got %v, want %s", err, want)
	}
}

func TestConflictsAcrossSites(t *testing.T) {
	a := mustParse(t, "/s/alpha.toml", "exec = [\"/bin/a\"]\n[[listen]]\naddress = \"0.0.0.0:8080\"\n")
	b := mustParse(t, "/s/beta.toml", "exec = [\"/bin/b\"]\n[[listen]]\naddress = \"127.0.0.1:8080\"\n[[listen]]\npath = \"/run/b.sock\"\n")
	c := mustParse(t, "/s/gamma.toml", "exec = [\"/bin/c\"]\n[[listen]]\npath = \"/run/b.sock\"\n")
	errs := findConflicts([]*Site{c, b, a})
	want := []string{
		"/s/beta.toml:3:11: listener 127.0.0.1:8080 collides with listener 0.0.0.0:8080 at /s/alpha.toml:3:11 of site alpha: both cannot be bound at once",
		"/s/gamma.toml:3:8: listener /run/b.sock collides with listener /run/b.sock at /s/beta.toml:5:8 of site beta: both cannot be bound at once",
	}
	if errs.Error() != strings.Join(want, "\n") {
		t.Fatalf("got:\n%v\nwant:\n%s", errs, strings.Join(want, "\n"))
	}
	// A site already in place never takes the blame for a new file.
	errs = findConflicts([]*Site{b}, a)
	if len(errs) != 1 || errs[0].File != "/s/beta.toml" {
		t.Fatalf("conflict with an installed site: %v", errs)
	}
	errs = findConflicts([]*Site{a}, b)
	if len(errs) != 1 || errs[0].File != "/s/alpha.toml" {
		t.Fatalf("conflict with an installed site must land on the checked file: %v", errs)
	}
}

func TestSyntaxErrorHasPosition(t *testing.T) {
	_, err := Parse("k.toml", []byte("exec = [\"/bin/a\"\n"))
	var errs Errors
	if !errors.As(err, &errs) || len(errs) != 1 || !strings.HasPrefix(errs[0].Error(), "k.toml:1:") {
		t.Fatalf("got %v, want one positioned syntax error", err)
	}
}

func TestFileNameGivesInvalidName(t *testing.T) {
	_, err := Parse("/etc/sitectl/sites/Bad_Name.toml", []byte("exec = [\"/bin/a\"]\nlisten = [{ address = \"127.0.0.1:1\" }]\n"))
	if err == nil || !strings.Contains(err.Error(), "/etc/sitectl/sites/Bad_Name.toml:1:1: site name \"Bad_Name\" is not valid") {
		t.Fatalf("got %v", err)
	}
}

// FuzzValidateName: whatever passes is safe in a unit name and a path.
func FuzzValidateName(f *testing.F) {
	for _, s := range []string{"karl", "../x", "", "a-b", "x.service", "a/b", "ü"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if ValidateName(name) != nil {
			return
		}
		if len(name) == 0 || len(name) > maxNameLength || strings.ContainsAny(name, "/.@\\ %$\x00") ||
			strings.HasPrefix(name, "-") || strings.Contains(name, "--") || name != strings.ToLower(name) {
			t.Fatalf("ValidateName accepted unsafe name %q", name)
		}
	})
}

// A unix socket reached through a symlinked directory is the socket at its
// real path: within one site and across sites, also below a directory that
// does not exist yet (the part that exists is resolved).
func TestSymlinkedSocketDirectoriesCollide(t *testing.T) {
	dir := t.TempDir()
	real, link := dir+"/real", dir+"/link"
	if err := os.Mkdir(real, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	write := func(name, body string) string {
		p := filepath.Join(dir, name+".toml")
		if err := os.WriteFile(p, []byte("exec = [\"/bin/a\"]\n"+body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	a := write("a", "[[listen]]\npath = \""+real+"/app.sock\"\n")
	b := write("b", "[[listen]]\npath = \""+link+"/app.sock\"\n")
	c := write("c", "[[listen]]\npath = \""+real+"/app.sock\"\n[[listen]]\npath = \""+link+"/sub/../app.sock\"\n")
	d := write("d", "[[listen]]\npath = \""+link+"/later/x.sock\"\n[[listen]]\npath = \""+real+"/later/x.sock\"\n")
	res := LoadFiles([]string{a, b}, nil, nil)
	want := b + ":3:8: listener " + link + "/app.sock (" + real + "/app.sock once symlinks are resolved) collides with listener " + real + "/app.sock at " + a + ":3:8 of site a"
	if len(res.Sites) != 1 || len(res.Errors) != 1 || !strings.HasPrefix(res.Errors[0].Error(), want) {
		t.Errorf("across sites: %d sites, errors %v\nwant %s", len(res.Sites), res.Errors, want)
	}
	// Within one file the parser already refuses ../ (not simplest form);
	// a symlinked directory is found by the loader.
	res = LoadFiles([]string{c}, nil, nil)
	if len(res.Errors) != 1 || !strings.Contains(res.Errors[0].Error(), "is not in its simplest form") {
		t.Errorf("c: %v", res.Errors)
	}
	res = LoadFiles([]string{d}, nil, nil)
	if len(res.Errors) != 1 || !strings.HasPrefix(res.Errors[0].Error(), d+":5:8: listener "+real+"/later/x.sock collides with listener "+link+"/later/x.sock at line 3") {
		t.Errorf("within one site, below a directory that does not exist yet: %v", res.Errors)
	}
}
