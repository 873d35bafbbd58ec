//go:build integration

package integration

import (
	"fmt"
	"strings"
	"testing"
)

// A site without user runs as a dynamic user, and so does its
// maintenance server, which reads the mode's page and opens its
// static_dir as it starts. A page only root may read, a directory on
// the way it may not search, a static_dir it may not read, or a page
// where the unit hides the host's files (/root with ProtectHome=, /tmp
// with PrivateTmp=) were all there for root's checks: the switch
// stopped the site, the start failed ("cannot read the maintenance
// page: ... permission denied" or "no such file"), and it was rolled
// back (exit 4), the site's visitors waiting meanwhile. Each is refused
// now before anything stops, saying what and why, and sitectl check
// warns of it; a working directory the dynamic user may not enter is
// refused the same way. With the page readable the switch works.
func TestWhatTheDynamicUserCannotReachKeepsTheSiteServing(t *testing.T) {
	top, good, url, _ := servingShop(t)
	if d := top.show("site-shop.service", "DynamicUser")["DynamicUser"]; d != "yes" {
		t.Fatalf("site-shop.service: DynamicUser=%s, want yes", d)
	}
	const who = "the site's dynamic user (DynamicUser=yes)"
	cases := []struct {
		mode, setup, problem string
	}{
		{"secret", "mkdir -p /srv/down && echo '<h1>down for maintenance</h1>' > /srv/down/secret.html && chmod 600 /srv/down/secret.html",
			"the maintenance page /srv/down/secret.html cannot be read by " + who + ": /srv/down/secret.html is mode 0600 owned by root:root: the maintenance server would not start"},
		{"closed", "mkdir -p /srv/closed && echo '<h1>down</h1>' > /srv/closed/index.html && chmod 700 /srv/closed",
			"the maintenance page /srv/closed/index.html cannot be read by " + who + ": /srv/closed is mode 0700 owned by root:root"},
		{"static", "mkdir -p /srv/static/css && echo '<h1>down</h1>' > /srv/static/index.html && chmod 711 /srv/static/css",
			"the static_dir /srv/static/css cannot be read by " + who + ": /srv/static/css is mode 0711 owned by root:root"},
		{"home", "echo '<h1>down</h1>' > /root/down.html && chmod 644 /root/down.html",
			"the maintenance page /root/down.html lies under /root, which the site's unit hides from its processes (ProtectHome="},
		{"tmp", "echo '<h1>down</h1>' > /tmp/down.html && chmod 644 /tmp/down.html",
			"the maintenance page /tmp/down.html lies under /tmp, which the site's unit hides from its processes (PrivateTmp=yes)"},
	}
	modes := good
	for _, c := range cases {
		page := strings.Fields(strings.SplitN(c.problem, " lies", 2)[0])
		p := page[len(page)-1]
		if c.mode == "static" {
			modes += "[modes.static]\nserve = \"maintenance\"\npage = \"/srv/static/index.html\"\nstatic_dir = \"/srv/static/css\"\n"
			continue
		}
		if c.mode == "closed" || c.mode == "secret" {
			p = map[string]string{"closed": "/srv/closed/index.html", "secret": "/srv/down/secret.html"}[c.mode]
		}
		modes += "[modes." + c.mode + "]\nserve = \"maintenance\"\npage = \"" + p + "\"\n"
	}
	top.writeSite("shop", modes)
	top.run("systemctl", "daemon-reload")
	for _, c := range cases {
		top.run("sh", "-c", c.setup)
	}
	out, stderr, code := top.result("sitectl", "check", "/etc/sitectl/sites/shop.toml")
	for _, c := range cases {
		if !strings.Contains(out+stderr, "modes."+c.mode+".") || !strings.Contains(out+stderr, c.problem) {
			t.Errorf("sitectl check: exit %d, no warning of mode %s saying %q\nstdout: %s\nstderr: %s", code, c.mode, c.problem, out, stderr)
		}
	}
	for _, c := range cases {
		t.Run(c.mode, func(t *testing.T) {
			h := &host{t: t, sb: top.sb, ctx: top.ctx}
			refusedChangingNothing(h, []string{"mode", "shop", c.mode}, c.problem)
			if err := siteAnswers(url, "normal"); err != nil {
				t.Errorf("after the refused switch: %v", err)
			}
		})
	}

	// The same page, readable: the switch works.
	top.run("chmod", "644", "/srv/down/secret.html")
	if out, stderr, code := top.result("sitectl", "mode", "shop", "secret"); code != 0 {
		t.Fatalf("sitectl mode shop secret with the page readable: exit %d\nstdout: %s\nstderr: %s", code, out, stderr)
	}
	if err := siteAnswers(url, "maintenance"); err != nil {
		t.Errorf("in mode secret: %v", err)
	}
	if out, stderr, code := top.result("sitectl", "mode", "shop", "normal"); code != 0 {
		t.Fatalf("sitectl mode shop normal: exit %d\nstdout: %s\nstderr: %s", code, out, stderr)
	}

	// The app's working directory, closed to the dynamic user.
	top.run("chmod", "700", "/srv/wsgi")
	refusedChangingNothing(top, []string{"restart", "shop"}, "the working directory /srv/wsgi cannot be entered by "+who+": /srv/wsgi is mode 0700 owned by root:root: the start would fail with 200/CHDIR")
	if p := startProblems(top); len(p) != 1 || !strings.Contains(p[0], "/srv/wsgi cannot be entered by "+who) {
		t.Errorf("status --json start_problems: %q", p)
	}
	top.run("chmod", "755", "/srv/wsgi")
	if out, stderr, code := top.result("sitectl", "restart", "shop"); code != 0 {
		t.Fatalf("sitectl restart shop with /srv/wsgi open again: exit %d\nstdout: %s\nstderr: %s", code, out, stderr)
	}
	if err := siteAnswers(url, "normal"); err != nil {
		t.Errorf("after the restart: %v", err)
	}
}

