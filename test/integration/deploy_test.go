//go:build integration

package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sitectl/sitectl/test/sandbox"
)

// A real non-root user in sitectl-deploy, named in the site's deployers,
// switches a site's mode without sudo, through sitectl's state service as
// the .deb installs it; the same user cannot manage any unit over D-Bus
// directly (no polkit rule: the state service is the one mechanism), run
// daemon-reload, or read or write the state directory; a user outside the
// group changes nothing.
func TestPackageDeployer(t *testing.T) {
	deb, _ := packageDebs(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	t.Cleanup(cancel)
	h := &host{t: t, sb: sandbox.New(t, sandbox.Options{Name: "deployer"}), ctx: ctx}
	h.install(bin+"/webapp", "/usr/local/bin/webapp", 0o755)
	h.install(deb, "/root/pkg/sitectl.deb", 0o644)
	// This machine's image forbids starting services from package scripts
	// (/usr/sbin/policy-rc.d exits 101, which deb-systemd-invoke honours, as
	// it should). A host that runs sites has no such file: remove it from
	// the sandbox's overlay, not from the machine.
	h.run("rm", "-f", "/usr/sbin/policy-rc.d")
	h.run("dpkg", "-i", "/root/pkg/sitectl.deb")
	if st := h.show("sitectl-state.socket", "ActiveState")["ActiveState"]; st != "active" {
		t.Fatalf("the package did not start sitectl-state.socket: %s", st)
	}
	h.run("useradd", "--create-home", "--groups", "sitectl-deploy", "dana")
	h.run("useradd", "--create-home", "eve")
	danaUID := strings.TrimSpace(h.run("id", "-u", "dana"))

	port := freePort(t)
	installMaintenance(h)
	h.writeSite("web", goSite(port, `deployers = ["user:dana", "user:eve"]`+"\n"+modeSites))
	h.run("systemctl", "daemon-reload")
	h.run("systemctl", "start", "site-web.socket")
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	getReply(t, url)

	as := func(user string, args ...string) (string, string, int) {
		return h.result("setpriv", append([]string{"--reuid=" + user, "--regid=" + user, "--init-groups", "--"}, args...)...)
	}

	// dana switches, rolls back and restarts: no sudo.
	for _, args := range [][]string{
		{"sitectl", "mode", "web", "read-only"},
		{"sitectl", "mode", "web", "maintenance"},
		{"sitectl", "rollback", "web"},
		{"sitectl", "restart", "web"},
	} {
		if out, stderr, code := as("dana", args...); code != 0 {
			t.Fatalf("dana: %v: exit %d\n%s%s", args, code, out, stderr)
		}
	}
	if r := getReply(t, url); r.Mode != "read-only" {
		t.Errorf("after dana's switches the site serves mode %q, want read-only", r.Mode)
	}
	var hist []struct {
		UID    int    `json:"uid"`
		To     string `json:"to"`
		Result string `json:"result"`
	}
	json.Unmarshal([]byte(h.run("sitectl", "history", "web", "--json")), &hist)
	if len(hist) < 3 || fmt.Sprint(hist[0].UID) != danaUID || hist[0].To != "read-only" || hist[0].Result != "ok" {
		t.Errorf("history does not record dana (uid %s): %+v", danaUID, hist)
	}

	// dana may not restart anything else, reload systemd, or write state.
	logind := h.show("systemd-logind.service", "InvocationID")["InvocationID"]
	if _, stderr, code := as("dana", "systemctl", "restart", "systemd-logind.service"); code == 0 {
		t.Errorf("dana restarted systemd-logind.service")
	} else if !strings.Contains(stderr, "Access denied") && !strings.Contains(stderr, "authentication required") {
		t.Errorf("restarting a non-site unit: %q", stderr)
	}
	if h.show("systemd-logind.service", "InvocationID")["InvocationID"] != logind {
		t.Errorf("systemd-logind.service was restarted")
	}
	if _, _, code := as("dana", "systemctl", "daemon-reload"); code == 0 {
		t.Errorf("dana ran daemon-reload")
	}
	if _, _, code := as("dana", "systemctl", "stop", "site-web.socket"); code == 0 {
		t.Errorf("dana stopped the site's socket unit")
	}
	webInv := h.show("site-web.service", "InvocationID")["InvocationID"]
	if _, _, code := as("dana", "systemctl", "restart", "site-web.service"); code == 0 || h.show("site-web.service", "InvocationID")["InvocationID"] != webInv {
		t.Errorf("dana restarted site-web.service over D-Bus directly, not through the state service")
	}
	if _, _, code := as("dana", "cat", "/var/lib/sitectl/sites/web/mode.env"); code == 0 {
		t.Errorf("dana read the mode file directly")
	}
	if _, _, code := as("dana", "sh", "-c", "echo 'LD_PRELOAD=/tmp/x.so' >> /var/lib/sitectl/sites/web/mode.env"); code == 0 {
		t.Errorf("dana wrote the mode file directly")
	}
	if env := h.run("cat", "/var/lib/sitectl/sites/web/mode.env"); strings.Contains(env, "LD_PRELOAD") {
		t.Errorf("the mode file was changed:\n%s", env)
	}

	// eve is named in the site file but not in the group: nothing changes.
	before := h.run("cat", "/var/lib/sitectl/sites/web/state.json")
	inv := h.show("site-web.service", "InvocationID")["InvocationID"]
	_, stderr, code := as("eve", "sitectl", "mode", "web", "normal")
	if code != 6 {
		t.Errorf("eve: exit %d (want 6, permission denied): %s", code, stderr)
	}
	if h.run("cat", "/var/lib/sitectl/sites/web/state.json") != before || h.show("site-web.service", "InvocationID")["InvocationID"] != inv {
		t.Errorf("eve changed the site")
	}
}
