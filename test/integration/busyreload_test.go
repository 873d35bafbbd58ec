//go:build integration

package integration

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// slowReloads makes every daemon-reload of h take about secs seconds, as
// one at 10,000 sites does (docs/scale.md: 13 to 19.5 s): a generator that
// sleeps while /run/slow-reload exists. PID 1 answers nothing, new
// connections included, until its reload is done.
func slowReloads(h *host, secs int) {
	h.t.Helper()
	h.writeFile("/etc/systemd/system-generators/zz-slow-reload",
		fmt.Sprintf("#!/bin/sh\n[ -e /run/slow-reload ] && sleep %d\nexit 0\n", secs), 0o755)
	h.run("systemctl", "daemon-reload")
	h.run("touch", "/run/slow-reload")
}

// A change of one site that begins while another sitectl's daemon-reload
// (an enable of another site, say) keeps PID 1 busy for longer than 10 s
// waits for systemd within its --timeout and changes the site, instead of
// giving up at once and saying that systemd cannot be reached.
func TestChangeDuringAnotherSitesDaemonReload(t *testing.T) {
	portA, portB := freePort(t), freePort(t)
	h := newHost(t, map[string]string{"anna": goSite(portA, ""), "bert": goSite(portB, "")})
	h.run("systemctl", "start", "site-anna.socket", "site-bert.socket")
	getReply(t, fmt.Sprintf("http://127.0.0.1:%d/", portA))
	slowReloads(h, 16)
	script := "systemctl daemon-reload & r=$!; sleep 2; s=$(date +%s); sitectl restart anna; rc=$?; echo \"rc=$rc after $(( $(date +%s) - s ))s\" >&2; wait $r; exit $rc"
	start := time.Now()
	out, stderr, code := h.result("bash", "-c", script)
	t.Logf("exit %d after %s\n%s%s", code, time.Since(start), out, stderr)
	if code != 0 {
		t.Errorf("sitectl restart during another sitectl's daemon-reload: exit %d, want 0\n%s%s", code, out, stderr)
	}
	if strings.Contains(stderr, "cannot be reached") {
		t.Errorf("systemd busy with a reload was reported unreachable:\n%s", stderr)
	}
	getReply(t, fmt.Sprintf("http://127.0.0.1:%d/", portA))
}
