package term

import (
	"bytes"
	"errors"
	"testing"
	"unicode/utf8"
)

func TestEscape(t *testing.T) {
	for in, want := range map[string]string{
		"plain text, 100% ok":          "plain text, 100% ok",
		"ünïcödé 日本 a\u00a0b":          "ünïcödé 日本 a\u00a0b",
		`back\slash \n literal`:        `back\slash \n literal`,
		"two\nlines":                   `two\nlines`,
		"tab\there\r":                  `tab\there\r`,
		"\x1b[2J\x07\x00\x7f":          `\x1b[2J\x07\x00\x7f`,
		"c1 \u009b31m csi":             `c1 \x9b31m csi`,
		"rtl \u202eevil\u202c \u2066x": `rtl \u202eevil\u202c \u2066x`,
		"zero\u200bwidth \ufeffbom":    `zero\u200bwidth \ufeffbom`,
		"line\u2028sep\u2029":          `line\u2028sep\u2029`,
		"bad utf8 \xff\xfe end":        `bad utf8 \xff\xfe end`,
		"truncated \xe2\x80":           `truncated \xe2\x80`,
		"tag \U000E0001x \U0001D173":   `tag \U000e0001x \U0001d173`,
	} {
		if got := Escape(in); got != want {
			t.Errorf("Escape(%q) = %q, want %q", in, got, want)
		}
	}
}

// Whatever goes in, what comes out has no byte a terminal acts on, is
// valid UTF-8, and is one line.
func FuzzEscape(f *testing.F) {
	f.Add("\x1b]0;title\x07\n\u202e\xff")
	f.Fuzz(func(t *testing.T, s string) {
		out := Escape(s)
		if !utf8.ValidString(out) {
			t.Fatalf("Escape(%q) = %q is not UTF-8", s, out)
		}
		for _, r := range out {
			if r < 0x20 || r == 0x7f || r >= 0x80 && r < 0xa0 || r == '\u202e' || r == '\u2028' {
				t.Fatalf("Escape(%q) = %q keeps %U", s, out, r)
			}
		}
	})
}

type mode string

func TestFprintf(t *testing.T) {
	var b bytes.Buffer
	Fprintf(&b, "%s\t%v\t%d\t%s\t%v\n", "a\nb", errors.New("e\x1b"), 42, mode("m\r"), []string{"x\ty"})
	if got, want := b.String(), "a\\nb\te\\x1b\t42\tm\\r\t[x\\ty]\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	b.Reset()
	Fprintln(&b, "a\nb", 7)
	if got := b.String(); got != "a\\nb 7\n" {
		t.Errorf("Fprintln: %q", got)
	}
}
