package cli

import (
	"encoding/json"
	"os"
	"slices"
	"testing"

	"github.com/sitectl/sitectl/internal/modes"
)

// Every result the history records is one docs/json/history.schema.json
// allows: a switch during which the site was stopped is recorded too.
func TestHistorySchemaHasEveryResult(t *testing.T) {
	data, err := os.ReadFile("../../docs/json/history.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	var schema struct {
		Items struct {
			Properties struct {
				Result struct {
					Enum []string `json:"enum"`
				} `json:"result"`
			} `json:"properties"`
		} `json:"items"`
	}
	if err := json.Unmarshal(data, &schema); err != nil {
		t.Fatal(err)
	}
	for _, r := range []string{modes.ResultOK, modes.ResultRolledBack, modes.ResultRollbackFailed, modes.ResultInterrupted, modes.ResultStopped} {
		if !slices.Contains(schema.Items.Properties.Result.Enum, r) {
			t.Errorf("the history schema's results %v lack %q", schema.Items.Properties.Result.Enum, r)
		}
	}
}
