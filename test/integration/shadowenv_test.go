//go:build integration

package integration

import (
	"fmt"
	"testing"
)

// A variable of the site's environment that a mode sets too: the mode's
// value in that mode, the site's in the others, whichever mode the
// service started in, for both handoffs. systemd gives it so (the mode
// file, EnvironmentFile=, wins over Environment=); an overlap site's
// launcher starts each generation from its own environment, where the
// start mode's value had replaced the site's.
func TestSiteVariableAModeSetsComesBack(t *testing.T) {
	site := "environment = { SHADOWED = \"site\" }\ndefault_mode = \"x\"\n[modes.x]\nenvironment = { SHADOWED = \"x\" }\n"
	pr, po := freePort(t), freePort(t)
	h := newHost(t, map[string]string{
		"restart": goSite(pr, site),
		"overlap": goSite(po, "handoff = \"overlap\"\n"+site),
	})
	h.run("systemctl", "start", "site-restart.socket", "site-overlap.socket")
	for name, port := range map[string]int{"restart": pr, "overlap": po} {
		base := fmt.Sprintf("http://127.0.0.1:%d", port)
		getReply(t, base+"/")
		if got, ok := envOfApp(t, base, "SHADOWED"); !ok || got != "x" {
			t.Errorf("%s in mode x: SHADOWED=%q (set: %v), want x", name, got, ok)
		}
		if r, code, stderr := h.mode(name, "normal"); code != 0 {
			t.Fatalf("%s: switch to normal: exit %d %+v %s", name, code, r, stderr)
		}
		if got, ok := envOfApp(t, base, "SHADOWED"); !ok || got != "site" {
			t.Errorf("%s in mode normal: SHADOWED=%q (set: %v), want the site's value", name, got, ok)
		}
	}
}
