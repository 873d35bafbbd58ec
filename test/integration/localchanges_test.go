//go:build integration

package integration

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// An operator's copy of a site's service in /etc/systemd/system (as
// systemctl edit --full makes) shadows the unit sitectl generates, and
// drop-ins (systemctl edit, set-property) change it: status said
// "running", site file "ok", and nothing of them, even once the site file
// changed and the copy ran an older version of it. status names them, the
// stale copy first, with systemctl revert, which takes them out. A site
// nobody changed has none: systemd adds no drop-in of its own.
func TestStatusNamesLocalChanges(t *testing.T) {
	port := freePort(t)
	h := newHost(t, map[string]string{"karl": goSite(port, "")})
	h.run("systemctl", "start", "site-karl.socket")
	getReply(t, fmt.Sprintf("http://127.0.0.1:%d/", port))

	type local struct {
		Unit        string   `json:"unit"`
		Shadow      string   `json:"shadow"`
		ShadowStale bool     `json:"shadow_stale"`
		DropIns     []string `json:"drop_ins"`
		Shared      []string `json:"shared_drop_ins"`
		Revert      string   `json:"revert"`
	}
	changes := func() []local {
		t.Helper()
		out, stderr, code := h.result("sitectl", "status", "karl", "--json")
		var st []struct {
			Local []local `json:"local_changes"`
		}
		if err := json.Unmarshal([]byte(out), &st); err != nil || len(st) != 1 || st[0].Local == nil {
			t.Fatalf("sitectl status karl --json: exit %d, %v: %s%s", code, err, out, stderr)
		}
		return st[0].Local
	}
	if c := changes(); len(c) != 0 {
		t.Errorf("local changes of a site nobody changed: %+v", c)
	}

	const copyPath = "/etc/systemd/system/site-karl.service"
	const dropIn = "/etc/systemd/system/site-karl.service.d/50-local.conf"
	const control = "/run/systemd/system.control/site-karl.service.d/50-CPUWeight.conf"
	h.run("cp", "/run/systemd/generator/site-karl.service", copyPath)
	h.writeFile(dropIn, "[Service]\nEnvironment=GREETING=local\n", 0o644)
	h.writeFile("/etc/systemd/system/site-karl.socket.d/backlog.conf", "[Socket]\nBacklog=64\n", 0o644)
	h.run("systemctl", "daemon-reload")
	h.run("systemctl", "set-property", "--runtime", "site-karl.service", "CPUWeight=200")
	// The site file changes: the copy still says what it said.
	h.writeSite("karl", goSite(port, `description = "changed"`))
	h.run("systemctl", "daemon-reload")

	c := changes()
	if len(c) != 2 {
		t.Fatalf("local changes: %+v, want the service's and the socket's", c)
	}
	svc := c[0]
	if svc.Unit != "site-karl.service" || svc.Shadow != copyPath || !svc.ShadowStale || !slices.Contains(svc.DropIns, dropIn) ||
		!slices.Contains(svc.DropIns, control) || len(svc.Shared) != 0 || svc.Revert != "systemctl revert site-karl.service" {
		t.Errorf("the service's local changes: %+v", svc)
	}
	if so := c[1]; so.Unit != "site-karl.socket" || so.Shadow != "" || !slices.Equal(so.DropIns, []string{"/etc/systemd/system/site-karl.socket.d/backlog.conf"}) {
		t.Errorf("the socket's local changes: %+v", so)
	}
	out, _, code := h.result("sitectl", "status", "karl")
	for _, w := range []string{
		"local: site-karl.service: loaded from " + copyPath + ", made from an older version of the site file",
		dropIn, control, "`systemctl revert site-karl.service` takes them out",
		"local: site-karl.socket: drop-in /etc/systemd/system/site-karl.socket.d/backlog.conf: `systemctl revert site-karl.socket` takes it out",
	} {
		if !strings.Contains(out, w) {
			t.Errorf("sitectl status karl (exit %d) lacks %q:\n%s", code, w, out)
		}
	}
	if code != 0 {
		t.Errorf("sitectl status karl: exit %d, the site runs\n%s", code, out)
	}

	// The advice works: revert takes the copy and the drop-ins out.
	h.run("systemctl", "revert", "site-karl.service", "site-karl.socket")
	if c := changes(); len(c) != 0 {
		t.Errorf("local changes after systemctl revert: %+v", c)
	}
	if p := h.show("site-karl.service", "FragmentPath")["FragmentPath"]; p != "/run/systemd/generator/site-karl.service" {
		t.Errorf("after systemctl revert, systemd loads the service from %s", p)
	}
}
