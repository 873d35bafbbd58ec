package units

import (
	"fmt"
	"slices"
	"strings"

	"github.com/sitectl/sitectl/internal/unitfile"
)

// file is a unit file being built: sections in order, keys in order,
// repeated keys allowed (as systemd allows them). Every value goes in
// through a setter for its kind, which escapes it with package unitfile
// and remembers what it means, so that verify can read the file back as
// systemd does and compare.
type file struct {
	header   []string
	sections []*section
}

type section struct {
	name    string
	entries []entry
}

// kind is how systemd reads a value.
type kind int

const (
	kindText    kind = iota // plain: specifiers expanded, white space stripped
	kindList                // names or paths separated by spaces
	kindCommand             // an Exec*= command line
	kindEnv                 // one Environment= assignment
)

type entry struct {
	key    string
	raw    string   // as written
	kind   kind     // how systemd reads it
	prefix string   // commands: the prefix characters (+, -)
	val    string   // texts and assignments: what systemd must read (the text, NAME=value)
	want   []string // lists and commands: what systemd must read (the items, argv)
	// lead: a command's first words are a fixed script (script), read
	// back once by a test instead of at every generation.
	lead *scriptLead
}

// meant is what systemd must read: the text, the list, argv, NAME=value.
func (e entry) meant() []string {
	if e.kind == kindText || e.kind == kindEnv {
		return []string{e.val}
	}
	return e.want
}

func (f *file) section(name string) *section {
	s := &section{name: name}
	f.sections = append(f.sections, s)
	return s
}

// text sets Key=value for a plain value.
func (s *section) text(key, value string) {
	s.entries = append(s.entries, entry{key: key, raw: unitfile.Text(value), kind: kindText, val: value})
}

// textIf sets Key=value unless value is empty.
func (s *section) textIf(key, value string) {
	if value != "" {
		s.text(key, value)
	}
}

// list sets Key= to items separated by spaces.
func (s *section) list(key string, items ...string) {
	escaped := make([]string, len(items))
	for i, it := range items {
		escaped[i] = unitfile.Specifiers(it)
	}
	s.entries = append(s.entries, entry{key: key, raw: strings.Join(escaped, " "), kind: kindList, want: items})
}

// command sets an Exec*= key; prefix is systemd's prefix characters.
func (s *section) command(key, prefix string, argv []string) {
	s.entries = append(s.entries, entry{key: key, raw: prefix + unitfile.Command(argv), kind: kindCommand, prefix: prefix, want: argv})
}

// scriptLead is the fixed first words of a command line, such as a shell
// and its script, rendered once: TestScriptLeadsReadBack reads each back.
type scriptLead struct {
	argv []string
	raw  string
}

func newScriptLead(argv ...string) *scriptLead {
	return &scriptLead{argv: argv, raw: unitfile.Command(argv)}
}

// script sets an Exec*= key to lead's words followed by args, which must
// be plain for the file to be (see entry.plain).
func (s *section) script(key, prefix string, lead *scriptLead, args ...string) {
	want := append(slices.Clip(lead.argv), args...)
	s.entries = append(s.entries, entry{key: key, raw: prefix + lead.raw + " " + unitfile.Command(args), kind: kindCommand, prefix: prefix, want: want, lead: lead})
}

// env adds one Environment= assignment.
func (s *section) env(name, value string) {
	s.entries = append(s.entries, entry{key: "Environment", raw: unitfile.Env(name, value), kind: kindEnv, val: name + "=" + value})
}

func (f *file) String() string {
	var b strings.Builder
	n := 0
	for _, h := range f.header {
		n += len(h) + 3
	}
	for _, s := range f.sections {
		n += len(s.name) + 4
		for _, e := range s.entries {
			n += len(e.key) + len(e.raw) + 2
		}
	}
	b.Grow(n)
	for _, h := range f.header {
		// A comment ends at a line end: keep it to one line whatever the
		// file name holds.
		b.WriteString("# ")
		if !all(h, isPrintableASCII) {
			h = strings.Map(func(r rune) rune {
				if r < 0x20 || r == 0x7f {
					return '?'
				}
				return r
			}, h)
		}
		b.WriteString(h)
		b.WriteByte('\n')
	}
	for i, s := range f.sections {
		if i > 0 || len(f.header) > 0 {
			b.WriteString("\n")
		}
		b.WriteByte('[')
		b.WriteString(s.name)
		b.WriteString("]\n")
		for _, e := range s.entries {
			b.WriteString(e.key)
			b.WriteByte('=')
			b.WriteString(e.raw)
			b.WriteByte('\n')
		}
	}
	return b.String()
}

// verify reads text (f.String()) back as systemd 252 would and checks that
// it holds exactly the assignments f wrote, in order, each read as meant:
// nothing joined, split, stripped, expanded or substituted, and every line
// within systemd's limit.
func (f *file) verify(text string) error {
	got, err := unitfile.Parse(text)
	if err != nil {
		return err
	}
	i := 0
	for _, s := range f.sections {
		for _, e := range s.entries {
			if i >= len(got) {
				return fmt.Errorf("[%s] %s= is missing when the file is read back", s.name, e.key)
			}
			a := got[i]
			i++
			if a.Section != s.name || a.Key != e.key || a.Continued {
				return fmt.Errorf("line %d: [%s] %s= is read back as [%s] %s= (continued: %v)", a.Line, s.name, e.key, a.Section, a.Key, a.Continued)
			}
			if err := e.check(a.Value); err != nil {
				return fmt.Errorf("line %d: %s=: %w", a.Line, e.key, err)
			}
		}
	}
	if i != len(got) {
		return fmt.Errorf("line %d: %s= was never written: a value spilled into a line of its own", got[i].Line, got[i].Key)
	}
	return nil
}

// check decodes a value as systemd reads it and compares it with what was
// meant.
func (e entry) check(v string) error {
	var got []string
	prefix := ""
	var err error
	switch e.kind {
	case kindText:
		var t string
		t, err = unitfile.DecodeText(v)
		got = []string{t}
	case kindList:
		got, err = unitfile.DecodeList(v)
	case kindCommand:
		prefix, got, err = unitfile.DecodeCommand(v)
	case kindEnv:
		got, err = unitfile.DecodeEnv(v)
	}
	if err != nil {
		return err
	}
	if want := e.meant(); prefix != e.prefix || !slices.Equal(got, want) {
		return fmt.Errorf("systemd would read %q, not %q", got, want)
	}
	return nil
}
