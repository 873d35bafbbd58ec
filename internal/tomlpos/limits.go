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
	b *builder
	// ids names each table by a number: its parent's and its own name.
	// A path built as a string would cost a dotted key of k parts k²/2
	// bytes (a.a.a... = 1 in 64 KiB: 1 GB and 3 s).
	ids     map[part]int
	names   []part      // by id: the parent and the name, for errors
	keys    []int       // by id: distinct keys
	arrays  map[int]int // array of tables id: elements
	current int
}

// part is one step of a table's path: the id of the table it is in, and
// its name there. An element of an array of tables is named by its index
// after index.
type part struct {
	parent int
	name   string
}

// root is the id of the document's top level.
const root = 0

// index marks the name of an element of an array of tables.
const index = "\x01"

// child is the id of name in table parent, a new one if it was not seen:
// then seen is false.
func (c *keyCounter) child(parent int, name string) (id int, seen bool) {
	k := part{parent, name}
	if id, ok := c.ids[k]; ok {
		return id, true
	}
	id = len(c.names)
	c.ids[k] = id
	c.names = append(c.names, k)
	c.keys = append(c.keys, 0)
	return id, false
}

// checkLimits returns an *Error at the first key past MaxTableKeys in a
// table, or nil. A syntax error ends the pass without an error: the
// decoder reports it with its position.
func checkLimits(p *unstable.Parser, b *builder) error {
	c := keyCounter{b: b, ids: map[part]int{}, names: []part{{parent: -1}}, keys: []int{0}, arrays: map[int]int{}}
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
		path, err := c.path(root, e.Key())
		c.current = path
		return err
	case unstable.ArrayTable:
		path, err := c.path(root, e.Key())
		if err != nil {
			return err
		}
		c.arrays[path]++
		if n := c.arrays[path]; n > MaxTableKeys {
			it := e.Key()
			it.Next()
			return &Error{c.b.pos(it.Node()), fmt.Sprintf("more than %d [[%s]] tables; at most %d are allowed", MaxTableKeys, c.tableName(path), MaxTableKeys)}
		}
		c.current, _ = c.child(path, index+strconv.Itoa(c.arrays[path]))
	case unstable.KeyValue:
		return c.keyValue(c.current, e)
	}
	return nil
}

func (c *keyCounter) keyValue(table int, kv *unstable.Node) error {
	path, err := c.path(table, kv.Key())
	if err != nil {
		return err
	}
	return c.value(path, kv.Value())
}

// value counts the keys of an inline table, and of the inline tables in
// an array, at path.
func (c *keyCounter) value(path int, n *unstable.Node) error {
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
			elem, _ := c.child(path, index+strconv.Itoa(i))
			if err := c.value(elem, it.Node()); err != nil {
				return err
			}
		}
	}
	return nil
}

// path counts each part of a key as a key of the table before it, and
// returns the path of the last part.
func (c *keyCounter) path(table int, it unstable.Iterator) (int, error) {
	for it.Next() {
		n := it.Node()
		path, seen := c.child(table, string(n.Data))
		if !seen {
			c.keys[table]++
			if c.keys[table] > MaxTableKeys {
				return 0, &Error{c.b.pos(n), fmt.Sprintf("more than %d keys in %s; at most %d are allowed in one table", MaxTableKeys, c.pathName(table), MaxTableKeys)}
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
func (c *keyCounter) pathName(id int) string {
	if id == root {
		return "the top level of the file"
	}
	return "the table " + c.tableName(id)
}

// tableName is the dotted name of the table id, cut once it is long.
func (c *keyCounter) tableName(id int) string {
	var rev []string
	for size := 0; id != root && size <= 64; id = c.names[id].parent {
		rev = append(rev, c.names[id].name)
		size += len(c.names[id].name) + 1
	}
	var parts []string
	for i := len(rev) - 1; i >= 0; i-- {
		if strings.HasPrefix(rev[i], index) && len(parts) > 0 {
			parts[len(parts)-1] += "[]"
			continue
		}
		parts = append(parts, rev[i])
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
