// Package tomlpos parses a TOML document into a small tree of values that
// remember where they were written, so that a strict schema check can report
// "FILE:LINE:COL: what is wrong" for every mistake in a file, not just the
// first one a decoder trips over.
//
// A table with more than MaxTableKeys keys is refused first (checkLimits),
// before the decoder spends quadratic time on it. Syntax errors and
// redefined keys are found by go-toml's own decoder next
// (it reports the position of the first one; nothing can be checked after a
// syntax error). The tree is then built from go-toml's unstable AST.
package tomlpos

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/pelletier/go-toml/v2"
	"github.com/pelletier/go-toml/v2/unstable"
)

// Kind is the TOML type of a value.
type Kind int

// The kinds of values a document can hold.
const (
	String Kind = iota + 1
	Integer
	Float
	Bool
	DateTime
	Array
	Table
)

func (k Kind) String() string {
	switch k {
	case String:
		return "a string"
	case Integer:
		return "an integer"
	case Float:
		return "a float"
	case Bool:
		return "a boolean"
	case DateTime:
		return "a date-time"
	case Array:
		return "an array"
	case Table:
		return "a table"
	}
	return "nothing"
}

// Pos is a 1-based line and column in the document.
type Pos struct {
	Line, Col int
}

func (p Pos) String() string { return fmt.Sprintf("%d:%d", p.Line, p.Col) }

// Value is one node of the document. Scalars keep their value in the field
// of their kind; tables keep their keys in document order.
type Value struct {
	Kind Kind
	// Pos is where the value is written; KeyPos is where the key that names
	// it is written (for array elements, the element's own position).
	Pos, KeyPos Pos

	Str   string
	Int   int64
	Float float64
	Bool  bool

	Items []*Value // Array

	Keys   []string          // Table, in document order
	Fields map[string]*Value // Table
}

// Get returns the field of a table, or nil.
func (v *Value) Get(key string) *Value {
	if v == nil || v.Fields == nil {
		return nil
	}
	return v.Fields[key]
}

// Error is a syntax error with its position.
type Error struct {
	Pos Pos
	Msg string
}

func (e *Error) Error() string { return e.Pos.String() + ": " + e.Msg }

// Parse returns the document's root table, or an *Error.
func Parse(data []byte) (*Value, error) {
	// A parser keeps its node slice across Reset: at 10,000 site files
	// growing a new one for every file was a tenth of what the generator
	// allocated. The tree copies what it keeps of the nodes.
	p := parsers.Get().(*unstable.Parser)
	defer func() { p.Reset(nil); parsers.Put(p) }()
	b := builder{p: p, root: newTable(Pos{1, 1}, Pos{1, 1}), lines: lineStarts(data)}
	p.Reset(data)
	if err := checkLimits(p, &b); err != nil {
		return nil, err
	}
	var probe map[string]any
	if err := toml.Unmarshal(data, &probe); err != nil {
		var de *toml.DecodeError
		if errors.As(err, &de) {
			line, col := de.Position()
			return nil, &Error{Pos{line, col}, de.Error()}
		}
		return nil, &Error{Pos{1, 1}, err.Error()}
	}
	b.current = b.root
	b.p.Reset(data)
	for b.p.NextExpression() {
		if err := b.expression(b.p.Expression()); err != nil {
			return nil, err
		}
	}
	if err := b.p.Error(); err != nil {
		return nil, &Error{Pos{1, 1}, err.Error()}
	}
	return b.root, nil
}

var parsers = sync.Pool{New: func() any { return new(unstable.Parser) }}

type builder struct {
	p       *unstable.Parser
	root    *Value
	current *Value
	lines   []int // offsets at which lines start
}

// lineStarts indexes where each line of data starts, so that a position is
// a binary search: go-toml's Shape counts the lines from the start of the
// document for every node, which made a 1 MiB file with many values take
// seconds.
func lineStarts(data []byte) []int {
	starts := []int{0}
	for i, c := range data {
		if c == '\n' {
			starts = append(starts, i+1)
		}
	}
	return starts
}

func newTable(pos, keyPos Pos) *Value {
	return &Value{Kind: Table, Pos: pos, KeyPos: keyPos, Fields: map[string]*Value{}}
}

// pos is where a node starts: its line, and its column in bytes, as go-toml
// counts them.
func (b *builder) pos(n *unstable.Node) Pos {
	off := int(n.Raw.Offset)
	line := sort.SearchInts(b.lines, off+1) // the first line start after off
	return Pos{line, off - b.lines[line-1] + 1}
}

