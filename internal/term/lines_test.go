package term_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/sitectl/sitectl/internal/term"
)

func TestCopyEscaped(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"", ""},
		{"plain\n", "plain\n"},
		{"a\x1b[2Jb\n\x1b]0;title\x07\n", `a\x1b[2Jb` + "\n" + `\x1b]0;title\x07` + "\n"},
		{"cr\rover\nno newline \x9b", `cr\rover` + "\n" + `no newline \x9b`},
		{"c1 \u009b2J\n", `c1 \x9b2J` + "\n"},
		{"bidi \u202e txt\n", `bidi \u202e txt` + "\n"},
		{"tab\there\n\n", `tab\there` + "\n\n"},
	} {
		var b strings.Builder
		if err := term.CopyEscaped(&b, strings.NewReader(c.in)); err != nil || b.String() != c.want {
			t.Errorf("CopyEscaped(%q) = %q, %v; want %q", c.in, b.String(), err, c.want)
		}
	}
	// A long line is one line, however long.
	long := strings.Repeat("x", 200<<10) + "\x1b\n"
	var b strings.Builder
	if err := term.CopyEscaped(&b, strings.NewReader(long)); err != nil || b.String() != long[:len(long)-2]+`\x1b`+"\n" {
		t.Errorf("a 200 KiB line: %v, %d bytes", err, b.Len())
	}
	if err := term.CopyEscaped(failing{}, strings.NewReader("x\n")); !errors.Is(err, term.ErrWrite) {
		t.Errorf("a failed write: %v, want ErrWrite", err)
	}
}

type failing struct{}

func (failing) Write([]byte) (int, error) { return 0, errors.New("broken pipe") }
