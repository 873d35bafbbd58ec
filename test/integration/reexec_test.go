//go:build integration

package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"
)

// systemd re-executing itself while sitectl waits for its job (systemd's
// own package upgrade runs systemctl daemon-reexec, unattended-upgrades
// among others) closes sitectl's connection, and the job's JobRemoved is
// sent only to connections made after. sitectl connects again, waits for
// the job there and reports what runs: the restart is done and verified,
// not taken for a site that is down.
func TestRestartSurvivesDaemonReexec(t *testing.T) {
	port := freePort(t)
	h := newHost(t, map[string]string{"anna": goSite(port, "environment = { WEBAPP_START_DELAY = \"6s\" }\n[probe]\npath = \"/\"\ntimeout = \"10s\"\n")})
	h.run("systemctl", "start", "site-anna.socket")
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	before := getReply(t, url)

	ctx, cancel := context.WithTimeout(h.ctx, 2*time.Minute)
	defer cancel()
	cmd := h.sb.Command(ctx, "sitectl", "restart", "anna", "--timeout", "40s", "--json")
	var out, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second)
	h.run("systemctl", "daemon-reexec")
	err := cmd.Wait()
	t.Logf("sitectl restart anna, systemctl daemon-reexec 2 s after its start: %v after %v\n%s%s", err, time.Since(start).Round(time.Second), out.String(), stderr.String())
	if err != nil {
		t.Fatalf("sitectl restart anna: %v", err)
	}
	var rep struct {
		Result  string `json:"result"`
		MainPID int    `json:"main_pid"`
		Reason  string `json:"reason"`
	}
	if err := json.Unmarshal([]byte(out.String()), &rep); err != nil {
		t.Fatalf("report: %v", err)
	}
	after := getReply(t, url)
	pid, _ := strconv.Atoi(h.show("site-anna.service", "MainPID")["MainPID"])
	if rep.Result != "ok" || rep.MainPID == 0 || rep.MainPID != pid {
		t.Errorf("report: result %q, main PID %d (systemd's: %d), reason %q; want ok and systemd's main PID", rep.Result, rep.MainPID, pid, rep.Reason)
	}
	if after.PID != pid && after.PPID != pid {
		t.Errorf("the site is served by PID %d (parent %d), not by the main PID %d", after.PID, after.PPID, pid)
	}
	if after.PID == before.PID {
		t.Errorf("the site is still served by PID %d, which served before the restart", before.PID)
	}
}
