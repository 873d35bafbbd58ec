package term

import (
	"bufio"
	"errors"
	"io"
)

// ErrWrite wraps CopyEscaped's failure to write: the reader went away (a
// pager quit), as opposed to a failure to read.
var ErrWrite = errors.New("cannot write")

// CopyEscaped copies the lines of text another program writes (journalctl
// showing an app's lines) from src to dst, each line through Escape: its
// newline ends it and stays one, and every other character a terminal
// would act on (ESC, a carriage return, a bidirectional override) is
// written as a visible escape. A last line without a newline is copied as
// it is, escaped. Each line is written as soon as it is read, so a
// followed stream shows up at once.
func CopyEscaped(dst io.Writer, src io.Reader) error {
	r := bufio.NewReaderSize(src, 64<<10)
	for {
		line, rerr := r.ReadString('\n')
		if line != "" {
			text, nl := line, ""
			if text[len(text)-1] == '\n' {
				text, nl = text[:len(text)-1], "\n"
			}
			if _, err := io.WriteString(dst, Escape(text)+nl); err != nil {
				return errors.Join(ErrWrite, err)
			}
		}
		if rerr == io.EOF {
			return nil
		}
		if rerr != nil {
			return rerr
		}
	}
}
