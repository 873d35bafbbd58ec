package site

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestValidateName(t *testing.T) {
	good := []string{"karl", "a", "shop-2", "a1-b2-c3", strings.Repeat("a", MaxNameLength)}
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
		strings.Repeat("a", MaxNameLength+1): "bytes long",
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
		{unix("/run/a.sock"), unix("/run/a.sock"), true},
		{unix("/run/a.sock"), unix("/run/b.sock"), false},
		{unix("/run/a.sock"), tcp("127.0.0.1:80"), false},
	}
	for _, c := range cases {
		if got := Overlap(c.a, c.b); got != c.want {
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
	if s.Name != "karl" || s.Readiness != ReadinessNotify || s.DrainTimeout != DefaultDrainTimeout {
		t.Errorf("defaults not applied: %+v", s)
	}
	if got := strings.Join(s.ModeNames(), ","); got != "maintenance,normal" {
		t.Errorf("modes = %s, want the implicit maintenance,normal", got)
	}
	if m, _ := s.Mode("maintenance"); m.Serve != ServeMaintenance || m.RetryAfter != DefaultRetryAfter {
		t.Errorf("implicit maintenance mode = %+v", m)
	}
	if s.Listeners[1].Mode != 0o660 || s.Listeners[1].Name != DefaultListenerName {
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
	errs := Conflicts([]*Site{c, b, a})
	want := []string{
		"/s/beta.toml:3:11: listener 127.0.0.1:8080 collides with listener 0.0.0.0:8080 at /s/alpha.toml:3:11 of site alpha: both cannot be bound at once",
		"/s/gamma.toml:3:8: listener /run/b.sock collides with listener /run/b.sock at /s/beta.toml:5:8 of site beta: both cannot be bound at once",
	}
	if errs.Error() != strings.Join(want, "\n") {
		t.Fatalf("got:\n%v\nwant:\n%s", errs, strings.Join(want, "\n"))
	}
	// A site already in place never takes the blame for a new file.
	errs = Conflicts([]*Site{b}, a)
	if len(errs) != 1 || errs[0].File != "/s/beta.toml" {
		t.Fatalf("conflict with an installed site: %v", errs)
	}
	errs = Conflicts([]*Site{a}, b)
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

// FuzzParse: any input gives a site or positioned errors; never a panic, never
// an error without a position inside the file.
func FuzzParse(f *testing.F) {
	f.Add([]byte("exec = [\"/bin/a\"]\n[[listen]]\naddress = \"127.0.0.1:8080\"\n"))
	f.Add([]byte("exec = [\"/usr/bin/gunicorn\"]\nserver = \"gunicorn\"\nlisten = [{ path = \"/run/x.sock\", mode = \"0600\" }]\n[modes.ro]\nenvironment = { A = \"b\" }\n[modes.m]\nserve = \"maintenance\"\n"))
	f.Add([]byte("a.b.c = 1\n[x]\n[[x.y]]\nz = [1, [2], {q = 3}]\n"))
	f.Add([]byte("listen = [[1]]\nmodes = 3\nmodes2 = { a = { b = 1 } }\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Parse("f.toml", data)
		if err == nil {
			if s == nil || len(s.Exec) == 0 || len(s.Listeners) == 0 {
				t.Fatalf("valid site without exec or listeners: %+v", s)
			}
			return
		}
		var errs Errors
		if !errors.As(err, &errs) || len(errs) == 0 {
			t.Fatalf("error %v is not a list of positioned errors", err)
		}
		lines := strings.Count(string(data), "\n") + 1
		for _, e := range errs {
			if e.Line < 1 || e.Line > lines || e.Col < 1 {
				t.Fatalf("error outside the file (%d lines): %v", lines, e)
			}
			if !utf8.ValidString(e.Msg) && utf8.Valid(data) {
				t.Fatalf("message is not valid UTF-8: %q", e.Msg)
			}
		}
	})
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
		if len(name) == 0 || len(name) > MaxNameLength || strings.ContainsAny(name, "/.@\\ %$\x00") ||
			strings.HasPrefix(name, "-") || strings.Contains(name, "--") || name != strings.ToLower(name) {
			t.Fatalf("ValidateName accepted unsafe name %q", name)
		}
	})
}

// A site file is read whole up to MaxFileSize; a larger one is a mistake of
// that file, and the other sites still load.
func TestLoadDirBoundsFileSize(t *testing.T) {
	dir := t.TempDir()
	ok := "exec = [\"/bin/app\"]\n[[listen]]\naddress = \"127.0.0.1:8080\"\n"
	if err := os.WriteFile(filepath.Join(dir, "ok.toml"), []byte(ok), 0o644); err != nil {
		t.Fatal(err)
	}
	big := ok + "# " + strings.Repeat("x", MaxFileSize) + "\n"
	if err := os.WriteFile(filepath.Join(dir, "big.toml"), []byte(big), 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Sites) != 1 || res.Sites[0].Name != "ok" {
		t.Errorf("sites: %v", res.Sites)
	}
	if len(res.Errors) != 1 || !strings.Contains(res.Errors[0].Error(), "big.toml:1:1: cannot read the file: the file is larger than 1024 KiB") {
		t.Errorf("errors: %v", res.Errors)
	}
	// Just below the bound is fine.
	data, err := ReadFile(filepath.Join(dir, "ok.toml"))
	if err != nil || string(data) != ok {
		t.Errorf("ReadFile = %q, %v", data, err)
	}
	if _, err := ReadFile(filepath.Join(dir, "missing.toml")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}
