package unitfile

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"
)

// DecodeText is what systemd makes of a plain value (Description=,
// SourcePath=, paths): specifiers expanded. %% is a %, and any other
// specifier is an error here, since sitectl never means one.
func DecodeText(v string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		if v[i] != '%' {
			b.WriteByte(v[i])
			continue
		}
		if i+1 < len(v) && v[i+1] == '%' {
			b.WriteByte('%')
			i++
			continue
		}
		if i+1 == len(v) {
			return "", fmt.Errorf("a lone %% at the end of %q", v)
		}
		return "", fmt.Errorf("%%%c in %q is a specifier systemd would expand", v[i+1], v)
	}
	return b.String(), nil
}

// DecodeList is what systemd makes of a list of names or paths (Requires=,
// Sockets=, ReadWritePaths=): words separated by white space, each with
// its specifiers expanded.
func DecodeList(v string) ([]string, error) {
	var out []string
	for _, w := range strings.Fields(v) {
		if strings.ContainsAny(w, `"'\`) {
			return nil, fmt.Errorf("list item %q has quotes or backslashes", w)
		}
		d, err := DecodeText(w)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, nil
}

// DecodeCommand is what an Exec*= line runs, as systemd 252's
// config_parse_exec and the substitution at exec time make of it: the
// prefix characters of the first word (-, @, :, +, !), then the words,
// unquoted and C-unescaped, with specifiers expanded, and $$ turned into
// $. A command separator (an unquoted ;), a variable that would be
// substituted ($NAME as a word, ${NAME} anywhere) or a bad escape is an
// error.
func DecodeCommand(v string) (prefix string, argv []string, err error) {
	p := strings.TrimLeft(v, whitespace)
	for p != "" {
		if p[0] == ';' && (len(p) == 1 || strings.ContainsRune(whitespace, rune(p[1]))) {
			return "", nil, fmt.Errorf("an unquoted ; separates commands in %q", v)
		}
		var word string
		if strings.HasPrefix(p, `\;`) && (len(p) == 2 || strings.ContainsRune(whitespace, rune(p[2]))) {
			word, p = ";", p[2:]
		} else if word, p, err = nextWord(p); err != nil {
			return "", nil, err
		}
		if len(argv) == 0 {
			rest := strings.TrimLeft(word, "-@:+!")
			prefix, word = word[:len(word)-len(rest)], rest
		}
		if word, err = DecodeText(word); err != nil {
			return "", nil, err
		}
		if word, err = dollars(word); err != nil {
			return "", nil, err
		}
		argv = append(argv, word)
		p = strings.TrimLeft(p, whitespace)
	}
	if len(argv) == 0 {
		return "", nil, fmt.Errorf("empty command line")
	}
	return prefix, argv, nil
}

// The expressions are compiled on first use, by the few commands that
// read unit files.
var wholeVar = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^\$[A-Za-z_][A-Za-z0-9_]*$`) })

// dollars applies what systemd does to each word at exec time: a word that
// is $NAME becomes the variable's words, ${NAME} is substituted anywhere,
// and $$ is a $. Other $ stay.
func dollars(w string) (string, error) {
	if wholeVar().MatchString(w) {
		return "", fmt.Errorf("the word %q would be replaced by a variable", w)
	}
	var b strings.Builder
	for i := 0; i < len(w); i++ {
		if w[i] != '$' || i+1 == len(w) {
			b.WriteByte(w[i])
			continue
		}
		switch w[i+1] {
		case '$':
			b.WriteByte('$')
			i++
		case '{':
			return "", fmt.Errorf("${ in %q would substitute a variable", w)
		default:
			b.WriteByte('$')
		}
	}
	return b.String(), nil
}

// DecodeEnv is what an Environment= line sets: words, unquoted and
// C-unescaped, specifiers expanded, each a valid NAME=value (a name of
// letters, digits and _, not starting with a digit; a value of valid
// UTF-8). systemd ignores invalid assignments; here they are errors.
func DecodeEnv(v string) ([]string, error) {
	var out []string
	for p := strings.TrimLeft(v, whitespace); p != ""; p = strings.TrimLeft(p, whitespace) {
		var word string
		var err error
		if word, p, err = nextWord(p); err != nil {
			return nil, err
		}
		if word, err = DecodeText(word); err != nil {
			return nil, err
		}
		name, value, ok := strings.Cut(word, "=")
		if !ok || !envName().MatchString(name) || !utf8.ValidString(value) {
			return nil, fmt.Errorf("%q is not a valid environment assignment: systemd would ignore it", word)
		}
		out = append(out, word)
	}
	return out, nil
}

var envName = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`) })

// nextWord is systemd's extract_first_word with unquoting and C
// unescaping: it reads one word from p (which starts at the word) and
// returns it and what follows.
func nextWord(p string) (word, rest string, err error) {
	var b strings.Builder
	var quote byte
	i := 0
	for ; i < len(p); i++ {
		c := p[i]
		switch {
		case c == '\\':
			r, n, err := unescape(p[i+1:])
			if err != nil {
				return "", "", fmt.Errorf("in %q: %w", p, err)
			}
			b.WriteString(r)
			i += n
		case quote != 0 && c == quote:
			quote = 0
		case quote != 0:
			b.WriteByte(c)
		case c == '"' || c == '\'':
			quote = c
		case strings.IndexByte(whitespace, c) >= 0:
			return b.String(), p[i:], nil
		default:
			b.WriteByte(c)
		}
	}
	if quote != 0 {
		return "", "", fmt.Errorf("unterminated quote in %q", p)
	}
	return b.String(), p[i:], nil
}

// unescape reads the C escape at the start of s (after the backslash), as
// systemd's cunescape_one does, and returns it and how many bytes it took.
// Escapes systemd refuses, such as \x00, are errors; so are \u and \U,
// which sitectl never writes.
func unescape(s string) (string, int, error) {
	if s == "" {
		return "", 0, fmt.Errorf("a backslash at the end")
	}
	simple := map[byte]string{'a': "\a", 'b': "\b", 'f': "\f", 'n': "\n", 'r': "\r", 't': "\t", 'v': "\v",
		'\\': `\`, '"': `"`, '\'': "'", 's': " "}
	if r, ok := simple[s[0]]; ok {
		return r, 1, nil
	}
	switch {
	case s[0] == 'x' && len(s) >= 3:
		n, err := strconv.ParseUint(s[1:3], 16, 8)
		if err != nil || n == 0 {
			return "", 0, fmt.Errorf("bad escape \\%s", s[:3])
		}
		return string([]byte{byte(n)}), 3, nil
	case s[0] >= '0' && s[0] <= '7' && len(s) >= 3:
		n, err := strconv.ParseUint(s[:3], 8, 8)
		if err != nil || n == 0 {
			return "", 0, fmt.Errorf("bad escape \\%s", s[:3])
		}
		return string([]byte{byte(n)}), 3, nil
	}
	return "", 0, fmt.Errorf("escape \\%c is not one this reader knows", s[0])
}
