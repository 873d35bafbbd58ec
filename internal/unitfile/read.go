package unitfile

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Assignment is one Key=value of a unit file as systemd reads it.
type Assignment struct {
	Section, Key, Value string
	Line                int // the physical line it starts on
	// Continued is set when the assignment was joined from several
	// physical lines (a line ending in a backslash).
	Continued bool
}

// Parse reads a unit file the way systemd 252's config_parse does:
//
//   - a physical line longer than MaxLine fails the whole file;
//   - a line whose first non-blank character is # or ; is a comment, even
//     inside a continuation, and a backslash at its end continues nothing;
//   - a line ending in an odd number of backslashes continues on the next
//     line: the backslash becomes a space and the lines are joined;
//   - the joined line is stripped of white space; [Name] starts a section;
//     anything else is Key=value, split at the first =, both sides
//     stripped.
//
// Where systemd would warn and go on (a line without =, an assignment
// before any section, invalid UTF-8), Parse fails: sitectl never writes
// such lines. So does a carriage return or a NUL, which systemd takes as a
// line end.
func Parse(text string) ([]Assignment, error) {
	section := ""
	var cont strings.Builder
	contLine, continued := 0, false
	lines := strings.Split(text, "\n")
	if strings.HasSuffix(text, "\n") {
		lines = lines[:len(lines)-1]
	}
	// The generator reads back every unit it writes: at 10,000 sites
	// reading them back was a fifth of its time; allocate once.
	out := make([]Assignment, 0, len(lines))
	for i, line := range lines {
		n := i + 1
		if len(line) > MaxLine {
			return nil, fmt.Errorf("line %d is %d bytes long; systemd reads at most %d per line and would not load the unit", n, len(line), MaxLine)
		}
		if k := strings.IndexAny(line, "\r\x00"); k >= 0 {
			return nil, fmt.Errorf("line %d has a carriage return or NUL at byte %d, which systemd takes as a line end", n, k+1)
		}
		if t := strings.TrimLeft(line, whitespace); t != "" && (t[0] == '#' || t[0] == ';') {
			continue
		}
		if !continued {
			contLine = n
			if !endsEscaped(line) { // the common case: a line of its own
				a, ok, sec, err := parseLine(strings.Trim(line, whitespace), section, n)
				if err != nil {
					return nil, err
				}
				section = sec
				if ok {
					out = append(out, a)
				}
				continue
			}
		}
		cont.WriteString(line)
		if endsEscaped(cont.String()) {
			s := cont.String()
			cont.Reset()
			cont.WriteString(s[:len(s)-1] + " ")
			continued = true
			if cont.Len() > MaxLine {
				return nil, fmt.Errorf("line %d: the continued line is longer than %d bytes", n, MaxLine)
			}
			continue
		}
		logical := strings.Trim(cont.String(), whitespace)
		wasContinued := continued
		cont.Reset()
		continued = false
		a, ok, sec, err := parseLine(logical, section, contLine)
		if err != nil {
			return nil, err
		}
		section = sec
		if ok {
			a.Continued = wasContinued
			out = append(out, a)
		}
	}
	if continued {
		return nil, fmt.Errorf("line %d: the file ends inside a continued line", contLine)
	}
	return out, nil
}

// endsEscaped reports whether s ends in a backslash that escapes nothing
// (an odd number of them), as systemd's continuation test does.
func endsEscaped(s string) bool {
	escaped := false
	for i := 0; i < len(s); i++ {
		if escaped {
			escaped = false
		} else if s[i] == '\\' {
			escaped = true
		}
	}
	return escaped
}

// parseLine reads one logical line: an assignment (ok), a section header
// (the new section) or nothing.
func parseLine(l, section string, n int) (a Assignment, ok bool, sec string, err error) {
	switch {
	case l == "":
		return a, false, section, nil
	case !utf8.ValidString(l):
		return a, false, section, fmt.Errorf("line %d is not valid UTF-8: systemd ignores it", n)
	case l[0] == '[':
		if !strings.HasSuffix(l, "]") {
			return a, false, section, fmt.Errorf("line %d: invalid section header %q", n, l)
		}
		return a, false, l[1 : len(l)-1], nil
	case section == "":
		return a, false, section, fmt.Errorf("line %d: an assignment outside of any section", n)
	}
	k, v, found := strings.Cut(l, "=")
	if !found || strings.Trim(k, whitespace) == "" {
		return a, false, section, fmt.Errorf("line %d: %q is not Key=value", n, l)
	}
	return Assignment{Section: section, Key: strings.Trim(k, whitespace), Value: strings.Trim(v, whitespace), Line: n}, true, section, nil
}
