// Package jsonschema writes a JSON Schema (draft 7) for a Go type from its
// encoding/json tags, so that the structs sitectl prints with --json are the
// one source of its documented schema. Each struct field's `doc` tag is its
// description and an `enum` tag (comma-separated; a trailing comma allows
// "") its allowed values. Objects allow no other properties, and every
// field is required unless it is omitempty: a field renamed or added
// without the schema fails validation.
package jsonschema

import (
	"encoding/json"
	"reflect"
	"strings"
	"time"
)

// Schema is a JSON Schema document or subschema.
type Schema = map[string]any

// TimePattern is what a time.Time marshals to: RFC 3339 with a zone.
const TimePattern = `^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})$`

var timeType = reflect.TypeOf(time.Time{})

// For is the schema of values of type t, with title and description.
func For(t reflect.Type, title, description string) Schema {
	s := of(t)
	s["$schema"] = "http://json-schema.org/draft-07/schema#"
	s["title"] = title
	s["description"] = description
	return s
}

// Field is one property of an object, for documentation.
type Field struct {
	Path        string // e.g. site_file.errors[].line
	Type        string // e.g. string or null
	Description string
}

func of(t reflect.Type) Schema {
	switch {
	case t == timeType:
		return Schema{"type": "string", "pattern": TimePattern}
	case t.Kind() == reflect.Pointer:
		s := of(t.Elem())
		return nullable(s)
	}
	switch t.Kind() {
	case reflect.String:
		return Schema{"type": "string"}
	case reflect.Bool:
		return Schema{"type": "boolean"}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return Schema{"type": "integer"}
	case reflect.Float32, reflect.Float64:
		return Schema{"type": "number"}
	case reflect.Slice, reflect.Array:
		return Schema{"type": "array", "items": of(t.Elem())}
	case reflect.Struct:
		return object(t)
	}
	panic("jsonschema: no schema for " + t.String())
}

// nullable lets s be null too.
func nullable(s Schema) Schema {
	if ty, ok := s["type"].(string); ok {
		s["type"] = []string{ty, "null"}
	}
	return s
}

func object(t reflect.Type) Schema {
	props := Schema{}
	required := []string{}
	for _, f := range fields(t) {
		p := of(f.typ)
		if f.doc != "" {
			p["description"] = f.doc
		}
		if f.enum != nil {
			p["enum"] = f.enum
			if f.typ.Kind() == reflect.Pointer {
				p["enum"] = append(append([]any{}, f.enum...), nil)
			}
		}
		props[f.name] = p
		if !f.omitempty {
			required = append(required, f.name)
		}
	}
	return Schema{"type": "object", "properties": props, "required": required, "additionalProperties": false}
}

type field struct {
	name      string
	typ       reflect.Type
	doc       string
	enum      []any
	omitempty bool
}

// fields are the JSON fields of struct type t, as encoding/json sees them.
func fields(t reflect.Type) []field {
	var out []field
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		tag := sf.Tag.Get("json")
		if !sf.IsExported() || tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if name == "" {
			name = sf.Name
		}
		f := field{name: name, typ: sf.Type, doc: sf.Tag.Get("doc"),
			omitempty: strings.Contains(","+opts+",", ",omitempty,") || strings.Contains(","+opts+",", ",omitzero,")}
		if e, ok := sf.Tag.Lookup("enum"); ok {
			for _, v := range strings.Split(e, ",") {
				f.enum = append(f.enum, v)
			}
		}
		out = append(out, f)
	}
	return out
}

// Fields lists every property of t, nested ones with their path, for a
// table in the manual.
func Fields(t reflect.Type) []Field {
	var out []Field
	var walk func(t reflect.Type, prefix string)
	walk = func(t reflect.Type, prefix string) {
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
			if t.Kind() == reflect.Slice {
				prefix += "[]"
			}
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct || t == timeType {
			return
		}
		if prefix != "" {
			prefix += "."
		}
		for _, f := range fields(t) {
			out = append(out, Field{Path: prefix + f.name, Type: TypeName(f.typ), Description: f.doc})
			walk(f.typ, prefix+f.name)
		}
	}
	walk(t, "")
	return out
}

// TypeName is a type as the manual names it: string, integer, time, ...,
// "or null" for pointers, "array of ..." for slices.
func TypeName(t reflect.Type) string {
	switch {
	case t == timeType:
		return "time (RFC 3339)"
	case t.Kind() == reflect.Pointer:
		return TypeName(t.Elem()) + " or null"
	case t.Kind() == reflect.Slice:
		return "array of " + TypeName(t.Elem())
	case t.Kind() == reflect.Struct:
		return "object"
	}
	s, _ := of(t)["type"].(string)
	return s
}

// Marshal writes a schema as indented JSON with a final newline.
func Marshal(s Schema) ([]byte, error) {
	b, err := json.MarshalIndent(s, "", "  ")
	return append(b, '\n'), err
}
