//go:build integration

package integration

import (
	"fmt"
	"strings"
	"testing"
)

// A service masked while it serves (systemctl mask, by hand or by a
// configuration tool): systemd starts no masked unit, so sitectl refuses
// to restart it, says how to unmask it and leaves the site serving, and
// status says it would not start; it never says the site is down.
func TestMaskedServiceIsNotRestarted(t *testing.T) {
	port := freePort(t)
	h := newHost(t, map[string]string{"karl": goSite(port, modeSites)})
	h.run("systemctl", "start", "site-karl.socket")
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	getReply(t, url)
	pid := h.show("site-karl.service", "MainPID")["MainPID"]
	h.run("systemctl", "mask", "--runtime", "site-karl.service")
	for _, args := range [][]string{{"restart", "karl"}, {"mode", "karl", "read-only"}} {
		_, stderr, code := h.result("sitectl", args...)
		if code != 1 || !strings.Contains(stderr, "systemctl unmask site-karl.service") || strings.Contains(stderr, "down") {
			t.Errorf("sitectl %v of the masked service: exit %d, want 1 and how to unmask it\n%s", args, code, stderr)
		}
	}
	if now := h.show("site-karl.service", "MainPID")["MainPID"]; now != pid {
		t.Errorf("the masked service's main PID went from %s to %s", pid, now)
	}
	if r := getReply(t, url); r.Mode != "normal" {
		t.Errorf("the site answers in mode %q", r.Mode)
	}
	if out, _, _ := h.result("sitectl", "status", "karl"); !strings.Contains(out, "masked") {
		t.Errorf("sitectl status karl does not say it is masked:\n%s", out)
	}
	h.run("systemctl", "unmask", "--runtime", "site-karl.service")
	h.run("sitectl", "restart", "karl")
	getReply(t, url)
}
