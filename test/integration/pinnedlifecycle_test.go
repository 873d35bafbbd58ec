//go:build integration

package integration

import (
	"strings"
	"testing"
)

// A site file that failed to start is pinned to the version the site ran
// before, and systemd's units come from that copy. sitectl disable and
// enable went by the file: with a listener of a new name in it, disable
// reported stopping a socket unit systemd does not have, and enable
// failed (exit 5) on it, blaming a missing generator, the site half
// enabled. They go by the pinned copy now, and say so.
func TestEnableAndDisableOfAPinnedSiteGoByItsRunningVersion(t *testing.T) {
	h, good, url, _ := servingShop(t)
	bad := strings.Replace(good, `"app:application"`, `"nosuch:application"`, 1) + "[[listen]]\nname = \"admin\"\npath = \"/run/shop/admin.sock\"\n"
	h.writeSite("shop", bad)
	h.run("systemctl", "daemon-reload")
	if _, _, code := h.result("sitectl", "restart", "shop"); code != 4 {
		t.Fatalf("sitectl restart shop with a module that is not there: exit %d, want 4 (rolled back, pinned)", code)
	}
	if _, err := h.try("test", "-e", "/var/lib/sitectl/pinned/shop.json"); err != nil {
		t.Fatalf("the failed restart did not pin the site: %v", err)
	}
	const says = "sitectl: site shop runs its last good version /var/lib/sitectl/sites/shop/last-good.toml"
	for _, verb := range []string{"disable", "enable"} {
		out, stderr, code := h.result("sitectl", verb, "shop")
		if code != 0 || !strings.Contains(stderr, says) || strings.Contains(out+stderr, "admin") {
			t.Errorf("sitectl %s shop: exit %d, want 0, saying %q, and nothing of the pinned-out listener\nstdout: %s\nstderr: %s", verb, code, says, out, stderr)
		}
	}
	if s := h.show("site-shop.socket", "ActiveState")["ActiveState"]; s != "active" {
		t.Errorf("site-shop.socket after enable: %s", s)
	}
	if err := siteAnswers(url, "normal"); err != nil {
		t.Errorf("after enable: %v", err)
	}
}
