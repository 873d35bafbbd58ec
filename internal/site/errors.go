package site

import (
	"fmt"
	"strings"
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

func (e *Error) Error() string {
	return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Col, e.Msg)
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
