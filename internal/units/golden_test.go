package units_test

import (
	"bufio"
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/sitectl/sitectl/internal/site"
	"github.com/sitectl/sitectl/internal/units"
)

// Each testdata/*.toml is a site file that carries its own assertions as
// "## assert-..." comments, in the manner of podman's quadlet tests:
//
//	## assert-key-is UNIT SECTION KEY VALUE    the key's last value is VALUE
//	## assert-key-has UNIT SECTION KEY VALUE   one of the key's values is VALUE
//	## assert-key-lacks UNIT SECTION KEY VALUE none of the key's values is VALUE
//	## assert-key-missing UNIT SECTION KEY     the key is not set
//	## assert-key-count UNIT SECTION KEY VALUE N  the key has VALUE N times
//	## assert-unit-missing UNIT                no such unit is rendered
//	## assert-header UNIT LINE                 the unit's comment header has LINE
//	## assert-fails LINE:COL: MESSAGE          parsing fails with exactly these errors
//
// UNIT is matched as a suffix of the unit name (".service", "@admin.socket").
//
// testdata/hostile/ is the corpus of hostile inputs: values that a unit
// file's syntax could bend (a final backslash, white space, %, $, ;,
// quotes, control characters, IPv6 zones) and values at systemd's and
// Linux's limits. {{x*N}} in a file stands for N times x, so that inputs at
// the limits stay small in the repository. Every accepted file must also
// pass units.Check: each unit, read back as systemd 252 reads it, says
// exactly what the site file says.
func TestGolden(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.toml")
	hostile, _ := filepath.Glob("testdata/hostile/*.toml")
	if len(files) == 0 || len(hostile) == 0 {
		t.Fatal("no test inputs in testdata/")
	}
	for _, file := range append(files, hostile...) {
		t.Run(strings.TrimPrefix(file, "testdata/"), func(t *testing.T) { runGolden(t, file) })
	}
}

var repeatMacro = regexp.MustCompile(`\{\{(.)\*([0-9]+)\}\}`)

// expand replaces {{c*N}} by N times c.
func expand(data []byte) []byte {
	return repeatMacro.ReplaceAllFunc(data, func(m []byte) []byte {
		sub := repeatMacro.FindSubmatch(m)
		n, _ := strconv.Atoi(string(sub[2]))
		return bytes.Repeat(sub[1], n)
	})
}

func runGolden(t *testing.T, file string) {
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	data = expand(data)
	var asserts [][]string
	var wantErrs []string
	sc := bufio.NewScanner(strings.NewReader(string(data)))
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), "## assert-")
		if !ok {
			continue
		}
		if msg, ok := strings.CutPrefix(line, "fails "); ok {
			wantErrs = append(wantErrs, file+":"+msg)
			continue
		}
		words, err := splitWords(line)
		if err != nil {
			t.Fatalf("bad assertion %q: %v", line, err)
		}
		asserts = append(asserts, words)
	}
	s, err := site.ParseNamed(file, strings.TrimSuffix(filepath.Base(file), ".toml"), data)
	if len(wantErrs) > 0 {
		var errs site.Errors
		if !errors.As(err, &errs) {
			t.Fatalf("parse succeeded or failed oddly (%v); want errors:\n%s", err, strings.Join(wantErrs, "\n"))
		}
		got := strings.Split(errs.Error(), "\n")
		if !slices.Equal(got, wantErrs) {
			t.Fatalf("errors differ\ngot:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(wantErrs, "\n"))
		}
		return
	}
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	if len(asserts) == 0 {
		t.Fatal("test input has no assertions")
	}
	if err := units.Check(s, units.Options{}); err != nil {
		t.Errorf("units.Check: %v", err)
	}
	rendered := units.Render(s, units.Options{})
	for _, a := range asserts {
		check(t, rendered, a)
	}
}

func findUnit(us []units.Unit, suffix string) *units.Unit {
	for i := range us {
		if strings.HasSuffix(us[i].Name, suffix) {
			return &us[i]
		}
	}
	return nil
}

