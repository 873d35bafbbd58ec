// Package bounded holds a buffer that keeps at most a set number of bytes,
// for reading a command's output without trusting the command to stop.
package bounded

import "bytes"

// Buffer is an io.Writer that keeps at most max bytes. What a write past
// max does is chosen when the buffer is made: Dropping keeps what fits and
// drops the rest; Failing fails the write.
//
// It has no ReadFrom (it does not embed bytes.Buffer): exec copies a
// command's output with io.Copy, which would use ReadFrom and read
// without bound.
type Buffer struct {
	buf  bytes.Buffer
	max  int
	full error // nil: drop what does not fit
}

// Dropping returns a buffer that keeps the first max bytes written to it
// and drops the rest. A write never fails: it reports all of its bytes
// written, so the writer reads on to the end.
func Dropping(max int) *Buffer {
	return &Buffer{max: max}
}

// Failing returns a buffer that keeps up to max bytes and fails a write
// that does not fit, with err, keeping none of it. A command's output is
// then closed, and the command stops at its next write instead of writing
// on for nothing. err must not be nil.
func Failing(max int, err error) *Buffer {
	if err == nil {
		panic("bounded.Failing: nil error")
	}
	return &Buffer{max: max, full: err}
}

// Write adds p to the buffer, within its bound.
func (b *Buffer) Write(p []byte) (int, error) {
	room := b.max - b.buf.Len()
	if b.full != nil {
		if len(p) > room {
			return 0, b.full
		}
		return b.buf.Write(p)
	}
	if room > 0 {
		b.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

// Len is how many bytes the buffer kept.
func (b *Buffer) Len() int { return b.buf.Len() }

// Bytes is what the buffer kept.
func (b *Buffer) Bytes() []byte { return b.buf.Bytes() }
