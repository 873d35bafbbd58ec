//go:build integration

package integration

import (
	"fmt"
	"testing"
)

// Timeouts a site file allows under a second (a probe's, a stop's, the
// cleanup's) and a day-long stop reach sitectl launch and sitectl cleanup
// on the units' command lines: the site starts, reloads and stops cleanly.
func TestSubSecondAndDayLongTimeoutsRun(t *testing.T) {
	ovlPort, plainPort := freePort(t), freePort(t)
	h := newHost(t, map[string]string{
		"ovl":   goSite(ovlPort, "handoff = \"overlap\"\nstop_timeout = \"500ms\"\n[probe]\npath = \"/\"\ntimeout = \"900ms\"\n"),
		"plain": goSite(plainPort, "cleanup_timeout = \"500ms\"\n"),
		"long":  goSite(freePort(t), "stop_timeout = \"24h\"\n"),
	})
	for _, c := range []struct {
		name string
		port int
	}{{"ovl", ovlPort}, {"plain", plainPort}} {
		h.run("systemctl", "start", "site-"+c.name+".socket")
		getReply(t, fmt.Sprintf("http://127.0.0.1:%d/", c.port))
		if _, stderr, code := h.result("sitectl", "reload", c.name); code != 0 {
			t.Errorf("sitectl reload %s: exit %d: %s", c.name, code, stderr)
		}
		getReply(t, fmt.Sprintf("http://127.0.0.1:%d/", c.port))
		h.run("systemctl", "stop", "site-"+c.name+".socket", "site-"+c.name+".service")
		if p := h.show("site-"+c.name+".service", "Result"); p["Result"] != "success" {
			t.Errorf("%s: the service ended with %v", c.name, p)
		}
	}
	h.run("systemctl", "start", "site-long.service")
	h.run("systemctl", "stop", "site-long.service")
	if p := h.show("site-long.service", "Result"); p["Result"] != "success" {
		t.Errorf("long: the service ended with %v", p)
	}
}
