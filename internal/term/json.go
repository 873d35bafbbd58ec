package term

import (
	"unicode/utf8"
)

// IndentJSON appends to dst the JSON document src, as json.Marshal wrote
// it, indented as json.MarshalIndent(v, prefix, indent) indents it, and
// made safe to print: encoding/json already escapes C0 controls, but writes
// DEL, C1 controls and format characters (a right-to-left override) as they
// are. They can occur only inside strings, where a \uXXXX escape (a pair of
// them above U+FFFF) means the same character, so the result is the same
// JSON value.
//
// It is one pass over src, where json.MarshalIndent and a second scan for
// the characters to escape were two: list --json of 10,000 sites spent
// most of its encoding time in them. Whitespace between tokens is dropped
// as json.Indent drops it, and so is whitespace after the document (which
// json.Indent keeps). src must be valid JSON; json.Marshal's output
// always is.
func IndentJSON(dst, src []byte, prefix, indent string) []byte {
	needIndent := false // a { or [ was written: its newline waits, so that empty ones print as {} and []
	depth := 0
	for i := 0; i < len(src); {
		c := src[i]
		switch c {
		case ' ', '\t', '\n', '\r':
			i++
			continue
		}
		if needIndent && c != '}' && c != ']' {
			needIndent = false
			depth++
			dst = appendNewline(dst, prefix, indent, depth)
		}
		if c == '"' {
			var n int
			dst, n = appendJSONString(dst, src[i:])
			i += n
			continue
		}
		i++
		switch c {
		case '{', '[':
			needIndent = true
			dst = append(dst, c)
		case ',':
			dst = append(dst, c)
			dst = appendNewline(dst, prefix, indent, depth)
		case ':':
			dst = append(dst, c, ' ')
		case '}', ']':
			if needIndent {
				needIndent = false
			} else {
				depth--
				dst = appendNewline(dst, prefix, indent, depth)
			}
			dst = append(dst, c)
		default:
			dst = append(dst, c)
		}
	}
	return dst
}

func appendNewline(dst []byte, prefix, indent string, depth int) []byte {
	dst = append(dst, '\n')
	dst = append(dst, prefix...)
	for range depth {
		dst = append(dst, indent...)
	}
	return dst
}

// appendJSONString appends the string that src starts with (at its
// opening quote) with the characters IndentJSON escapes escaped, and says
// how many bytes of src it took. An unterminated string takes the rest.
func appendJSONString(dst, src []byte) ([]byte, int) {
	dst = append(dst, '"')
	i := 1
	for i < len(src) {
		// The run of bytes that are copied as they are: ASCII that neither
		// ends the string nor starts an escape.
		j := i
		for j < len(src) {
			c := src[j]
			if c == '"' || c == '\\' || c >= 0x7f {
				break
			}
			j++
		}
		dst = append(dst, src[i:j]...)
		i = j
		if i >= len(src) {
			break
		}
		switch c := src[i]; {
		case c == '"':
			return append(dst, '"'), i + 1
		case c == '\\':
			// An escape: its next byte is copied with it, so that \" does
			// not end the string; the hex digits of \uXXXX are plain.
			end := min(i+2, len(src))
			dst = append(dst, src[i:end]...)
			i = end
		default:
			r, size := utf8.DecodeRune(src[i:])
			if needsJSONEscape(r) {
				dst = appendUEscape(dst, r)
			} else {
				dst = append(dst, src[i:i+size]...)
			}
			i += size
		}
	}
	return dst, len(src)
}

// appendUEscape appends r as JSON's \uXXXX, as a UTF-16 surrogate pair
// above U+FFFF (where \u with five digits would be another character
// followed by a digit).
func appendUEscape(dst []byte, r rune) []byte {
	if r > 0xffff {
		r -= 0x10000
		dst = appendU16(dst, 0xd800+(r>>10)&0x3ff)
		return appendU16(dst, 0xdc00+r&0x3ff)
	}
	return appendU16(dst, r)
}

func appendU16(dst []byte, r rune) []byte {
	const hex = "0123456789abcdef"
	return append(dst, '\\', 'u', hex[r>>12&0xf], hex[r>>8&0xf], hex[r>>4&0xf], hex[r&0xf])
}
