package unitfile

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Specifiers doubles every %, so systemd does not expand specifiers (%l is
// the host name, %n the unit name, ...).
func Specifiers(s string) string { return strings.ReplaceAll(s, "%", "%%") }

// TextProblem says why s cannot be written as a plain value (Description=,
// SourcePath=, paths): such values are not quoted or unescaped by systemd,
// so nothing can protect what systemd strips or joins. Empty if s is fine.
func TextProblem(s string) string {
	switch {
	case !utf8.ValidString(s):
		return "is not valid UTF-8"
	case strings.ContainsFunc(s, isControl):
		return "contains a control character (a line break, say)"
	case strings.TrimLeft(s, whitespace) != s:
		return "starts with white space, which systemd strips"
	case strings.TrimRight(s, whitespace) != s:
		return "ends in white space, which systemd strips"
	case endsEscaped(s):
		return `ends in a backslash, which systemd reads as "continued on the next line"`
	}
	return ""
}

// Text is s as a plain value. Check TextProblem first: a value with a
// problem cannot be written faithfully, and Text writes it anyway.
func Text(s string) string { return Specifiers(s) }

// isControl is a character that a unit file cannot carry raw: line ends,
// NUL, the other C0 controls and DEL. Tab is white space.
func isControl(r rune) bool { return (r < 0x20 && r != '\t') || r == 0x7f }

const whitespace = " \t\n\r"

// Quote wraps s (valid UTF-8) in double quotes with C escapes, as systemd's word
// splitting (extract_first_word with unquoting and C unescaping) reads it:
// quotes and backslashes are escaped, tab is \t, every other control
// character \xNN. NUL cannot be written at all.
func Quote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\t':
			b.WriteString(`\t`)
		case isControl(r):
			fmt.Fprintf(&b, `\x%02x`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// safeWord is a command-line word that needs no quoting.
func safeWord(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("/._-+:,=@", r)) {
			return false
		}
	}
	return true
}

// Command renders argv for Exec*= keys: each word quoted when needed, % and
// $ doubled so that systemd passes them through literally.
func Command(argv []string) string {
	words := make([]string, len(argv))
	for i, a := range argv {
		a = strings.ReplaceAll(Specifiers(a), "$", "$$")
		if !safeWord(a) {
			a = Quote(a)
		}
		words[i] = a
	}
	return strings.Join(words, " ")
}

// Env renders one Environment= assignment.
func Env(name, value string) string { return Quote(Specifiers(name + "=" + value)) }
