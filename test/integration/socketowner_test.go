//go:build integration

package integration

import (
	"encoding/json"
	"strings"
	"testing"
)

// A unix listener added with an owner the host does not have (nginx's
// user on a host that runs another server, say): sitectl check said
// nothing, and after daemon-reload a restart stopped the site, the
// socket unit failed (217/USER: a restart of site-NAME.socket to open a
// listener of its name, or the service's start that starts the new unit
// of a listener of a new name, result "dependency"), and the site was
// pinned back with exit 4, its "last error" gunicorn's shutdown lines.
// Now check warns, the restart is refused before anything stops, and
// once the user exists the restart opens the sockets, owned by it.
func TestUnixListenerOwnerTheHostLacksKeepsTheSiteServing(t *testing.T) {
	h, good, url, _ := servingShop(t)
	for _, c := range []struct {
		name, listener, warning, refusal string
	}{
		{"the main socket's", "[[listen]]\npath = \"/run/shop/web.sock\"\nowner = \"nginx\"\nmode = \"0660\"\n",
			`listen[1].owner: user "nginx" does not exist on this host: systemd could not start site-shop.socket, and the site would not listen on /run/shop/web.sock`,
			`the restart must start site-shop.socket, and systemd could not start it: user "nginx" (SocketUser= of site-shop.socket) does not exist on this host`},
		{"a new socket unit's", "[[listen]]\nname = \"admin\"\npath = \"/run/shop/admin.sock\"\ngroup = \"nginx\"\n",
			`listen[1].group: group "nginx" does not exist on this host: systemd could not start site-shop@admin.socket, and the site would not listen on /run/shop/admin.sock`,
			`the restart must start site-shop@admin.socket, and systemd could not start it: group "nginx" (SocketGroup= of site-shop@admin.socket) does not exist on this host`},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := &host{t: t, sb: h.sb, ctx: h.ctx}
			h.writeSite("shop", good+c.listener)
			out, stderr, code := h.result("sitectl", "check", "/etc/sitectl/sites/shop.toml")
			if !strings.Contains(out+stderr, c.warning) {
				t.Errorf("sitectl check: exit %d, want a warning saying %q\nstdout: %s\nstderr: %s", code, c.warning, out, stderr)
			}
			h.run("systemctl", "daemon-reload")
			refusedChangingNothing(h, []string{"restart", "shop"}, c.refusal)
			if err := siteAnswers(url, "normal"); err != nil {
				t.Errorf("after the refused restart: %v", err)
			}
			// status says it too: a boot would start the socket unit.
			// (Exit 3 for the main socket's: systemd holds no socket
			// for the new listener, so the site does not fully run.)
			out, _, _ = h.result("sitectl", "status", "shop", "--json")
			var sites []struct {
				StartProblems []string `json:"start_problems"`
			}
			if err := json.Unmarshal([]byte(out), &sites); err != nil || len(sites) != 1 || len(sites[0].StartProblems) != 1 ||
				!strings.Contains(sites[0].StartProblems[0], strings.SplitN(c.refusal, "could not start it: ", 2)[1]) {
				t.Errorf("status --json start_problems: %v\n%s", err, out)
			}
			if _, err := h.try("test", "-e", "/var/lib/sitectl/pinned/shop.json"); err == nil {
				t.Errorf("the refused restart pinned the site")
			}
		})
	}

	h.writeSite("shop", good+"[[listen]]\npath = \"/run/shop/web.sock\"\nowner = \"nginx\"\nmode = \"0660\"\n[[listen]]\nname = \"admin\"\npath = \"/run/shop/admin.sock\"\ngroup = \"nginx\"\n")
	h.run("systemctl", "daemon-reload")
	h.run("useradd", "--system", "--no-create-home", "--user-group", "nginx")
	if out, stderr, code := h.result("sitectl", "restart", "shop"); code != 0 {
		t.Fatalf("sitectl restart shop with user nginx there: exit %d\nstdout: %s\nstderr: %s", code, out, stderr)
	}
	for sock, want := range map[string]string{"/run/shop/web.sock": "nginx nginx 660", "/run/shop/admin.sock": "root nginx 660"} {
		if got := strings.TrimSpace(h.run("stat", "-c", "%U %G %a", sock)); got != want {
			t.Errorf("%s: %q, want %q", sock, got, want)
		}
	}
	if err := siteAnswers(url, "normal"); err != nil {
		t.Errorf("after the restart: %v", err)
	}
}
