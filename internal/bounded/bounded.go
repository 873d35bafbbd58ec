// Package bounded holds a buffer that keeps at most a set number of bytes,
// for reading a command's output without trusting the command to stop.
package bounded

import "bytes"

// Buffer is an io.Writer that keeps at most max bytes. What a write past
// max does is chosen when the buffer is made: Dropping keeps what fits and
// drops the rest; Failing fails the write; Tail keeps the newest bytes and
// drops the oldest.
//
// It has no ReadFrom (it does not embed bytes.Buffer): exec copies a
// command's output with io.Copy, which would use ReadFrom and read
// without bound.
type Buffer struct {
	buf  bytes.Buffer
	max  int
	full error // nil: drop what does not fit
	tail bool  // drop the oldest bytes instead
	cut  bool  // bytes were dropped
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

// Tail returns a buffer that keeps the last max bytes written to it (the
// newest lines of a log) and drops older ones. A write never fails. It
// holds at most twice max bytes between writes.
func Tail(max int) *Buffer {
	return &Buffer{max: max, tail: true}
}

// Write adds p to the buffer, within its bound.
func (b *Buffer) Write(p []byte) (int, error) {
	if b.tail {
		n := len(p)
		if n > b.max {
			b.buf.Reset()
			p, b.cut = p[n-b.max:], true
		}
		b.buf.Write(p)
		if b.buf.Len() > 2*b.max {
			b.trim()
		}
		return n, nil
	}
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
	b.cut = b.cut || len(p) > room
	return len(p), nil
}

// trim drops a tail buffer's oldest bytes beyond max.
func (b *Buffer) trim() {
	if n := b.buf.Len(); n > b.max {
		b.buf.Next(n - b.max)
		b.cut = true
	}
}

// Len is how many bytes the buffer kept.
func (b *Buffer) Len() int {
	if b.tail {
		b.trim()
	}
	return b.buf.Len()
}

// Bytes is what the buffer kept.
func (b *Buffer) Bytes() []byte {
	if b.tail {
		b.trim()
	}
	return b.buf.Bytes()
}

// Cut tells whether bytes were dropped: written past max (Dropping), or
// before the last max (Tail).
func (b *Buffer) Cut() bool {
	if b.tail {
		b.trim()
	}
	return b.cut
}
