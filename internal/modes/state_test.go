package modes

import (
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestReadSummaryIsTheStateWithoutHistory(t *testing.T) {
	st := Store{Dir: t.TempDir()}
	since := time.Date(2025, 5, 1, 12, 0, 0, 0, time.UTC)
	var long []Entry
	for i := 0; i < MaxHistory; i++ {
		long = append(long, Entry{Time: since.Add(time.Duration(i) * time.Minute), From: "normal", To: "maintenance", UID: 1000, Result: ResultOK,
			Reason: strings.Repeat("a long reason ", 10)})
	}
	for name, s := range map[string]State{
		"empty":   {},
		"short":   {PreviousMode: "normal", ChangedAt: since, History: long[:2]},
		"pending": {PreviousMode: "normal", ChangedAt: since, Pending: &Pending{Since: since, From: "normal", To: "read-only", UID: 1000, PID: 42}, History: long[:1]},
		"long":    {PreviousMode: "maintenance", ChangedAt: since, History: long},
	} {
		if err := st.WriteState(name, s); err != nil {
			t.Fatal(err)
		}
		got, err := st.ReadSummary(name)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		want, err := st.ReadState(name)
		if err != nil {
			t.Fatal(err)
		}
		want.History = nil
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: ReadSummary = %+v, want %+v", name, got, want)
		}
	}
	if fi, _ := os.Stat(st.statePath("long")); fi.Size() <= summaryHead {
		t.Fatalf("the long state is only %d bytes: it does not test reading the head", fi.Size())
	}
	if got, err := st.ReadSummary("none"); err != nil || !reflect.DeepEqual(got, State{}) {
		t.Errorf("no state: %+v, %v", got, err)
	}
}

// The history is not even read: a state whose history is damaged beyond the
// head still has its summary, while ReadState reports the damage.
func TestReadSummaryStopsAtTheHistory(t *testing.T) {
	st := Store{Dir: t.TempDir()}
	if err := st.WriteState("karl", State{PreviousMode: "normal"}); err != nil {
		t.Fatal(err)
	}
	data := `{"previous_mode": "live", "history": [` + strings.Repeat(`{"to": "x"},`, summaryHead/10) + `this is not JSON`
	if err := os.WriteFile(st.statePath("karl"), []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	if s, err := st.ReadSummary("karl"); err != nil || s.PreviousMode != "live" {
		t.Errorf("ReadSummary = %+v, %v", s, err)
	}
	if _, err := st.ReadState("karl"); err == nil {
		t.Error("ReadState read a damaged state")
	}
	// Damage before the history is still reported.
	if err := os.WriteFile(st.statePath("karl"), []byte(`{"previous_mode": 3}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := st.ReadSummary("karl"); err == nil || !strings.Contains(err.Error(), "damaged") {
		t.Errorf("damaged summary: %v", err)
	}
}
