package site

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
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

// The index finds a collision exactly when some pair of listeners
// overlaps, for every pair of the listeners overlaps is tested with: what
// it looks up by key must not miss what the pairwise check would find.
func TestListenerIndexFindsWhatPairsOverlap(t *testing.T) {
	ls := []Listener{}
	for _, a := range []string{"127.0.0.1:80", "127.0.0.2:80", "127.0.0.1:81", "0.0.0.0:80", "[::]:80", "[::1]:80",
		"[::ffff:127.0.0.1]:80", "[::ffff:0.0.0.0]:80", "[::ffff:127.0.0.2]:81", "[::]:81"} {
		ls = append(ls, Listener{Kind: TCP, Address: a})
	}
	ls = append(ls, Listener{Kind: Unix, Path: "/run/a.sock"}, Listener{Kind: Unix, Path: "/run/b.sock"},
		Listener{Kind: Unix, Path: "/srv/link/a.sock", Resolved: "/srv/real/a.sock"}, Listener{Kind: Unix, Path: "/srv/real/a.sock"},
		Listener{Kind: Unix, Path: "/b/s", Resolved: "/srv/real/a.sock"})
	for i, a := range ls {
		for j, b := range ls {
			if i == j {
				continue
			}
			sa := &Site{Name: "a", File: "a.toml", Listeners: []Listener{a}}
			sb := &Site{Name: "b", File: "b.toml", Listeners: []Listener{b}}
			got := len(findConflicts([]*Site{sa, sb}, nil)) > 0
			if want := overlaps(a, b); got != want {
				t.Errorf("%s and %s: the index says collide %v, overlaps says %v", a.Endpoint(), b.Endpoint(), got, want)
			}
			if got := len(findConflicts([]*Site{sb}, nil, sa)) > 0; got != overlaps(a, b) {
				t.Errorf("%s already there, %s added: the index says collide %v", a.Endpoint(), b.Endpoint(), got)
			}
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
	errs := findConflicts([]*Site{c, b, a}, nil)
	want := []string{
		"/s/beta.toml:3:11: listener 127.0.0.1:8080 collides with listener 0.0.0.0:8080 at /s/alpha.toml:3:11 of site alpha: both cannot be bound at once",
		"/s/gamma.toml:3:8: listener /run/b.sock collides with listener /run/b.sock at /s/beta.toml:5:8 of site beta: both cannot be bound at once",
	}
	if errs.Error() != strings.Join(want, "\n") {
		t.Fatalf("got:\n%v\nwant:\n%s", errs, strings.Join(want, "\n"))
	}
	// A site already in place never takes the blame for a new file.
	errs = findConflicts([]*Site{b}, nil, a)
	if len(errs) != 1 || errs[0].File != "/s/beta.toml" {
		t.Fatalf("conflict with an installed site: %v", errs)
	}
	errs = findConflicts([]*Site{a}, nil, b)
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
	res := LoadFiles([]string{a, b}, nil, nil, nil)
	want := b + ":3:8: listener " + link + "/app.sock (" + real + "/app.sock once symlinks are resolved) collides with listener " + real + "/app.sock at " + a + ":3:8 of site a"
	if len(res.Sites) != 1 || len(res.Errors) != 1 || !strings.HasPrefix(res.Errors[0].Error(), want) {
		t.Errorf("across sites: %d sites, errors %v\nwant %s", len(res.Sites), res.Errors, want)
	}
	// Within one file the parser already refuses ../ (not simplest form);
	// a symlinked directory is found by the loader.
	res = LoadFiles([]string{c}, nil, nil, nil)
	if len(res.Errors) != 1 || !strings.Contains(res.Errors[0].Error(), "is not in its simplest form") {
		t.Errorf("c: %v", res.Errors)
	}
	res = LoadFiles([]string{d}, nil, nil, nil)
	if len(res.Errors) != 1 || !strings.HasPrefix(res.Errors[0].Error(), d+":5:8: listener "+real+"/later/x.sock collides with listener "+link+"/later/x.sock at line 3") {
		t.Errorf("within one site, below a directory that does not exist yet: %v", res.Errors)
	}
}

// Credentials, egress and deployers: what is accepted, in the form the
// units and the state service use, and what is refused, with where.
func TestCredentialsEgressDeployers(t *testing.T) {
	const base = "exec = [\"/bin/app\"]\n[[listen]]\naddress = \"127.0.0.1:8080\"\n"
	s, err := Parse("/etc/sitectl/sites/shop.toml", []byte(`deployers = ["group:shop-team", "user:dana", "user:1001"]
credentials = { tls_key = "/etc/credstore/shop/key.pem", db_password = "/etc/credstore/shop/db" }
`+base+`[egress]
allow = ["10.1.2.3/16", "192.0.2.10", "2001:db8::/32", "localhost"]
`))
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(s.Deployers); got != "[group:shop-team user:dana user:1001]" {
		t.Errorf("deployers: %s", got)
	}
	if got := fmt.Sprint(s.Credentials); got != "[{db_password /etc/credstore/shop/db 2 72} {tls_key /etc/credstore/shop/key.pem 2 27}]" {
		t.Errorf("credentials: %s", got)
	}
	if got := fmt.Sprint(s.Egress.Allow); got != "[10.1.0.0/16 192.0.2.10 2001:db8::/32 localhost]" {
		t.Errorf("egress: %s", got)
	}
	if s, err := Parse("/etc/sitectl/sites/x.toml", []byte(base+"[egress]\n")); err != nil || s.Egress == nil || len(s.Egress.Allow) != 0 {
		t.Errorf("an empty [egress] denies everything: %+v %v", s, err)
	}
	if s, _ := Parse("/etc/sitectl/sites/x.toml", []byte(base)); s.Egress != nil || s.Deployers != nil || s.Credentials != nil {
		t.Errorf("defaults: %+v", s)
	}
	for src, want := range map[string]string{
		`deployers = ["dana"]` + "\n":               `x.toml:1:14: deployers[0] "dana" is not user:NAME or group:NAME`,
		`deployers = ["user:Dana"]` + "\n":          `x.toml:1:14: deployers[0] "user:Dana" is not user:NAME`,
		`deployers = ["group:a", "group:a"]` + "\n": `x.toml:1:25: deployers[1] group:a is listed twice`,
		`deployers = "group:a"` + "\n":              `x.toml:1:13: deployers must be an array`,
		`credentials = { "../x" = "/a" }` + "\n":    `x.toml:1:17: credentials: "../x" is not a valid credential name`,
		`credentials = { k = "relative" }` + "\n":   `x.toml:1:21: credentials.k "relative" is not an absolute path`,
		`credentials = { k = "/a b" }` + "\n":       `x.toml:1:21: credentials.k "/a b" has characters`,
		"[egress]\nallow = [\"any\"]\n":             `x.toml:2:10: egress allow[0]: "any" would allow everything`,
		"[egress]\nallow = [\"fe80::1%lo\"]\n":      `x.toml:2:10: egress allow[0] "fe80::1%lo" is not an IP address`,
		"[egress]\nallow = [\"example.com\"]\n":     `x.toml:2:10: egress allow[0] "example.com" is not an IP address`,
		"[egress]\ndeny = []\n":                     `x.toml:2:1: unknown key "deny" in egress`,
	} {
		file := "/etc/sitectl/sites/x.toml"
		data := src + base
		if strings.HasPrefix(src, "[egress]") {
			data = base + src
			want = strings.Replace(want, "x.toml:2:", "x.toml:5:", 1)
		}
		_, err := Parse(file, []byte(data))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %s", src, err, want)
		}
	}
}

func TestKeepPrevious(t *testing.T) {
	s := mustParse(t, "/s/warm.toml", `exec = ["/bin/a"]
handoff = "overlap"
keep_previous = "10m"
listen = [{ address = "127.0.0.1:1" }, { address = "[::1]:1" }]
`)
	if s.KeepPrevious != 10*time.Minute {
		t.Errorf("KeepPrevious = %v, want 10m", s.KeepPrevious)
	}
	for _, off := range []string{"", `keep_previous = "0"` + "\n", `keep_previous = "0s"` + "\n"} {
		s := mustParse(t, "/s/warm.toml", "exec = [\"/bin/a\"]\n"+off+"[[listen]]\npath = \"/run/a.sock\"\n")
		if s.KeepPrevious != 0 {
			t.Errorf("%q: KeepPrevious = %v, want off", off, s.KeepPrevious)
		}
	}
	// Each file starts with an exec line: keep_previous is on line 3
	// (line 2 without handoff).
	bad := map[string]string{
		"handoff = \"overlap\"\nkeep_previous = \"25h\"\n[[listen]]\naddress = \"127.0.0.1:1\"\n":                                    `x.toml:3:17: keep_previous 25h is longer than the limit of 24h0m0s`,
		"handoff = \"overlap\"\nkeep_previous = 600\n[[listen]]\naddress = \"127.0.0.1:1\"\n":                                        `x.toml:3:17: keep_previous must be a duration string with a unit, e.g. "600s"`,
		"handoff = \"overlap\"\nkeep_previous = \"-1s\"\n[[listen]]\naddress = \"127.0.0.1:1\"\n":                                    `x.toml:3:17: keep_previous must be longer than zero`,
		"keep_previous = \"10m\"\n[[listen]]\naddress = \"127.0.0.1:1\"\n":                                                           `x.toml:2:17: keep_previous needs handoff = "overlap": only an overlap leaves a previous generation to keep warm`,
		"handoff = \"overlap\"\nkeep_previous = \"1m\"\n[[listen]]\naddress = \"127.0.0.1:1\"\n[[listen]]\npath = \"/run/a.sock\"\n": `x.toml:7:8: keep_previous needs TCP listeners: unix listener "/run/a.sock" cannot be steered (keep_previous is set at line 3)`,
	}
	for src, want := range bad {
		_, err := Parse("x.toml", []byte("exec = [\"/bin/a\"]\n"+src))
		if err == nil || err.Error() != want {
			t.Errorf("got %v\nwant %s", err, want)
		}
	}
}

// Where sites collide, one that held its contested listeners when it last
// started keeps them, whatever the names' order; between holders, or
// between sites that held nothing, the later name gets the error. held is
// asked only when there are collisions, only of the sites in them.
func TestHeldListenersStayWithTheirHolder(t *testing.T) {
	shop := mustParse(t, "/s/shop.toml", "exec = [\"/bin/a\"]\n[[listen]]\naddress = \"127.0.0.1:8080\"\n")
	aaa := mustParse(t, "/s/aaa.toml", "exec = [\"/bin/a\"]\n[[listen]]\naddress = \"0.0.0.0:8080\"\n")
	abc := mustParse(t, "/s/abc.toml", "exec = [\"/bin/a\"]\n[[listen]]\naddress = \"[::ffff:127.0.0.1]:8080\"\n")
	lone := mustParse(t, "/s/lone.toml", "exec = [\"/bin/a\"]\n[[listen]]\naddress = \"127.0.0.1:9090\"\n")
	var asked []string
	heldBy := func(names ...string) Held {
		asked = nil
		return func(s *Site, ls []Listener) bool {
			asked = append(asked, s.Name)
			if len(ls) == 0 {
				t.Errorf("held asked of %s with no listeners", s.Name)
			}
			return slices.Contains(names, s.Name)
		}
	}
	blamed := func(errs Errors) string {
		var files []string
		for _, e := range errs {
			files = append(files, e.File)
		}
		slices.Sort(files)
		return strings.Join(slices.Compact(files), " ")
	}
	sites := []*Site{lone, shop, aaa, abc}
	for _, c := range []struct {
		held Held
		want string
	}{
		{nil, "/s/abc.toml /s/shop.toml"},
		{heldBy(), "/s/abc.toml /s/shop.toml"},
		{heldBy("shop"), "/s/aaa.toml /s/abc.toml"},
		{heldBy("abc"), "/s/aaa.toml /s/shop.toml"},
		{heldBy("shop", "abc"), "/s/aaa.toml /s/shop.toml"},
	} {
		errs := findConflicts(sites, c.held)
		if got := blamed(errs); got != c.want {
			t.Errorf("blamed %s, want %s:\n%v", got, c.want, errs)
		}
		if slices.Contains(asked, "lone") {
			t.Errorf("held was asked of a site in no collision: %v", asked)
		}
	}
	errs := findConflicts(sites, heldBy("shop"))
	if !strings.HasSuffix(errs[0].Msg, "; site shop keeps it, as its units already had it") {
		t.Errorf("the error does not say who keeps the listener: %s", errs[0].Msg)
	}
	// No collision: held is never asked.
	findConflicts([]*Site{lone, shop}, heldBy("shop"))
	if len(asked) != 0 {
		t.Errorf("held asked without a collision: %v", asked)
	}
	// An installed site (others) still wins over a holder being checked.
	if errs := findConflicts([]*Site{shop}, heldBy("shop"), aaa); blamed(errs) != "/s/shop.toml" {
		t.Errorf("a checked file must take the blame against an installed site: %v", errs)
	}
}

// A unix path that reaches another site's socket through a symlinked
// directory takes the blame, whatever the names' order: whoever may write
// a directory on its way cannot make root drop the other site.
func TestSymlinkedPathTakesTheBlame(t *testing.T) {
	alpha := mustParse(t, "/s/alpha.toml", "exec = [\"/bin/a\"]\n[[listen]]\npath = \"/srv/alpha/run/app.sock\"\n")
	beta := mustParse(t, "/s/beta.toml", "exec = [\"/bin/a\"]\n[[listen]]\npath = \"/run/beta/app.sock\"\n")
	alpha.Listeners[0].Resolved = "/run/beta/app.sock"
	for _, sites := range [][]*Site{{alpha, beta}, {beta, alpha}} {
		errs := findConflicts(sites, nil)
		if len(errs) != 1 || errs[0].File != "/s/alpha.toml" || !strings.HasSuffix(errs[0].Msg, "; its path reaches that socket through a symlink") {
			t.Errorf("blamed: %v", errs)
		}
	}
	// Against an installed site, the file checked takes the blame.
	if errs := findConflicts([]*Site{beta}, nil, alpha); len(errs) != 1 || errs[0].File != "/s/beta.toml" {
		t.Errorf("against an installed site: %v", errs)
	}
}

// Two mistakes an operator cannot see in the message of the TOML parser:
// a byte order mark an editor wrote, and a key of the site appended after
// a [[listen]] entry, where TOML makes it the entry's.
func TestMistakesNamedAsTheOperatorSeesThem(t *testing.T) {
	for src, want := range map[string]string{
		"\uFEFFexec = [\"/bin/app\"]\n": "karl.toml:1:1: the file starts with a UTF-8 byte order mark",
		"exec = [\"/bin/app\"]\n[[listen]]\naddress = \"127.0.0.1:8080\"\ndrain_timeout = \"5s\"\n": `karl.toml:4:1: unknown key "drain_timeout" in a listen entry (known keys: address, group, mode, name, owner, path); drain_timeout is a key of the site itself: TOML puts every key after a [section] or [[listen]] header into it, so move it above the first header`,
		"exec = [\"/bin/app\"]\n[[listen]]\naddress = \"127.0.0.1:8080\"\nbogus = 1\n":              `karl.toml:4:1: unknown key "bogus" in a listen entry (known keys: address, group, mode, name, owner, path)`,
		"exec = [\"/bin/app\"]\ndrain_timout = \"5s\"\n":                                            `karl.toml:2:1: unknown key "drain_timout" in a site file (known keys: backlog, cleanup, cleanup_timeout, credentials, default_mode, deployers, description, drain_timeout, egress, environment, exec, fast_exit, group, handoff, hardening, keep_previous, listen, modes, probe, readiness, reload_trigger, server, settle_time, start_priority, start_timeout, stop_timeout, user, workdir); did you mean drain_timeout?`,
		"exec = [\"/bin/app\"]\n[[listen]]\nadress = \"127.0.0.1:8080\"\n":                          `karl.toml:3:1: unknown key "adress" in a listen entry (known keys: address, group, mode, name, owner, path); did you mean address?`,
	} {
		_, err := Parse("/etc/sitectl/sites/karl.toml", []byte(src))
		if err == nil || !strings.Contains(err.Error(), want) || strings.HasSuffix(want, "path)") && strings.Contains(err.Error(), "key of the site itself") ||
			strings.HasSuffix(want, "path)") && strings.Contains(err.Error(), "did you mean") {
			t.Errorf("%q: %v\nwant %s", src, err, want)
		}
	}
}
