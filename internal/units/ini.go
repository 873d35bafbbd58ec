package units

import (
	"strings"
)

// file is a unit file being built: sections in order, keys in order,
// repeated keys allowed (as systemd allows them).
type file struct {
	header   []string
	sections []*section
}

type section struct {
	name  string
	lines []string
}

func (f *file) section(name string) *section {
	s := &section{name: name}
	f.sections = append(f.sections, s)
	return s
}

// set appends Key=value. Values must already be escaped for their key.
func (s *section) set(key, value string) { s.lines = append(s.lines, key+"="+value) }

// setIf appends Key=value unless value is empty.
func (s *section) setIf(key, value string) {
	if value != "" {
		s.set(key, value)
	}
}

func (f *file) String() string {
	var b strings.Builder
	for _, h := range f.header {
		b.WriteString("# " + h + "\n")
	}
	for i, s := range f.sections {
		if i > 0 || len(f.header) > 0 {
			b.WriteString("\n")
		}
		b.WriteString("[" + s.name + "]\n")
		for _, l := range s.lines {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

// escapeSpecifiers doubles % so systemd does not expand specifiers.
func escapeSpecifiers(s string) string { return strings.ReplaceAll(s, "%", "%%") }

// quote wraps s in double quotes with C-style escapes, as systemd's word
// splitting expects.
func quote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"', '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case '\t':
			b.WriteString(`\t`)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// safeWord is a command-line word that needs no quoting in an Exec line.
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

// commandLine renders argv for Exec*= keys: each word quoted when needed,
// % and $ escaped so that systemd passes them through literally.
func commandLine(argv []string) string {
	words := make([]string, len(argv))
	for i, a := range argv {
		a = strings.ReplaceAll(escapeSpecifiers(a), "$", "$$")
		if !safeWord(a) {
			a = quote(a)
		}
		words[i] = a
	}
	return strings.Join(words, " ")
}

// environment renders one Environment= assignment.
func environment(name, value string) string {
	return quote(escapeSpecifiers(name + "=" + value))
}
