package cli

import (
	"io"
	"strings"

	"github.com/sitectl/sitectl/internal/jsonschema"
)

// JSONOutputOf is the documented output that a command line prints with
// --json: its schema file's name and schema; ok is false for a command
// line without --json.
func JSONOutputOf(args []string) (name string, s jsonschema.Schema, ok bool) {
	json := false
	for _, a := range args {
		json = json || a == "--json" || a == "--json=true"
	}
	if !json {
		return "", nil, false
	}
	c, _, err := newRoot(io.Discard, io.Discard).Find(args)
	if err != nil {
		return "", nil, false
	}
	verb := strings.TrimPrefix(c.CommandPath(), "sitectl ")
	for _, o := range jsonOutputs {
		for _, v := range o.Verbs {
			if v == verb {
				return verb, o.schema(), true
			}
		}
	}
	return "", nil, false
}

// JSONVerbs are the verbs that print JSON.
func JSONVerbs() []string {
	var vs []string
	for _, o := range jsonOutputs {
		vs = append(vs, o.Verbs...)
	}
	return vs
}
