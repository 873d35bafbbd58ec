package flow

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/sitectl/sitectl/internal/modes"
)

// The steps of a change that print no progress line are marked for
// SITECTL_TRACE, in the order they happen, between the progress lines.
func TestTraceMarksTheStepsOfAChange(t *testing.T) {
	e, _ := newEnv(t)
	var steps []string
	e.Progress = func(format string, args ...any) { steps = append(steps, "progress: "+fmt.Sprintf(format, args...)) }
	e.Trace = func(format string, args ...any) { steps = append(steps, "trace: "+fmt.Sprintf(format, args...)) }
	rep, err := SwitchMode(context.Background(), e, testSite(t), "read-only", Options{})
	if err != nil || rep.Result != modes.ResultOK {
		t.Fatalf("switch: %+v, %v", rep, err)
	}
	var traced []string
	for _, s := range steps {
		if after, ok := strings.CutPrefix(s, "trace: "); ok {
			traced = append(traced, after)
		}
	}
	want := []string{
		"karl: checked that the change can be made",
		"karl: systemd's restart job of site-karl.service is done",
		"karl: verified that pid 110 serves mode read-only",
		"karl: recorded the outcome (ok) in the history",
	}
	if !slices.Equal(traced, want) {
		t.Errorf("traced\n%s\nwant\n%s", strings.Join(traced, "\n"), strings.Join(want, "\n"))
	}
	// Each mark comes where the step it ends ends: after its progress line.
	order := func(first, then string) {
		t.Helper()
		if i, j := slices.Index(steps, first), slices.Index(steps, then); i < 0 || j < 0 || i > j {
			t.Errorf("%q does not come before %q in\n%s", first, then, strings.Join(steps, "\n"))
		}
	}
	order("trace: "+want[0], "progress: karl: normal → read-only")
	order("progress: karl: restarting site-karl.service", "trace: "+want[1])
	order("progress: karl: verifying that pid 110 serves mode read-only", "trace: "+want[2])
	order("progress: karl: serving in mode read-only (main PID 110) after 0.5s", "trace: "+want[3])
}
