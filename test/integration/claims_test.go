//go:build integration

package integration

import (
	"fmt"
	"strings"
	"testing"
)

// A site whose socket listens but whose service never started (no visitor
// came yet) has no last good copy. An edit of another site's file onto
// its listener, or a copy of its file under an earlier name, used to take
// its units away at the next daemon-reload, by the order of names, and
// systemd closed its socket: connections refused. The site whose units
// had the listener keeps it; the file that claims it gets the error, in
// sitectl check as in the generator.
func TestAFileClaimingAListeningSitesListenerGetsTheError(t *testing.T) {
	for _, c := range []struct {
		name string
		// claim puts the claiming file in place, and names it
		claim func(h *host, idlePort int) string
	}{
		{"an edit", func(h *host, idlePort int) string {
			h.writeSite("api", goSite(idlePort, ""))
			return "api"
		}},
		{"a copy under an earlier name", func(h *host, idlePort int) string {
			h.run("cp", "/etc/sitectl/sites/web.toml", "/etc/sitectl/sites/aaa.toml")
			return "aaa"
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			pa, pw := freePort(t), freePort(t)
			h := newHost(t, map[string]string{"api": goSite(pa, ""), "web": goSite(pw, "")})
			h.run("systemctl", "start", "site-api.socket", "site-web.socket")
			ua, uw := fmt.Sprintf("http://127.0.0.1:%d/", pa), fmt.Sprintf("http://127.0.0.1:%d/", pw)
			if r := getReply(t, ua); r.Site != "api" {
				t.Fatalf("api's port answers %+v", r)
			}
			// web listens, and never started.
			if st := h.show("site-web.service", "ActiveState")["ActiveState"]; st != "inactive" {
				t.Fatalf("site-web.service is %s before the claim, want inactive", st)
			}

			claimer := c.claim(h, pw)
			file := "/etc/sitectl/sites/" + claimer + ".toml"
			all := []string{"check", "/etc/sitectl/sites/web.toml", file}
			if claimer != "api" {
				all = append(all, "/etc/sitectl/sites/api.toml")
			}
			for _, args := range [][]string{{"check", file}, all} {
				_, stderr, code := h.result("sitectl", args...)
				if code != 2 || !strings.HasPrefix(stderr, file+":") || strings.Contains(stderr, "\n/etc/sitectl/sites/web.toml:") {
					t.Errorf("sitectl %s: exit %d, want 2 with the error on %s, none on web.toml\n%s", strings.Join(args, " "), code, file, stderr)
				}
			}
			h.run("systemctl", "daemon-reload")

			if st := h.show("site-web.socket", "LoadState", "ActiveState"); st["LoadState"] != "loaded" || st["ActiveState"] != "active" {
				t.Errorf("site-web.socket after the daemon-reload: %v", st)
			}
			if err := siteAnswers(uw, "normal"); err != nil {
				t.Fatalf("web's port after the daemon-reload: %v", err)
			}
			if r := getReply(t, uw); r.Site != "web" {
				t.Errorf("web's port answers site %q", r.Site)
			}
			if r := getReply(t, ua); r.Site != "api" {
				t.Errorf("api's port answers site %q", r.Site)
			}
			out := h.run("sitectl", "list")
			if !strings.Contains(out, "warning: "+file+":") || strings.Contains(out, "warning: /etc/sitectl/sites/web.toml:") {
				t.Errorf("sitectl list does not warn of %s's file alone:\n%s", claimer, out)
			}
			// A second daemon-reload decides the same way.
			h.run("systemctl", "daemon-reload")
			if r := getReply(t, uw); r.Site != "web" {
				t.Errorf("web's port after a second daemon-reload answers site %q", r.Site)
			}
		})
	}
}