func check(t *testing.T, us []units.Unit, a []string) {
	t.Helper()
	need := map[string]int{"key-is": 5, "key-has": 5, "key-lacks": 5, "key-missing": 4, "key-count": 6, "unit-missing": 2, "header": 3}
	n, known := need[a[0]]
	if !known || len(a) != n {
		t.Fatalf("assertion %q: unknown, or wrong number of words", a)
	}
	u := findUnit(us, a[1])
	if a[0] == "unit-missing" {
		if u != nil {
			t.Errorf("unit %s is rendered, want none", u.Name)
		}
		return
	}
	if u == nil {
		t.Fatalf("assertion %q: no unit ending in %s", a, a[1])
	}
	if a[0] == "header" {
		if !strings.Contains(u.Content, "# "+a[2]+"\n") {
			t.Errorf("%s: header lacks %q", u.Name, a[2])
		}
		return
	}
	values := keyValues(u.Content, a[2], a[3])
	switch a[0] {
	case "key-is":
		if len(values) == 0 || values[len(values)-1] != a[4] {
			t.Errorf("%s [%s] %s = %q, want %q", u.Name, a[2], a[3], values, a[4])
		}
	case "key-has":
		if !slices.Contains(values, a[4]) {
			t.Errorf("%s [%s] %s = %q, want one of them to be %q", u.Name, a[2], a[3], values, a[4])
		}
	case "key-lacks":
		if slices.Contains(values, a[4]) {
			t.Errorf("%s [%s] %s has %q, want not", u.Name, a[2], a[3], a[4])
		}
	case "key-count":
		if n := len(slices.DeleteFunc(values, func(v string) bool { return v != a[4] })); strconv.Itoa(n) != a[5] {
			t.Errorf("%s [%s] %s has %q %d times, want %s", u.Name, a[2], a[3], a[4], n, a[5])
		}
	case "key-missing":
		if len(values) > 0 {
			t.Errorf("%s [%s] %s = %q, want it unset", u.Name, a[2], a[3], values)
		}
	}
}

// keyValues reads a unit file the simple way: every value of key in section.
func keyValues(content, section, key string) []string {
	var vals []string
	current := ""
	for _, line := range strings.Split(content, "\n") {
		switch {
		case strings.HasPrefix(line, "#") || line == "":
		case strings.HasPrefix(line, "["):
			current = strings.Trim(line, "[]")
		case current == section:
			if k, v, ok := strings.Cut(line, "="); ok && k == key {
				vals = append(vals, v)
			}
		}
	}
	return vals
}

// splitWords splits an assertion into words; "..." groups words, with \" and
// \\ escapes inside.
func splitWords(s string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord, inQuote := false, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case inQuote && c == '\\' && i+1 < len(s):
			i++
			cur.WriteByte(s[i])
		case c == '"':
			inQuote, inWord = !inQuote, true
		case !inQuote && (c == ' ' || c == '\t'):
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if inQuote {
		return nil, errors.New("unterminated quote")
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}

// A site whose app would need a file under the directories its service
// hides (the site files, the state) is refused: the app would not find it.
func TestCheckRefusesPrivatePaths(t *testing.T) {
	for extra, want := range map[string]string{
		"[modes.maintenance]\nserve = \"maintenance\"\npage = \"/etc/sitectl/down.html\"\n": "mode maintenance page /etc/sitectl/down.html is under /etc/sitectl, which the site's service hides from the app",
		"workdir = \"/var/lib/sitectl/app\"\n":                                              "workdir /var/lib/sitectl/app is under /var/lib/sitectl",
		"[hardening]\nwritable_paths = [\"/var/lib/sitectl\"]\n":                            "writable_paths[0] /var/lib/sitectl is under /var/lib/sitectl",
	} {
		src := extra
		if !strings.HasPrefix(extra, "[") {
			src = extra + "exec = [\"/bin/app\"]\n[[listen]]\naddress = \"127.0.0.1:8080\"\n"
		} else {
			src = "exec = [\"/bin/app\"]\n[[listen]]\naddress = \"127.0.0.1:8080\"\n" + extra
		}
		s, err := site.Parse("/etc/sitectl/sites/x.toml", []byte(src))
		if err != nil {
			t.Fatal(err)
		}
		if err := units.Check(s, units.Options{}); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %s", extra, err, want)
		}
	}
	s, _ := site.Parse("/etc/sitectl/sites/x.toml", []byte("exec = [\"/etc/sitectlx/app\"]\n[[listen]]\naddress = \"127.0.0.1:8080\"\n"))
	if err := units.Check(s, units.Options{}); err != nil {
		t.Errorf("a path next to /etc/sitectl: %v", err)
	}
}
