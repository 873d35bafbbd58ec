package modes

import (
	"bytes"
	"os"
	"strings"
	"testing"
)

// stateOf010 is a state file as sitectl 0.1.0 wrote it: no version, no
// verified mode, no kinds.
const stateOf010 = `{
  "previous_mode": "normal",
  "changed_at": "2026-11-21T10:00:00Z",
  "history": [
    {
      "time": "2026-11-21T09:59:58Z",
      "from": "normal",
      "to": "read-only",
      "uid": 0,
      "result": "ok"
    }
  ]
}
`

// A state file of a sitectl that did not record its format is read, and
// a change keeps its history.
func TestStateOfAnOlderSitectlKeepsItsHistory(t *testing.T) {
	l := Local{Store: Store{Dir: t.TempDir()}, PID: 42}
	s := verifiedSite(t)
	if err := l.Store.siteDir(s.Name); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(l.Store.statePath(s.Name), []byte(stateOf010), FileMode); err != nil {
		t.Fatal(err)
	}
	st := change(t, l, s, "read-only", "slow", ResultOK)
	if len(st.History) != 2 || st.History[0].To != "read-only" || st.History[1].To != "slow" {
		t.Fatalf("history %+v, want the 0.1.0 entry and the new one", st.History)
	}
	if st.PreviousMode != "read-only" || st.Version != stateVersion {
		t.Errorf("previous %q, version %d; want read-only and %d", st.PreviousMode, st.Version, stateVersion)
	}
}

// The state file says its format before its history, where ReadSummary
// reads it.
func TestStateRecordsItsFormat(t *testing.T) {
	data, err := EncodeState(State{PreviousMode: "normal", History: []Entry{{To: "normal"}}})
	if err != nil {
		t.Fatal(err)
	}
	v, h := bytes.Index(data, []byte(`"version": 1`)), bytes.Index(data, []byte(`"history"`))
	if v < 0 || h < v {
		t.Fatalf("no version before the history:\n%s", data)
	}
}

// A state file of a later format (a sitectl downgraded after a newer one
// wrote it) is refused, with what to do, and left as it is: read and
// written back, it would lose what this sitectl does not know of it.
func TestStateOfANewerFormatIsRefusedAndLeftAlone(t *testing.T) {
	l := Local{Store: Store{Dir: t.TempDir()}, PID: 42}
	s := verifiedSite(t)
	if err := l.Store.siteDir(s.Name); err != nil {
		t.Fatal(err)
	}
	newer := []byte(`{
  "version": 2,
  "previous_mode": "normal",
  "something_new": {"kept": true},
  "history": [{"time": "2026-12-01T00:00:00Z", "from": "normal", "to": "read-only", "uid": 0, "result": "ok", "extra": 1}]
}
`)
	path := l.Store.statePath(s.Name)
	if err := os.WriteFile(path, newer, FileMode); err != nil {
		t.Fatal(err)
	}
	for what, err := range map[string]error{
		"ReadState":   func() error { _, err := l.Store.ReadState(s.Name); return err }(),
		"ReadSummary": func() error { _, err := l.Store.ReadSummary(s.Name); return err }(),
		"Begin":       l.Begin(s, "read-only", "slow"),
	} {
		if err == nil || !strings.Contains(err.Error(), "newer sitectl") {
			t.Errorf("%s: %v, want a refusal of the newer format", what, err)
		}
	}
	if got, _ := os.ReadFile(path); !bytes.Equal(got, newer) {
		t.Errorf("the state file was rewritten:\n%s", got)
	}
}
