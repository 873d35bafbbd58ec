//go:build integration

package integration

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
)

// A site's state file or mode file damaged by hand (or by anything but
// sitectl, which writes them whole) never takes the site down and never
// leaves the operator stuck: every change refuses with exit 1 and touches
// nothing, the file is left as it was, status and list still show the
// site with its mode unknown, and every one of them says how to get past
// it. Doing what the hint says lets the next change through.
func TestDamagedStateOrModeFileSaysHowToGoOn(t *testing.T) {
	port := freePort(t)
	h := newHost(t, map[string]string{"karl": goSite(port, "[probe]\npath = \"/\"\n\n[modes.read-only]\nenvironment = { READ_ONLY = \"1\" }\n")})
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	statePath := "/var/lib/sitectl/sites/karl/state.json"
	modePath := "/var/lib/sitectl/sites/karl/mode.env"
	mvHint := regexp.MustCompile("sitectl: hint: sitectl leaves it as it is; to go on, move it aside as root \\(`(mv [^`]+)`\\)")

	for _, c := range []struct {
		path, what, damage string
		// next is the change the hint says goes through once the
		// file is moved aside, and the mode the site then serves.
		next []string
		mode string
	}{
		{statePath, "state file", `{"previous_mode": "norm`, []string{"mode", "karl", "read-only"}, "read-only"},
		{modePath, "mode file", "# edited by hand\nSITE_MOD=\"read-only\"\n", []string{"restart", "karl"}, "normal"},
	} {
		func() {
			h.result("sitectl", "mode", "karl", "normal")
			h.run("sitectl", "restart", "karl")
			pid := getReply(t, url).PID
			h.writeFile(c.path, c.damage, 0o600)

			for _, args := range [][]string{
				{"restart", "karl"}, {"reload", "karl"}, {"mode", "karl", "read-only"}, {"rollback", "karl"},
			} {
				_, stderr, code := h.result("sitectl", args...)
				want := fmt.Sprintf("the %s %s of site karl is damaged", c.what, c.path)
				if code != 1 || !strings.Contains(stderr, want) || !mvHint.MatchString(stderr) {
					t.Errorf("sitectl %s with a damaged %s: exit %d,\n%s\nwant exit 1, %q and a hint of how to go on", strings.Join(args, " "), c.what, code, stderr, want)
				}
				if r := getReply(t, url); r.PID != pid || r.Mode != "normal" {
					t.Errorf("sitectl %s with a damaged %s: the app answers pid %d in mode %s; want %d, normal: nothing touched", strings.Join(args, " "), c.what, r.PID, r.Mode, pid)
				}
			}
			if got := h.run("cat", c.path); got != c.damage {
				t.Errorf("the damaged %s is now %q; want it left as it was", c.what, got)
			}

			stdout, stderr, code := h.result("sitectl", "status", "karl")
			if code != 0 || !strings.Contains(stdout, "mode: unknown: sitectl cannot read the site's state") || !mvHint.MatchString(stderr) {
				t.Errorf("status with a damaged %s: exit %d,\n%s%s\nwant exit 0 (the site runs), its mode unknown, and the hint", c.what, code, stdout, stderr)
			}
			stdout, stderr, code = h.result("sitectl", "list")
			if code != 0 || !regexp.MustCompile(`(?m)^karl +running +ok +listening +active/running +\? `).MatchString(stdout) || !mvHint.MatchString(stderr) {
				t.Errorf("list with a damaged %s: exit %d,\n%s%s\nwant karl running with mode ?, and the hint", c.what, code, stdout, stderr)
			}

			// The hint's own command, run as it says.
			_, stderr, _ = h.result("sitectl", "restart", "karl")
			m := mvHint.FindStringSubmatch(stderr)
			if m == nil {
				t.Fatalf("no hint to follow in\n%s", stderr)
			}
			h.run("sh", "-c", m[1])
			if got := h.run("cat", c.path+".damaged"); got != c.damage {
				t.Errorf("the %s moved aside is %q; want what it was", c.what, got)
			}
			if out, stderr, code := h.result("sitectl", c.next...); code != 0 {
				t.Fatalf("sitectl %s after following the hint: exit %d\n%s%s", strings.Join(c.next, " "), code, out, stderr)
			}
			if r := getReply(t, url); r.PID == pid || r.Mode != c.mode {
				t.Errorf("after sitectl %s: the app answers pid %d in mode %s; want a new process in mode %s", strings.Join(c.next, " "), r.PID, r.Mode, c.mode)
			}
			h.run("rm", c.path+".damaged")
		}()
	}
}
