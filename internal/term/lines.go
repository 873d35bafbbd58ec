package term

import (
	"bufio"
	"errors"
	"io"
	"unicode/utf8"
)

// ErrWrite wraps CopyEscaped's failure to write: the reader went away (a
// pager quit), as opposed to a failure to read.
var ErrWrite = errors.New("cannot write")

// copyPiece is how much of a line CopyEscaped holds at once.
const copyPiece = 64 << 10

// CopyEscaped copies the lines of text another program writes (journalctl
// showing an app's lines) from src to dst, each line through Escape: its
// newline ends it and stays one, and every other character a terminal
// would act on (ESC, a carriage return, a bidirectional override) is
// written as a visible escape. A last line without a newline is copied as
// it is, escaped. Each line is written as soon as it is read, so a
// followed stream shows up at once.
//
// A line longer than copyPiece is copied in pieces of about that size,
// each cut after a whole character, so that what is written is what one
// Escape of the whole line gives: an app can log a line of hundreds of
// megabytes (journald takes a field of up to 768 MiB through its native
// socket), which must not be held in memory, nor its escaped copy.
func CopyEscaped(dst io.Writer, src io.Reader) error {
	r := bufio.NewReaderSize(src, copyPiece)
	var line, rest []byte // rest: a character cut at the end of a piece
	for {
		chunk, rerr := r.ReadSlice('\n')
		line = append(append(line[:0], rest...), chunk...)
		rest = rest[:0]
		nl := ""
		switch {
		case len(line) > 0 && line[len(line)-1] == '\n':
			line, nl = line[:len(line)-1], "\n"
		case errors.Is(rerr, bufio.ErrBufferFull):
			cut := cutCharacter(line)
			rest = append(rest, line[cut:]...)
			line = line[:cut]
		}
		if len(line) > 0 || nl != "" {
			if _, err := io.WriteString(dst, Escape(string(line))+nl); err != nil {
				return errors.Join(ErrWrite, err)
			}
		}
		switch {
		case rerr == nil, errors.Is(rerr, bufio.ErrBufferFull):
		case rerr == io.EOF:
			return nil // nothing was cut: the last piece was written whole
		default:
			return rerr
		}
	}
}

// cutCharacter is where a piece of a line ends: before the last bytes of
// b when they begin a UTF-8 character that the next piece may complete,
// else at its end.
func cutCharacter(b []byte) int {
	for i := len(b) - 1; i >= 0 && i >= len(b)-utf8.UTFMax+1; i-- {
		if utf8.RuneStart(b[i]) {
			if !utf8.FullRune(b[i:]) {
				return i
			}
			break
		}
	}
	return len(b)
}
