package tomlpos

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/pelletier/go-toml/v2/unstable"
)

// MaxTableKeys bounds the keys of one table, and the entries of one array
// of tables ([[listen]]). go-toml's check for redefined keys compares each
// new key with every key before it: 9,000 keys in one table of a 64 KiB
// file cost it 90 ms, and the generator reads every site file at each
// daemon-reload. A real site file has a few dozen keys.
const MaxTableKeys = 1024

// keyCounter counts the distinct keys of each table of a document in one
// pass over go-toml's unstable AST, before the decoder runs, so that a
// table with too many keys is refused before it costs the decoder
// quadratic time. Tables are named by their path; the elements of an
// array of tables by the array's path and their index.
type keyCounter struct {
	b       *builder
	keys    map[string]int  // table path: distinct keys
	seen    map[string]bool // table path + key
	arrays  map[string]int  // array of tables path: elements
	current string
}

// sep joins the parts of a path: it cannot be written in a bare key, and
// a quoted key with it only makes two tables share a count.
const sep = "\x00"

// index marks the part of a path that is an element's index in an array.
const index = "\x01"

// checkLimits returns an *Error at the first key past MaxTableKeys in a
// table, or nil. A syntax error ends the pass without an error: the
// decoder reports it with its position.
func checkLimits(p *unstable.Parser, b *builder) error {
	c := keyCounter{b: b, keys: map[string]int{}, seen: map[string]bool{}, arrays: map[string]int{}}
	for p.NextExpression() {
		if err := c.expression(p.Expression()); err != nil {
			return err
		}
	}
	return nil
}

func (c *keyCounter) expression(e *unstable.Node) error {
	switch e.Kind {
	case unstable.Table:
		path, err := c.path("", e.Key())
		c.current = path
		return err
	case unstable.ArrayTable:
		path, err := c.path("", e.Key())
		if err != nil {
			return err
		}
		c.arrays[path]++
		if n := c.arrays[path]; n > MaxTableKeys {
			it := e.Key()
			it.Next()
			return &Error{c.b.pos(it.Node()), fmt.Sprintf("more than %d [[%s]] tables; at most %d are allowed", MaxTableKeys, tableName(path), MaxTableKeys)}
		}
		c.current = path + sep + index + strconv.Itoa(c.arrays[path])
	case unstable.KeyValue:
		return c.keyValue(c.current, e)
	}
	return nil
}

func (c *keyCounter) keyValue(table string, kv *unstable.Node) error {
	path, err := c.path(table, kv.Key())
	if err != nil {
		return err
	}
	return c.value(path, kv.Value())
}

// value counts the keys of an inline table, and of the inline tables in
// an array, at path.
func (c *keyCounter) value(path string, n *unstable.Node) error {
	it := n.Children()
	switch n.Kind {
	case unstable.InlineTable:
		for it.Next() {
			if err := c.keyValue(path, it.Node()); err != nil {
				return err
			}
		}
	case unstable.Array:
		for i := 0; it.Next(); i++ {
			if err := c.value(path+sep+index+strconv.Itoa(i), it.Node()); err != nil {
				return err
			}
		}
	}
	return nil
}

// path counts each part of a key as a key of the table before it, and
// returns the path of the last part.
func (c *keyCounter) path(table string, it unstable.Iterator) (string, error) {
	for it.Next() {
		n := it.Node()
		path := table + sep + string(n.Data)
		if !c.seen[path] {
			c.seen[path] = true
			c.keys[table]++
			if c.keys[table] > MaxTableKeys {
				return "", &Error{c.b.pos(n), fmt.Sprintf("more than %d keys in %s; at most %d are allowed in one table", MaxTableKeys, pathName(table), MaxTableKeys)}
			}
		}
		table = path
	}
	return table, nil
}

// pathName words a table's path for an error: "the table environment",
// "the top level of the file". An element of an array of tables is named
// by the array; a name is cut at 64 bytes and keeps no control
// characters, so that a hostile key cannot make the message long or
// mess up a terminal.
func pathName(path string) string {
	if path == "" {
		return "the top level of the file"
	}
	return "the table " + tableName(path)
}

// tableName is the dotted name of the table at path.
func tableName(path string) string {
	var parts []string
	for _, part := range strings.Split(path[len(sep):], sep) {
		if strings.HasPrefix(part, index) && len(parts) > 0 {
			parts[len(parts)-1] += "[]"
			continue
		}
		parts = append(parts, part)
	}
	name := strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '?'
		}
		return r
	}, strings.Join(parts, "."))
	if len(name) > 64 {
		name = strings.ToValidUTF8(name[:64], "") + "…"
	}
	return name
}
