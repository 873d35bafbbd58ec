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

// A masked socket unit, while it listens or once stopped: a change was
// told "the site file changed" with advice that never helped, or stopped
// the service and reported the site down (exit 5, rollback-failed) while
// systemd had simply refused the job. It is refused before anything is
// done (exit 1), naming the mask and the command that lifts it.
func TestMaskedSocketIsNotRestarted(t *testing.T) {
	port := freePort(t)
	h := newHost(t, map[string]string{"karl": goSite(port, modeSites)})
	h.run("systemctl", "start", "site-karl.socket")
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	getReply(t, url)

	h.run("systemctl", "mask", "--runtime", "site-karl.socket")
	for _, args := range [][]string{{"mode", "karl", "read-only"}, {"restart", "karl"}} {
		out, stderr, code := h.result("sitectl", args...)
		if code != 1 || !strings.Contains(stderr, "site-karl.socket is masked") || !strings.Contains(stderr, "systemctl unmask site-karl.socket") {
			t.Errorf("sitectl %s with the socket masked and listening: exit %d, want 1\n%s%s", strings.Join(args, " "), code, out, stderr)
		}
	}
	if r := getReply(t, url); r.Mode != "normal" {
		t.Errorf("the site serves %+v", r)
	}

	h.run("systemctl", "stop", "site-karl.socket", "site-karl.service")
	out, stderr, code := h.result("sitectl", "mode", "karl", "read-only")
	if code != 1 || !strings.Contains(stderr, "site-karl.socket is masked") {
		t.Errorf("sitectl mode with the socket masked and stopped: exit %d, want 1\n%s%s", code, out, stderr)
	}
	if hist := h.run("sitectl", "history", "karl"); strings.Contains(hist, "rollback-failed") || strings.Contains(hist, "read-only") {
		t.Errorf("history after the refusals:\n%s", hist)
	}
	h.run("systemctl", "unmask", "--runtime", "site-karl.socket")
	if out, stderr, code := h.result("sitectl", "mode", "karl", "read-only"); code != 0 {
		t.Errorf("sitectl mode once unmasked: exit %d\n%s%s", code, out, stderr)
	}
}
