package cli

import (
	"fmt"
	"strings"
)

// roff writes a manual page in the man(7) macro language. It is the one
// writer of sitectl's man pages: sitectl docs renders the command help,
// sitectl.toml(5) and sitectl-generator(8) through it.
type roff struct{ b strings.Builder }

// escapeRoff makes text safe on a roff text line: backslashes are printed
// as such, every "-" is a minus sign (so options and paths can be copied
// from the rendered page), and a line cannot start a request.
func escapeRoff(s string) string {
	s = strings.ReplaceAll(s, `\`, `\e`)
	s = strings.ReplaceAll(s, "-", `\-`)
	if strings.HasPrefix(s, ".") || strings.HasPrefix(s, "'") {
		s = `\&` + s
	}
	return s
}

// quoteArg quotes a macro argument.
func quoteArg(s string) string {
	return `"` + strings.ReplaceAll(escapeRoff(s), `"`, `\(dq`) + `"`
}

func (r *roff) line(format string, a ...any) { fmt.Fprintf(&r.b, format+"\n", a...) }

// title is the .TH line: the page's name in capitals, its section, date,
// source and manual.
func (r *roff) title(name, section, date, source, manual string) {
	plain := func(s string) string { return `"` + strings.ReplaceAll(s, `\`, `\e`) + `"` }
	r.line(".TH %s %s %s %s %s", quoteArg(strings.ToUpper(name)), plain(section), plain(date), plain(source), plain(manual))
	// Ragged right and no hyphenation: paths and options stay whole.
	r.line(".ad l")
	r.line(".nh")
}

// section starts a section (.SH), e.g. "SEE ALSO".
func (r *roff) section(name string) { r.line(".SH %s", quoteArg(name)) }

// subsection starts a subsection (.SS).
func (r *roff) subsection(name string) { r.line(".SS %s", quoteArg(name)) }

// name is the NAME section that whatis and apropos read: "NAME \- WHAT".
func (r *roff) name(page, what string) {
	r.section("NAME")
	r.line("%s \\- %s", escapeRoff(page), escapeRoff(what))
}

// para is one filled paragraph.
func (r *roff) para(text string) {
	r.line(".PP")
	for _, l := range strings.Split(strings.TrimSpace(text), "\n") {
		r.line("%s", escapeRoff(strings.TrimSpace(l)))
	}
}

// pre is a block printed as it is, indented.
func (r *roff) pre(lines []string) {
	r.line(".PP")
	r.line(".RS 4")
	r.line(".nf")
	for _, l := range lines {
		r.line("%s", escapeRoff(l))
	}
	r.line(".fi")
	r.line(".RE")
}

// item is a tagged paragraph (.TP): the tag in bold on its own line, the
// text indented below it. An empty arg adds nothing after the tag.
func (r *roff) item(tag, arg, text string) {
	r.line(".TP")
	if arg == "" {
		r.line(".B %s", quoteArg(tag))
	} else {
		r.line(".BI %s %s", quoteArg(tag+" "), quoteArg(arg))
	}
	for _, l := range strings.Split(strings.TrimSpace(text), "\n") {
		r.line("%s", escapeRoff(strings.TrimSpace(l)))
	}
}

// detailItem is an item whose first line, in italics, gives details
// (a type, a default) before the text.
func (r *roff) detailItem(tag, detail, text string) {
	r.line(".TP")
	r.line(".B %s", quoteArg(tag))
	r.line(".I %s", quoteArg(detail))
	r.line(".br")
	for _, l := range strings.Split(strings.TrimSpace(text), "\n") {
		r.line("%s", escapeRoff(strings.TrimSpace(l)))
	}
}

// text renders help text: paragraphs separated by blank lines; within a
// paragraph, indented lines are printed as they are and the others filled.
func (r *roff) text(s string) {
	for _, p := range strings.Split(strings.TrimSpace(s), "\n\n") {
		var flow, pre []string
		flush := func() {
			if len(flow) > 0 {
				r.para(strings.Join(flow, "\n"))
				flow = nil
			}
			if len(pre) > 0 {
				r.pre(pre)
				pre = nil
			}
		}
		for _, l := range strings.Split(strings.Trim(p, "\n"), "\n") {
			indented := strings.HasPrefix(l, " ") || strings.HasPrefix(l, "\t")
			if indented && len(flow) > 0 || !indented && len(pre) > 0 {
				flush()
			}
			if indented {
				pre = append(pre, l)
			} else {
				flow = append(flow, l)
			}
		}
		flush()
	}
}

// seeAlso is the SEE ALSO section: references "name(section)" in bold.
func (r *roff) seeAlso(refs []string) {
	if len(refs) == 0 {
		return
	}
	r.section("SEE ALSO")
	for i, ref := range refs {
		name, sec, _ := strings.Cut(strings.TrimSuffix(ref, ")"), "(")
		sep := ","
		if i == len(refs)-1 {
			sep = ""
		}
		r.line(".BR %s %s", quoteArg(name), quoteArg("("+sec+")"+sep))
	}
}

func (r *roff) String() string { return r.b.String() }
