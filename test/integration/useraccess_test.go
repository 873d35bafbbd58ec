//go:build integration

package integration

import (
	"fmt"
	"strings"
	"testing"
)

// An operator's chmod 700 of a directory on the way to what a site's
// user must run or enter (the program's directory, the working
// directory, an ExecStartPre= program's directory): the program and the
// directory are there, so the check of what exists let the restart
// through, and the start as the site's user failed (the launcher could
// not run the program, 200/CHDIR, 203/EXEC), and so did the rollback's:
// the site went down. The restart is refused, changing nothing, saying
// which directory and why; what systemd would have logged is shown by a
// plain systemctl restart. The same hook run as root ("+") is no reason,
// and with the directory searchable again the restart works.
func TestDirectoryTheUserCannotSearchKeepsTheSiteServing(t *testing.T) {
	port := freePort(t)
	top := newHost(t, nil)
	top.run("useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "shop")
	top.run("sh", "-c", "mkdir -p /srv/app/bin /srv/hooks && cp /usr/bin/gunicorn /srv/app/bin/gunicorn && printf '#!/bin/sh\\nexit 0\\n' > /srv/hooks/check && chmod 755 /srv/app /srv/app/bin /srv/hooks /srv/hooks/check /srv/wsgi")
	good := strings.Replace(gunicornSite(port, "user = \"shop\"\n[probe]\npath = \"/\"\n"), `"/usr/bin/gunicorn"`, `"/srv/app/bin/gunicorn"`, 1)
	top.writeSite("shop", good)
	top.run("systemctl", "daemon-reload")
	top.run("systemctl", "start", "site-shop.socket")
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	getReply(t, url)
	if u := top.show("site-shop.service", "User")["User"]; u != "shop" {
		t.Fatalf("site-shop.service runs as %q, want shop", u)
	}
	const dropIn = "/etc/systemd/system/site-shop.service.d/local.conf"
	for _, c := range []struct{ name, dir, conf, problem, logged string }{
		{"program", "/srv/app", "", `the program /srv/app/bin/gunicorn cannot be run by user "shop": /srv/app is mode 0700 owned by root:root`, "/srv/app/bin/gunicorn"},
		{"workdir", "/srv/wsgi", "", `the working directory /srv/wsgi cannot be entered by user "shop": /srv/wsgi is mode 0700 owned by root:root: the start would fail with 200/CHDIR`, "200/CHDIR"},
		{"exec start pre", "/srv/hooks", "ExecStartPre=/srv/hooks/check", `the program /srv/hooks/check (ExecStartPre=) cannot be run by user "shop": /srv/hooks is mode 0700 owned by root:root: the start would fail with 203/EXEC`, "203/EXEC"},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := &host{t: t, sb: top.sb, ctx: top.ctx} // failures belong to the subtest
			if c.conf != "" {
				h.writeFile(dropIn, "[Service]\n"+c.conf+"\n", 0o644)
				h.run("systemctl", "daemon-reload")
				// Before the chmod, the hook runs.
				if out, stderr, code := h.result("sitectl", "restart", "shop"); code != 0 {
					t.Fatalf("sitectl restart shop with %s: exit %d\nstdout: %s\nstderr: %s", c.conf, code, out, stderr)
				}
			}
			h.run("chmod", "0700", c.dir)
			refusedChangingNothing(h, []string{"restart", "shop"}, c.problem)
			if err := siteAnswers(url, "normal"); err != nil {
				t.Errorf("after the refused restart: %v", err)
			}
			if p := startProblems(h); len(p) != 1 || !strings.Contains(p[0], c.problem) {
				t.Errorf("status --json start_problems: %q, want one saying %q", p, c.problem)
			}

			if c.conf != "" {
				// The same hook run as root: no reason.
				h.writeFile(dropIn, "[Service]\n"+strings.Replace(c.conf, "=", "=+", 1)+"\n", 0o644)
				h.run("systemctl", "daemon-reload")
				if out, stderr, code := h.result("sitectl", "restart", "shop"); code != 0 {
					t.Errorf("sitectl restart shop with %s: exit %d\nstdout: %s\nstderr: %s", strings.Replace(c.conf, "=", "=+", 1), code, out, stderr)
				}
				h.writeFile(dropIn, "[Service]\n"+c.conf+"\n", 0o644)
				h.run("systemctl", "daemon-reload")
			}

			// What the refusal kept from happening: the start as shop
			// fails, and the site is down until the directory is
			// searchable again (below).
			since := h.logMark()
			if _, _, code := h.result("systemctl", "restart", "site-shop.service"); code == 0 {
				t.Errorf("systemctl restart with %s mode 0700 worked: the refusal was for nothing", c.dir)
			}
			if logged := h.run("journalctl", "--no-pager", "-u", "site-shop.service", "--since", since); !strings.Contains(logged, c.logged) {
				t.Errorf("systemctl restart with %s mode 0700: the journal does not say %s: %v\n%s", c.dir, c.logged, h.show("site-shop.service", "Result", "ExecMainCode", "ExecMainStatus", "ActiveState", "SubState"), logged)
			} else {
				t.Logf("what systemd logged of the start the refusal kept from happening:\n%s", grepLines(logged, c.logged))
			}

			h.run("chmod", "0755", c.dir)
			if c.conf != "" {
				h.run("rm", dropIn)
				h.run("systemctl", "daemon-reload")
			}
			if out, stderr, code := h.result("sitectl", "restart", "shop"); code != 0 {
				t.Fatalf("sitectl restart shop with %s searchable again: exit %d\nstdout: %s\nstderr: %s", c.dir, code, out, stderr)
			}
			if err := siteAnswers(url, "normal"); err != nil {
				t.Fatalf("with %s searchable again: %v", c.dir, err)
			}
		})
	}
}