// A site file that someone other than root may write says which programs
// run as whom and which files root hands to the app: such a file is
// refused, by the generator as by check. A site that runs keeps running
// from its last good copy; a file put in place by another user gets no
// units, so it cannot have root read /etc/shadow for its app.
func TestSiteFileOthersMayWriteIsRefused(t *testing.T) {
	port, evilPort := freePort(t), freePort(t)
	h := newHost(t, map[string]string{"karl": goSite(port, "")})
	h.run("systemctl", "start", "site-karl.socket")
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	getReply(t, url) // karl runs: it has a last good copy

	// karl's file made writable by all, by mistake.
	h.run("chmod", "0666", "/etc/sitectl/sites/karl.toml")
	// Whoever may write it asks root for /etc/shadow through it.
	h.run("sh", "-c", fmt.Sprintf("printf '%%s' '%s' > /etc/sitectl/sites/karl.toml", goSite(port, `credentials = { x = "/etc/shadow" }`)))
	// A file nobody owns, which asks root for /etc/shadow.
	h.writeSite("evil", fmt.Sprintf("exec = [\"/bin/sh\", \"-c\", \"head -c 5 $CREDENTIALS_DIRECTORY/x; exec /usr/local/bin/webapp\"]\nreadiness = \"notify\"\n[credentials]\nx = \"/etc/shadow\"\n[[listen]]\naddress = \"127.0.0.1:%d\"\n", evilPort))
	h.run("chown", "nobody", "/etc/sitectl/sites/evil.toml")

	for file, want := range map[string]string{
		"/etc/sitectl/sites/karl.toml": "may be changed by others than its owner (mode 0666)",
		"/etc/sitectl/sites/evil.toml": "is owned by uid",
	} {
		_, stderr, code := h.result("sitectl", "check", file)
		if code != 2 || !strings.Contains(stderr, file+":1:1: "+want) {
			t.Errorf("sitectl check %s: exit %d, want 2 and %q\n%s", file, code, want, stderr)
		}
	}
	since := h.logMark()
	h.run("systemctl", "daemon-reload")
	logged := h.generatorLog(since)
	if !strings.Contains(logged, "evil.toml:1:1: is owned by uid") || !strings.Contains(logged, "karl.toml has 1 mistake: running the last good version") {
		t.Errorf("the generator did not log the refusals:\n%s", logged)
	}
	if st := h.show("site-evil.socket", "LoadState")["LoadState"]; st != "not-found" {
		t.Errorf("site-evil.socket is %s: units were generated for a file another user owns", st)
	}
	if src := h.show("site-karl.service", "SourcePath")["SourcePath"]; !strings.HasSuffix(src, "/last-good.toml") {
		t.Errorf("site-karl.service comes from %s, want its last good copy", src)
	}
	if err := siteAnswers(url, "normal"); err != nil {
		t.Errorf("karl after the daemon-reload: %v", err)
	}
	h.run("systemctl", "restart", "site-karl.service")
	if err := siteAnswers(url, "normal"); err != nil {
		t.Errorf("karl after a restart: %v", err)
	}
	// The restart's prepare refused the file too: it started from the
	// last good copy and did not make the file that copy, which the next
	// daemon-reload would have written karl's units from.
	if good := h.run("cat", "/var/lib/sitectl/sites/karl/last-good.toml"); strings.Contains(good, "shadow") {
		t.Errorf("the restart kept the file others may write as the last good copy:\n%s", good)
	}
	h.run("systemctl", "daemon-reload")
	if unit := h.run("systemctl", "cat", "site-karl.service"); strings.Contains(unit, "shadow") {
		t.Errorf("karl's units were written from the file others may write:\n%s", unit)
	}
}

// Two running sites swap ports in their files. After the daemon-reload
// each site's process still serves on its own copy of its old socket, so
// a restart of either would fail to bind its new port after stopping its
// service, and its rollback with it: the site down. The restart is
// refused before anything stops, with what holds the port and what to do;
// the operator's way through (stop one, restart the other, restart it)
// works.
func TestSwappedPortsAreRefusedNotTakenDown(t *testing.T) {
	p1, p2 := freePort(t), freePort(t)
	h := newHost(t, map[string]string{"shop": goSite(p1, ""), "web": goSite(p2, "")})
	h.run("systemctl", "start", "site-shop.socket", "site-web.socket")
	u1, u2 := fmt.Sprintf("http://127.0.0.1:%d/", p1), fmt.Sprintf("http://127.0.0.1:%d/", p2)
	getReply(t, u1)
	getReply(t, u2)
	h.writeSite("shop", goSite(p2, ""))
	h.writeSite("web", goSite(p1, ""))
	h.run("systemctl", "daemon-reload")

	for _, name := range []string{"shop", "web"} {
		out, stderr, code := h.result("sitectl", "restart", name)
		if code != 1 || !strings.Contains(stderr, "another process listens there") || !strings.Contains(stderr, "nothing was done") {
			t.Errorf("sitectl restart %s: exit %d, want 1, refused before anything stops\n%s%s", name, code, out, stderr)
		}
	}
	// Both still serve, each on its old port, from its own copy.
	if r := getReply(t, u1); r.Site != "shop" {
		t.Errorf("port %d answers %+v after the refusals", p1, r)
	}
	if r := getReply(t, u2); r.Site != "web" {
		t.Errorf("port %d answers %+v after the refusals", p2, r)
	}
	if out := h.run("sitectl", "history", "shop"); strings.Contains(out, "rollback-failed") {
		t.Errorf("history after the refusal:\n%s", out)
	}

	h.run("systemctl", "stop", "site-web.service")
	if out, stderr, code := h.result("sitectl", "restart", "shop"); code != 0 {
		t.Fatalf("sitectl restart shop once web stopped: exit %d\n%s%s", code, out, stderr)
	}
	if out, stderr, code := h.result("sitectl", "restart", "web"); code != 0 {
		t.Fatalf("sitectl restart web: exit %d\n%s%s", code, out, stderr)
	}
	if r := getReply(t, u2); r.Site != "shop" {
		t.Errorf("port %d answers %+v, want shop", p2, r)
	}
	if r := getReply(t, u1); r.Site != "web" {
		t.Errorf("port %d answers %+v, want web", p1, r)
	}
}
