// Package term keeps what sitectl prints from controlling the terminal it is
// printed on. Every field sitectl prints may come from a file or a process
// that someone other than the reader wrote: a site file, the state of a site,
// a service's status text, an app's journal lines. A control character in
// any of them (a newline that forges a line, ESC [2J that clears the screen,
// a right-to-left override that reorders a line) must reach the terminal as
// visible text, never as a command. Every printer of the command line goes
// through Fprintf (or Escape); a test in package lint checks that no printer
// writes with fmt directly.
package term

import (
	"fmt"
	"io"
	"reflect"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Escape returns s with every character a terminal would act on written as
// a visible escape: C0 and C1 controls and DEL as \n, \t, \r or \xHH,
// invalid UTF-8 bytes as \xHH, and the invisible format characters that
// reorder or hide text (bidirectional overrides and isolates, zero-width
// characters) as \uHHHH (\UHHHHHHHH above U+FFFF). Printable text, spaces,
// backslashes and non-ASCII letters stay as they are: a field can show text
// that looks like an escape, but it cannot act on the terminal or start a
// line of its own.
func Escape(s string) string {
	if isPlain(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			fmt.Fprintf(&b, `\x%02x`, s[i])
			i++
			continue
		}
		b.WriteString(escapeRune(r))
		i += size
	}
	return b.String()
}

// isPlain tells whether s has nothing to escape, without allocating.
func isPlain(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f {
			return false
		}
	}
	return true
}

// escapeRune is one character as Escape writes it.
func escapeRune(r rune) string {
	switch r {
	case '\n':
		return `\n`
	case '\t':
		return `\t`
	case '\r':
		return `\r`
	}
	switch {
	case r < 0x20 || r == 0x7f || r >= 0x80 && r < 0xa0:
		return fmt.Sprintf(`\x%02x`, r)
	case r == ' ':
		return " "
	case unicode.Is(unicode.Cf, r) || unicode.Is(unicode.Zl, r) || unicode.Is(unicode.Zp, r) || !unicode.IsPrint(r) && !unicode.IsSpace(r):
		if r > 0xffff {
			// Eight digits, as Go writes it: \ue0001 would read as
			// U+E000 and a 1.
			return fmt.Sprintf(`\U%08x`, r)
		}
		return fmt.Sprintf(`\u%04x`, r)
	}
	// Letters, marks, symbols and the other spaces (no-break, ideographic).
	return string(r)
}

// Fprintf is fmt.Fprintf with every text argument escaped: strings, errors,
// fmt.Stringers and slices of strings. Numbers and the format itself are
// written as they are, so a printer's own newlines and tabs (tabwriter
// columns) keep their meaning, and a field's cannot add any.
func Fprintf(w io.Writer, format string, args ...any) (int, error) {
	safe := make([]any, len(args))
	for i, a := range args {
		safe[i] = escapeArg(a)
	}
	return fmt.Fprintf(w, format, safe...)
}

// Styled is a line sitectl composed itself: every field in it already went
// through Escape, and the only control characters are sitectl's own colour
// sequences (Style). Fprintf writes it as it is. Wrap nothing else in it.
type Styled string

// Fprintln writes the arguments escaped, separated by spaces, and a
// newline.
func Fprintln(w io.Writer, args ...any) (int, error) {
	parts := make([]string, len(args))
	for i, a := range args {
		parts[i] = fmt.Sprint(escapeArg(a))
	}
	return io.WriteString(w, strings.Join(parts, " ")+"\n")
}

// escapeArg escapes a text argument: a string of any string type, an error,
// a []string. Everything else (numbers, times, durations) prints as fmt
// prints it, which adds no control character.
func escapeArg(a any) any {
	switch v := a.(type) {
	case nil:
		return a
	case Styled:
		return string(v)
	case error:
		return Escape(v.Error())
	case []string:
		out := make([]string, len(v))
		for i, s := range v {
			out[i] = Escape(s)
		}
		return out
	}
	if rv := reflect.ValueOf(a); rv.Kind() == reflect.String {
		return Escape(rv.String())
	}
	return a
}

func needsJSONEscape(r rune) bool {
	return r == 0x7f || r >= 0x80 && r < 0xa0 || r > 0x7f && unicode.Is(unicode.Cf, r)
}
