package bounded

import (
	"errors"
	"io"
	"strings"
	"testing"
)

// What a command writes goes through io.Copy, which prefers the
// destination's ReadFrom: a dropping buffer keeps max bytes all the same,
// and reads the rest to the end.
func TestDroppingKeepsItsBoundThroughCopy(t *testing.T) {
	b := Dropping(1 << 10)
	n, err := io.Copy(b, strings.NewReader(strings.Repeat("x", 10<<20)))
	if err != nil || n != 10<<20 {
		t.Fatalf("copied %d, %v: the rest must be read and dropped", n, err)
	}
	if b.Len() != 1<<10 || len(b.Bytes()) != 1<<10 {
		t.Fatalf("kept %d bytes, want %d", b.Len(), 1<<10)
	}
}

// A dropping buffer keeps the start of a write that crosses its bound and
// reports all of it written.
func TestDroppingKeepsTheStart(t *testing.T) {
	b := Dropping(5)
	for _, w := range []string{"abc", "defg", "hij"} {
		if n, err := b.Write([]byte(w)); n != len(w) || err != nil {
			t.Fatalf("Write(%q) = %d, %v; want %d, nil", w, n, err, len(w))
		}
	}
	if got := string(b.Bytes()); got != "abcde" {
		t.Errorf("kept %q, want %q", got, "abcde")
	}
}

var errFull = errors.New("full")

// A failing buffer takes writes up to its bound, and fails one that does
// not fit with its error, keeping none of it; a later write that fits is
// still taken.
func TestFailingFailsPastItsBound(t *testing.T) {
	b := Failing(5, errFull)
	for _, c := range []struct {
		w    string
		n    int
		err  error
		kept string
	}{
		{"abc", 3, nil, "abc"},
		{"def", 0, errFull, "abc"},
		{"de", 2, nil, "abcde"},
		{"f", 0, errFull, "abcde"},
		{"", 0, nil, "abcde"},
	} {
		n, err := b.Write([]byte(c.w))
		if n != c.n || err != c.err || string(b.Bytes()) != c.kept || b.Len() != len(c.kept) {
			t.Errorf("Write(%q) = %d, %v, kept %q; want %d, %v, kept %q", c.w, n, err, b.Bytes(), c.n, c.err, c.kept)
		}
	}
}

// Through io.Copy, a failing buffer stops the copy with its error and
// holds no more than its bound.
func TestFailingStopsCopy(t *testing.T) {
	b := Failing(1<<10, errFull)
	_, err := io.Copy(b, strings.NewReader(strings.Repeat("x", 10<<20)))
	if !errors.Is(err, errFull) {
		t.Fatalf("io.Copy: %v, want %v", err, errFull)
	}
	if b.Len() > 1<<10 {
		t.Fatalf("kept %d bytes, more than %d", b.Len(), 1<<10)
	}
}

// Neither kind of buffer has a ReadFrom for io.Copy to prefer.
func TestNoReadFrom(t *testing.T) {
	for _, w := range []io.Writer{Dropping(1), Failing(1, errFull)} {
		if _, ok := w.(io.ReaderFrom); ok {
			t.Errorf("%T is an io.ReaderFrom", w)
		}
	}
}

// A tail buffer keeps the newest max bytes of what was written, in
// whatever pieces, reports every write whole, and says that it dropped
// the oldest; through io.Copy too, holding at most twice max meanwhile.
func TestTailKeepsTheNewest(t *testing.T) {
	b := Tail(5)
	if b.Cut() {
		t.Error("an empty tail buffer says it dropped bytes")
	}
	for _, w := range []string{"abc", "de"} {
		if n, err := b.Write([]byte(w)); n != len(w) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", w, n, err)
		}
	}
	if got := string(b.Bytes()); got != "abcde" || b.Cut() {
		t.Errorf("kept %q, cut %v; want abcde, nothing cut", got, b.Cut())
	}
	for _, w := range []string{"fgh", "ijklmnop", "q"} {
		if n, err := b.Write([]byte(w)); n != len(w) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", w, n, err)
		}
	}
	if got := string(b.Bytes()); got != "mnopq" || b.Len() != 5 || !b.Cut() {
		t.Errorf("kept %q (%d), cut %v; want mnopq, cut", got, b.Len(), b.Cut())
	}

	big := Tail(1 << 10)
	src := strings.Repeat("0123456789", 1<<20)
	if n, err := io.Copy(big, strings.NewReader(src)); err != nil || n != int64(len(src)) {
		t.Fatalf("copied %d, %v", n, err)
	}
	if big.buf.Cap() > 8<<10 {
		t.Errorf("a tail buffer of 1 KiB grew to %d bytes", big.buf.Cap())
	}
	if got := string(big.Bytes()); got != src[len(src)-1<<10:] {
		t.Errorf("kept %d bytes ending %q, want the last 1 KiB", len(got), got[max(0, len(got)-10):])
	}
}

// A dropping buffer says it dropped what did not fit.
func TestDroppingSaysItCut(t *testing.T) {
	b := Dropping(3)
	b.Write([]byte("abc"))
	if b.Cut() {
		t.Error("cut after a write that fit")
	}
	b.Write([]byte("d"))
	if !b.Cut() {
		t.Error("not cut after a write past the bound")
	}
}
