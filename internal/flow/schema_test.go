package flow

import (
	"context"
	"encoding/json"
	"os"
	"testing"
	"time"

	"github.com/sitectl/sitectl/internal/jsonschema"
)

// TestReportFitsTheDocumentedSchema checks the report of every way a
// change ends (ok, nothing to do, rolled back, rollback failed, refused)
// against docs/json/change.schema.json, which mode, restart, reload and
// rollback --json print.
func TestReportFitsTheDocumentedSchema(t *testing.T) {
	data, err := os.ReadFile("../../docs/json/change.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	schema, err := jsonschema.ParseSchema(data)
	if err != nil {
		t.Fatal(err)
	}
	var reps []Report
	run := func(failing []string, f func(e *Env) (Report, error)) {
		e, _ := newEnv(t, failing...)
		rep, _ := f(e)
		reps = append(reps, rep)
	}
	ctx := context.Background()
	run(nil, func(e *Env) (Report, error) { return SwitchMode(ctx, e, testSite(t), "read-only", Options{}) })
	run(nil, func(e *Env) (Report, error) { return SwitchMode(ctx, e, testSite(t), "normal", Options{}) })
	run([]string{"broken"}, func(e *Env) (Report, error) { return SwitchMode(ctx, e, testSite(t), "broken", Options{}) })
	run([]string{"broken", "normal"}, func(e *Env) (Report, error) {
		return SwitchMode(ctx, e, testSite(t), "broken", Options{})
	})
	run(nil, func(e *Env) (Report, error) { return SwitchMode(ctx, e, testSite(t), "nope", Options{}) })
	run(nil, func(e *Env) (Report, error) { return Rollback(ctx, e, testSite(t), time.Minute, false) })
	run(nil, func(e *Env) (Report, error) { return Restart(ctx, e, testSite(t), time.Minute) })
	results := map[string]bool{}
	for _, rep := range reps {
		results[rep.Result] = true
		out, err := json.Marshal(rep)
		if err != nil {
			t.Fatal(err)
		}
		if err := jsonschema.Validate(schema, out); err != nil {
			t.Errorf("the report does not fit docs/json/change.schema.json:\n%v\n%s", err, out)
		}
	}
	for _, r := range []string{"ok", "rolled-back", "rollback-failed", ""} {
		if !results[r] {
			t.Errorf("no report with result %q was checked", r)
		}
	}
}
