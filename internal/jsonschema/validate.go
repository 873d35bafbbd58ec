package jsonschema

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strconv"
)

// Validate checks that data, one JSON document, is an instance of s. It
// knows the keywords For writes (type, properties, required,
// additionalProperties, items, enum, pattern) and refuses a schema with
// any other, so that a schema it cannot check never passes. Every mistake
// is reported, each with its JSON pointer.
func Validate(s Schema, data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return fmt.Errorf("not JSON: %w", err)
	}
	if dec.More() {
		return errors.New("more than one JSON document")
	}
	var errs []error
	check(s, v, "", &errs)
	return errors.Join(errs...)
}

// ParseSchema reads a schema as Marshal wrote it.
func ParseSchema(data []byte) (Schema, error) {
	var s Schema
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("cannot read the schema: %w", err)
	}
	return s, nil
}

var known = []string{"$schema", "title", "description", "type", "properties", "required", "additionalProperties", "items", "enum", "pattern"}

func check(s Schema, v any, at string, errs *[]error) {
	fail := func(format string, a ...any) {
		*errs = append(*errs, fmt.Errorf("%s: %s", pointer(at), fmt.Sprintf(format, a...)))
	}
	for k := range s {
		if !slices.Contains(known, k) {
			fail("the schema uses %q, which this validator does not check", k)
			return
		}
	}
	if t, ok := s["type"]; ok && !typeMatches(t, v) {
		fail("is %s, want %v", kind(v), t)
		return
	}
	if e, ok := s["enum"]; ok && !inEnum(asList(e), v) {
		fail("is %s, want one of %v", jsonText(v), asList(e))
	}
	if p, ok := s["pattern"].(string); ok {
		if str, isStr := v.(string); isStr {
			if re, err := regexp.Compile(p); err != nil {
				fail("the schema's pattern %q is not valid: %v", p, err)
			} else if !re.MatchString(str) {
				fail("%q does not match %s", str, p)
			}
		}
	}
	switch v := v.(type) {
	case map[string]any:
		checkObject(s, v, at, errs, fail)
	case []any:
		if items, ok := asSchema(s["items"]); ok {
			for i, e := range v {
				check(items, e, at+"/"+strconv.Itoa(i), errs)
			}
		}
	}
}

func checkObject(s Schema, v map[string]any, at string, errs *[]error, fail func(string, ...any)) {
	props, _ := asSchema(s["properties"])
	for _, r := range asList(s["required"]) {
		if name, ok := r.(string); ok {
			if _, present := v[name]; !present {
				fail("has no %q", name)
			}
		}
	}
	names := make([]string, 0, len(v))
	for k := range v {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		p, ok := asSchema(props[k])
		if !ok {
			if extra, isBool := s["additionalProperties"].(bool); isBool && !extra {
				fail("has %q, which the schema does not name", k)
			}
			continue
		}
		check(p, v[k], at+"/"+k, errs)
	}
}

// asSchema is a subschema, whether built by For (Schema) or read from JSON.
func asSchema(v any) (Schema, bool) {
	s, ok := v.(map[string]any)
	return s, ok
}

// asList is a list keyword's value, whether built by For or read from JSON.
func asList(v any) []any {
	switch l := v.(type) {
	case []any:
		return l
	case []string:
		out := make([]any, len(l))
		for i, s := range l {
			out[i] = s
		}
		return out
	}
	return nil
}

func typeMatches(t, v any) bool {
	if name, ok := t.(string); ok {
		return isKind(name, v)
	}
	for _, n := range asList(t) {
		if name, ok := n.(string); ok && isKind(name, v) {
			return true
		}
	}
	return false
}

func isKind(name string, v any) bool {
	switch v := v.(type) {
	case nil:
		return name == "null"
	case bool:
		return name == "boolean"
	case string:
		return name == "string"
	case json.Number:
		if name == "number" {
			return true
		}
		_, err := v.Int64()
		return name == "integer" && err == nil
	case []any:
		return name == "array"
	case map[string]any:
		return name == "object"
	}
	return false
}

func kind(v any) string {
	for _, k := range []string{"null", "boolean", "string", "integer", "number", "array", "object"} {
		if isKind(k, v) {
			return k
		}
	}
	return fmt.Sprintf("%T", v)
}

func inEnum(enum []any, v any) bool {
	for _, e := range enum {
		if jsonText(e) == jsonText(v) {
			return true
		}
	}
	return false
}

func jsonText(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

func pointer(at string) string {
	if at == "" {
		return "the document"
	}
	return at
}
