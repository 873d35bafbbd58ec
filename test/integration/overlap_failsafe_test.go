//go:build integration

package integration

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Issue 11, item 1: with handoff = "overlap", a generation told to drain
// that ignores SIGTERM is stopped after drain_timeout: SIGTERM to every
// process of that generation (its worker, and a daemon that left its
// session and was reparented), then SIGKILL of what is left after
// stop_timeout. Afterwards no request is answered by the old mode, the
// unit's cgroup holds only the serving generation, and status and the
// journal say what happened.
func TestOverlapKillsAGenerationThatIgnoresSIGTERM(t *testing.T) {
	port := freePort(t)
	h := newHost(t, map[string]string{"ov": fmt.Sprintf(`exec = ["/usr/local/bin/webapp"]
readiness = "notify"
handoff = "overlap"
drain_timeout = "2s"
stop_timeout = "1s"
[probe]
path = "/health"
[modes.stubborn]
environment = { WEBAPP_IGNORE_TERM = "1", WEBAPP_SPAWN_CHILDREN = "2", WEBAPP_CHILD_IGNORE_TERM = "all", WEBAPP_CHILD_DAEMONIZE = "1" }
[[listen]]
address = "127.0.0.1:%d"
`, port)})
	h.run("systemctl", "start", "site-ov.socket")
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	getReply(t, url)
	launcher := h.show("site-ov.service", "MainPID")["MainPID"]

	if r, code, stderr := h.mode("ov", "stubborn"); code != 0 {
		t.Fatalf("switch to stubborn: exit %d %+v %s", code, r, stderr)
	}
	stubborn := h.cgroupProcs("site-ov.service")
	t.Logf("processes with the stubborn generation serving: %v", stubborn)
	start := time.Now()
	if r, code, stderr := h.mode("ov", "normal"); code != 0 {
		t.Fatalf("switch back to normal: exit %d %+v %s", code, r, stderr)
	}
	// Until drain_timeout, the stubborn generation, which ignores SIGTERM,
	// still takes connections from the shared socket beside the new one:
	// ask until the new generation answers.
	serving := getReply(t, url)
	for end := time.Now().Add(10 * time.Second); serving.Mode != "normal" && time.Now().Before(end); {
		serving = getReply(t, url)
	}
	if serving.Mode != "normal" {
		t.Fatalf("after the switch back the site answers in mode %q", serving.Mode)
	}

	// drain_timeout + stop_timeout is 3s; the status says when it is over.
	// On a busy host that takes longer, never less.
	var status string
	for end := time.Now().Add(30 * time.Second); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		status = h.show("site-ov.service", "StatusText")["StatusText"]
		if !strings.Contains(status, "draining") {
			break
		}
	}
	took := time.Since(start)
	t.Logf("the stubborn generation was gone %.1fs after the switch back; status %q", took.Seconds(), status)
	if strings.Contains(status, "draining") {
		t.Errorf("30s after the switch back the status still says %q", status)
	} else if took < 3*time.Second {
		t.Errorf("the stubborn generation was gone after %s, before drain_timeout + stop_timeout (3s)", took)
	}
	if !strings.Contains(status, "generation 2 was killed after the drain timeout") {
		t.Errorf("status %q does not report the kill", status)
	}

	old := 0
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	for i := 0; i < 200; i++ {
		resp, err := c.Get(url)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		resp.Body.Close()
		if resp.Header.Get("X-Site-Mode") == "stubborn" {
			old++
		}
	}
	t.Logf("%d of 200 requests answered by the old mode", old)
	if old != 0 {
		t.Errorf("%d of 200 requests were answered by the stubborn generation after drain + stop", old)
	}

	procs := h.cgroupProcs("site-ov.service")
	want := []string{launcher, strconv.Itoa(serving.PID)}
	slices.Sort(procs)
	slices.Sort(want)
	if !slices.Equal(procs, want) {
		t.Errorf("the unit's cgroup holds %v, want only the launcher and the serving generation %v", procs, want)
	}
	journal := h.run("journalctl", "-u", "site-ov.service", "-o", "cat", "--no-pager")
	for _, line := range []string{
		"generation 2 did not exit within the drain timeout (2s): SIGTERM to its 3 processes",
		"generation 2 still runs 3 processes after the stop timeout (1s): SIGKILL",
		"generation 2 was killed after the drain timeout",
	} {
		if !strings.Contains(journal, line) {
			t.Errorf("the journal does not say %q", line)
		}
	}
	if t.Failed() {
		t.Logf("journal:\n%s", journal)
	}
}
