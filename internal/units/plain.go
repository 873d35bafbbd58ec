package units

import "github.com/sitectl/sitectl/internal/unitfile"

// The read-back of verify costs as much as rendering: at 10,000 sites it
// was a third of the generator's time (issue 16). Almost every value
// sitectl writes is plain, though (a path, a unit name, SITE=karl): made of
// characters that neither systemd's line reader nor its decoders treat
// specially, so that what systemd reads is the value as written. plain
// proves that for a whole file without reading it back; check reads back
// only a file that has any other value. FuzzPlainImpliesVerified shows
// that whatever plain accepts, verify accepts too.

// check is verify for text (f.String()), with the read-back left out when
// every line of f is plain.
func (f *file) check(text string) error {
	if f.plain() {
		return nil
	}
	return f.verify(text)
}

// plain reports whether systemd 252 reads every assignment of f exactly as
// meant, by looking at what was written rather than reading the file back:
// section names and keys of letters and digits, header lines within
// systemd's line limit, and every entry plain for its kind. false means
// only "read it back to know".
func (f *file) plain() bool {
	for _, h := range f.header {
		// "# " and h with each control character made a '?' and each
		// byte of invalid UTF-8 a U+FFFD (3 bytes): a comment, whatever
		// it holds, as long as it fits in a line.
		if 2+3*len(h) > unitfile.MaxLine {
			return false
		}
	}
	for _, s := range f.sections {
		if !alnum(s.name) {
			return false
		}
		for _, e := range s.entries {
			if !alnum(e.key) || len(e.key)+1+len(e.raw) > unitfile.MaxLine || !e.plain() {
				return false
			}
		}
	}
	return true
}

// plain reports whether the entry's raw value is what systemd reads as
// what was meant with nothing to decode: no %, $, backslash, quote (but the
// quotes around an Environment= assignment), control character or
// non-ASCII byte; no white space at either end, and single spaces only
// where they separate words of a list or a command line.
func (e entry) plain() bool {
	switch e.kind {
	case kindText:
		v := e.raw
		return v == e.val && all(v, isTextByte) &&
			(v == "" || v[0] != ' ' && v[len(v)-1] != ' ')
	case kindList:
		return len(e.want) > 0 && words(e.raw, e.want, isListByte)
	case kindCommand:
		if len(e.want) == 0 || !all(e.prefix, isPrefixByte) || len(e.raw) < len(e.prefix) || e.raw[:len(e.prefix)] != e.prefix {
			return false
		}
		raw, want := e.raw[len(e.prefix):], e.want
		if e.lead != nil {
			// A fixed script, read back by its test: the words after it
			// must be plain.
			n := len(e.lead.raw)
			if len(want) <= len(e.lead.argv) || len(raw) <= n+1 || raw[:n] != e.lead.raw || raw[n] != ' ' {
				return false
			}
			raw, want = raw[n+1:], want[len(e.lead.argv):]
		}
		// The first word must not start with a prefix character, or
		// systemd would read it as part of the prefix.
		return want[0] != "" && !isPrefixByte(want[0][0]) && words(raw, want, isCommandByte)
	case kindEnv:
		v := e.val
		if len(e.raw) != len(v)+2 || e.raw[0] != '"' || e.raw[len(e.raw)-1] != '"' || e.raw[1:len(e.raw)-1] != v {
			return false
		}
		n := 0
		for n < len(v) && v[n] != '=' {
			n++
		}
		return n > 0 && n < len(v) && (v[0] < '0' || v[0] > '9') && all(v[:n], isNameByte) && all(v, isQuotedByte)
	}
	return false
}

// words reports whether raw is the words of want, each non-empty and of
// bytes ok, separated by single spaces.
func words(raw string, want []string, ok func(byte) bool) bool {
	for i, w := range want {
		if i > 0 {
			if raw == "" || raw[0] != ' ' {
				return false
			}
			raw = raw[1:]
		}
		if w == "" || len(raw) < len(w) || raw[:len(w)] != w || !all(w, ok) {
			return false
		}
		raw = raw[len(w):]
	}
	return raw == ""
}

func all(s string, ok func(byte) bool) bool {
	for i := 0; i < len(s); i++ {
		if !ok(s[i]) {
			return false
		}
	}
	return true
}

// isPrintableASCII: a byte a comment can carry as it is.
func isPrintableASCII(c byte) bool { return c >= 0x20 && c < 0x7f }

func alnum(s string) bool { return s != "" && all(s, isAlnum) }

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// isTextByte: printable ASCII but % (a specifier) and backslash (which
// may continue a line). Space is checked at the ends separately.
func isTextByte(c byte) bool { return c >= 0x20 && c < 0x7f && c != '%' && c != '\\' }

// isListByte: isTextByte without the space that separates words and the
// quotes systemd refuses in a list.
func isListByte(c byte) bool { return isTextByte(c) && c != ' ' && c != '"' && c != '\'' }

// isCommandByte: what a command-line word may hold without quoting
// (unitfile.Command writes such a word as it is).
func isCommandByte(c byte) bool {
	switch c {
	case '/', '.', '_', '-', '+', ':', ',', '=', '@':
		return true
	}
	return isAlnum(c)
}

// isPrefixByte: systemd's prefix characters of an Exec*= command.
func isPrefixByte(c byte) bool {
	switch c {
	case '-', '@', ':', '+', '!':
		return true
	}
	return false
}

// isNameByte: a byte of an environment variable's name.
func isNameByte(c byte) bool { return isAlnum(c) || c == '_' }

// isQuotedByte: what a double-quoted word may hold without escapes.
func isQuotedByte(c byte) bool { return isTextByte(c) && c != '"' && c != '\'' }
