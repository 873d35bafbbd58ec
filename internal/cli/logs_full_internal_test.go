package cli

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/sitectl/sitectl/internal/status"
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

// sitectl status > /dev/full exited as if it had printed (0, or 3 for a
// site not running), since the status printers drop a write's error; it
// now fails, saying why. A status that fits is printed as before.
func TestStatusToAFullDisk(t *testing.T) {
	sites := []status.Site{
		{Site: "karl", File: "/etc/sitectl/sites/karl.toml", SiteFile: status.FileState{State: "ok"}, Mode: "normal", Unit: "site-karl.service", LoadState: "loaded"},
		{Site: "web", File: "/etc/sitectl/sites/web.toml", SiteFile: status.FileState{State: "ok"}, Mode: "normal", Unit: "site-web.service", LoadState: "loaded"},
	}
	now := func() time.Time { return time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC) }
	e := &env{stdout: fullOutput{}, now: now}
	err := e.printStatuses(sites)
	want := "cannot write the status to standard output: write /dev/stdout: no space left on device"
	if err == nil || codeOf(err) != exitFailed || !strings.Contains(err.Error(), want) {
		t.Errorf("status to a full disk: %v (exit %d), want %q, exit %d", err, codeOf(err), want, exitFailed)
	}
	var out bytes.Buffer
	e = &env{stdout: &out, now: now}
	if err := e.printStatuses(sites); err != nil || !strings.Contains(out.String(), "karl") || !strings.Contains(out.String(), "web") {
		t.Errorf("status that fits: %v\n%s", err, out.String())
	}
}
