package units

import (
	"strings"
	"testing"

	"github.com/sitectl/sitectl/internal/site"
)

// FuzzPlainImpliesVerified shows that check's fast path is sound: whenever
// plain says systemd reads a file as meant without reading it back, the
// full read-back (verify) says so too, for any header, section name, key
// and value, of every kind of entry. (plain may say false where verify
// would pass; then check reads the file back.)
func FuzzPlainImpliesVerified(f *testing.F) {
	for _, s := range []string{"plain", "/usr/bin/sitectl", "site-karl.service", "SITE=karl", "Site karl: listener http",
		"-/bin/x", "+", "a b", " lead", "trail ", "100%", "$HOME", `\`, `"q"`, "'", ";", "a\nb", "\t", "", "é", "=", "1A=x", "[x]", "#c"} {
		f.Add(s, s, s, uint8(0))
	}
	f.Add("Unit", "Description", "Site karl", uint8(0))
	f.Add("Service", "ExecStart", "/usr/bin/app", uint8(1))
	f.Add("Service", "Environment", "SITE", uint8(2))
	f.Fuzz(func(t *testing.T, a, b, c string, prefix uint8) {
		pre := []string{"", "+", "-", "!", "@", ":", "-+", "x"}[prefix%8]
		files := []*file{}
		one := func(name, key string, set func(s *section)) {
			fl := &file{header: []string{a}}
			set(fl.section(name))
			files = append(files, fl)
		}
		for _, sec := range []string{a, "Unit"} {
			for _, key := range []string{b, "Key"} {
				one(sec, key, func(s *section) { s.text(key, c) })
				one(sec, key, func(s *section) { s.list(key, a, c) })
				one(sec, key, func(s *section) { s.list(key, c) })
				one(sec, key, func(s *section) { s.command(key, pre, []string{c, a}) })
				one(sec, key, func(s *section) { s.command(key, pre, []string{c}) })
				one(sec, key, func(s *section) { s.env(b, c) })
				one(sec, key, func(s *section) { s.env("NAME", c) })
			}
		}
		all := &file{header: []string{a, b}}
		for _, fl := range files {
			all.sections = append(all.sections, fl.sections...)
		}
		files = append(files, all)
		for _, fl := range files {
			if !fl.plain() {
				continue
			}
			if err := fl.verify(fl.String()); err != nil {
				t.Fatalf("plain, but read back: %v\n%s", err, fl.String())
			}
		}
	})
}

// TestUsualUnitsArePlain: the units of a usual site are checked without a
// read-back (the point of plain: at 10,000 sites reading every unit back
// was a third of the generator's time), and a value that needs quoting
// or escaping is still read back.
func TestUsualUnitsArePlain(t *testing.T) {
	src := "exec = [\"/usr/local/bin/webapp\", \"--workers\", \"4\"]\nreadiness = \"notify\"\nreload_trigger = \"/srv/karl/reload\"\n" +
		"[[listen]]\naddress = \"127.0.0.1:8080\"\n[[listen]]\nname = \"admin\"\npath = \"/run/karl/admin.sock\"\n[environment]\nDJANGO_SETTINGS_MODULE = \"karl.settings\"\n"
	s, err := site.Parse("/etc/sitectl/sites/karl.toml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range append(Render(s, Options{}), RenderSlice()) {
		if !u.src.plain() {
			for _, sec := range u.src.sections {
				for _, e := range sec.entries {
					if !e.plain() {
						t.Errorf("%s: [%s] %s=%s is read back", u.Name, sec.name, e.key, e.raw)
					}
				}
			}
		}
	}
	for _, odd := range []string{"100%", "$HOME", "a b", `"q"`, "é"} {
		s.Exec = []string{"/bin/app", odd}
		s.Environment = []site.EnvVar{{Name: "V", Value: odd}}
		var svc Unit
		for _, u := range Render(s, Options{}) {
			if u.Name == ServiceName(s.Name) {
				svc = u
			}
		}
		if svc.src.plain() {
			t.Errorf("a service running %q is taken as plain:\n%s", odd, svc.Content)
		}
		if err := svc.src.verify(svc.Content); err != nil || !strings.Contains(svc.Content, "/bin/app") {
			t.Errorf("a service running %q: %v", odd, err)
		}
	}
}
