package status

import (
	"context"
	"encoding/json"
	"os"
	"testing"
	"time"

	"github.com/sitectl/sitectl/internal/cleanup"
	"github.com/sitectl/sitectl/internal/jsonschema"
	"github.com/sitectl/sitectl/internal/modes"
)

// TestJSONFitsTheDocumentedSchema checks what status and list print for
// every kind of site (idle, stopped, crash loop, failed, invalid with and
// without a last good version, a pending switch, a journal with a failure
// and a cleanup) against docs/json/status.schema.json.
func TestJSONFitsTheDocumentedSchema(t *testing.T) {
	data, err := os.ReadFile("../../docs/json/status.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	schema, err := jsonschema.ParseSchema(data)
	if err != nil {
		t.Fatal(err)
	}
	d, sd := setup(t)
	if err := (modes.Store{Dir: d.State}).WriteState("run", modes.State{PreviousMode: "normal",
		Pending: &modes.Pending{Since: time.Unix(1700000000, 0), Kind: "restart", From: "normal", To: "normal", UID: 0, PID: 1}}); err != nil {
		t.Fatal(err)
	}
	failedAt := time.Unix(1700000100, 0)
	src := Sources{Dirs: d, Systemd: sd,
		Journal: func(_ context.Context, name string) (*Failure, *cleanup.Record) {
			switch name {
			case "loop":
				return &Failure{Result: "exit-code", Time: &failedAt, ExitCode: "exited", ExitStatus: "3"}, nil
			case "idle":
				return nil, &cleanup.Record{Time: failedAt, Result: "hook-failed", Leftovers: 2, HookFailures: []string{"/bin/false: exit status 1"}}
			}
			return nil, nil
		}}
	for _, req := range []Request{{Brief: true}, {}, {Names: []string{"run", "loop", "broken", "gone", "idle"}}} {
		res, err := Gather(context.Background(), src, req)
		if err != nil {
			t.Fatal(err)
		}
		out, err := json.Marshal(res.Sites)
		if err != nil {
			t.Fatal(err)
		}
		if err := jsonschema.Validate(schema, out); err != nil {
			t.Errorf("%+v: the JSON does not fit docs/json/status.schema.json:\n%v\n%s", req, err, out)
		}
	}
}
