package modes

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/sitectl/sitectl/internal/site"
)

// The mode file is an environment file in the syntax of systemd's
// EnvironmentFile=, which the site's service reads before every command it
// spawns; for an overlap site, the root side of ExecReload= reads it and sends
// it to the launcher, which cannot read the state directory.
// Both must see the same variables with the same values, so this file owns
// the format: marshalEnv is its only writer, ParseEnv its only reader.
//
// The writer puts every value in double quotes and escapes the four
// characters systemd unescapes there, \ " ` and $ (its SHELL_NEED_ESCAPE);
// systemd expands neither $ nor % in an environment file. The reader is
// systemd 252's parser (parse_env_file_internal in src/basic/env-file.c)
// state for state, so a file edited by hand reads as systemd reads it too.

// MaxEnvFile bounds a mode file wherever one is read (ReadEnv, the
// launcher's control socket). A mode file is a few lines, but it must hold
// whatever mode a valid site file has: every byte of its values comes
// from the site file (at most site.MaxFileSize) and may take a backslash
// before it (" \ ` $), and every variable's name is written twice (its
// assignment and VarModeVars) with a few bytes of syntax that its own
// assignment in the site file has too. So a mode file is at most twice
// as long as its site file, with the comment line and sitectl's own
// variables besides; a bound of the site file's size would refuse, after
// sitectl wrote it, the mode file of a site it accepted. EnvFile refuses
// to write a longer one.
const MaxEnvFile = 2*site.MaxFileSize + 64<<10

// errEnvValue is a value the mode file cannot carry exactly.
var errEnvValue = errors.New("an environment file cannot carry it")

// checkEnvVar tells whether a variable can go through the mode file and
// come out the same: a valid name, and a value that is UTF-8 (systemd
// refuses a file that is not) without NUL (C strings end there) or line
// breaks (the site file forbids them, and only they were never tried
// against systemd).
func checkEnvVar(v site.EnvVar) error {
	if !site.ValidEnvName(v.Name) {
		return fmt.Errorf("%q is not a valid variable name", v.Name)
	}
	if !utf8.ValidString(v.Value) || strings.ContainsAny(v.Value, "\x00\n\r") {
		return fmt.Errorf("the value of %s: %w", v.Name, errEnvValue)
	}
	return nil
}

// marshalEnv writes vars as an environment file, after a comment line.
func marshalEnv(comment string, vars []site.EnvVar) ([]byte, error) {
	var b strings.Builder
	b.WriteString("# " + strings.ReplaceAll(comment, "\n", " ") + "\n")
	for _, v := range vars {
		if err := checkEnvVar(v); err != nil {
			return nil, err
		}
		b.WriteString(v.Name + `="`)
		for _, r := range v.Value {
			if strings.ContainsRune("\"\\`$", r) {
				b.WriteByte('\\')
			}
			b.WriteRune(r)
		}
		b.WriteString("\"\n")
	}
	return []byte(b.String()), nil
}

// EncodeEnv writes vars in the mode file's syntax, for a reader that gets
// them another way than from the file (the launcher, over its control
// socket); ParseEnv reads them back.
func EncodeEnv(vars []site.EnvVar) ([]byte, error) {
	return marshalEnv("A mode environment, sent by sitectl.", vars)
}

// parser states, named as in systemd's env-file.c.
type envState int

const (
	preKey envState = iota
	inKey
	preValue
	inValue
	valueEscape
	singleQuoteValue
	doubleQuoteValue
	doubleQuoteValueEscape
	inComment
	commentEscape
)

// envParser is systemd's environment-file parser: one byte at a time.
type envParser struct {
	state         envState
	key, value    []byte
	keyTrailing   int // where trailing whitespace of the key starts; -1 if none
	valueTrailing int // likewise for an unquoted value
	vars          []site.EnvVar
	index         map[string]int
	err           error
}

const (
	envNewline    = "\n\r"
	envWhitespace = " \t\n\r"
	envComments   = "#;"
	envNeedEscape = "\"\\`$"
)

