package modes

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/sitectl/sitectl/internal/site"
	"github.com/sitectl/sitectl/internal/unitfile"
)

// FuzzEnvFileRoundTrip: whatever the writer writes, the reader reads back
// the same, and the writer takes every value a site file may hold.
func FuzzEnvFileRoundTrip(f *testing.F) {
	for _, seed := range [][3]string{
		{"A", `back\slash "quoted" $HOME ${X} ` + "`tick`", "100% #not ;comment"},
		{"_x1", "  spaces  ", `trailing\`},
		{"SITE_MODE", "", "ünï\tcödé \x01\x1b"},
		{"1bad", "a", "b"},
		{"A", "line\nbreak", "nul\x00"},
		{"A", "\xff\xfe", "'single'"},
	} {
		f.Add(seed[0], seed[1], seed[2])
	}
	f.Fuzz(func(t *testing.T, name, v1, v2 string) {
		vars := []site.EnvVar{{Name: name, Value: v1}, {Name: "OTHER_" + strings.Map(keepNameChars, name), Value: v2}}
		for _, v := range vars {
			siteValid := utf8.ValidString(v.Value) && !strings.ContainsAny(v.Value, "\x00\n\r")
			if err := checkEnvVar(v); site.ValidEnvName(v.Name) && siteValid && err != nil {
				t.Fatalf("the writer refuses %q=%q, which a site file may hold: %v", v.Name, v.Value, err)
			}
		}
		data, err := marshalEnv("comment\nwith a line break", vars)
		if err != nil {
			if !errors.Is(err, errEnvValue) && site.ValidEnvName(name) {
				t.Fatalf("unexpected error: %v", err)
			}
			return
		}
		got, err := ParseEnv(data)
		if err != nil {
			t.Fatalf("reading back %q: %v", data, err)
		}
		if !slices.Equal(got, vars) {
			t.Fatalf("wrote %q as\n%s\nread back %q", vars, data, got)
		}
	})
}

func keepNameChars(r rune) rune {
	if r == '_' || r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
		return r
	}
	return -1
}

// FuzzParseEnv: any file reads without a panic into valid assignments only.
func FuzzParseEnv(f *testing.F) {
	f.Add([]byte("A=1\nB=\"x\\\"y\"\n# c\n C = 'z' \\\n more\n"))
	f.Add([]byte("A=\"unterminated\nB=2"))
	f.Fuzz(func(t *testing.T, data []byte) {
		vars, err := ParseEnv(data)
		if err != nil {
			return
		}
		for _, v := range vars {
			if !site.ValidEnvName(v.Name) || !utf8.ValidString(v.Value) {
				t.Fatalf("%q read as %q", data, v)
			}
		}
	})
}

// The reader is systemd's parser: these are the rules of
// parse_env_file_internal (systemd 252, src/basic/env-file.c) and of what
// the service manager keeps (valid names, the last assignment of a name).
func TestParseEnvLikeSystemd(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"A=1\nB=2\n", "A=1 B=2"},
		{"  A = spaced value  \n", "A=spaced value"},     // key and unquoted value trimmed
		{"A=\"  kept  \"\n", "A=  kept  "},               // quoted space stays
		{`A="\"\\` + "\\`" + `\$"`, "A=\"\\`$"},          // the four escapes
		{`A="\n\t\x"`, `A=\n\t\x`},                       // others keep their backslash
		{`A=\n\"x`, `A=n"x`},                             // unquoted: a backslash escapes anything
		{"A='$HOME \\ \"'", `A=$HOME \ "`},               // single quotes are literal
		{`A="a"'b'c"d"`, `A=abc"d"`},                     // pieces join; a quote after an unquoted piece is literal
		{"A=one \\\ntwo\n", "A=one two"},                 // continued unquoted
		{"A=\"one \\\ntwo\"\n", "A=one two"},             // continued in quotes
		{"A=\"multi\nline\"\n", "A=multi\nline"},         // a newline inside quotes
		{"# A=1\n; B=2\n#C=3 \\\nD=4\nE=5", "E=5"},       // comments, continued too
		{"A=1 # not a comment\n", "A=1 # not a comment"}, //
		{"NOEQUALS\nA=1\n", "A=1"},                       // a line without =
		{"A=\nB", "A="},                                  //
		{"A=1\nB=2\nA=3\n", "A=3 B=2"},                   // the last wins, in place
		{"1A=x\nA-B=y\nOK=z\n", "OK=z"},                  // invalid names dropped
		{"A=\"unterminated", "A=unterminated"},           //
		{"A=$HOME%n", "A=$HOME%n"},                       // no expansion of any kind
		{"A=1\r\nB=2\r\n", "A=1 B=2"},                    // CR is a newline too
		{"A=\"tab\there\"", "A=tab\there"},               //
	} {
		vars, err := ParseEnv([]byte(c.in))
		if err != nil {
			t.Errorf("%q: %v", c.in, err)
			continue
		}
		var got []string
		for _, v := range vars {
			got = append(got, v.Name+"="+v.Value)
		}
		if strings.Join(got, " ") != c.want {
			t.Errorf("%q read as %q, want %q", c.in, strings.Join(got, " "), c.want)
		}
	}
	for _, bad := range []string{"A=\xff\n", "A=x\x00B=y\n"} {
		if _, err := ParseEnv([]byte(bad)); err == nil {
			t.Errorf("%q was read; systemd refuses the file", bad)
		}
	}
}

