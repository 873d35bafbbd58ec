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
