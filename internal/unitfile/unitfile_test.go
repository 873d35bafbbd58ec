package unitfile

import (
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestParseFollowsSystemd(t *testing.T) {
	// What systemd 252 made of these (TestUnitSyntaxOnSystemd checks the
	// same lines on the real one).
	as, err := Parse("# header \\\n[Unit]\nDescription=abc\\\nDocumentation=man:foo(1)\n  # comment\\\nAfter=  x.service  \n[Service]\nExecStart=/bin/a \\\\\n")
	if err != nil {
		t.Fatal(err)
	}
	want := []Assignment{
		{Section: "Unit", Key: "Description", Value: "abc Documentation=man:foo(1)", Line: 3, Continued: true},
		{Section: "Unit", Key: "After", Value: "x.service", Line: 6},
		{Section: "Service", Key: "ExecStart", Value: `/bin/a \\`, Line: 8},
	}
	if !slices.Equal(as, want) {
		t.Errorf("got  %+v\nwant %+v", as, want)
	}
	for _, bad := range []string{
		"Key=before a section\n",
		"[Unit]\nno equals sign\n",
		"[Unit]\nDescription=a\rExecStart=/bin/b\n",
		"[Unit]\nDescription=a\x00b\n",
		"[Unit\n",
		"[Unit]\nDescription=" + strings.Repeat("x", MaxLine) + "\n",
		"[Unit]\nDescription=ends in a continuation\\",
	} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("Parse(%.60q) accepted it", bad)
		}
	}
	if _, err := Parse("[Unit]\nDescription=" + strings.Repeat("x", MaxLine-len("Description=")) + "\n"); err != nil {
		t.Errorf("a line of exactly MaxLine bytes: %v", err)
	}
}

func TestDecodeCommand(t *testing.T) {
	cases := []struct {
		in     string
		prefix string
		argv   []string
	}{
		{`/bin/a b "c d" 'e f' "50%%" "$$HOME" "quote\"d" "back\\slash"`, "", []string{"/bin/a", "b", "c d", "e f", "50%", "$HOME", `quote"d`, `back\slash`}},
		{`+/usr/bin/sitectl prepare karl`, "+", []string{"/usr/bin/sitectl", "prepare", "karl"}},
		{`/bin/echo ";" \; a$b "tab\there" "\x1b[0m" ""`, "", []string{"/bin/echo", ";", ";", "a$b", "tab\there", "\x1b[0m", ""}},
	}
	for _, c := range cases {
		prefix, argv, err := DecodeCommand(c.in)
		if err != nil || prefix != c.prefix || !slices.Equal(argv, c.argv) {
			t.Errorf("DecodeCommand(%s) = %q %q %v, want %q %q", c.in, prefix, argv, err, c.prefix, c.argv)
		}
	}
	for _, bad := range []string{`/bin/a ; /bin/b`, `/bin/a %n`, `/bin/a $HOME`, `/bin/a "${HOME}"`, `/bin/a "open`, `/bin/a \q`, `/bin/a "\x00"`, ``, `/bin/a end\`} {
		if _, argv, err := DecodeCommand(bad); err == nil {
			t.Errorf("DecodeCommand(%s) = %q, want an error", bad, argv)
		}
	}
}

func TestDecodeEnv(t *testing.T) {
	got, err := DecodeEnv(`"A=x y" B=1 "C=100%%" "D=\x1b"`)
	if want := []string{"A=x y", "B=1", "C=100%", "D=\x1b"}; err != nil || !slices.Equal(got, want) {
		t.Errorf("DecodeEnv = %q %v, want %q", got, err, want)
	}
	for _, bad := range []string{`"1A=x"`, `"=x"`, `novalue`, `"A=%h"`} {
		if got, err := DecodeEnv(bad); err == nil {
			t.Errorf("DecodeEnv(%s) = %q, want an error", bad, got)
		}
	}
}

func TestTextProblem(t *testing.T) {
	for s, want := range map[string]string{
		"Karl's shop: 100% real": "",
		"tab\tinside":            "",
		`ends in \`:              "ends in a backslash",
		`two \\`:                 "",
		`three \\\`:              "ends in a backslash",
		" leading":               "starts with white space",
		"trailing\t":             "ends in white space",
		"line\nbreak":            "control character",
		"nul\x00":                "control character",
		"esc\x1b[2J":             "control character",
		"bad \xff":               "not valid UTF-8",
	} {
		if got := TextProblem(s); !strings.Contains(got, want) || (want == "") != (got == "") {
			t.Errorf("TextProblem(%q) = %q, want %q", s, got, want)
		}
	}
}

// FuzzRoundTrip: whatever the writer writes, the reader reads back as it
// was meant, inside a unit file line.
func FuzzRoundTrip(f *testing.F) {
	for _, s := range []string{"plain", "50%", "$HOME", "${X}", `a\`, `"q"`, "'s'", "; rm", `\;`, "tab\t", "\x1b[2J", " lead", "trail ", "%n%%"} {
		f.Add(s, s)
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		if strings.ContainsRune(a+b, 0) || !utf8.ValidString(a) || !utf8.ValidString(b) {
			return // cannot be written at all; the site parser refuses both
		}
		argv := []string{"/bin/app", a, b}
		as, err := Parse("[Service]\nExecStart=" + Command(argv) + "\nEnvironment=" + Env("V", a) + "\n")
		if err != nil {
			t.Fatalf("Parse: %v", err)
		}
		if _, got, err := DecodeCommand(as[0].Value); err != nil || !slices.Equal(got, argv) {
			t.Fatalf("command %q read back as %q (%v)", argv, got, err)
		}
		if got, err := DecodeEnv(as[1].Value); err != nil || len(got) != 1 || got[0] != "V="+a {
			t.Fatalf("environment %q read back as %q (%v)", "V="+a, got, err)
		}
		if TextProblem(a) == "" {
			as, err := Parse("[Unit]\nDescription=" + Text(a) + "\nAfter=x\n")
			if err != nil || len(as) != 2 || as[1].Key != "After" {
				t.Fatalf("text %q: %+v %v", a, as, err)
			}
			if got, err := DecodeText(as[0].Value); err != nil || got != a {
				t.Fatalf("text %q read back as %q (%v)", a, got, err)
			}
		}
	})
}