// The same for an overlap site, whose switch is a handover inside the
// running unit: the new generation, which runs the maintenance server,
// failed on the page, the old one served on, and the switch was rolled
// back (exit 4). It is refused before now, nothing recorded; with the
// page readable the handover serves it.
func TestOverlapSwitchToAPageTheUserCannotReadIsRefused(t *testing.T) {
	port := freePort(t)
	h := newHost(t, map[string]string{"ov": goSite(port, "handoff = \"overlap\"\n") + "[modes.down]\nserve = \"maintenance\"\npage = \"/srv/down/index.html\"\n"})
	h.run("sh", "-c", "mkdir -p /srv/down && echo '<h1>down for maintenance</h1>' > /srv/down/index.html && chmod 600 /srv/down/index.html")
	h.run("systemctl", "start", "site-ov.socket")
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	getReply(t, url)
	pid := h.show("site-ov.service", "MainPID")["MainPID"]
	history := h.run("sitectl", "history", "ov", "--json")
	const problem = "site ov: mode down would not serve: the maintenance page /srv/down/index.html cannot be read by the site's dynamic user (DynamicUser=yes): /srv/down/index.html is mode 0600 owned by root:root"
	out, stderr, code := h.result("sitectl", "mode", "ov", "down")
	if code != 1 || !strings.Contains(stderr, problem) || !strings.Contains(stderr, "nothing was done") {
		t.Errorf("sitectl mode ov down: exit %d, want 1 saying %q\nstdout: %s\nstderr: %s", code, problem, out, stderr)
	}
	if now := h.run("sitectl", "history", "ov", "--json"); now != history {
		t.Errorf("the refused switch changed the history:\nbefore: %s\nafter:  %s", history, now)
	}
	if now := h.show("site-ov.service", "MainPID")["MainPID"]; now != pid {
		t.Errorf("the refused switch changed the service: main PID %s, then %s", pid, now)
	}
	h.run("chmod", "644", "/srv/down/index.html")
	if out, stderr, code := h.result("sitectl", "mode", "ov", "down"); code != 0 {
		t.Fatalf("sitectl mode ov down with the page readable: exit %d\nstdout: %s\nstderr: %s", code, out, stderr)
	}
	if err := siteAnswers(url, "maintenance"); err != nil {
		t.Errorf("in mode down: %v", err)
	}
}
