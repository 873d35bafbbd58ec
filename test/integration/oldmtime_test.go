//go:build integration

package integration

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"
)

// A site file put in place with its old modification time kept (cp -p,
// rsync -a, tar x) is, by its time, older than the units systemd loaded,
// and systemd does not see the change (NeedDaemonReload stays "no").
// sitectl tells by the file's content, which the generator stamps on the
// units: a restart says it runs the units systemd has (and refuses when
// the file moved a listener), an overlap site's reload has systemd reload
// its units and applies the file, and status says the file's listener is
// not listened on yet rather than lost. Before, each went ahead as if the
// units were the file's: "ok", with the file's change not applied.
func TestSiteFileWithAnOldTimeIsSeen(t *testing.T) {
	for _, handoff := range []string{"restart", "overlap"} {
		t.Run(handoff, func(t *testing.T) {
			oldPort, newPort := freePort(t), freePort(t)
			for newPort == oldPort {
				newPort = freePort(t)
			}
			extra := fmt.Sprintf("handoff = %q\n[probe]\npath = \"/\"\n", handoff)
			h := newHost(t, map[string]string{"shop": goSite(oldPort, extra)})
			h.run("systemctl", "start", "site-shop.socket")
			oldURL, newURL := fmt.Sprintf("http://127.0.0.1:%d/", oldPort), fmt.Sprintf("http://127.0.0.1:%d/", newPort)
			getReply(t, oldURL)
			if cat := h.run("systemctl", "cat", "site-shop.service"); !strings.Contains(cat, "\n# Site file sha256: ") {
				t.Errorf("the generated unit has no stamp:\n%s", cat)
			}
			// putOld puts content in place as cp -p does, with a time
			// older than systemd's load of the units.
			putOld := func(content string) {
				t.Helper()
				h.writeFile("/srv/shop.toml", content, 0o644)
				h.run("sh", "-c", "touch -d '2020-01-01 00:00:00' /srv/shop.toml && cp -p /srv/shop.toml /etc/sitectl/sites/shop.toml")
				if p := h.show("site-shop.service", "NeedDaemonReload"); p["NeedDaemonReload"] != "no" {
					t.Fatalf("systemd sees a file with an old time as changed (then this test tests nothing): %v", p)
				}
			}
			sevenSeconds := func(port int) string {
				return strings.Replace(goSite(port, extra), `drain_timeout = "10s"`, `drain_timeout = "7s"`, 1)
			}

			putOld(sevenSeconds(oldPort))
			if handoff == "restart" {
				out, stderr, code := h.result("sitectl", "restart", "shop")
				want := "sitectl: warning: shop: the site file changed since systemd loaded site-shop.service: the restart runs the command line, user, sockets and settings systemd has"
				if code != 0 || !strings.Contains(stderr, want) {
					t.Errorf("sitectl restart with units older than the file by its content: exit %d, want 0 and %q\nstdout: %s\nstderr: %s", code, want, out, stderr)
				}
			} else {
				// It restarts fully after a daemon-reload, which
				// loads the file's drain_timeout.
				out, stderr, code := h.result("sitectl", "reload", "shop")
				if code != 0 || !strings.Contains(out, "shop: drain_timeout changed since the service started, which a handover inside it cannot apply: restarting fully") {
					t.Errorf("sitectl reload with units older than the file by its content: exit %d, want 0 and a full restart\nstdout: %s\nstderr: %s", code, out, stderr)
				}
				p := h.show("site-shop.service", "Environment", "TimeoutStopUSec")
				if !strings.Contains(p["Environment"], "SITE_DRAIN_TIMEOUT=7s") || p["TimeoutStopUSec"] != "12s" {
					t.Errorf("the reload did not apply the file's drain_timeout: %v", p)
				}
			}

			// The file moves the site to another port.
			putOld(sevenSeconds(newPort))
			out, stderr, code := h.result("sitectl", "status", "shop")
			if code != 0 || !strings.Contains(out, fmt.Sprintf("not listened on yet: 127.0.0.1:%d", newPort)) || strings.Contains(out, "no socket") {
				t.Errorf("status with the file moved to another port: exit %d, want 0 and the pending listener\n%s%s", code, out, stderr)
			}
			if handoff == "restart" {
				pid := h.show("site-shop.service", "MainPID")["MainPID"]
				out, stderr, code = h.result("sitectl", "restart", "shop")
				if code == 0 || !strings.Contains(stderr, "nothing was done: run `systemctl daemon-reload && sitectl restart shop`") {
					t.Errorf("restart with the file moved to another port: exit %d, want a refusal\n%s%s", code, out, stderr)
				}
				if now := h.show("site-shop.service", "MainPID")["MainPID"]; now != pid {
					t.Errorf("the refused restart changed the service: main PID %s, then %s", pid, now)
				}
				return
			}
			out, stderr, code = h.result("sitectl", "reload", "shop")
			if code != 0 || !strings.Contains(stderr, "site-shop.socket restarted with the service") {
				t.Fatalf("reload with the file moved to another port: exit %d\n%s%s", code, out, stderr)
			}
			if r := getReply(t, newURL); r.Site != "shop" {
				t.Errorf("on the new port: %+v", r)
			}
			if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", oldPort), 5*time.Second); err == nil {
				c.Close()
				t.Errorf("the old port %d still takes connections", oldPort)
			}
		})
	}
}

// Units generated from a site's last good copy (its file had mistakes)
// name the copy as their source, which stays as it was when the file is
// fixed: systemd then says the units are current. sitectl compares the
// file with what it was when the units were generated, and restart says
// that the units are older than the file.
func TestFixedSiteFileOfLastGoodUnitsIsSeen(t *testing.T) {
	port := freePort(t)
	extra := "[probe]\npath = \"/\"\n"
	h := newHost(t, map[string]string{"shop": goSite(port, extra)})
	h.run("systemctl", "start", "site-shop.socket")
	getReply(t, fmt.Sprintf("http://127.0.0.1:%d/", port))
	h.writeSite("shop", strings.Replace(goSite(port, extra), `drain_timeout = "10s"`, `drain_timeout = "ten"`, 1))
	h.run("systemctl", "daemon-reload")
	cat := h.run("systemctl", "cat", "site-shop.service")
	if !strings.Contains(cat, "the last good version") || !strings.Contains(cat, "# Stands in for the site file /etc/sitectl/sites/shop.toml, sha256: ") {
		t.Fatalf("the units are not the last good copy's, or do not say what they stand in for:\n%s", cat)
	}
	h.writeSite("shop", strings.Replace(goSite(port, extra), `drain_timeout = "10s"`, `drain_timeout = "7s"`, 1))
	if p := h.show("site-shop.service", "NeedDaemonReload"); p["NeedDaemonReload"] != "no" {
		t.Fatalf("systemd sees the fixed file (then this test tests nothing): %v", p)
	}
	out, stderr, code := h.result("sitectl", "restart", "shop")
	want := "sitectl: warning: shop: the site file changed since systemd loaded site-shop.service"
	if code != 0 || !strings.Contains(stderr, want) {
		t.Errorf("sitectl restart with last good units and the file fixed: exit %d, want 0 and %q\nstdout: %s\nstderr: %s", code, want, out, stderr)
	}
}
