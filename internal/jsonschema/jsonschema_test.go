package jsonschema

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

type inner struct {
	Line int    `json:"line" doc:"the line"`
	Msg  string `json:"message"`
}

type sample struct {
	Site   string     `json:"site" doc:"the site's name"`
	State  string     `json:"state" enum:"ok,invalid"`
	Result string     `json:"result" enum:"ok,"`
	Since  *time.Time `json:"since"`
	When   time.Time  `json:"when"`
	Count  int        `json:"count"`
	Ratio  float64    `json:"ratio"`
	Errors []inner    `json:"errors"`
	Next   *inner     `json:"next"`
	Note   string     `json:"note,omitempty"`
	Hidden string     `json:"-"`
}

func good() sample {
	return sample{Site: "shop", State: "ok", When: time.Date(2026, 11, 30, 13, 0, 0, 5, time.FixedZone("CET", 3600)),
		Errors: []inner{{1, "x"}}, Ratio: 0.5}
}

// schemas are the schema as For builds it and as a reader of the
// documented file gets it: both must judge alike.
func schemas(t *testing.T) map[string]Schema {
	t.Helper()
	s := For(reflect.TypeOf([]sample{}), "t", "d")
	b, err := Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := ParseSchema(b)
	if err != nil {
		t.Fatal(err)
	}
	return map[string]Schema{"built": s, "parsed": parsed}
}

func TestValidateAcceptsWhatEncodingJSONWrites(t *testing.T) {
	now := time.Now()
	b := good()
	b.Since, b.Next, b.Note, b.Result = &now, &inner{2, "y"}, "n", ""
	for name, s := range schemas(t) {
		for _, v := range [][]sample{{}, {good()}, {good(), b}} {
			data, _ := json.Marshal(v)
			if err := Validate(s, data); err != nil {
				t.Errorf("%s schema refuses %s: %v", name, data, err)
			}
		}
	}
}

func TestValidateRefusesWhatDoesNotFit(t *testing.T) {
	data, _ := json.Marshal([]sample{good()})
	base := string(data)
	for _, c := range []struct{ old, new, want string }{
		{`"site":"shop"`, `"name":"shop"`, `/0: has no "site"`},
		{`"site":"shop"`, `"site":"shop","extra":1`, `/0: has "extra", which the schema does not name`},
		{`"state":"ok"`, `"state":"fine"`, `/0/state: is "fine", want one of [ok invalid]`},
		{`"result":""`, `"result":"bad"`, `/0/result: is "bad"`},
		{`"count":0`, `"count":1.5`, `/0/count: is number, want integer`},
		{`"count":0`, `"count":"0"`, `/0/count: is string, want integer`},
		{`"site":"shop"`, `"site":null`, `/0/site: is null, want string`},
		{`"when":"2026-11-30T13:00:00.000000005+01:00"`, `"when":"30 Nov 2026"`, `/0/when: "30 Nov 2026" does not match`},
		{`"errors":[{"line":1,"message":"x"}]`, `"errors":[{"line":1}]`, `/0/errors/0: has no "message"`},
		{`"errors":[{"line":1,"message":"x"}]`, `"errors":null`, `/0/errors: is null, want array`},
		{`"next":null`, `"next":{"line":"1","message":"x"}`, `/0/next/line: is string, want integer`},
	} {
		doc := strings.Replace(base, c.old, c.new, 1)
		if doc == base {
			t.Fatalf("%q is not in %s", c.old, base)
		}
		for name, s := range schemas(t) {
			err := Validate(s, []byte(doc))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("%s schema on %s: got %v, want %q", name, doc, err, c.want)
			}
		}
	}
	for _, doc := range []string{`{}`, `[1]`, `[] []`, `not json`} {
		if err := Validate(schemas(t)["built"], []byte(doc)); err == nil {
			t.Errorf("%s passes", doc)
		}
	}
}

func TestValidateRefusesKeywordsItCannotCheck(t *testing.T) {
	s := Schema{"type": "integer", "minimum": 3}
	if err := Validate(s, []byte("1")); err == nil || !strings.Contains(err.Error(), `"minimum"`) {
		t.Errorf("a schema with minimum: %v", err)
	}
}

func TestFieldsDocumentsNestedFields(t *testing.T) {
	var got []string
	for _, f := range Fields(reflect.TypeOf(sample{})) {
		got = append(got, f.Path+" "+f.Type)
	}
	want := []string{"site string", "state string", "result string", "since time (RFC 3339) or null", "when time (RFC 3339)",
		"count integer", "ratio number", "errors array of object", "errors[].line integer", "errors[].message string",
		"next object or null", "next.line integer", "next.message string", "note string"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("Fields:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
