package site

import (
	"maps"
	"slices"
	"strings"
	"testing"
)

// parserTables are the parser's key tables by the name Keys uses for them.
// A table the parser gains goes here and into Tables.
func parserTables() map[string][]string {
	return map[string][]string{
		"":           slices.Sorted(maps.Keys(siteKeys)),
		"listen":     slices.Sorted(maps.Keys(listenKeys)),
		"modes.NAME": slices.Sorted(maps.Keys(modeKeys)),
		"probe":      slices.Sorted(maps.Keys(probeKeys)),
		"hardening":  slices.Sorted(maps.Keys(hardeningKeys)),
	}
}

// TestKeysDocumented checks that Keys, from which sitectl.toml(5) is
// generated, documents exactly the keys the parser knows.
func TestKeysDocumented(t *testing.T) {
	documented := map[string][]string{}
	for _, k := range Keys {
		if k.Type == "" || k.Default == "" || k.Doc == "" {
			t.Errorf("key %q of table %q: Type, Default and Doc must all be set", k.Key, k.Table)
		}
		documented[k.Table] = append(documented[k.Table], k.Key)
	}
	parser := parserTables()
	for table, keys := range parser {
		where := "the top level"
		if table != "" {
			where = "[" + table + "]"
		}
		docs := documented[table]
		for _, k := range keys {
			if !slices.Contains(docs, k) {
				t.Errorf("the parser knows the key %q in %s, which site.Keys (internal/site/keydoc.go) does not document: add it", k, where)
			}
		}
		for _, k := range docs {
			if !slices.Contains(keys, k) {
				t.Errorf("site.Keys documents the key %q in %s, which the parser does not know", k, where)
			}
		}
		slices.Sort(docs)
		if d := slices.Compact(slices.Clone(docs)); len(d) != len(docs) {
			t.Errorf("site.Keys documents a key of %s twice: %s", where, strings.Join(docs, ", "))
		}
	}
	for table := range documented {
		if _, ok := parser[table]; !ok {
			t.Errorf("site.Keys documents the table %q, which the parser does not have", table)
		}
	}
	// Every table but the top level is described in Tables, and a key of
	// the top level names it.
	for table := range parser {
		if table == "" {
			continue
		}
		i := slices.IndexFunc(Tables, func(tb struct{ Name, Syntax, Doc string }) bool { return tb.Name == table })
		if i < 0 {
			t.Errorf("the table %q is not described in site.Tables", table)
		}
	}
	for _, tb := range Tables {
		if _, ok := parser[tb.Name]; !ok {
			t.Errorf("site.Tables describes %q, which is not one of the parser's tables", tb.Name)
		}
	}
}

// TestKeysParse checks every documented key against the parser: a file
// with only that key set is never refused as having an unknown key.
func TestKeysParse(t *testing.T) {
	for _, k := range Keys {
		var file string
		switch k.Table {
		case "":
			file = k.Key + " = 1\n"
		case "modes.NAME":
			file = "[modes.x]\n" + k.Key + " = 1\n"
		case "listen":
			file = "[[listen]]\n" + k.Key + " = 1\n"
		default:
			file = "[" + k.Table + "]\n" + k.Key + " = 1\n"
		}
		_, err := Parse("/etc/sitectl/sites/doc.toml", []byte(file))
		if err != nil && strings.Contains(err.Error(), "unknown key") {
			t.Errorf("documented key %s in %q is unknown to the parser: %v", k.Key, k.Table, err)
		}
	}
}
