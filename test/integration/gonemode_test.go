//go:build integration

package integration

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// goneModeSite is a site whose modes are given by modes, with a probe.
func goneModeSite(port int, handoff, modes string) string {
	return goSite(port, fmt.Sprintf("handoff = %q\n[probe]\npath = \"/\"\n%s", handoff, modes))
}

// The operator renames the mode a site runs in its file, then switches the
// site to a mode that fails: the rollback brings back the mode the site ran,
// as it ran it (the site file no longer has it, the mode file does), and the
// site serves on, instead of crash-looping in the failed mode (restart) or
// being reported down while its old generation serves (overlap).
func TestFailedSwitchOutOfAGoneModeRollsBackToIt(t *testing.T) {
	const before = "[modes.read-only]\nenvironment = { READ_ONLY = \"1\" }\n[modes.bad]\nenvironment = { WEBAPP_FAIL_START = \"1\" }\n"
	const after = "[modes.ro]\nenvironment = { READ_ONLY = \"1\" }\n[modes.bad]\nenvironment = { WEBAPP_FAIL_START = \"1\" }\n"
	for _, handoff := range []string{"restart", "overlap"} {
		t.Run(handoff, func(t *testing.T) {
			port := freePort(t)
			h := newHost(t, map[string]string{"karl": goneModeSite(port, handoff, before)})
			h.run("systemctl", "start", "site-karl.socket")
			url := fmt.Sprintf("http://127.0.0.1:%d/", port)
			getReply(t, url)
			h.run("sitectl", "mode", "karl", "read-only")
			h.writeSite("karl", goneModeSite(port, handoff, after))
			h.run("systemctl", "daemon-reload")

			out, stderr, code := h.result("sitectl", "mode", "karl", "bad")
			if code != 4 || !strings.Contains(stderr, "the site runs mode read-only again, which /etc/sitectl/sites/karl.toml no longer has") {
				t.Fatalf("sitectl mode karl bad: exit %d, want 4 with the mode brought back:\n%s%s", code, out, stderr)
			}
			if r := getReply(t, url); r.Mode != "read-only" {
				t.Errorf("after the rollback the site serves mode %q, want read-only", r.Mode)
			}
			if st, _, code := h.result("sitectl", "status", "karl"); code != 0 ||
				!strings.Contains(st, "mode: read-only (no longer in the site file) (previous: normal); served (the serving process runs it); sitectl restart and reload refuse: `sitectl mode karl MODE` switches it to a mode the file has") {
				t.Errorf("status after the rollback: exit %d\n%s", code, st)
			}
			if hist := h.run("sitectl", "history", "karl"); !strings.Contains(hist, "read-only  bad        rolled-back") {
				t.Errorf("history:\n%s", hist)
			}
			// A start systemd makes by itself runs the recorded mode too.
			h.run("systemctl", "restart", "site-karl.service")
			if r := getReply(t, url); r.Mode != "read-only" {
				t.Errorf("after systemctl restart the site serves mode %q, want read-only", r.Mode)
			}
		})
	}
}

