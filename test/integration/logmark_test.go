//go:build integration

package integration

import (
	"strings"
	"testing"
	"time"
)

// What the journal got before a test's mark never counts as logged after
// it, even in the same second: journald stamps the kernel log's backlog (the
// lines other sandboxes' generators left there) with the time it imports
// it, at its boot, shortly before a test takes its mark. A mark in whole
// seconds failed TestGeneratorWarnsOfPID1sOpenFileLimit in CI with the
// benchmark's warning about 10,000 sites.
func TestLogMarkCountsNothingFromBefore(t *testing.T) {
	h := newHost(t, nil)
	logged := func(line string) {
		h.run("logger", "-t", "sitectl-generator", "-p", "warning", line)
		h.waitFor("journald to take "+line, 5*time.Second, func() bool {
			return strings.Contains(h.run("journalctl", "--no-pager", "-o", "cat", "-t", "sitectl-generator"), line)
		})
	}
	for i := 0; i < 5; i++ {
		logged("before the mark")
		since := h.logMark()
		logged("after the mark")
		got := h.generatorLog(since, "-p", "warning")
		if strings.Contains(got, "before the mark") || !strings.Contains(got, "after the mark") {
			t.Fatalf("round %d: the log since the mark %s:\n%s", i+1, since, got)
		}
	}
}
