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

// The -n of logs defaults to the journal's "all", which its help said as
// "(default -1)"; that of history takes 0 for all, which only its error
// said.
func TestLastLinesHelpSaysAll(t *testing.T) {
	for _, c := range []struct {
		verb, want, not string
	}{
		{"logs", "show only the last N lines (default all)", "default -1"},
		{"history", "show only the last N entries (0: all)", ""},
	} {
		var out bytes.Buffer
		if code := Main([]string{c.verb, "--help"}, &out, &out); code != 0 {
			t.Fatalf("%s --help: exit %d\n%s", c.verb, code, out.String())
		}
		if !strings.Contains(out.String(), c.want) || (c.not != "" && strings.Contains(out.String(), c.not)) {
			t.Errorf("%s --help does not say %q:\n%s", c.verb, c.want, out.String())
		}
	}
}
