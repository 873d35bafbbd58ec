package cli

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestLogsToAFullDisk: sitectl logs > /dev/full fails, exit 1, and says
// why: the journal saved to a file on a full disk is not a success, as a
// pager that quit (or a reader gone) is.
func TestLogsToAFullDisk(t *testing.T) {
	var stderr bytes.Buffer
	e := &env{stdout: fullOutput{}, stderr: &stderr}
	argv := []string{"sh", "-c", "printf 'a line of the app\\nanother\\n'"}
	err := e.runJournal(context.Background(), argv, logOptions{output: "short", noPager: true})
	want := "cannot write the journal to standard output: write /dev/stdout: no space left on device"
	if err == nil || codeOf(err) != exitFailed || !strings.Contains(err.Error(), want) {
		t.Errorf("logs to a full disk: %v (exit %d), want %q, exit %d", err, codeOf(err), want, exitFailed)
	}
}