func TestEnvFileOfAMode(t *testing.T) {
	s, err := site.Parse("/etc/sitectl/sites/karl.toml", []byte("exec = [\"/bin/app\"]\n[[listen]]\naddress = \"127.0.0.1:8080\"\n"+
		"[modes.maint]\nserve = \"maintenance\"\npage = \"/srv/p.html\"\nretry_after = \"5m\"\nenvironment = { X = \"a \\\"b\\\" $c\" }\n"))
	if err != nil {
		t.Fatal(err)
	}
	m, _ := s.Mode("maint")
	data, err := EnvFile(s, m)
	if err != nil {
		t.Fatal(err)
	}
	want := "# The current mode of site karl, written by sitectl. Do not edit: use `sitectl mode`.\n" +
		"SITE_MODE=\"maint\"\nSITECTL_SERVE=\"maintenance\"\nSITECTL_PAGE=\"/srv/p.html\"\nSITECTL_RETRY_AFTER=\"300\"\n" +
		"SITECTL_MODE_VARS=\"X\"\nX=\"a \\\"b\\\" \\$c\"\n"
	if string(data) != want {
		t.Fatalf("mode file:\n%s\nwant:\n%s", data, want)
	}
	st := Store{Dir: t.TempDir()}
	if err := st.Write(s, m); err != nil {
		t.Fatal(err)
	}
	env, err := st.ReadEnv("karl")
	if err != nil || !slices.Equal(env, modeEnvironment(m)) {
		t.Fatalf("read back %q, %v; want %q", env, err, modeEnvironment(m))
	}
	if cur, ok, err := st.Current("karl"); cur != "maint" || !ok || err != nil {
		t.Fatalf("Current = %q %v %v", cur, ok, err)
	}
	// Root's alone: a mode's variables may be secrets.
	for path, want := range map[string]os.FileMode{st.Dir: DirMode, st.Dir + "/sites": DirMode, st.Dir + "/sites/karl": DirMode, st.EnvPath("karl"): FileMode} {
		if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != want {
			t.Errorf("%s: %v, want mode %o", path, fi.Mode(), want)
		}
	}
}

// A process that got the mode file through its environment tells the
// mode's variables from the site's, whatever the order.
func TestFromEnviron(t *testing.T) {
	environ := []string{"PATH=/bin", "X=mode value", "SITE_MODE=maint", "DB=site", "SITECTL_SERVE=app", "SITECTL_MODE_VARS=X,Y", "Y=", "LISTEN_FDS=1"}
	want := []site.EnvVar{{Name: "X", Value: "mode value"}, {Name: "SITE_MODE", Value: "maint"}, {Name: "SITECTL_SERVE", Value: "app"}, {Name: "SITECTL_MODE_VARS", Value: "X,Y"}, {Name: "Y", Value: ""}}
	if got := FromEnviron(environ); !slices.Equal(got, want) {
		t.Errorf("FromEnviron = %q, want %q", got, want)
	}
	if got := FromEnviron([]string{"PATH=/bin", "SITECTL_MODE_VARS="}); !slices.Equal(got, []site.EnvVar{{Name: "SITECTL_MODE_VARS", Value: ""}}) {
		t.Errorf("a mode without variables: %q", got)
	}
}

// The largest mode a site file may have, every byte of its values one
// that the mode file escapes, gives a mode file that sitectl reads back
// (the launcher's control socket reads it with the same bound): a bound
// of the site file's size refused it after it was written, and the site's
// mode could then be neither read nor changed.
func TestModeFileOfTheLargestModeIsReadBack(t *testing.T) {
	var b strings.Builder
	b.WriteString("exec = [\"/bin/app\"]\n[[listen]]\naddress = \"127.0.0.1:8080\"\n[modes.normal.environment]\n")
	value := strings.Repeat("$", min(unitfile.MaxArg-len("V0="), site.MaxFileSize/10))
	for i := 0; b.Len()+len(value)+len("V0 = ''\n") <= site.MaxFileSize; i++ {
		fmt.Fprintf(&b, "V%d = '%s'\n", i, value)
	}
	s, err := site.ParseNamed("/etc/sitectl/sites/karl.toml", "karl", []byte(b.String()))
	if err != nil {
		t.Fatalf("site: %v", err)
	}
	m, _ := s.Mode("normal")
	st := Store{Dir: t.TempDir()}
	if err := st.Write(s, m); err != nil {
		t.Fatal(err)
	}
	env, err := st.ReadEnv("karl")
	if err != nil {
		t.Fatalf("sitectl wrote a mode file it cannot read: %v", err)
	}
	if got := len(env) - len(modeEnvironment(site.Mode{Name: "normal"})); got != len(m.Environment) || len(m.Environment) < 7 {
		t.Fatalf("read back %d of the mode's %d variables", got, len(m.Environment))
	}
}

// A maintenance mode's retry_after reaches the server in whole seconds,
// a part of a second counting as one: cut off, "500ms" would be a 0, which
// the server takes for unset (Retry-After: 120).
func TestRetryAfterRoundsUp(t *testing.T) {
	for text, want := range map[string]string{"500ms": "1", "1s": "1", "1500ms": "2", "5m": "300"} {
		s, err := site.ParseNamed("/etc/sitectl/sites/karl.toml", "karl", []byte("exec = [\"/bin/true\"]\n[[listen]]\naddress = \"127.0.0.1:8001\"\n[modes.down]\nserve = \"maintenance\"\nretry_after = \""+text+"\"\n"))
		if err != nil {
			t.Fatalf("%s: %v", text, err)
		}
		m, _ := s.Mode("down")
		data, err := EnvFile(s, m)
		if err != nil {
			t.Fatal(err)
		}
		if line := VarRetryAfter + `="` + want + `"`; !strings.Contains(string(data), line) {
			t.Errorf("retry_after %s: the mode file has no %s:\n%s", text, line, data)
		}
	}
}
