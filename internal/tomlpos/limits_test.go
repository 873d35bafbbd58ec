package tomlpos

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
)

// A table of more keys than MaxTableKeys is refused at the first key too
// many, however the keys are written, before go-toml's decoder, whose
// check for redefined keys takes quadratic time, sees them.
func TestTooManyKeysInOneTable(t *testing.T) {
	many := func(format string) string {
		var b strings.Builder
		for i := 0; i <= MaxTableKeys; i++ {
			fmt.Fprintf(&b, format, i)
		}
		return b.String()
	}
	line := MaxTableKeys + 2
	for _, tc := range []struct {
		name, doc, want string
		pos             Pos
	}{
		{"a table", "[environment]\n" + many("V%d = \"\"\n"), "more than 1024 keys in the table environment", Pos{line, 1}},
		{"the top level", many("k%d = 1\n"), "more than 1024 keys in the top level of the file", Pos{line - 1, 1}},
		{"dotted keys", many("hardening.k%d = 1\n"), "more than 1024 keys in the table hardening", Pos{line - 1, 11}},
		{"an inline table", "environment = {" + strings.TrimSuffix(many("V%d = \"\","), ",") + "}\n", "more than 1024 keys in the table environment", Pos{1, 16 + len(many("V%d = \"\",")) - len("V1024 = \"\",")}},
		{"an array of tables", many("[[listen]]\n#%d\n"), "more than 1024 [[listen]] tables", Pos{2*MaxTableKeys + 1, 3}},
		{"subtables", many("[modes.m%d]\n"), "more than 1024 keys in the table modes", Pos{line - 1, 8}},
	} {
		_, err := Parse([]byte(tc.doc))
		e, ok := err.(*Error)
		if !ok || !strings.Contains(e.Msg, tc.want) {
			t.Errorf("%s: %v; want an error with %q", tc.name, err, tc.want)
			continue
		}
		if e.Pos != tc.pos {
			t.Errorf("%s: at %v, want %v", tc.name, e.Pos, tc.pos)
		}
	}
	// As many as allowed, in one table and in another, are accepted.
	doc := "[a]\n" + strings.Replace(many("k%d = 1\n"), "k1024 = 1\n", "", 1) + "[b]\n" + strings.Replace(many("k%d = 1\n"), "k1024 = 1\n", "", 1)
	if root, err := Parse([]byte(doc)); err != nil || len(root.Get("b").Keys) != MaxTableKeys {
		t.Errorf("two tables of %d keys each: %v", MaxTableKeys, err)
	}
}

// A key is counted once however many dotted keys pass through it: x has
// 600 keys, written 1,200 times.
func TestKeysCountedOncePerTable(t *testing.T) {
	var b strings.Builder
	for i := 0; i < 600; i++ {
		fmt.Fprintf(&b, "x.y%d.z = 1\nx.y%d.w = 2\n", i, i)
	}
	if _, err := Parse([]byte(b.String())); err != nil {
		t.Errorf("600 keys written twice each: %v", err)
	}
}

// BenchmarkManyKeys parses the largest table allowed.
func BenchmarkManyKeys(b *testing.B) {
	var doc strings.Builder
	doc.WriteString("[environment]\n")
	for i := 0; i < MaxTableKeys; i++ {
		fmt.Fprintf(&doc, "V%d = \"\"\n", i)
	}
	data := []byte(doc.String())
	for b.Loop() {
		if _, err := Parse(data); err != nil {
			b.Fatal(err)
		}
	}
}

// A dotted key of many parts costs the count its length, not its square:
// each table's path was a string built part by part, so a.a.a... = 1 in
// 64 KiB (32,000 parts) allocated 1 GB and took 3 s before the decoder
// ran.
func TestDeepDottedKeyCostsItsLength(t *testing.T) {
	data := []byte("a" + strings.Repeat(".a", 32000) + " = 1\n")
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, err := Parse(data)
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatalf("a deep dotted key: %v", err)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 64<<20 {
		t.Errorf("parsing a 64 KiB dotted key allocated %d MiB", alloc>>20)
	}
}