// The previous mode, which a rollback goes back to, renamed in the site
// file of a keep_previous site: the rollback, warm or cold, changes
// nothing, exits 3 and says which mode the file lost and what to do.
func TestRollbackToAPreviousModeTheFileLost(t *testing.T) {
	port := freePort(t)
	site := func(name string) string {
		return goSite(port, "handoff = \"overlap\"\nkeep_previous = \"10m\"\n[modes."+name+"]\nenvironment = { READ_ONLY = \"1\" }\n")
	}
	h := newHost(t, map[string]string{"karl": site("read-only")})
	h.run("systemctl", "start", "site-karl.socket")
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	getReply(t, url)
	h.run("sitectl", "mode", "karl", "read-only")
	h.run("sitectl", "mode", "karl", "normal")
	h.writeSite("karl", site("ro"))
	h.run("systemctl", "daemon-reload")
	serving := getReply(t, url)
	if st := h.run("sitectl", "status", "karl"); !strings.Contains(st, "mode: normal (previous: read-only, no longer in the site file: sitectl rollback refuses); served") {
		t.Errorf("status:\n%s", st)
	}
	for _, args := range [][]string{{"rollback", "karl"}, {"rollback", "karl", "--cold"}} {
		out, stderr, code := h.result("sitectl", args...)
		if code != 3 || !strings.Contains(stderr, "a rollback goes back to mode read-only, which /etc/sitectl/sites/karl.toml no longer has (it has: maintenance, normal, ro); nothing was done") {
			t.Errorf("sitectl %s: exit %d, want 3:\n%s%s", strings.Join(args, " "), code, out, stderr)
		}
	}
	if r := getReply(t, url); r.Mode != "normal" || r.PID != serving.PID {
		t.Errorf("after the refused rollbacks the site serves %+v, want %+v", r, serving)
	}
	if hist := h.run("sitectl", "history", "karl"); strings.Count(hist, "\n") != 3 {
		t.Errorf("a refused rollback was recorded:\n%s", hist)
	}
}

// The operator edits the environment of the mode the site runs: status
// says that the process that serves runs an older version of the mode,
// naming the variables (never their values), until a restart applies it.
func TestStatusTellsAnOlderModeEnvironment(t *testing.T) {
	for _, handoff := range []string{"restart", "overlap"} {
		t.Run(handoff, func(t *testing.T) {
			port := freePort(t)
			h := newHost(t, map[string]string{"karl": goneModeSite(port, handoff, "[modes.read-only]\nenvironment = { READ_ONLY = \"1\" }\n")})
			h.run("systemctl", "start", "site-karl.socket")
			getReply(t, fmt.Sprintf("http://127.0.0.1:%d/", port))
			h.run("sitectl", "mode", "karl", "read-only")
			h.writeSite("karl", goneModeSite(port, handoff, "[modes.read-only]\nenvironment = { READ_ONLY = \"secret-2\", SHOP_NEW = \"1\" }\n"))
			h.run("systemctl", "daemon-reload")

			st, _, code := h.result("sitectl", "status", "karl")
			if code != 0 || !strings.Contains(st, "mode: read-only (previous: normal); the process that serves runs an older version of it: in its environment READ_ONLY, SHOP_NEW are not as the site file has them: it applies at the next restart") ||
				strings.Contains(st, "secret-2") {
				t.Errorf("status after the mode's environment changed: exit %d\n%s", code, st)
			}
			if js := h.run("sitectl", "status", "karl", "--json"); !strings.Contains(js, `"served_differs": [
      "READ_ONLY",
      "SHOP_NEW"
    ]`) {
				t.Errorf("status --json:\n%s", js)
			}
			h.run("sitectl", "restart", "karl")
			if st := h.run("sitectl", "status", "karl"); !strings.Contains(st, "mode: read-only (previous: normal); served (the serving process runs it)") {
				t.Errorf("status after the restart:\n%s", st)
			}
		})
	}
}

// The operator switches handoff in the site file while the site runs:
// status reads which mode is served from the service as it runs, not as
// the file now says it would, both ways.
func TestStatusServedModeAfterHandoffChanged(t *testing.T) {
	port := freePort(t)
	const modes = "[modes.read-only]\nenvironment = { READ_ONLY = \"1\" }\n"
	h := newHost(t, map[string]string{"karl": goneModeSite(port, "overlap", modes)})
	h.run("systemctl", "start", "site-karl.socket")
	getReply(t, fmt.Sprintf("http://127.0.0.1:%d/", port))
	h.run("sitectl", "mode", "karl", "read-only") // a handover: the launcher started in normal
	const served = "mode: read-only (previous: normal); served (the serving process runs it)"
	for _, handoff := range []string{"restart", "overlap"} {
		h.writeSite("karl", goneModeSite(port, handoff, modes))
		h.run("systemctl", "daemon-reload")
		if st := h.run("sitectl", "status", "karl"); !strings.Contains(st, served) {
			t.Errorf("status with handoff = %q in the file, the service running the other:\n%s", handoff, st)
		}
		h.run("sitectl", "restart", "karl")
		if st := h.run("sitectl", "status", "karl"); !strings.Contains(st, served) {
			t.Errorf("status after the restart with handoff = %q:\n%s", handoff, st)
		}
	}
}

