package site_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/sitectl/sitectl/internal/site"
	"github.com/sitectl/sitectl/internal/units"
)

// FuzzParse: any input gives a site or positioned errors; never a panic,
// never an error without a position inside the file. And a site the parser
// accepts always renders units that say what the file says: units.Check
// reads each back as systemd 252 does (line limits, continuations, white
// space, specifiers, quoting, variables). The seeds include the corpus of
// hostile inputs and the golden inputs of package units.
func FuzzParse(f *testing.F) {
	f.Add([]byte("exec = [\"/bin/a\"]\n[[listen]]\naddress = \"127.0.0.1:8080\"\n"))
	f.Add([]byte("exec = [\"/usr/bin/gunicorn\"]\nserver = \"gunicorn\"\nlisten = [{ path = \"/run/x.sock\", mode = \"0600\" }]\n[modes.ro]\nenvironment = { A = \"b\" }\n[modes.m]\nserve = \"maintenance\"\n"))
	f.Add([]byte("a.b.c = 1\n[x]\n[[x.y]]\nz = [1, [2], {q = 3}]\n"))
	f.Add([]byte("listen = [[1]]\nmodes = 3\nmodes2 = { a = { b = 1 } }\n"))
	f.Add([]byte("description = 'a\\\\'\nexec = [\"/bin/a\", \"$X\", \";\", \"%n\", '\\', \"\\u001b\"]\nenvironment = { A = \"%%$\\\\\\\"\" }\nlisten = [{ address = \"[::ffff:1.2.3.4]:1\" }]\n"))
	for _, glob := range []string{"../units/testdata/*.toml", "../units/testdata/hostile/*.toml"} {
		files, _ := filepath.Glob(glob)
		for _, file := range files {
			if data, err := os.ReadFile(file); err == nil && len(data) < 4096 {
				f.Add(data)
			}
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := site.Parse("/etc/sitectl/sites/f.toml", data)
		if err == nil {
			if s == nil || len(s.Exec) == 0 || len(s.Listeners) == 0 {
				t.Fatalf("valid site without exec or listeners: %+v", s)
			}
			if err := units.Check(s, units.Options{}); err != nil {
				t.Fatalf("an accepted site renders a unit systemd would read otherwise: %v", err)
			}
			return
		}
		var errs site.Errors
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
