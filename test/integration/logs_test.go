//go:build integration

package integration

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// Issue 12.9: sitectl logs shows a site's app, its reloads and its
// cleanups in one stream, and the app's own lines carry the site's
// identifier (journalctl -t site-NAME), not sitectl's.
func TestLogsShowOneStream(t *testing.T) {
	port, other := freePort(t), freePort(t)
	h := newHost(t, map[string]string{
		"shop":  gunicornSite(port, `reload_trigger = "/srv/wsgi/restart.txt"`),
		"other": goSite(other, ""),
	})
	h.run("systemctl", "start", "site-shop.socket", "site-shop-reload.path", "site-other.socket")
	getReply(t, fmt.Sprintf("http://127.0.0.1:%d/", port))
	getReply(t, fmt.Sprintf("http://127.0.0.1:%d/", other))
	h.run("touch", "/srv/wsgi/restart.txt")
	h.waitFor("the touch to restart the site", time.Minute, func() bool {
		out, _ := h.try("journalctl", "--no-pager", "-o", "cat", "SITECTL_EVENT=cleanup", "SITECTL_SITE=shop")
		return strings.Contains(out, "cleanup")
	})
	h.waitFor("the reload unit to finish", time.Minute, func() bool {
		return h.show("site-shop-reload.service", "ActiveState")["ActiveState"] == "inactive"
	})
	h.run("journalctl", "--sync")

	// The app's lines and the cleanup's: tagged with the site, found by -t.
	tagged := h.run("journalctl", "--no-pager", "-t", "site-shop")
	if !strings.Contains(tagged, "Booting worker") || !strings.Contains(tagged, "site-shop[") || !strings.Contains(tagged, "cleanup ok") {
		t.Errorf("journalctl -t site-shop lacks gunicorn's lines:\n%s", tagged)
	}
	if untagged := h.run("journalctl", "--no-pager", "-u", "site-shop.service", "-t", "sitectl"); strings.Contains(untagged, "Booting worker") {
		t.Errorf("gunicorn's lines are still tagged sitectl:\n%s", untagged)
	}

	logs, stderr, code := h.result("sitectl", "logs", "shop", "--no-pager")
	for _, want := range []string{
		"site-shop[",                    // the app and sitectl's verbs in the unit
		"Booting worker",                // gunicorn's own line
		"cleanup ok",                    // the cleanup record after the restart
		"site-shop-reload.service",      // the touch's reload run
		"Listening on site-shop.socket", // systemd about the socket
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("sitectl logs shop (exit %d, %s) lacks %q:\n%s", code, stderr, want, logs)
		}
	}
	if strings.Contains(logs, "site-other") {
		t.Errorf("sitectl logs shop shows another site:\n%s", logs)
	}
	if out := h.run("sitectl", "logs", "shop", "-n", "3", "--no-pager", "-o", "cat"); len(strings.Split(strings.TrimSpace(out), "\n")) != 3 {
		t.Errorf("sitectl logs -n 3:\n%s", out)
	}
	if out := h.run("sitectl", "logs", "shop", "--since", "1h", "--no-pager"); !strings.Contains(out, "Booting worker") {
		t.Errorf("sitectl logs --since 1h:\n%s", out)
	}
	if _, stderr, code := h.result("sitectl", "logs", "shop", "--since", "soon"); code != 2 || !strings.Contains(stderr, "is not a time") {
		t.Errorf("a bad --since: exit %d %q", code, stderr)
	}
	if _, _, code := h.result("sitectl", "logs", "nosuch"); code != 3 {
		t.Errorf("logs of a site that does not exist: exit %d", code)
	}
	// -f follows until stopped.
	out, _, code := h.result("timeout", "--preserve-status", "--signal=INT", "3", "sitectl", "logs", "shop", "-f", "-n", "1")
	if code != 0 || strings.TrimSpace(out) == "" {
		t.Errorf("sitectl logs -f stopped by SIGINT: exit %d, %q", code, out)
	}
}

// An app's journal lines reach sitectl logs' reader as text, in every
// output format: the escape sequences an app writes (ESC [2J clears the
// screen, ESC ]0; sets the terminal's title) are shown escaped, not acted
// on by root's terminal, piped or through the pager.
func TestLogsEscapeTheAppsControlCharacters(t *testing.T) {
	port := freePort(t)
	h := newHost(t, map[string]string{"evil": fmt.Sprintf(`exec = ["/bin/sh", "-c", "printf 'evil \\033[2J\\033]0;pwned\\007\\r end\\n' >&2; exec /usr/local/bin/webapp"]
readiness = "notify"
[[listen]]
address = "127.0.0.1:%d"
`, port)})
	h.run("systemctl", "start", "site-evil.socket")
	getReply(t, fmt.Sprintf("http://127.0.0.1:%d/", port))
	h.run("journalctl", "--sync")
	escaped := `evil \x1b[2J\x1b]0;pwned\x07\r end`
	for _, o := range []string{"cat", "short", "short-precise", "verbose", "with-unit"} {
		out := h.run("sitectl", "logs", "evil", "--no-pager", "-o", o)
		if strings.ContainsAny(out, "\x1b\x07\r") || !strings.Contains(out, escaped) {
			t.Errorf("sitectl logs -o %s passes control characters on, or hides the line:\n%q", o, out)
		}
	}
	// JSON escapes them itself.
	if out := h.run("sitectl", "logs", "evil", "--no-pager", "-o", "json"); strings.ContainsAny(out, "\x1b\x07\r") || !strings.Contains(out, `"MESSAGE":[101,118,105,108,32,27,`) {
		t.Errorf("sitectl logs -o json:\n%q", out)
	}
	// On a terminal, through the pager.
	h.run("script", "-qec", "env SYSTEMD_PAGERSECURE=0 PAGER='tee /tmp/paged' sitectl logs evil -o cat", "/dev/null")
	if paged := h.run("cat", "/tmp/paged"); strings.ContainsAny(paged, "\x1b\x07\r") || !strings.Contains(paged, escaped) {
		t.Errorf("sitectl logs -o cat through the pager:\n%q", paged)
	}
}
