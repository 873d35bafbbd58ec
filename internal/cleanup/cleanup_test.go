package cleanup

import (
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestRunHook(t *testing.T) {
	if msg := runHook(context.Background(), []string{"true"}, time.Second); msg != "" {
		t.Errorf("a succeeding hook reported %q", msg)
	}
	if msg := runHook(context.Background(), []string{"sh", "-c", "exit 3"}, time.Second); !strings.Contains(msg, "exit status 3") {
		t.Errorf("a failing hook reported %q", msg)
	}
	start := time.Now()
	msg := runHook(context.Background(), []string{"sleep", "30"}, 200*time.Millisecond)
	if !strings.Contains(msg, "did not finish within 200ms and was killed") {
		t.Errorf("a hanging hook reported %q", msg)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("a hanging hook held the cleanup for %s", d)
	}
	if msg := runHook(context.Background(), []string{"/nonexistent/hook"}, time.Second); !strings.Contains(msg, "no such file") {
		t.Errorf("a missing hook reported %q", msg)
	}
}

func TestReportResult(t *testing.T) {
	if r := (Report{}).result(); r != "ok" {
		t.Errorf("empty report: %s", r)
	}
	if r := (Report{HookFailures: []string{"x"}}).result(); r != "hook-failed" {
		t.Errorf("failed hook: %s", r)
	}
}

// What Send writes, Last reads back, with the field names and values as
// journalctl -o json prints them (a field that is not plain text as an
// array of bytes).
func TestRecordRoundTrip(t *testing.T) {
	rep := Report{Leftovers: []int{10, 11, 12}, Remaining: []int{12}, HooksRun: 2, HookFailures: []string{"/bin/a: exit status 1", "/bin/b: did not finish"}}
	want := rep.Record("karl")
	want.Time = time.UnixMicro(1700000000123456).UTC()
	want.HooksRun = 0 // in the message only
	for _, asBytes := range []bool{false, true} {
		entry := map[string]any{"__REALTIME_TIMESTAMP": "1700000000123456", "MESSAGE": want.Message()}
		for k, v := range want.fields() {
			entry[k] = v
			if asBytes {
				b := make([]int, len(v))
				for i := range []byte(v) {
					b[i] = int(v[i])
				}
				entry[k] = b
			}
		}
		data, _ := json.Marshal(entry)
		got, err := parseRecord(data)
		if err != nil || !reflect.DeepEqual(*got, want) {
			t.Errorf("as bytes %v: read back %+v, %v; want %+v", asBytes, got, err, want)
		}
	}
	if got, _ := parseRecord([]byte(`{"SITECTL_RESULT":"ok","SITECTL_HOOK_FAILURES":""}`)); got.HookFailures == nil || len(got.HookFailures) != 0 {
		t.Errorf("no hook failures read as %#v, want an empty list", got.HookFailures)
	}
}
