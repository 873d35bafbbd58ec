//go:build integration

package integration

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

// interruptModes: slow takes long to come up, slow3 comes up after 3s;
// settle_time makes every verification, a rollback's too, last 3s or more.
const interruptModes = `settle_time = "3s"

[probe]
path = "/"
timeout = "10s"

[modes.read-only]
environment = { READ_ONLY = "1" }

[modes.slow]
environment = { WEBAPP_START_DELAY = "40s" }

[modes.slow3]
environment = { WEBAPP_START_DELAY = "3s" }
`

// signalled runs `sitectl mode karl MODE` as a job of an interactive shell
// would run (set -m: SIGINT is not ignored), sends it the signals sigs,
// the first after delay, the others 0.3s apart, and returns its standard
// error and exit code. A signal sitectl is no longer there for is lost.
func (h *host) signalled(mode string, delay time.Duration, sigs ...string) (string, int) {
	h.t.Helper()
	_, stderr, code := h.signalledRun("sitectl mode karl "+mode, delay, sigs...)
	return stderr, code
}

// signalledRun is signalled for any command line (shell words), with its
// standard output too.
func (h *host) signalledRun(cmd string, delay time.Duration, sigs ...string) (stdout, stderr string, code int) {
	h.t.Helper()
	script := fmt.Sprintf("set -m; %s >/tmp/signalled.out 2>/tmp/signalled.err & p=$!; sleep %.1f; for s in %s; do kill -$s $p 2>/dev/null; sleep 0.3; done; wait $p; rc=$?; cat /tmp/signalled.out; cat /tmp/signalled.err >&2; exit $rc",
		cmd, delay.Seconds(), strings.Join(sigs, " "))
	stdout, stderr, code = h.result("bash", "-c", script)
	h.t.Logf("%s, %v after its start: %s: exit %d\n%s%s", cmd, delay, strings.Join(sigs, ", "), code, stdout, stderr)
	return stdout, stderr, code
}

type statusModes struct {
	Mode         string          `json:"mode"`
	PreviousMode string          `json:"previous_mode"`
	Pending      json.RawMessage `json:"pending"`
}

func (h *host) modes(site string) statusModes {
	h.t.Helper()
	var st []statusModes
	out, _, _ := h.result("sitectl", "status", site, "--json")
	if err := json.Unmarshal([]byte(out), &st); err != nil || len(st) != 1 {
		h.t.Fatalf("sitectl status %s --json: %v: %s", site, err, out)
	}
	return st[0]
}

// Root's sitectl mode interrupted while the new mode comes up (Ctrl-C,
// SIGTERM) says so, rolls the site back to the mode it was in, verifies
// it, exits 4 and records the change as rolled back; a second signal
// meanwhile is ignored. A closed terminal (SIGHUP) asks nobody to stop:
// the change runs to its end. A switch whose sitectl is killed (-9) never
// makes the mode it did not show to serve the previous one.
func TestInterruptedSwitchRollsBack(t *testing.T) {
	port := freePort(t)
	h := newHost(t, map[string]string{"karl": goSite(port, interruptModes)})
	h.run("systemctl", "start", "site-karl.socket")
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	getReply(t, url)

	for _, sigs := range [][]string{{"INT", "INT"}, {"TERM"}} {
		stderr, code := h.signalled("slow", 2*time.Second, sigs...)
		if code != 4 || !strings.Contains(stderr, "interrupted by SIG"+sigs[0]) {
			t.Errorf("%v: exit %d (want 4, rolled back), stderr %s", sigs, code, stderr)
		}
		if len(sigs) > 1 && !strings.Contains(stderr, "SIG"+sigs[1]+" ignored") {
			t.Errorf("%v: the second signal was not said to be ignored: %s", sigs, stderr)
		}
		if r := getReply(t, url); r.Mode != "normal" {
			t.Errorf("%v: the site answers in mode %s, want normal", sigs, r.Mode)
		}
		if st := h.modes("karl"); st.Mode != "normal" || st.PreviousMode != "" || string(st.Pending) != "null" {
			t.Errorf("%v: status %+v, want mode normal, no previous mode, nothing pending", sigs, st)
		}
		hist := h.history("karl")
		if last := hist[len(hist)-1]; last.To != "slow" || last.Result != "rolled-back" || !strings.Contains(last.Reason, "interrupted") {
			t.Errorf("%v: history ends with %+v", sigs, last)
		}
	}

	if stderr, code := h.signalled("slow3", time.Second, "HUP"); code != 0 || !strings.Contains(stderr, "runs to its end") {
		t.Errorf("HUP: exit %d (want 0: the change ran to its end), stderr %s", code, stderr)
	}
	if r := getReply(t, url); r.Mode != "slow3" {
		t.Errorf("after HUP: the site answers in mode %s, want slow3", r.Mode)
	}

	// Killed while slow comes up: slow was never shown to serve.
	h.signalled("slow", 2*time.Second, "KILL")
	if r, code, stderr := h.mode("karl", "read-only"); code != 0 {
		t.Fatalf("switch after the kill: exit %d %+v %s", code, r, stderr)
	}
	if st := h.modes("karl"); st.PreviousMode != "slow3" {
		t.Errorf("previous mode %q after slow (killed) → read-only, want slow3, the last shown to serve", st.PreviousMode)
	}
	out, stderr, code := h.result("sitectl", "rollback", "karl", "--json")
	var r modeReport
	json.Unmarshal([]byte(out), &r)
	if code != 0 || r.To != "slow3" {
		t.Errorf("rollback: exit %d, %+v, %s; want one to slow3", code, r, stderr)
	}
}

