//go:build integration

package integration

import (
	"strings"
	"testing"
)

// writable_paths under /tmp: the directory is there on the host, but the
// unit's private /tmp (PrivateTmp=yes) is empty when systemd sets up its
// mount namespace, so the start fails with 226/NAMESPACE. sitectl check
// said nothing and a restart stopped the site and was pinned back. Now
// check warns and the restart is refused before anything stops; what it
// kept from happening is shown by a plain systemctl restart.
func TestWritablePathInThePrivateTmpKeepsTheSiteServing(t *testing.T) {
	h, good, url, _ := servingShop(t)
	h.run("mkdir", "-p", "/tmp/uploads")
	h.writeSite("shop", good+"[hardening]\nwritable_paths = [\"/tmp/uploads\"]\n")
	const problem = "the path /tmp/uploads (ReadWritePaths=) lies under /tmp, which the unit replaces with an empty one of its own (PrivateTmp=yes): systemd could not find it as it sets up the unit's mount namespace, and the start would fail with 226/NAMESPACE"
	out, stderr, code := h.result("sitectl", "check", "/etc/sitectl/sites/shop.toml")
	if !strings.Contains(out+stderr, "hardening.writable_paths[0]: "+problem) {
		t.Errorf("sitectl check: exit %d, want a warning saying %q\nstdout: %s\nstderr: %s", code, problem, out, stderr)
	}
	h.run("systemctl", "daemon-reload")
	refusedChangingNothing(h, []string{"restart", "shop"}, problem)
	if err := siteAnswers(url, "normal"); err != nil {
		t.Errorf("after the refused restart: %v", err)
	}
	since := h.logMark()
	if _, _, code := h.result("systemctl", "restart", "site-shop.service"); code == 0 {
		t.Errorf("systemctl restart with /tmp/uploads writable worked: the refusal was for nothing")
	}
	if logged := h.run("journalctl", "--no-pager", "-u", "site-shop.service", "--since", since); !strings.Contains(logged, "226/NAMESPACE") {
		t.Errorf("systemctl restart: the journal does not say 226/NAMESPACE:\n%s", logged)
	}
	h.writeSite("shop", good)
	h.run("systemctl", "daemon-reload")
	if out, stderr, code := h.result("sitectl", "restart", "shop"); code != 0 {
		t.Fatalf("sitectl restart shop without the path: exit %d\nstdout: %s\nstderr: %s", code, out, stderr)
	}
	if err := siteAnswers(url, "normal"); err != nil {
		t.Errorf("after the restart: %v", err)
	}
}
