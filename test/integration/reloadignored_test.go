//go:build integration

package integration

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
)

// systemd 252 answers a daemon-reload it gave up on as if it had done it:
// when PID 1 cannot duplicate the descriptors it holds to serialize its
// state (10,000 listening sites under an open-file limit of 20,000 is
// enough), it logs "Too many open files", keeps every unit as it was, and
// systemctl daemon-reload exits 0. Here PID 1's soft limit is lowered to
// just above what it holds. A reload that must apply a change to the site
// file (an overlapped site whose drain_timeout changed) then fails with
// the cause instead of restarting the old units and saying "ok"; with the
// limit back, the same reload applies the change.
func TestIgnoredDaemonReloadIsAnError(t *testing.T) {
	port := freePort(t)
	before := goSite(port, "handoff = \"overlap\"\n")
	h := newHost(t, map[string]string{"ov": before})
	h.run("systemctl", "start", "site-ov.socket")
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	getReply(t, url)
	h.writeSite("ov", strings.Replace(before, `drain_timeout = "10s"`, `drain_timeout = "7s"`, 1))
	launcher := h.show("site-ov.service", "MainPID")["MainPID"]

	soft, hard := h.pid1NoFile()
	t.Cleanup(func() { _, _ = h.try("prlimit", "--pid", "1", fmt.Sprintf("--nofile=%d:%d", soft, hard)) })
	held := strings.Count(h.run("ls", "/proc/1/fd"), "\n")
	h.run("prlimit", "--pid", "1", fmt.Sprintf("--nofile=%d:%d", held+3, hard))

	// The sandbox reproduces systemd's behaviour: a reload exits 0 and
	// does nothing. (At this limit systemd may not even log why; with
	// 10,000 listening sites it logs "Failed to serialize socket fd: Too
	// many open files".)
	h.run("systemctl", "daemon-reload")
	if p := h.show("site-ov.service", "NeedDaemonReload"); p["NeedDaemonReload"] != "yes" {
		t.Fatalf("with PID 1 at %d of %d descriptors, systemctl daemon-reload reloaded after all (%v): the test cannot show anything", held, held+3, p)
	}
	out, stderr, code := h.result("sitectl", "reload", "ov")
	if code != 1 || !strings.Contains(stderr, "systemd did not reload its units") || !strings.Contains(stderr, "/proc/1/limits") {
		t.Errorf("sitectl reload with a reload systemd ignores: exit %d, want 1 and the cause\n%s%s", code, out, stderr)
	}
	if p := h.show("site-ov.service", "MainPID", "NeedDaemonReload"); p["MainPID"] != launcher || p["NeedDaemonReload"] != "yes" {
		t.Errorf("after the failed reload the service changed: %v, launcher was %s", p, launcher)
	}
	getReply(t, url)

	h.run("prlimit", "--pid", "1", fmt.Sprintf("--nofile=%d:%d", soft, hard))
	out, stderr, code = h.result("sitectl", "reload", "ov")
	if code != 0 || !strings.Contains(out, "drain_timeout changed since the service started") {
		t.Errorf("sitectl reload with the limit back: exit %d\n%s%s", code, out, stderr)
	}
	if p := h.show("site-ov.service", "MainPID", "NeedDaemonReload"); p["MainPID"] == launcher || p["NeedDaemonReload"] != "no" {
		t.Errorf("after the reload with the limit back: %v, launcher was %s", p, launcher)
	}
	getReply(t, url)
}

// pid1NoFile reads PID 1's open-file limits.
func (h *host) pid1NoFile() (soft, hard int) {
	h.t.Helper()
	for _, l := range strings.Split(h.run("cat", "/proc/1/limits"), "\n") {
		if f := strings.Fields(l); len(f) >= 5 && strings.HasPrefix(l, "Max open files") {
			s, err1 := strconv.Atoi(f[3])
			hd, err2 := strconv.Atoi(f[4])
			if err1 == nil && err2 == nil {
				return s, hd
			}
		}
	}
	h.t.Fatal("no open-file limit in /proc/1/limits")
	return 0, 0
}

// The generator warns in the journal when PID 1's open-file limit is too
// low for the sites' listeners (twice their number, and a margin), and
// says nothing when it is enough. Only what was logged since each step
// began counts: the sandboxes share the kernel log, which the generator
// writes to at boot and every sandbox's journald imports (the benchmark's
// boot with 10,000 sites leaves this very warning there).
func TestGeneratorWarnsOfPID1sOpenFileLimit(t *testing.T) {
	h := newHost(t, map[string]string{"few": goSite(freePort(t), "")})
	soft, hard := h.pid1NoFile()
	t.Cleanup(func() { _, _ = h.try("prlimit", "--pid", "1", fmt.Sprintf("--nofile=%d:%d", soft, hard)) })
	if hard < 1026 {
		t.Fatalf("PID 1's hard open-file limit is %d: this test needs at least 1,026", hard)
	}
	warningsAfter := func(limit int) string {
		h.run("prlimit", "--pid", "1", fmt.Sprintf("--nofile=%d:%d", limit, hard))
		since := h.logMark()
		h.run("systemctl", "daemon-reload")
		return h.generatorLog(since, "-p", "warning")
	}
	if w := warningsAfter(hard); strings.Contains(w, "PID 1 may open") {
		t.Errorf("a warning with PID 1's limit at %d:\n%s", hard, w)
	}
	want := "PID 1 may open 1000 files, and the 1 listening sockets of the sites need about 1026 during every daemon-reload"
	if w := warningsAfter(1000); !strings.Contains(w, want) {
		t.Errorf("no warning with PID 1's limit at 1000; want %q in:\n%s", want, w)
	}
}
