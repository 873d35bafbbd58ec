//go:build integration

package integration

import (
	"fmt"
	"strings"
	"testing"
)

// The app of site a owns its runtime directory, and links its launcher's
// control socket to site b's. Root's reload of a then sends nothing to
// b's launcher (SO_PEERCRED shows b's launcher is not a's main process):
// b serves on with the same generation, and a's journal says why its
// reload was refused.
func TestAppCannotPointRootAtAnotherLauncher(t *testing.T) {
	pa, pb := freePort(t), freePort(t)
	h := newHost(t, map[string]string{
		"a": goSite(pa, "handoff = \"overlap\"\n"),
		"b": goSite(pb, "handoff = \"overlap\"\n"),
	})
	h.run("systemctl", "start", "site-a.socket", "site-b.socket")
	urlA, urlB := fmt.Sprintf("http://127.0.0.1:%d/", pa), fmt.Sprintf("http://127.0.0.1:%d/", pb)
	getReply(t, urlA)
	before := getReply(t, urlB)
	since := h.logMark()

	h.run("ln", "-sf", "/run/site-b/control.sock", "/run/site-a/control.sock")
	out, stderr, code := h.result("sitectl", "reload", "a")
	if code == 0 {
		t.Errorf("sitectl reload a through another site's control socket: exit 0\n%s%s", out, stderr)
	}
	if after := getReply(t, urlB); after.PID != before.PID || after.Mode != before.Mode {
		t.Errorf("site b's generation changed: pid %d in mode %q, then pid %d in mode %q", before.PID, before.Mode, after.PID, after.Mode)
	}
	logged := h.run("journalctl", "--no-pager", "-o", "cat", "--since", since, "-u", "site-a.service")
	if !strings.Contains(logged, "is not the launcher's") || !strings.Contains(logged, "nothing was sent") {
		t.Errorf("site a's journal does not say why its reload was refused:\n%s", logged)
	}
	if b := h.run("journalctl", "--no-pager", "-o", "cat", "--since", since, "-u", "site-b.service"); strings.Contains(b, "generation 2") {
		t.Errorf("site b's launcher started a generation:\n%s", b)
	}
	getReply(t, urlA)
}
