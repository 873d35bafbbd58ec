//go:build integration

package integration

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sitectl/sitectl/internal/jsonschema"
)

// documentedJSON reads docs/json/*.schema.json: each verb's schema, by the
// verbs its title names ("sitectl status, list --json").
func documentedJSON(t *testing.T) map[string]jsonschema.Schema {
	t.Helper()
	files, err := filepath.Glob("../../docs/json/*.schema.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no schema in docs/json: %v", err)
	}
	byVerb := map[string]jsonschema.Schema{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		s, err := jsonschema.ParseSchema(data)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		title, _ := s["title"].(string)
		verbs, ok := strings.CutPrefix(strings.TrimSuffix(title, " --json"), "sitectl ")
		if !ok {
			t.Fatalf("%s: title %q does not name its verbs", f, title)
		}
		for _, v := range strings.Split(verbs, ", ") {
			byVerb[v] = s
		}
	}
	return byVerb
}

// Issue 12.7: what every verb prints with --json on a booted systemd, for a
// site that runs, one that is idle, one whose file is invalid and one that
// does not exist, and for every way a change ends, fits the documented
// schema; and every documented verb is among them.
func TestJSONFitsTheDocumentedSchema(t *testing.T) {
	schemas := documentedJSON(t)
	port, idlePort := freePort(t), freePort(t)
	h := newHost(t, map[string]string{
		"karl": gunicornSite(port, `reload_trigger = "/srv/wsgi/restart.txt"`+"\n"+modeSites),
		"idle": goSite(idlePort, ""),
	})
	installMaintenance(h)
	h.run("systemctl", "start", "site-karl.socket", "site-idle.socket", "site-karl-reload.path")
	h.writeSite("bad", goSite(freePort(t), `drain_timout = "5s"`))

	checked := map[string]int{}
	results := map[string]bool{}
	run := func(wantCode int, args ...string) string {
		t.Helper()
		out, stderr, code := h.result("sitectl", append(args, "--json")...)
		if code != wantCode {
			t.Errorf("sitectl %s --json: exit %d, want %d; stderr %q", strings.Join(args, " "), code, wantCode, stderr)
		}
		s, ok := schemas[args[0]]
		if !ok {
			t.Fatalf("docs/json has no schema for sitectl %s --json", args[0])
		}
		if err := jsonschema.Validate(s, []byte(out)); err != nil {
			t.Errorf("sitectl %s --json does not fit docs/json:\n%v\n%s", strings.Join(args, " "), err, out)
		}
		checked[args[0]]++
		var rep struct {
			Result string `json:"result"`
		}
		if json.Unmarshal([]byte(out), &rep) == nil {
			results[rep.Result] = true
		}
		return out
	}

	run(0, "check", "/etc/sitectl/sites/karl.toml", "/etc/sitectl/sites/idle.toml")
	run(2, "check", "/etc/sitectl/sites/bad.toml")
	run(0, "mode", "karl", "read-only")
	run(0, "mode", "karl", "read-only")
	if out := run(4, "mode", "karl", "broken", "--timeout", "40s"); !strings.Contains(out, `"journal": [`+"\n") {
		t.Errorf("a rolled-back change has no journal lines:\n%s", out)
	}
	run(0, "restart", "karl")
	run(0, "reload", "karl")
	run(0, "rollback", "karl")
	var history []struct {
		Kind, User, Result string
	}
	if err := json.Unmarshal([]byte(run(0, "history", "karl")), &history); err != nil {
		t.Fatal(err)
	}
	// Issue 12.12: history names the kind of each change and who asked.
	var kinds []string
	for _, en := range history {
		kinds = append(kinds, en.Kind+":"+en.Result)
		if en.User != "root" {
			t.Errorf("history entry %+v: user %q, want root", en, en.User)
		}
	}
	if got := strings.Join(kinds, " "); got != "mode:ok mode:rolled-back restart:ok reload:ok rollback:ok" {
		t.Errorf("history kinds: %s", got)
	}
	out := run(0, "status", "karl")
	if !strings.Contains(out, `"site": "karl"`) || !strings.Contains(out, `"armed": true`) {
		t.Errorf("sitectl status karl --json:\n%s", out)
	}
	// Issue 12.6: status shows the mode the serving process runs, read
	// from its own environment.
	var served []struct {
		Mode   string `json:"mode"`
		Served string `json:"served_mode"`
	}
	if err := json.Unmarshal([]byte(out), &served); err != nil || len(served) != 1 || served[0].Served == "" || served[0].Served != served[0].Mode {
		t.Errorf("sitectl status karl --json: served mode %+v (%v)", served, err)
	}
	if out := run(3, "status", "karl", "idle", "bad"); !strings.Contains(out, `"state": "invalid"`) {
		t.Errorf("status of an invalid site:\n%s", out)
	}
	run(4, "status", "nosuch")
	if out := run(0, "list"); strings.Count(out, `"site": `) != 3 {
		t.Errorf("sitectl list --json does not have 3 sites:\n%s", out)
	}
	// Issue 12.12: colour on a terminal, none with NO_COLOR.
	tty := func(env ...string) string {
		out, _, _ := h.result("env", append(env, "TERM=xterm", "script", "-qec", "sitectl status karl", "/dev/null")...)
		return out
	}
	if out := tty(); !strings.Contains(out, "\x1b[") {
		t.Errorf("sitectl status on a terminal has no colour: %q", out)
	}
	if out := tty("NO_COLOR=1"); strings.Contains(out, "\x1b[") || !strings.Contains(out, "karl") {
		t.Errorf("sitectl status on a terminal with NO_COLOR: %q", out)
	}
	// Issue 12.8: the lifecycle verbs.
	run(0, "disable", "idle")
	run(0, "enable", "idle")
	h.run("rm", "/etc/sitectl/sites/idle.toml")
	if out := run(0, "remove", "idle"); !strings.Contains(out, `"action": "remove"`) {
		t.Errorf("sitectl remove idle --json:\n%s", out)
	}
	for verb := range schemas {
		if checked[verb] == 0 {
			t.Errorf("sitectl %s --json is documented but was not checked here", verb)
		}
	}
	for _, r := range []string{"ok", "rolled-back"} {
		if !results[r] {
			t.Errorf("no change ended %q", r)
		}
	}
	if verbs := slices.Sorted(func(yield func(string) bool) {
		for v := range schemas {
			if !yield(v) {
				return
			}
		}
	}); len(verbs) < 8 {
		t.Errorf("docs/json documents only %v", verbs)
	}
}
