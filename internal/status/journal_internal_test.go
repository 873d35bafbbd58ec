package status

import (
	"io"
	"strings"
	"testing"
)

// What a command writes goes through io.Copy, which prefers the
// destination's ReadFrom: the buffer keeps max bytes all the same.
func TestLimitedBufferKeepsItsBoundThroughCopy(t *testing.T) {
	b := &limitedBuffer{max: 1 << 10}
	n, err := io.Copy(b, strings.NewReader(strings.Repeat("x", 10<<20)))
	if err != nil || n != 10<<20 {
		t.Fatalf("copied %d, %v: the rest must be read and dropped", n, err)
	}
	if b.Len() != 1<<10 || len(b.Bytes()) != 1<<10 {
		t.Fatalf("kept %d bytes, want %d", b.Len(), 1<<10)
	}
}
