//go:build integration

package integration

import (
	"fmt"
	"strings"
	"testing"
)

// The operator's typo plus a daemon-reload keeps on its socket a site
// whose service never started (an idle site: its socket listens for the
// first request), which has no last good copy, since prepare keeps one at
// each start: the generator stands in the version it last generated the
// site's units from. It had taken such a site's units away, and systemd
// closed its socket: visitors were refused, and stayed refused after the
// fix until a sitectl restart. The first request then starts the service
// from that version; the fix and a daemon-reload apply the file again.
func TestTypoKeepsAnIdleSiteListening(t *testing.T) {
	port := freePort(t)
	good := goSite(port, "")
	h := newHost(t, map[string]string{"idle": good})
	h.run("systemctl", "start", "site-idle.socket")
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	lastGood := "/var/lib/sitectl/sites/idle/last-good.toml"
	if out, err := h.try("test", "-e", lastGood); err == nil {
		t.Fatalf("the idle site has a last good copy before it ever started: %s", out)
	}
	if p := h.show("site-idle.service", "ActiveState", "ExecMainStartTimestampMonotonic"); p["ActiveState"] != "inactive" || p["ExecMainStartTimestampMonotonic"] != "0" {
		t.Fatalf("the site's service ran already: %v", p)
	}

	h.run("sh", "-c", `echo 'drain_timout = "5s"' >> /etc/sitectl/sites/idle.toml`)
	since := h.logMark()
	h.run("systemctl", "daemon-reload")

	if p := h.show("site-idle.socket", "LoadState", "ActiveState", "SubState"); p["LoadState"]+" "+p["ActiveState"]+" "+p["SubState"] != "loaded active listening" {
		t.Errorf("site-idle.socket after the typo and a daemon-reload: %v, want loaded active listening", p)
	}
	if out := h.run("ss", "-Hltn", fmt.Sprintf("sport = :%d", port)); !strings.Contains(out, fmt.Sprintf("127.0.0.1:%d", port)) {
		t.Errorf("nothing listens on port %d after the typo and a daemon-reload: %q", port, out)
	}
	if got := h.run("cat", lastGood); got != good {
		t.Errorf("the copy the generator kept is\n%s\nwant the file its units were generated from\n%s", got, good)
	}
	logged := h.generatorLog(since, "-p", "err")
	if !strings.Contains(logged, "/etc/sitectl/sites/idle.toml has 1 mistake: running the last good version: units generated from "+lastGood+" (the version its units were last generated from") {
		t.Errorf("the journal does not say the site runs the version its units were generated from:\n%s", logged)
	}
	stdout, _, _ := h.result("sitectl", "status", "idle")
	if !strings.Contains(stdout, "running the last good version") || !strings.Contains(stdout, "socket: listening") {
		t.Errorf("status after the typo:\n%s", stdout)
	}

	// The first request starts the service, from that version.
	if r := getReply(t, url); r.Mode != "normal" {
		t.Errorf("the first request after the typo: mode %q", r.Mode)
	}
	if p := h.show("site-idle.service", "SourcePath", "ActiveState"); p["SourcePath"] != lastGood || p["ActiveState"] != "active" {
		t.Errorf("site-idle.service after the first request: %v, want active from %s", p, lastGood)
	}

	h.writeSite("idle", good)
	h.run("systemctl", "daemon-reload")
	if out, stderr, code := h.result("sitectl", "restart", "idle"); code != 0 || strings.Contains(stderr, "refused") {
		t.Fatalf("sitectl restart after the fix: exit %d\n%s%s", code, out, stderr)
	}
	if p := h.show("site-idle.service", "SourcePath"); p["SourcePath"] != "/etc/sitectl/sites/idle.toml" {
		t.Errorf("after the fix and a daemon-reload: %v", p)
	}
	getReply(t, url)
}
