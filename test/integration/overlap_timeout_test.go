//go:build integration

package integration

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// A switch of an overlap site that times out while its new generation is
// still starting abandons the handover: the new generation is stopped and
// never takes over, the generation that served the previous mode serves
// on (no cold restart: the launcher keeps its PID), and sitectl exits 4
// with how far the new generation had come.
func TestOverlapSwitchTimeoutAbandonsTheNewGeneration(t *testing.T) {
	port := freePort(t)
	h := newHost(t, map[string]string{"ovl": goSite(port, overlapProbeModes)})
	h.run("systemctl", "start", "site-ovl.socket")
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	before := getReply(t, url)
	launcher := h.show("site-ovl.service", "MainPID")["MainPID"]

	start := time.Now()
	r, code, stderr := h.mode("ovl", "slow", "--timeout", "10s")
	took := time.Since(start)
	if code != 4 || r.Result != "rolled-back" || !strings.Contains(r.Reason, "generation 2 will not take over: it had not said READY=1") {
		t.Errorf("exit %d (want 4) after %s, %+v\n%s", code, took, r, stderr)
	}
	if took > 20*time.Second {
		t.Errorf("the switch took %s with --timeout 10s", took)
	}
	t.Logf("exit %d after %s: %s", code, took.Round(time.Millisecond), r.Reason)
	if got := h.show("site-ovl.service", "MainPID")["MainPID"]; got != launcher || r.MainPID == 0 || fmt.Sprint(r.MainPID) != launcher {
		t.Errorf("the launcher was main PID %s, now %s (report: %d): the site was restarted cold", launcher, got, r.MainPID)
	}
	after := getReply(t, url)
	if after.PID != before.PID || after.Generation != before.Generation || after.Mode != "normal" {
		t.Errorf("the serving generation changed: before %+v, after %+v", before, after)
	}
	// Generation 2 is gone, so it cannot take over later, and the reload
	// job is over.
	h.waitFor("generation 2 to be stopped", 30*time.Second, func() bool {
		out, _ := h.try("journalctl", "-u", "site-ovl.service", "-o", "cat", "--no-pager")
		return strings.Contains(out, "generation 2 stopped")
	})
	h.waitFor("the reload job to end", 30*time.Second, func() bool {
		return h.show("site-ovl.service", "ActiveState")["ActiveState"] == "active"
	})
	if after := getReply(t, url); after.PID != before.PID || after.Mode != "normal" {
		t.Errorf("after the reload ended, %+v serves, want %+v", after, before)
	}
	// The next switch hands over as usual.
	if r, code, stderr := h.mode("ovl", "normal", "--force"); code != 0 || r.Result != "ok" {
		t.Errorf("the switch after: exit %d, %+v\n%s", code, r, stderr)
	}
}

// The same on gunicorn, whose new generation says READY=1 before its
// workers have imported the app, and takes seconds to stop while they do:
// sitectl must not take the unit, still reloading, for one that is down
// (it reported exit 5, "rollback failed", while the previous mode served).
func TestOverlapSwitchTimeoutAbandonsGunicorn(t *testing.T) {
	port := freePort(t)
	h := newHost(t, map[string]string{"gun": gunicornSite(port, `handoff = "overlap"
[probe]
path = "/"
timeout = "10s"

[modes.heavy]
environment = { WSGI_IMPORT_CPU_SECONDS = "12" }
`)})
	h.run("systemctl", "start", "site-gun.socket")
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	before := getReply(t, url)
	launcher := h.show("site-gun.service", "MainPID")["MainPID"]

	r, code, stderr := h.mode("gun", "heavy", "--timeout", "8s")
	t.Logf("exit %d: %s", code, r.Reason)
	if code != 4 || r.Result != "rolled-back" || !strings.Contains(r.Reason, "generation 2 will not take over") {
		t.Errorf("exit %d (want 4), %+v\n%s", code, r, stderr)
	}
	if got := h.show("site-gun.service", "MainPID")["MainPID"]; got != launcher {
		t.Errorf("the launcher was main PID %s, now %s: the site was restarted cold", launcher, got)
	}
	after := getReply(t, url)
	if after.PPID != before.PPID || after.Mode != "normal" {
		t.Errorf("the serving generation changed: before %+v, after %+v", before, after)
	}
	h.waitFor("the reload job to end", 30*time.Second, func() bool {
		return h.show("site-gun.service", "ActiveState")["ActiveState"] == "active"
	})
	if after := getReply(t, url); after.PPID != before.PPID || after.Mode != "normal" {
		t.Errorf("after the reload ended, %+v serves, want %+v", after, before)
	}
}