// The same on an overlap site: the interrupted handover is abandoned (the
// new generation never takes over), and the generation that served the
// previous mode serves on, under the same launcher: no cold restart.
func TestInterruptedOverlapSwitchKeepsTheServingGeneration(t *testing.T) {
	port := freePort(t)
	h := newHost(t, map[string]string{"karl": goSite(port, "handoff = \"overlap\"\n"+interruptModes)})
	h.run("systemctl", "start", "site-karl.socket")
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	before := getReply(t, url)
	launcher := h.show("site-karl.service", "MainPID")["MainPID"]

	stderr, code := h.signalled("slow", 2*time.Second, "INT")
	if code != 4 || !strings.Contains(stderr, "interrupted by SIGINT") {
		t.Errorf("exit %d (want 4, rolled back), stderr %s", code, stderr)
	}
	if after := h.show("site-karl.service", "MainPID")["MainPID"]; after != launcher {
		t.Errorf("the launcher was restarted: main PID %s, then %s", launcher, after)
	}
	if r := getReply(t, url); r.Mode != "normal" || r.PID != before.PID {
		t.Errorf("after the interrupt: pid %d in mode %s answers, want pid %d in mode normal", r.PID, r.Mode, before.PID)
	}
	// Nothing takes over later either.
	time.Sleep(5 * time.Second)
	if r := getReply(t, url); r.Mode != "normal" || r.PID != before.PID {
		t.Errorf("5s later: pid %d in mode %s answers, want pid %d in mode normal", r.PID, r.Mode, before.PID)
	}
}

// Root's sitectl remove of a renamed site (its heir declares the same
// listener), signalled while it stops the old site (the app drains a
// request in flight): SIGINT, SIGTERM and SIGHUP do not kill it between
// stopping the old socket and starting the heir's, which would leave the
// port refusing with nobody told. It says that it runs to its end and
// that a further signal is ignored, hands the listener over, prints its
// report and exits 0. disable, signalled while the app drains, likewise
// leaves the site out of service, not half stopped.
func TestSignalledLifecycleVerbRunsToItsEnd(t *testing.T) {
	port := freePort(t)
	h := newHost(t, map[string]string{"karl": goSite(port, "")})
	h.run("systemctl", "start", "site-karl.socket")
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	getReply(t, url)
	h.run("mv", "/etc/sitectl/sites/karl.toml", "/etc/sitectl/sites/carl.toml")
	h.run("systemctl", "daemon-reload")

	long := getAsync(url + "sleep?d=5s") // the stop waits for its drain
	time.Sleep(500 * time.Millisecond)
	out, stderr, code := h.signalledRun("sitectl remove karl", 2*time.Second, "INT", "TERM", "HUP")
	if code != 0 || !strings.Contains(out, "carl: took over its listeners (started site-carl.socket)") {
		t.Errorf("sitectl remove karl, signalled: exit %d, want 0 and the listener handed over\nstdout: %s\nstderr: %s", code, out, stderr)
	}
	for _, want := range []string{
		"sitectl: SIGINT: sitectl remove karl runs to its end, within --timeout (2m0s), so that nothing is left half done; further signals are ignored too",
		"sitectl: SIGTERM ignored: sitectl remove karl runs to its end",
		"sitectl: SIGHUP (the terminal went away?): sitectl remove karl runs to its end",
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("standard error has no line %q:\n%s", want, stderr)
		}
	}
	if r := <-long; r.err != nil || r.status != 200 {
		t.Errorf("the request in flight during the remove: %+v", r)
	}
	if err := siteAnswers(url, "normal"); err != nil {
		t.Errorf("after the signalled remove: %v", err)
	}
	if got := h.show("site-carl.service", "ActiveState")["ActiveState"]; got != "active" {
		t.Errorf("carl's service is %s, want active: the port answered from elsewhere", got)
	}
	if _, err := h.try("test", "-e", "/var/lib/sitectl/sites/karl"); err == nil {
		t.Error("karl's state was kept: the remove did not finish")
	}

	long = getAsync(url + "sleep?d=4s")
	time.Sleep(500 * time.Millisecond)
	out, stderr, code = h.signalledRun("sitectl disable carl", time.Second, "INT", "INT")
	if code != 0 || !strings.Contains(out, "carl: out of service") || !strings.Contains(stderr, "SIGINT: sitectl disable carl runs to its end") || !strings.Contains(stderr, "SIGINT ignored") {
		t.Errorf("sitectl disable carl, signalled: exit %d, want 0, the report and the lines about the signals\nstdout: %s\nstderr: %s", code, out, stderr)
	}
	<-long
	for _, unit := range []string{"site-carl.service", "site-carl.socket", "site-carl-reload.path"} {
		if got := h.show(unit, "ActiveState")["ActiveState"]; got != "inactive" {
			t.Errorf("after the signalled disable, %s is %s, want inactive", unit, got)
		}
	}
}

