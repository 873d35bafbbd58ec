package term

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

// referenceJSON is what IndentJSON replaces: json.Indent, then a second
// pass that escapes what needsJSONEscape says rune by rune.
func referenceJSON(t testing.TB, src []byte, prefix, indent string) []byte {
	var ind bytes.Buffer
	if err := json.Indent(&ind, src, prefix, indent); err != nil {
		t.Fatalf("json.Indent: %v", err)
	}
	var b []byte
	data := ind.Bytes()
	for len(data) > 0 {
		r, size := utf8.DecodeRune(data)
		if needsJSONEscape(r) {
			for _, u := range utf16Of(r) {
				b = append(b, []byte(`\u`+strings.ToLower(hex4(u)))...)
			}
		} else {
			b = append(b, data[:size]...)
		}
		data = data[size:]
	}
	return b
}

func utf16Of(r rune) []rune {
	if r <= 0xffff {
		return []rune{r}
	}
	r -= 0x10000
	return []rune{0xd800 + r>>10, 0xdc00 + r&0x3ff}
}

func hex4(r rune) string {
	const digits = "0123456789abcdef"
	return string([]byte{digits[r>>12&0xf], digits[r>>8&0xf], digits[r>>4&0xf], digits[r&0xf]})
}

type jsonSample struct {
	Name   string            `json:"name"`
	Empty  []string          `json:"empty"`
	None   map[string]string `json:"none"`
	Nil    *int              `json:"nil"`
	List   []string          `json:"list"`
	Nested []map[string]any  `json:"nested"`
	N      float64           `json:"n"`
	OK     bool              `json:"ok"`
}

// TestIndentJSON: IndentJSON prints what json.MarshalIndent prints, with
// DEL, C1 controls and format characters inside strings escaped, for
// empty and nested objects and arrays, escapes encoding/json wrote
// itself, and text with every kind of character; and the value reads back
// the same.
func TestIndentJSON(t *testing.T) {
	texts := []string{
		"", "plain", `quote " and \ backslash`, "del\x7f c1\u009b rtl\u202e nl\n ok ü",
		"tag\U000E0001 above the BMP", "music \U0001D173 format", "emoji 😀 stays", "<b>&</b>", "\u2028\u2029", "bad \xff utf-8",
	}
	for _, text := range texts {
		v := jsonSample{Name: text, Empty: []string{}, List: []string{text, "b"}, N: 1.5,
			Nested: []map[string]any{{}, {"k": text, "x": []any{}, "y": map[string]any{"z": nil}}}}
		src, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		for _, pi := range [][2]string{{"", "  "}, {"  ", "  "}, {" ", "\t"}} {
			got := IndentJSON(nil, src, pi[0], pi[1])
			if want := referenceJSON(t, src, pi[0], pi[1]); !bytes.Equal(got, want) {
				t.Errorf("%q %q:\ngot  %s\nwant %s", text, pi, got, want)
			}
			if bytes.ContainsAny(got, "\x7f\u009b\u202e\U000E0001\U0001D173") {
				t.Errorf("%q: kept a character a terminal acts on: %q", text, got)
			}
			var back jsonSample
			if err := json.Unmarshal(got, &back); err != nil {
				t.Fatalf("%q: %v\n%s", text, err, got)
			}
			if want := strings.ToValidUTF8(text, "\uFFFD"); back.Name != want || back.List[0] != want || back.Nested[1]["k"] != want {
				t.Errorf("%q: read back %q", text, back.Name)
			}
		}
		if mi, _ := json.MarshalIndent(v, "", "  "); !bytes.ContainsFunc(mi, needsJSONEscape) && !bytes.Equal(IndentJSON(nil, src, "", "  "), mi) {
			t.Errorf("%q: differs from json.MarshalIndent, with nothing to escape", text)
		}
	}
}

// TestIndentJSONWhitespace: whitespace between tokens is dropped as
// json.Indent drops it, and whitespace inside strings is kept.
func TestIndentJSONWhitespace(t *testing.T) {
	src := []byte(" { \"a b\" :\t[ 1 ,\n2 ] ,\r\n \"c\" : { } , \"d\":[ ] }")
	if got, want := IndentJSON(nil, src, "", "  "), referenceJSON(t, src, "", "  "); !bytes.Equal(got, want) {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

// FuzzIndentJSON: for any valid JSON document, IndentJSON prints what
// json.Indent and the escape pass print, and the same value.
func FuzzIndentJSON(f *testing.F) {
	for _, s := range []string{`{"a":[1,{"b":"c\u0041"}],"d":{}}`, `"x\"y"`, `[]`, `[{},[],""]`, "\"\u202e\x7f\"", `{"k":"\\"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		if !json.Valid(src) {
			return
		}
		// json.Indent keeps whitespace after the document; IndentJSON
		// drops it as it drops the rest (json.Marshal writes none).
		src = bytes.TrimRight(src, " \t\r\n")
		got := IndentJSON(nil, src, "", "  ")
		if want := referenceJSON(t, src, "", "  "); !bytes.Equal(got, want) {
			t.Fatalf("src %q:\ngot  %q\nwant %q", src, got, want)
		}
		a, err := decodeNumbers(src)
		if err != nil {
			t.Fatal(err)
		}
		b, err := decodeNumbers(got)
		if err != nil {
			t.Fatalf("printed invalid JSON %q: %v", got, err)
		}
		ra, _ := json.Marshal(a)
		rb, _ := json.Marshal(b)
		if !bytes.Equal(ra, rb) {
			t.Fatalf("value changed: %s -> %s", ra, rb)
		}
	})
}

// decodeNumbers decodes with numbers as their text: any valid document,
// also numbers no float64 holds.
func decodeNumbers(data []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	var v any
	err := d.Decode(&v)
	return v, err
}
