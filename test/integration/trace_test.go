//go:build integration

package integration

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
)

// traceSteps are the steps of SITECTL_TRACE=1's lines in stderr, in order,
// after checking that each line's time since the start is the one before
// it plus its own time, to the rounding of the printed figures.
func traceSteps(t *testing.T, stderr string) []string {
	t.Helper()
	var steps []string
	var last float64
	for _, line := range strings.Split(strings.TrimSpace(stderr), "\n") {
		rest, ok := strings.CutPrefix(line, "sitectl: trace: ")
		if !ok {
			t.Errorf("a line of stderr that is not a step: %q", line)
			continue
		}
		f := strings.Fields(rest)
		if len(f) < 5 || f[1] != "ms" || f[3] != "ms" {
			t.Fatalf("a step line not as documented: %q", line)
		}
		at, err1 := strconv.ParseFloat(f[0], 64)
		since, err2 := strconv.ParseFloat(f[2], 64)
		if err1 != nil || err2 != nil || since < 0 || at+0.015 < last+since || at-0.015 > last+since {
			t.Errorf("step %q: at %s ms, %s ms after the step before at %.2f ms", line, f[0], f[2], last)
		}
		last = at
		steps = append(steps, strings.Join(f[4:], " "))
	}
	return steps
}

// inOrder fails t unless each of want begins some step, in want's order.
func inOrder(t *testing.T, steps, want []string) {
	t.Helper()
	at := 0
	for _, s := range steps {
		if at < len(want) && strings.HasPrefix(s, want[at]) {
			at++
		}
	}
	if at < len(want) {
		t.Errorf("steps:\n%s\nmissing, in this order from: %q", strings.Join(steps, "\n"), want[at])
	}
}

// SITECTL_TRACE=1 times each step of a restart and of status on stderr,
// on a real systemd, and sitectl prints nothing of it without.
func TestTraceTimesTheStepsOfACommand(t *testing.T) {
	port := freePort(t)
	h := newHost(t, map[string]string{"traced": goSite(port, "settle_time = \"100ms\"\n[probe]\npath = \"/\"\n")})
	h.run("systemctl", "start", "site-traced.socket")
	getReply(t, fmt.Sprintf("http://127.0.0.1:%d/", port))

	out, stderr, code := h.result("sitectl", "restart", "traced")
	if code != 0 || stderr != "" || !strings.Contains(out, "traced") {
		t.Fatalf("restart without tracing: exit %d, stdout %q, stderr %q", code, out, stderr)
	}
	out, stderr, code = h.result("env", "SITECTL_TRACE=1", "sitectl", "restart", "traced")
	if code != 0 || !strings.Contains(out, "traced") {
		t.Fatalf("traced restart: exit %d, stdout %q, stderr %q", code, out, stderr)
	}
	steps := traceSteps(t, stderr)
	inOrder(t, steps, []string{
		"read the command line: sitectl restart",
		"read and checked the site file of traced",
		"connected to systemd",
		"locked site traced",
		"traced: checked that the change can be made",
		"traced: normal → normal",
		"traced: restarting site-traced.service",
		"traced: systemd's restart job of site-traced.service is done",
		"traced: verifying that pid",
		"traced: verified that pid",
		"traced: serving in mode normal",
		"traced: recorded the outcome (ok) in the history",
		"printed the report",
		"exit 0",
	})

	out, stderr, code = h.result("env", "SITECTL_TRACE=1", "sitectl", "status", "traced")
	if code != 0 || !strings.Contains(out, "traced") {
		t.Fatalf("traced status: exit %d, stdout %q, stderr %q", code, out, stderr)
	}
	steps = traceSteps(t, stderr)
	inOrder(t, steps, []string{"read the command line: sitectl status", "connected to systemd", "gathered the status of 1 sites", "printed the status", "exit 0"})
	inOrder(t, steps, []string{"connected to systemd", "read the last failure and cleanup of site traced from the journal", "gathered the status"})

	// A failed command says its code last.
	_, stderr, code = h.result("env", "SITECTL_TRACE=1", "sitectl", "restart", "nosuchsite")
	if code != 3 || !strings.Contains(stderr, "sitectl: error: site nosuchsite does not exist") || !strings.HasSuffix(strings.TrimSpace(stderr), "ms  exit 3") {
		t.Errorf("traced restart of no site: exit %d, stderr %q", code, stderr)
	}
}