// A deployer's sitectl mode, interrupted while the new mode comes up in
// sitectl's state service, does what root's does: it tells the service,
// which rolls the site back to the mode it was in and verifies it; the
// deployer's sitectl says so, waits for the outcome, and exits 4; the
// history records the change as rolled back by the interruption, and a
// second signal meanwhile is ignored. A deployer's sitectl killed (-9)
// only hangs up: the change runs to its end in the service, and is
// recorded.
func TestInterruptedDeployerSwitchRollsBack(t *testing.T) {
	port := freePort(t)
	h := newHost(t, nil)
	stateService(h)
	h.run("useradd", "--create-home", "--groups", "sitectl-deploy", "dana")
	danaUID := strings.TrimSpace(h.run("id", "-u", "dana"))
	h.writeSite("karl", goSite(port, `deployers = ["user:dana"]
[probe]
path = "/"
timeout = "10s"

[modes.read-only]
environment = { READ_ONLY = "1", WEBAPP_START_DELAY = "40s" }

[modes.slow3]
environment = { WEBAPP_START_DELAY = "3s" }
`))
	h.run("systemctl", "daemon-reload")
	h.run("systemctl", "start", "site-karl.socket")
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	getReply(t, url)

	for _, sigs := range [][]string{{"INT", "INT"}, {"TERM"}} {
		_, stderr, code := h.signalledRun("setpriv --reuid=dana --regid=dana --init-groups -- sitectl mode karl read-only", 2*time.Second, sigs...)
		if code != 4 || !strings.Contains(stderr, "interrupted by SIG"+sigs[0]+": the change of site karl stops") {
			t.Errorf("%v: exit %d (want 4, rolled back), stderr %s", sigs, code, stderr)
		}
		if len(sigs) > 1 && !strings.Contains(stderr, "SIG"+sigs[1]+" ignored") {
			t.Errorf("%v: the second signal was not said to be ignored: %s", sigs, stderr)
		}
		if r := getReply(t, url); r.Mode != "normal" {
			t.Errorf("%v: the site answers in mode %s, want normal", sigs, r.Mode)
		}
		if st := h.modes("karl"); st.Mode != "normal" || string(st.Pending) != "null" {
			t.Errorf("%v: status %+v, want mode normal, nothing pending", sigs, st)
		}
		hist := h.history("karl")
		if last := hist[len(hist)-1]; last.To != "read-only" || last.Result != "rolled-back" || !strings.Contains(last.Reason, "interrupted by SIG"+sigs[0]) || fmt.Sprint(last.UID) != danaUID {
			t.Errorf("%v: history ends with %+v, want dana's switch to read-only rolled back, interrupted", sigs, last)
		}
	}

	// Killed: the service runs the change to its end.
	h.signalledRun("setpriv --reuid=dana --regid=dana --init-groups -- sitectl mode karl slow3", time.Second, "KILL")
	deadline := time.Now().Add(30 * time.Second)
	for {
		hist := h.history("karl")
		last := hist[len(hist)-1]
		if last.To == "slow3" && last.Result == "ok" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("30s after dana's sitectl was killed, history ends with %+v, want the switch to slow3 ok", last)
		}
		time.Sleep(500 * time.Millisecond)
	}
	if r := getReply(t, url); r.Mode != "slow3" {
		t.Errorf("after the kill: the site answers in mode %s, want slow3", r.Mode)
	}
}
