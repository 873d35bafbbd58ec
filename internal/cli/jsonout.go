package cli

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/sitectl/sitectl/internal/flow"
	"github.com/sitectl/sitectl/internal/jsonschema"
	"github.com/sitectl/sitectl/internal/lifecycle"
	"github.com/sitectl/sitectl/internal/status"
)

// jsonOutput is what one or more verbs print with --json. The Go types are
// the schema's single source: docs/json/NAME.schema.json, docs/json.md and
// sitectl-json(7) are generated from them (see TestJSONDocs).
type jsonOutput struct {
	Name  string   // the schema file's name
	Verbs []string // the verbs that print it
	About string
	Type  reflect.Type
}

// jsonOutputs is every --json output of every verb.
var jsonOutputs = []jsonOutput{
	{"status", []string{"status", "list"},
		"an array with one object per site (list reads less: no journal, so no last_failure or last_cleanup, and no n_restarts or since of inactive services)",
		reflect.TypeOf([]status.Site{})},
	{"change", []string{"mode", "restart", "reload", "rollback"},
		"one object: the report of the change, also when it failed (then the exit code says how)",
		reflect.TypeOf(flow.Report{})},
	{"history", []string{"history"}, "an array with one object per change of the site, oldest first",
		reflect.TypeOf([]historyEntry{})},
	{"check", []string{"check"}, "one object: every file checked, its mistakes and warnings",
		reflect.TypeOf(checkJSON{})},
	{"lifecycle", []string{"enable", "disable", "remove"}, "one object: what the verb did to the site",
		reflect.TypeOf(lifecycle.Report{})},
}

// schema is the JSON Schema of an output.
func (o jsonOutput) schema() jsonschema.Schema {
	return jsonschema.For(o.Type, "sitectl "+strings.Join(o.Verbs, ", ")+" --json", o.prints()+".")
}

// prints says what the verbs print: "sitectl status --json and sitectl
// list --json print an array ...".
func (o jsonOutput) prints() string {
	names := make([]string, len(o.Verbs))
	for i, v := range o.Verbs {
		names[i] = "sitectl " + v + " --json"
	}
	if len(names) == 1 {
		return names[0] + " prints " + o.About
	}
	return strings.Join(names[:len(names)-1], ", ") + " and " + names[len(names)-1] + " print " + o.About
}

// jsonOutputOf is the output c prints with --json.
func jsonOutputOf(c *cobra.Command) (jsonOutput, bool) {
	if !c.HasParent() || c.Parent().HasParent() {
		return jsonOutput{}, false
	}
	for _, o := range jsonOutputs {
		if slices.Contains(o.Verbs, c.Name()) {
			return o, true
		}
	}
	return jsonOutput{}, false
}

// jsonSection is the JSON OUTPUT section of the page of a verb with --json:
// every field it prints, as sitectl-json(7) lists them.
func jsonSection(r *roff, c *cobra.Command) {
	o, ok := jsonOutputOf(c)
	if !ok {
		return
	}
	r.section("JSON OUTPUT")
	r.para(o.prints() + ". Its fields (sitectl-json(7) says what every verb prints, and how):")
	for _, f := range jsonschema.Fields(o.Type) {
		r.detailItem(f.Path, f.Type, f.Description)
	}
}

// jsonIntro is what the page on --json says first.
const jsonIntro = `Every verb that reports something takes --json and then prints one JSON document on
standard output: an array or an object, with snake_case field names. A change
(mode, restart, reload, rollback) prints its report whatever its outcome, and the
exit code says how it ended; check prints its report also when a file has mistakes
(exit code 2). When sitectl refuses the command line or the site
before it does anything (a usage error, a site that does not exist or whose file
has mistakes, no permission; for a verb other than a change, no bus or the site's
lock not had), it prints nothing on standard
output and the error on standard error; but a change that never began once its site was found (a mode the site
does not have, a --timeout too short for its settle_time, no bus, the site's lock
not had) prints the report with an empty result, and the exit code and standard
error say why. A deployer's change, made by sitectl's state service, prints what
root's prints in the same case (nothing for a site that does not exist, has
mistakes or is not granted to them); when the service cannot be asked or its
answer does not come, it prints nothing, and the change may have happened (exit
code 7: sitectl history says how it ended). status leaves out the sites that do not exist (exit code 4), and
prints [] when none of them does. sitectl logs has no --json: its -o json is
journalctl's own format (see journalctl(1)).

The same thing has the same name everywhere: a site's name is always "site", a
mode "mode" (or from and to), a unit "unit", a file "file", a time "time" or
"since". Times are RFC 3339 strings with their zone. A field is always present
unless its description says it may be left out; null stands for "unknown" or
"none" where the type allows it. Fields may be added in later versions; none is
renamed or removed without notice.

The JSON Schema (draft 7) of each output is in the package's documentation
(docs/json/NAME.schema.json in the source), generated from the same Go types as
sitectl itself, and the test suite checks every verb's real output against it.`

// jsonMarkdown is docs/json.md.
func jsonMarkdown() string {
	var b strings.Builder
	b.WriteString("# sitectl --json\n\n<!-- Generated from the Go types by `go test ./internal/cli -run TestJSONDocs -update`; do not edit. -->\n\n")
	b.WriteString(jsonIntro + "\n")
	for _, o := range jsonOutputs {
		b.WriteString(fmt.Sprintf("\n## %s\n\n%s. Schema: [json/%s.schema.json](json/%s.schema.json).\n\n", o.Name, o.prints(), o.Name, o.Name))
		b.WriteString("| field | type | meaning |\n|---|---|---|\n")
		for _, f := range jsonschema.Fields(o.Type) {
			b.WriteString(fmt.Sprintf("| `%s` | %s | %s |\n", f.Path, f.Type, strings.ReplaceAll(f.Description, "|", `\|`)))
		}
	}
	return b.String()
}

// jsonPage is sitectl-json(7).
func jsonPage(date time.Time) string {
	r := &roff{}
	header(r, "sitectl-json", "7", date)
	r.name("sitectl-json", "what sitectl prints with --json")
	r.section("DESCRIPTION")
	r.text(jsonIntro)
	for _, o := range jsonOutputs {
		r.section(strings.ToUpper(o.Name))
		r.para(o.prints() + ".")
		for _, f := range jsonschema.Fields(o.Type) {
			r.detailItem(f.Path, f.Type, f.Description)
		}
	}
	var refs []string
	for _, o := range jsonOutputs {
		for _, v := range o.Verbs {
			refs = append(refs, "sitectl-"+v+"(1)")
		}
	}
	r.seeAlso(append([]string{"sitectl(1)"}, refs...))
	return r.String()
}