type keyPart struct {
	name string
	pos  Pos
}

func (b *builder) keyParts(it unstable.Iterator) []keyPart {
	var parts []keyPart
	for it.Next() {
		n := it.Node()
		parts = append(parts, keyPart{string(n.Data), b.pos(n)})
	}
	return parts
}

// descend walks from t through the given key parts, creating implicit tables
// and entering the last element of arrays of tables, as TOML defines.
func descend(t *Value, parts []keyPart) *Value {
	for _, k := range parts {
		next := t.Fields[k.name]
		if next == nil {
			next = newTable(k.pos, k.pos)
			t.Fields[k.name] = next
			t.Keys = append(t.Keys, k.name)
		}
		if next.Kind == Array && len(next.Items) > 0 {
			next = next.Items[len(next.Items)-1]
		}
		t = next
	}
	return t
}

func (b *builder) expression(e *unstable.Node) error {
	switch e.Kind {
	case unstable.Table:
		parts := b.keyParts(e.Key())
		b.current = descend(b.root, parts)
		last := parts[len(parts)-1].pos
		b.current.Pos, b.current.KeyPos = last, last
	case unstable.ArrayTable:
		parts := b.keyParts(e.Key())
		parent := descend(b.root, parts[:len(parts)-1])
		last := parts[len(parts)-1]
		arr := parent.Fields[last.name]
		if arr == nil {
			arr = &Value{Kind: Array, Pos: last.pos, KeyPos: last.pos}
			parent.Fields[last.name] = arr
			parent.Keys = append(parent.Keys, last.name)
		}
		elem := newTable(last.pos, last.pos)
		arr.Items = append(arr.Items, elem)
		b.current = elem
	case unstable.KeyValue:
		return b.keyValue(b.current, e)
	}
	return nil
}

func (b *builder) keyValue(t *Value, kv *unstable.Node) error {
	parts := b.keyParts(kv.Key())
	parent := descend(t, parts[:len(parts)-1])
	last := parts[len(parts)-1]
	v, err := b.value(kv.Value(), last.pos)
	if err != nil {
		return err
	}
	v.KeyPos = last.pos
	parent.Fields[last.name] = v
	parent.Keys = append(parent.Keys, last.name)
	return nil
}

func (b *builder) value(n *unstable.Node, keyPos Pos) (*Value, error) {
	pos := keyPos
	if n.Raw.Length > 0 {
		pos = b.pos(n)
	}
	v := &Value{Pos: pos, KeyPos: pos}
	data := string(n.Data)
	switch n.Kind {
	case unstable.String:
		v.Kind, v.Str = String, data
	case unstable.Bool:
		v.Kind, v.Bool = Bool, data == "true"
	case unstable.Integer:
		i, err := strconv.ParseInt(strings.ReplaceAll(data, "_", ""), 0, 64)
		if err != nil {
			return nil, &Error{pos, fmt.Sprintf("integer %s is out of range", data)}
		}
		v.Kind, v.Int = Integer, i
	case unstable.Float:
		v.Kind, v.Float = Float, parseFloat(data)
	case unstable.LocalDate, unstable.LocalTime, unstable.LocalDateTime, unstable.DateTime:
		v.Kind, v.Str = DateTime, data
	case unstable.Array:
		v.Kind = Array
		it := n.Children()
		for it.Next() {
			item, err := b.value(it.Node(), pos)
			if err != nil {
				return nil, err
			}
			v.Items = append(v.Items, item)
		}
	case unstable.InlineTable:
		v.Kind, v.Fields = Table, map[string]*Value{}
		it := n.Children()
		for it.Next() {
			if err := b.keyValue(v, it.Node()); err != nil {
				return nil, err
			}
		}
	default:
		return nil, &Error{pos, fmt.Sprintf("unsupported TOML value of kind %s", n.Kind)}
	}
	return v, nil
}

func parseFloat(s string) float64 {
	s = strings.ReplaceAll(s, "_", "")
	switch strings.TrimLeft(s, "+-") {
	case "inf":
		if strings.HasPrefix(s, "-") {
			return math.Inf(-1)
		}
		return math.Inf(1)
	case "nan":
		return math.NaN()
	}
	f, _ := strconv.ParseFloat(s, 64)
	return f
}
