// How sitectl writes for people: glyphs that fall back to
// ASCII where the locale is not UTF-8, colour only on a terminal and never
// with NO_COLOR, times as systemctl prints them ("Sat 2026-11-21 06:10:02
// UTC; 3min ago"), and every stored or foreign string made safe to print
// (Escape, in term.go).

package term

import "strings"

// Style says how output may look: with UTF-8 glyphs, with colour.
type Style struct {
	UTF8  bool // ● and →; ASCII (* and ->) otherwise
	Color bool // ANSI colours
}

// Plain is ASCII without colour, the safe choice for tests and pipes.
var Plain = Style{}

// StyleFor decides the style from the environment, as systemd does: UTF-8
// unless the locale (the first of LC_ALL, LC_CTYPE, LANG that is set) names
// another character set (C, POSIX, en_US.ISO-8859-1, ...); no locale at all
// counts as UTF-8. Colour only when tty (the output is a terminal), NO_COLOR
// is unset or empty (no-color.org), and TERM is not "dumb".
func StyleFor(getenv func(string) string, tty bool) Style {
	return Style{UTF8: utf8Locale(getenv), Color: tty && getenv("NO_COLOR") == "" && getenv("TERM") != "dumb"}
}

func utf8Locale(getenv func(string) string) bool {
	for _, v := range []string{"LC_ALL", "LC_CTYPE", "LANG"} {
		loc := getenv(v)
		if loc == "" {
			continue
		}
		_, codeset, _ := strings.Cut(loc, ".")
		codeset, _, _ = strings.Cut(codeset, "@")
		codeset = strings.ToLower(strings.ReplaceAll(codeset, "-", ""))
		return codeset == "utf8"
	}
	return true
}

// Glyphs sitectl prints, with their ASCII stand-ins (systemd's).
const (
	glyphActive   = "●"
	glyphInactive = "○"
	glyphFailed   = "×"
	glyphReload   = "↻"
	glyphArrow    = "→"
)

// Arrow is → or ->.
func (s Style) Arrow() string {
	if s.UTF8 {
		return glyphArrow
	}
	return "->"
}

// Dot is the glyph systemctl status puts before a unit in the given active
// state (active, reloading, inactive, failed, activating, deactivating),
// coloured as systemctl colours it.
func (s Style) Dot(activeState string) string {
	color := ""
	switch activeState {
	case "active", "reloading":
		color = green
	case "failed":
		color = red
	}
	return s.paint(color, s.Glyph(activeState))
}

// Glyph is Dot without colour.
func (s Style) Glyph(activeState string) string {
	glyph, ascii := glyphActive, "*"
	switch activeState {
	case "reloading":
		glyph = glyphReload
	case "failed":
		glyph, ascii = glyphFailed, "x"
	case "inactive", "maintenance", "":
		glyph = glyphInactive
	}
	if !s.UTF8 {
		return ascii
	}
	return glyph
}

// ANSI colours.
const (
	green = "\x1b[0;1;32m"
	red   = "\x1b[0;1;31m"
	bold  = "\x1b[0;1;39m"
	reset = "\x1b[0m"
)

func (s Style) paint(color, text string) string {
	if !s.Color || color == "" {
		return text
	}
	return color + text + reset
}

// Red marks trouble (a failed unit, a stopped socket) on a terminal.
func (s Style) Red(text string) string { return s.paint(red, text) }

// Green marks what is fine on a terminal.
func (s Style) Green(text string) string { return s.paint(green, text) }

// Bold highlights on a terminal.
func (s Style) Bold(text string) string { return s.paint(bold, text) }
