package site

import (
	"fmt"
	"strings"

	"github.com/sitectl/sitectl/internal/term"
)

// Error is one mistake in a site file, with where it was made.
type Error struct {
	File      string
	Line, Col int
	Msg       string
	// More, when not 0, says that this is not a mistake but stands for
	// that many more, not listed (MaxMistakes).
	More int
}

// Error is "FILE:LINE:COL: what is wrong", the file's name escaped
// (term.Escape): a name with a newline or an escape sequence in it would
// otherwise start a line of its own in a log, or act on a terminal.
func (e *Error) Error() string {
	return fmt.Sprintf("%s:%d:%d: %s", term.Escape(e.File), e.Line, e.Col, e.Msg)
}

// Errors is every mistake found, in the order found. It is an error itself,
// one mistake per line.
type Errors []*Error

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}
