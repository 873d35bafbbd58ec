package term_test

import (
	"errors"
	"io"
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

// A line is copied in pieces, each escaped as it comes: an app that logs
// one line of hundreds of megabytes (journald takes a field of up to 768
// MiB through its native socket, compressed) must not make root's sitectl
// logs hold it, and its escaped copy, in memory. A character cut between
// two pieces is escaped whole, as it would be in one.
func TestCopyEscapedBoundsALine(t *testing.T) {
	const n = 64 << 20
	var out counter
	src := &watched{r: io.MultiReader(io.LimitReader(repeat('a'), n), strings.NewReader("é\x1b\n")), out: &out}
	if err := term.CopyEscaped(&out, src); err != nil {
		t.Fatal(err)
	}
	if out.n != n+len("é")+len(`\x1b`)+1 || string(out.tail) != `aé\x1b`+"\n" {
		t.Errorf("copied %d bytes ending %q", out.n, out.tail)
	}
	if src.held > 1<<20 {
		t.Errorf("copying a line of %d MiB held up to %d KiB of it at once", n>>20, src.held>>10)
	}
	// Every cut of a multi-byte character gives what one piece would.
	for _, line := range []string{strings.Repeat("é", 100<<10) + "\n", strings.Repeat("x", 64<<10-1) + "\u202e\n", strings.Repeat("€", 50<<10) + "\xff\x1b"} {
		var b strings.Builder
		if err := term.CopyEscaped(&b, strings.NewReader(line)); err != nil || b.String() != term.Escape(strings.TrimSuffix(line, "\n"))+line[len(strings.TrimSuffix(line, "\n")):] {
			t.Errorf("a line of %d bytes ending %q: %v, got %d bytes", len(line), line[len(line)-4:], err, b.Len())
		}
	}
}

// watched is a reader that notes how much more it gave than out took.
type watched struct {
	r    io.Reader
	out  *counter
	read int
	held int
}

func (w *watched) Read(p []byte) (int, error) {
	n, err := w.r.Read(p)
	w.read += n
	w.held = max(w.held, w.read-w.out.n)
	return n, err
}

type repeat byte

func (r repeat) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(r)
	}
	return len(p), nil
}

// counter counts what is written and keeps its last bytes.
type counter struct {
	n    int
	tail []byte
}

func (c *counter) Write(p []byte) (int, error) {
	c.n += len(p)
	c.tail = append(c.tail, p...)
	if len(c.tail) > 8 {
		c.tail = append(c.tail[:0], c.tail[len(c.tail)-8:]...)
	}
	return len(p), nil
}