// ParseEnv reads an environment file as systemd's EnvironmentFile= does:
// KEY=VALUE assignments, values unquoted (backslash escapes the next
// character, trailing space dropped), in single quotes (literal), in double
// quotes (\ " ` $ escaped, any other backslash kept), or pieces of these
// one after another; # and ; start comments; a backslash before a newline
// continues the line. A later assignment replaces an earlier one in place;
// assignments with invalid names are dropped, as systemd drops them. A file
// with an assignment that is not UTF-8, or with a NUL byte, is an error, as
// it is for systemd.
func ParseEnv(data []byte) ([]site.EnvVar, error) {
	p := &envParser{keyTrailing: -1, valueTrailing: -1, index: map[string]int{}}
	if bytes.IndexByte(data, 0) >= 0 {
		return nil, errors.New("it contains a NUL byte")
	}
	for _, c := range data {
		p.step(c)
	}
	switch p.state {
	case preValue, inValue, valueEscape, singleQuoteValue, doubleQuoteValue, doubleQuoteValueEscape:
		p.push(p.state == inValue)
	}
	return p.vars, p.err
}

func (p *envParser) step(c byte) {
	in := func(set string) bool { return strings.IndexByte(set, c) >= 0 }
	switch p.state {
	case preKey:
		p.preKey(c, in)
	case inKey:
		p.inKey(c, in)
	case preValue:
		p.preValue(c, in)
	case inValue:
		p.inValue(c, in)
	case valueEscape:
		p.state = inValue
		if !in(envNewline) { // an escaped newline is eaten entirely
			p.value = append(p.value, c)
		}
	case singleQuoteValue:
		if c == '\'' {
			p.state = preValue
		} else {
			p.value = append(p.value, c)
		}
	case doubleQuoteValue:
		switch c {
		case '"':
			p.state = preValue
		case '\\':
			p.state = doubleQuoteValueEscape
		default:
			p.value = append(p.value, c)
		}
	case doubleQuoteValueEscape:
		p.state = doubleQuoteValue
		switch {
		case in(envNeedEscape):
			p.value = append(p.value, c)
		case c != '\n': // other characters keep their backslash, as in a shell
			p.value = append(p.value, '\\', c)
		}
	case inComment:
		if c == '\\' {
			p.state = commentEscape
		} else if in(envNewline) {
			p.state = preKey
		}
	case commentEscape:
		p.state = inComment
	}
}

func (p *envParser) preKey(c byte, in func(string) bool) {
	switch {
	case in(envComments):
		p.state = inComment
	case !in(envWhitespace):
		p.state, p.keyTrailing = inKey, -1
		p.key = append(p.key[:0], c)
	}
}

func (p *envParser) inKey(c byte, in func(string) bool) {
	switch {
	case in(envNewline): // a line without = assigns nothing
		p.state, p.key = preKey, p.key[:0]
	case c == '=':
		p.state, p.valueTrailing = preValue, -1
	default:
		p.keyTrailing = trailing(p.keyTrailing, len(p.key), in(envWhitespace))
		p.key = append(p.key, c)
	}
}

func (p *envParser) preValue(c byte, in func(string) bool) {
	switch {
	case in(envNewline):
		p.push(false)
		p.state = preKey
	case c == '\'':
		p.state = singleQuoteValue
	case c == '"':
		p.state = doubleQuoteValue
	case c == '\\':
		p.state = valueEscape
	case !in(envWhitespace):
		p.state = inValue
		p.value = append(p.value, c)
	}
}

func (p *envParser) inValue(c byte, in func(string) bool) {
	switch {
	case in(envNewline):
		p.push(true)
		p.state = preKey
	case c == '\\':
		p.state, p.valueTrailing = valueEscape, -1
	default:
		p.valueTrailing = trailing(p.valueTrailing, len(p.value), in(envWhitespace))
		p.value = append(p.value, c)
	}
}

// trailing keeps track of where a run of whitespace at the end started.
func trailing(start, n int, space bool) int {
	switch {
	case !space:
		return -1
	case start < 0:
		return n
	}
	return start
}

// push ends an assignment; an unquoted value loses its trailing space.
func (p *envParser) push(trimValue bool) {
	key, value := p.key, p.value
	if p.keyTrailing >= 0 {
		key = key[:p.keyTrailing]
	}
	if trimValue && p.valueTrailing >= 0 {
		value = value[:p.valueTrailing]
	}
	p.key, p.value = p.key[:0], nil
	if !utf8.Valid(key) || !utf8.Valid(value) {
		if p.err == nil {
			p.err = fmt.Errorf("the assignment of %q is not UTF-8", key)
		}
		return
	}
	name := string(key)
	if !site.ValidEnvName(name) {
		return
	}
	if i, ok := p.index[name]; ok {
		p.vars[i].Value = string(value)
		return
	}
	p.index[name] = len(p.vars)
	p.vars = append(p.vars, site.EnvVar{Name: name, Value: string(value)})
}
