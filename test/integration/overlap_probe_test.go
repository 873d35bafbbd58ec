//go:build integration

package integration

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// overlapProbeModes: a mode whose new generation starts for longer than
// a switch's timeout allows, and one whose probe answers 404 (PROBE_OK
// unset).
const overlapProbeModes = `handoff = "overlap"

[probe]
path = "/env?name=PROBE_OK"
timeout = "3s"

[modes.normal]
environment = { PROBE_OK = "1" }

[modes.nook]
environment = { READ_ONLY = "1" }

[modes.slow]
environment = { PROBE_OK = "1", WEBAPP_START_DELAY = "30s" }
`

// An overlap site's new generation that fails its probe fails the switch
// within the probe's timeout, not the launcher's start timeout, and the
// operator reads the probe's answer; the old generation serves on.
func TestOverlapProbeFailureIsReported(t *testing.T) {
	port := freePort(t)
	h := newHost(t, map[string]string{"ovl": goSite(port, overlapProbeModes)})
	h.run("systemctl", "start", "site-ovl.socket")
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	before := getReply(t, url)
	launcher := h.show("site-ovl.service", "MainPID")["MainPID"]

	start := time.Now()
	r, code, stderr := h.mode("ovl", "nook", "--timeout", "30s")
	took := time.Since(start)
	t.Logf("exit %d after %s: %s", code, took.Round(time.Millisecond), r.Reason)
	if code != 4 || r.Result != "rolled-back" || !strings.Contains(r.Reason, "failed its probe: GET http://generation/env?name=PROBE_OK: status 404, want 200") {
		t.Errorf("exit %d (want 4) after %s, %+v\n%s", code, took, r, stderr)
	}
	// The probe's 3s, and the start at idle priority, well within the
	// switch's 18s.
	if took > 15*time.Second {
		t.Errorf("the switch took %s with a probe timeout of 3s", took)
	}
	if got := h.show("site-ovl.service", "MainPID")["MainPID"]; got != launcher {
		t.Errorf("the launcher was main PID %s, now %s: the site was restarted cold", launcher, got)
	}
	if after := getReply(t, url); after.PID != before.PID || after.Mode != "normal" {
		t.Errorf("the serving generation changed: before %+v, after %+v", before, after)
	}
}