// The operator edits the environment of the mode a keep_previous site's
// warm generation runs: sitectl rollback does not flip back to that
// generation, which runs the older version, but hands over cold to the
// mode as the file has it, and history has one rollback, ok.
func TestWarmRollbackSkipsAnOlderVersionOfTheMode(t *testing.T) {
	port := freePort(t)
	site := func(v string) string {
		return goSite(port, "handoff = \"overlap\"\nkeep_previous = \"10m\"\n[probe]\npath = \"/\"\n"+
			"[modes.read-only]\nenvironment = { READ_ONLY = \""+v+"\", WEBAPP_EXPOSE_ENV = \"READ_ONLY\" }\n")
	}
	h := newHost(t, map[string]string{"karl": site("1")})
	h.run("systemctl", "start", "site-karl.socket")
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	getReply(t, url)
	h.run("sitectl", "mode", "karl", "read-only")
	h.run("sitectl", "mode", "karl", "normal") // read-only's generation is kept warm
	h.writeSite("karl", site("2"))
	h.run("systemctl", "daemon-reload")

	out, stderr, code := h.result("sitectl", "rollback", "karl")
	if code != 0 || !strings.Contains(out+stderr, "no warm rollback: the warm generation runs an older version of mode read-only than the site file has") {
		t.Errorf("sitectl rollback: exit %d\n%s%s", code, out, stderr)
	}
	if _, body := get(t, url); !strings.Contains(body, `"READ_ONLY": "2"`) {
		t.Errorf("after the rollback the site serves:\n%s", body)
	}
	if hist := h.run("sitectl", "history", "karl"); strings.Contains(hist, "rollback-failed") || strings.Count(hist, "rollback ") != 1 {
		t.Errorf("history:\n%s", hist)
	}
}

// keep_previous taken out of the file (here with the handoff switched to
// restart) does not end the generation kept warm: status still shows it,
// and says that a rollback now goes cold, which it does.
func TestWarmGenerationShownAfterKeepPreviousWasDropped(t *testing.T) {
	port := freePort(t)
	h := newHost(t, map[string]string{"karl": goSite(port, "handoff = \"overlap\"\nkeep_previous = \"10m\"\n")})
	h.run("systemctl", "start", "site-karl.socket")
	getReply(t, fmt.Sprintf("http://127.0.0.1:%d/", port))
	h.run("sitectl", "mode", "karl", "maintenance") // normal's generation is kept warm
	h.writeSite("karl", goSite(port, ""))
	h.run("systemctl", "daemon-reload")

	out, stderr, code := h.result("sitectl", "status", "karl", "--json")
	var st []struct {
		Warm *struct {
			MainPID       int  `json:"main_pid"`
			RollbackFlips bool `json:"rollback_flips"`
		} `json:"warm"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil || len(st) != 1 {
		t.Fatalf("status --json: exit %d, %v\n%s%s", code, err, out, stderr)
	}
	if w := st[0].Warm; w == nil || w.MainPID <= 0 || w.RollbackFlips {
		t.Errorf("status --json of the warm generation after keep_previous was dropped: %+v", w)
	}
	if text := h.run("sitectl", "status", "karl"); !strings.Contains(text, "the site file no longer has keep_previous, so sitectl rollback goes cold") {
		t.Errorf("status:\n%s", text)
	}
}
