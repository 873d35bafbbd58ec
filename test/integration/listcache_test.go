//go:build integration

package integration

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestListStaysTrueWithItsCaches: root's list takes unchanged site files and
// states from its caches in /run/sitectl/cache. After each kind of change,
// seconds old or settled, list says what status (which reads every file)
// says, site by site: a mode switch, a restart, a site file rewritten, and a
// mode file edited in place with its size and modification time put back.
func TestListStaysTrueWithItsCaches(t *testing.T) {
	base := freePort(t)
	site := func(port int) string {
		return fmt.Sprintf("exec = [\"/usr/local/bin/webapp\"]\nreadiness = \"notify\"\n[[listen]]\naddress = \"127.0.0.1:%d\"\n", port)
	}
	h := newHost(t, map[string]string{"a": site(base), "b": site(base + 1), "c": site(base + 2)})
	h.run("systemctl", "start", "--all", "site-*.socket")
	type entry struct {
		Name         string          `json:"site"`
		Mode         string          `json:"mode"`
		PreviousMode string          `json:"previous_mode"`
		ModeApplied  bool            `json:"mode_applied"`
		Pending      json.RawMessage `json:"pending"`
		ActiveState  string          `json:"active_state"`
		Listeners    []string        `json:"listeners"`
	}
	read := func(args ...string) []entry {
		t.Helper()
		var es []entry
		if err := json.Unmarshal([]byte(h.run("sitectl", args...)), &es); err != nil || len(es) != 3 {
			t.Fatalf("sitectl %s: %v, %d sites", strings.Join(args, " "), err, len(es))
		}
		return es
	}
	// same checks list against status twice: the second list takes what
	// the first could record.
	same := func(step string) []entry {
		t.Helper()
		var list []entry
		for range 2 {
			list = read("list", "--json")
			if status := read("status", "--json"); !reflect.DeepEqual(list, status) {
				t.Fatalf("%s: list and status differ:\nlist   %+v\nstatus %+v", step, list, status)
			}
		}
		return list
	}
	settle := func() { time.Sleep(2500 * time.Millisecond) } // sitecache.Settle and a tick

	h.run("sitectl", "mode", "a", "maintenance")
	h.run("sitectl", "restart", "b")
	same("just switched")
	settle()
	if got := same("settled"); got[0].Mode != "maintenance" || got[0].PreviousMode != "normal" || !got[0].ModeApplied {
		t.Fatalf("a after its switch: %+v", got[0])
	}
	if out := h.run("stat", "-c", "%a %U %s", "/run/sitectl/cache/states", "/run/sitectl/cache/list"); len(strings.Fields(out)) != 6 || !strings.HasPrefix(out, "600 root ") {
		t.Fatalf("the caches: %q, want two files 0600 of root", out)
	}

	// A switch after the states were recorded: seen at once.
	h.run("sitectl", "mode", "a", "normal")
	if got := same("switched back"); got[0].Mode != "normal" || got[0].PreviousMode != "maintenance" {
		t.Fatalf("a after its switch back: %+v", got[0])
	}
	settle()
	same("settled again")

	// b's mode file edited in place, same size, its mtime put back: only
	// its change time says it changed.
	mode := "/var/lib/sitectl/sites/b/mode.env"
	h.run("sh", "-c", `set -e; cp -p `+mode+` /tmp/ref; sed 's/SITE_MODE="normal"/SITE_MODE="normax"/' /tmp/ref > /tmp/new
cmp -s /tmp/ref /tmp/new && exit 1; cat /tmp/new > `+mode+`; touch -r /tmp/ref `+mode+`
[ "$(stat -c %s%Y /tmp/ref)" = "$(stat -c %s%Y `+mode+`)" ]`)
	// Its service started before the edit: normax is not applied, as
	// the change time says, whatever the modification time.
	if got := same("mode file edited in place"); got[1].Mode != "normax" || got[1].ModeApplied {
		t.Fatalf("b after its mode file was edited: %+v", got[1])
	}

	// c's site file rewritten with another port.
	h.writeSite("c", site(base+3))
	if got := same("site file rewritten"); len(got[2].Listeners) != 1 || got[2].Listeners[0] != fmt.Sprintf("127.0.0.1:%d", base+3) {
		t.Fatalf("c after its site file changed: %+v", got[2])
	}
}
