//go:build integration

package integration

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
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

// A service masked while the site is idle: the first request fails the
// socket (systemd starts no masked unit), and visitors are refused from
// then on. status and list said idle (exit 0), and status advised a
// daemon-reload; now the site is stopped, and status says the service is
// masked and how to unmask it, before and after that request.
func TestMaskedIdleServiceIsStopped(t *testing.T) {
	port := freePort(t)
	h := newHost(t, map[string]string{"karl": goSite(port, modeSites)})
	h.run("systemctl", "start", "site-karl.socket")
	h.run("systemctl", "mask", "--runtime", "site-karl.service")
	check := func(when string) {
		t.Helper()
		st, code := h.statusOf("karl")
		if code != 3 || st.Running || (st.State != "stopped" && st.State != "failed") {
			t.Errorf("sitectl status karl %s: exit %d, %+v; want 3, not running", when, code, st)
		}
		out, _, _ := h.result("sitectl", "status", "karl")
		if !strings.Contains(out, "systemctl unmask site-karl.service") || strings.Contains(out, "daemon-reload") {
			t.Errorf("sitectl status karl %s does not say how to unmask it:\n%s", when, out)
		}
		if got, _ := h.everySite("list"); got["karl"].Running {
			t.Errorf("sitectl list %s: %+v", when, got["karl"])
		}
	}
	check("while its socket listens")
	if _, err := (&http.Client{Timeout: 5 * time.Second}).Get(fmt.Sprintf("http://127.0.0.1:%d/", port)); err == nil {
		t.Errorf("a masked service answered")
	}
	h.waitFor("the socket to fail", 10*time.Second, func() bool {
		return h.show("site-karl.socket", "ActiveState")["ActiveState"] == "failed"
	})
	check("once the first request failed its socket")
}
