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

	"github.com/sitectl/sitectl/internal/loadgen"
)

// pinChange is what the pin tests read of a change's --json report.
type pinChange struct {
	From     string   `json:"from"`
	To       string   `json:"to"`
	Result   string   `json:"result"`
	MainPID  int      `json:"main_pid"`
	Reason   string   `json:"reason"`
	Pinned   string   `json:"pinned"`
	Warnings []string `json:"warnings"`
}

// pinChangeOf runs sitectl args --json and returns its report, exit code
// and stderr.
func (h *host) pinChangeOf(args ...string) (pinChange, int, string) {
	h.t.Helper()
	out, stderr, code := h.result("sitectl", append(args, "--json")...)
	var r pinChange
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		h.t.Fatalf("sitectl %s --json: exit %d, %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, err, out, stderr)
	}
	return r, code, stderr
}

// pinInfo is site_file.pinned of sitectl status NAME --json.
type pinInfo struct {
	Since  time.Time `json:"since"`
	Reason string    `json:"reason"`
	Copy   string    `json:"copy"`
}

// pinOf is site_file.pinned of sitectl status NAME --json (nil when null)
// and the site's state.
func (h *host) pinOf(name string) (*pinInfo, string) {
	h.t.Helper()
	out, stderr, code := h.result("sitectl", "status", name, "--json")
	var st []struct {
		State    string `json:"state"`
		SiteFile struct {
			State  string   `json:"state"`
			Pinned *pinInfo `json:"pinned"`
		} `json:"site_file"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil || len(st) != 1 {
		h.t.Fatalf("sitectl status %s --json: exit %d, %v: %q %q", name, code, err, out, stderr)
	}
	return st[0].SiteFile.Pinned, st[0].State
}

func anyContains(ss []string, sub string) bool {
	for _, s := range ss {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

// The operator edits a gunicorn site's file so that the app fails at start
// although its program exists (a WSGI module that does not exist), runs
// systemctl daemon-reload and sitectl restart. The restart stops the old
// process before it starts the new one, so the rollback used to restart
// the same broken unit and the site went down (exit 5). Now the rollback
// goes back to the version of the file the site ran before, pins the site
// to it while the file stays as it is, and the site serves: through the
// failed restart, after a restart by systemd, a daemon-reload and another
// sitectl restart. The fixed file lifts the pin; a later failed start pins
// the site to the fixed version.
func TestFailedStartPinsTheSiteToItsLastGoodVersion(t *testing.T) {
	h, good, url, pid := servingShop(t)
	const lastGood = "/var/lib/sitectl/sites/shop/last-good.toml"
	const siteFile = "/etc/sitectl/sites/shop.toml"
	broken := strings.Replace(good, "app:application", "nosuchmodule:application", 1)
	if broken == good {
		t.Fatal("the test's edit left the site file as it was")
	}
	h.writeSite("shop", broken)
	h.run("systemctl", "daemon-reload")
	if p := h.show("site-shop.service", "SourcePath"); p["SourcePath"] != siteFile {
		t.Fatalf("before the failed restart the units come from %v, want %s", p, siteFile)
	}

	// Load through the failed restart and its rollback: requests wait on
	// the socket, which systemd holds, while no app runs.
	ctx, cancel := context.WithCancel(h.ctx)
	done := make(chan []loadgen.Result)
	go func() {
		done <- loadgen.Run(ctx, loadgen.Config{URL: url, Rate: 20, Duration: 5 * time.Minute, Timeout: 60 * time.Second})
	}()
	time.Sleep(500 * time.Millisecond)
	start := time.Now()
	r, code, stderr := h.pinChangeOf("restart", "shop")
	took := time.Since(start)
	time.Sleep(500 * time.Millisecond)
	cancel()
	res := <-done

	t.Logf("the failed restart took %s: exit %d, result %q, reason %q, pinned %q\nstderr: %s", took.Round(time.Millisecond), code, r.Result, r.Reason, r.Pinned, stderr)
	if code != 4 || r.Result != "rolled-back" {
		t.Errorf("sitectl restart of the broken file: exit %d, result %q; want 4 and rolled-back (5/rollback-failed is the site down)\nreport: %+v\nstderr: %s", code, r.Result, r, stderr)
	}
	if r.Pinned == "" || !strings.Contains(r.Pinned, lastGood) {
		t.Errorf("the report's pinned is %q, want it to name the copy %s", r.Pinned, lastGood)
	}
	if err := siteAnswers(url, "normal"); err != nil {
		t.Fatalf("after the failed restart: %v", err)
	}
	p := h.show("site-shop.service", "ActiveState", "MainPID", "SourcePath")
	if p["ActiveState"] != "active" || p["MainPID"] == "0" || p["MainPID"] == pid || p["MainPID"] != fmt.Sprint(r.MainPID) {
		t.Errorf("after the rollback the service is %v; report main_pid %d, main PID before %s", p, r.MainPID, pid)
	}
	if p["SourcePath"] != lastGood {
		t.Errorf("after the rollback the units come from %s, want the copy %s", p["SourcePath"], lastGood)
	}
	if s := loadgen.Summarize(res); s.Failed != 0 {
		for _, f := range loadgen.Failures(res)[:min(5, s.Failed)] {
			t.Logf("failed at %s: %s %s", f.Start.Format("15:04:05.000"), f.Outcome, f.Detail)
		}
		t.Errorf("%d of %d requests failed during the failed restart and its rollback", s.Failed, len(res))
	} else {
		t.Logf("load during the failed restart: %v", s)
	}
	if _, err := h.try("test", "-s", "/var/lib/sitectl/pinned/shop.json"); err != nil {
		t.Errorf("no pin file after the rollback: %v", err)
	}
	if broken != h.run("cat", siteFile) {
		t.Errorf("the rollback changed the operator's site file")
	}

	pin, state := h.pinOf("shop")
	if pin == nil || pin.Copy != lastGood || pin.Reason == "" || pin.Since.IsZero() || time.Since(pin.Since) > 10*time.Minute {
		t.Errorf("sitectl status shop --json: site_file.pinned %+v (state %s), want the copy %s with a reason and a recent since", pin, state, lastGood)
	}
	if out := h.run("sitectl", "status", "shop"); !strings.Contains(out, "failed to start as it is") || !strings.Contains(out, "pinned") {
		t.Errorf("sitectl status shop does not say the file failed to start and is pinned:\n%s", out)
	}
	if out := h.run("sitectl", "list"); !strings.Contains(out, "pinned") {
		t.Errorf("sitectl list does not say the site is pinned:\n%s", out)
	}

	// A restart systemd does by itself starts the pinned version too.
	before := h.show("site-shop.service", "MainPID")["MainPID"]
	h.run("systemctl", "restart", "site-shop.service")
	if err := siteAnswers(url, "normal"); err != nil {
		t.Errorf("after systemctl restart site-shop.service: %v", err)
	}
	if now := h.show("site-shop.service", "MainPID")["MainPID"]; now == before || now == "0" {
		t.Errorf("systemctl restart site-shop.service: main PID %s, then %s", before, now)
	}

	// A daemon-reload (apt runs one on every upgrade) keeps the pin: the
	// generator writes the units from the copy and says so.
	since := h.logMark()
	h.run("systemctl", "daemon-reload")
	if p := h.show("site-shop.service", "SourcePath"); p["SourcePath"] != lastGood {
		t.Errorf("after a daemon-reload with the file unchanged the units come from %v, want %s", p, lastGood)
	}
	if logged := h.generatorLog(since); !strings.Contains(logged, siteFile+" failed to start on") || !strings.Contains(logged, "is pinned") {
		t.Errorf("the generator does not say the site is pinned:\n%s", logged)
	}

	// sitectl restart with the file unchanged runs the pinned version and
	// says so.
	before = h.show("site-shop.service", "MainPID")["MainPID"]
	r, code, stderr = h.pinChangeOf("restart", "shop")
	if code != 0 || r.Result != "ok" || !anyContains(r.Warnings, "pinned") {
		t.Errorf("sitectl restart while pinned: exit %d, result %q, warnings %q; want 0, ok and a warning that says pinned\nreport: %+v\nstderr: %s", code, r.Result, r.Warnings, r, stderr)
	}
	if err := siteAnswers(url, "normal"); err != nil {
		t.Errorf("after sitectl restart while pinned: %v", err)
	}
	if now := h.show("site-shop.service", "MainPID")["MainPID"]; now == before || now == "0" {
		t.Errorf("sitectl restart while pinned: main PID %s, then %s", before, now)
	}
	if pin, _ := h.pinOf("shop"); pin == nil {
		t.Errorf("sitectl restart while pinned lifted the pin")
	}

	// The operator fixes the file: the pin no longer holds.
	fixed := "# fixed after the failed start\n" + good
	h.writeSite("shop", fixed)
	h.run("systemctl", "daemon-reload")
	if p := h.show("site-shop.service", "SourcePath"); p["SourcePath"] != siteFile {
		t.Errorf("after the fix and a daemon-reload the units come from %v, want %s", p, siteFile)
	}
	before = h.show("site-shop.service", "MainPID")["MainPID"]
	r, code, stderr = h.pinChangeOf("restart", "shop")
	if code != 0 || r.Result != "ok" || r.Pinned != "" || anyContains(r.Warnings, "pinned") {
		t.Errorf("sitectl restart of the fixed file: exit %d, result %q, pinned %q, warnings %q; want 0, ok, not pinned\nstderr: %s", code, r.Result, r.Pinned, r.Warnings, stderr)
	}
	if err := siteAnswers(url, "normal"); err != nil {
		t.Errorf("after the restart of the fixed file: %v", err)
	}
	if now := h.show("site-shop.service", "MainPID")["MainPID"]; now == before || now == "0" {
		t.Errorf("sitectl restart of the fixed file: main PID %s, then %s", before, now)
	}
	if pin, _ := h.pinOf("shop"); pin != nil {
		t.Errorf("sitectl status shop --json after the fix: site_file.pinned %+v, want null", pin)
	}
	if out := h.run("sitectl", "status", "shop"); strings.Contains(out, "pinned") || strings.Contains(out, "failed to start as it is") {
		t.Errorf("sitectl status shop after the fix still says pinned:\n%s", out)
	}
	if got := h.run("cat", lastGood); got != fixed {
		t.Errorf("the last good copy after the restart of the fixed file is not the fixed file:\n%s", got)
	}
	// Started from the file, the site has no pin left: the old content
	// back (a backup restored) is tried afresh, not pinned at once.
	if _, err := h.try("test", "-e", "/var/lib/sitectl/pinned/shop.json"); err == nil {
		t.Error("the pin is still there after a start from the fixed file")
	}
	h.writeSite("shop", broken)
	h.run("systemctl", "daemon-reload")
	if p := h.show("site-shop.service", "SourcePath"); p["SourcePath"] != siteFile {
		t.Errorf("the failed content written back is pinned at once: the units come from %v, want %s", p, siteFile)
	}
	h.writeSite("shop", fixed)
	h.run("systemctl", "daemon-reload")

	// A second failed start, of another broken version, pins the site to
	// the fixed one; sitectl says so without --json too.
	broken2 := strings.Replace(fixed, "app:application", "nosuchmodule2:application", 1)
	h.writeSite("shop", broken2)
	h.run("systemctl", "daemon-reload")
	out, stderr, code := h.result("sitectl", "restart", "shop")
	if code != 4 || !strings.Contains(out+stderr, "pinned") || !strings.Contains(out+stderr, lastGood) {
		t.Errorf("sitectl restart of a second broken version: exit %d, want 4 and the output saying the site is pinned to %s\nstdout: %s\nstderr: %s", code, lastGood, out, stderr)
	}
	if err := siteAnswers(url, "normal"); err != nil {
		t.Errorf("after the second failed restart: %v", err)
	}
	if got := h.run("cat", lastGood); got != fixed {
		t.Errorf("the second pin is not to the fixed version:\n%s", got)
	}
	if p := h.show("site-shop.service", "SourcePath"); p["SourcePath"] != lastGood {
		t.Errorf("after the second rollback the units come from %v, want the copy %s", p, lastGood)
	}
	if pin2, _ := h.pinOf("shop"); pin2 == nil || pin == nil || !pin2.Since.After(pin.Since) {
		t.Errorf("sitectl status shop --json after the second failed start: site_file.pinned %+v, want a pin newer than the first %+v", pin2, pin)
	}

}

// The same found by a mode switch: the file is changed so that the app
// fails in every mode (the Go test app with --fail-start), and sitectl
// mode to another mode fails; the rollback to the previous mode from the
// file as it is fails too, so it goes back to the version the site ran
// before and pins it. While pinned, a switch runs the pinned version and
// says so; the fixed file lifts the pin.
func TestFailedStartPinsTheSiteOnAModeSwitch(t *testing.T) {
	port := freePort(t)
	good := goSite(port, modeSites)
	h := newHost(t, map[string]string{"karl": good})
	installMaintenance(h)
	h.run("systemctl", "start", "site-karl.socket")
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	if r := getReply(t, url); r.Mode != "normal" {
		t.Fatalf("the site answers in mode %q", r.Mode)
	}
	const lastGood = "/var/lib/sitectl/sites/karl/last-good.toml"
	const siteFile = "/etc/sitectl/sites/karl.toml"
	broken := strings.Replace(good, `exec = ["/usr/local/bin/webapp"]`, `exec = ["/usr/local/bin/webapp", "--fail-start"]`, 1)
	if broken == good {
		t.Fatal("the test's edit left the site file as it was")
	}
	h.writeSite("karl", broken)
	h.run("systemctl", "daemon-reload")

	start := time.Now()
	r, code, stderr := h.pinChangeOf("mode", "karl", "read-only")
	t.Logf("the failed switch took %s: exit %d, result %q, reason %q, pinned %q\nstderr: %s", time.Since(start).Round(time.Millisecond), code, r.Result, r.Reason, r.Pinned, stderr)
	if code != 4 || r.Result != "rolled-back" || r.From != "normal" || r.To != "read-only" {
		t.Errorf("sitectl mode karl read-only with the broken file: exit %d, report %+v; want 4, rolled-back from normal\nstderr: %s", code, r, stderr)
	}
	if r.Pinned == "" || !strings.Contains(r.Pinned, lastGood) {
		t.Errorf("the report's pinned is %q, want it to name the copy %s", r.Pinned, lastGood)
	}
	if err := siteAnswers(url, "normal"); err != nil {
		t.Fatalf("after the failed switch: %v", err)
	}
	if p := h.show("site-karl.service", "SourcePath"); p["SourcePath"] != lastGood {
		t.Errorf("after the rollback the units come from %v, want the copy %s", p, lastGood)
	}
	if pin, _ := h.pinOf("karl"); pin == nil || pin.Copy != lastGood || pin.Reason == "" {
		t.Errorf("sitectl status karl --json: site_file.pinned %+v, want the copy %s with a reason", pin, lastGood)
	}

	// While pinned, a switch runs the pinned version, and says so.
	r, code, stderr = h.pinChangeOf("mode", "karl", "read-only")
	if code != 0 || r.Result != "ok" || !anyContains(r.Warnings, "pinned") {
		t.Errorf("sitectl mode karl read-only while pinned: exit %d, report %+v; want 0, ok and a warning that says pinned\nstderr: %s", code, r, stderr)
	}
	if err := siteAnswers(url, "read-only"); err != nil {
		t.Errorf("after the switch while pinned: %v", err)
	}

	// The fixed file lifts the pin.
	h.writeSite("karl", "# fixed after the failed start\n"+good)
	h.run("systemctl", "daemon-reload")
	r, code, stderr = h.pinChangeOf("mode", "karl", "normal")
	if code != 0 || r.Result != "ok" || r.Pinned != "" || anyContains(r.Warnings, "pinned") {
		t.Errorf("sitectl mode karl normal with the fixed file: exit %d, report %+v; want 0, ok, not pinned\nstderr: %s", code, r, stderr)
	}
	if err := siteAnswers(url, "normal"); err != nil {
		t.Errorf("after the switch with the fixed file: %v", err)
	}
	if p := h.show("site-karl.service", "SourcePath"); p["SourcePath"] != siteFile {
		t.Errorf("with the fixed file the units come from %v, want %s", p, siteFile)
	}
	if pin, _ := h.pinOf("karl"); pin != nil {
		t.Errorf("sitectl status karl --json after the fix: site_file.pinned %+v, want null", pin)
	}
}

// A deployer's restart runs in sitectl's state service, which pins the
// site and has systemd reload as root's sitectl does; the history records
// the deployer.
func TestDeployersFailedStartPinsTheSite(t *testing.T) {
	h, webURL, _ := deployerHost(t)
	file := h.run("cat", "/etc/sitectl/sites/web.toml")
	h.run("sitectl", "restart", "web") // the service has started from the file: its copy is kept
	broken := strings.Replace(file, `exec = ["/usr/local/bin/webapp"]`, `exec = ["/usr/local/bin/webapp", "--fail-start"]`, 1)
	if broken == file {
		t.Fatal("the test's edit left the site file as it was")
	}
	h.writeSite("web", broken)
	h.run("systemctl", "daemon-reload")
	out, stderr, code := h.as("dana", "sitectl", "restart", "web", "--json")
	var r pinChange
	if err := json.Unmarshal([]byte(out), &r); err != nil || code != 4 || r.Result != "rolled-back" || !strings.Contains(r.Pinned, "last-good.toml") {
		t.Fatalf("dana's sitectl restart web of a file that fails: exit %d, %v, report %+v; want 4, rolled-back and pinned\nstderr: %s", code, err, r, stderr)
	}
	if err := siteAnswers(webURL, "normal"); err != nil {
		t.Errorf("after dana's failed restart: %v", err)
	}
	if p := h.show("site-web.service", "SourcePath"); p["SourcePath"] != "/var/lib/sitectl/sites/web/last-good.toml" {
		t.Errorf("after the rollback the units come from %v, want the copy", p)
	}
	danaUID := strings.TrimSpace(h.run("id", "-u", "dana"))
	if hist := h.history("web"); len(hist) == 0 || hist[len(hist)-1].Result != "rolled-back" || fmt.Sprint(hist[len(hist)-1].UID) != danaUID {
		t.Errorf("history %+v, want dana's rolled-back restart last", hist)
	}
	if out, _, code := h.as("dana", "cat", "/var/lib/sitectl/pinned/web.json"); code == 0 {
		t.Errorf("a deployer reads the pin: %s", out)
	}
}

// A start that fails for a reason outside the site file (a release the
// app cannot run), right after root changed the file: the version the
// site ran before fails too, so the file is not what failed, and no pin
// is left; the report says the rollback failed, not that a pin holds.
func TestNoPinWhenTheVersionThatRanFailsToo(t *testing.T) {
	port := freePort(t)
	good := strings.Replace(goSite(port, ""), `exec = ["/usr/local/bin/webapp"]`, `exec = ["/usr/local/bin/run-app"]`, 1)
	h := newHost(t, nil)
	h.run("sh", "-c", `printf '#!/bin/sh\n[ -e /run/app-broken ] && { echo "release broken" >&2; exit 1; }\nexec /usr/local/bin/webapp "$@"\n' > /usr/local/bin/run-app && chmod 755 /usr/local/bin/run-app`)
	h.writeSite("karl", good)
	h.run("systemctl", "daemon-reload")
	h.run("systemctl", "start", "site-karl.socket")
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	getReply(t, url)
	h.run("sitectl", "restart", "karl") // started from the file: its copy is kept
	h.writeSite("karl", "# root's edit\n"+good)
	h.run("systemctl", "daemon-reload")
	h.run("touch", "/run/app-broken")
	r, code, stderr := h.pinChangeOf("restart", "karl")
	if code != 5 || r.Result != "rollback-failed" || r.Pinned != "" {
		t.Errorf("sitectl restart with the release broken: exit %d, report %+v; want 5, rollback-failed, not pinned\nstderr: %s", code, r, stderr)
	}
	if out := h.run("cat", "/var/lib/sitectl/pinned/karl.json"); !strings.Contains(out, `"undone": true`) {
		t.Errorf("the pin is not undone though the version that ran failed too:\n%s", out)
	}
	if pin, _ := h.pinOf("karl"); pin != nil {
		t.Errorf("status shows the undone pin: %+v", pin)
	}
	if p := h.show("site-karl.service", "SourcePath"); p["SourcePath"] != "/etc/sitectl/sites/karl.toml" {
		t.Errorf("the units come from %v, want the site file", p)
	}
	// Again, with the same file: it is not pinned again, so a deployer's
	// restarts cannot make systemd reload at will.
	reloads := func() int {
		return strings.Count(h.run("journalctl", "-b", "-o", "cat", "_PID=1"), "Reloading.")
	}
	before := reloads()
	_, stderr, code = h.result("sitectl", "restart", "karl")
	if code != 5 || strings.Contains(stderr, "pinned to") {
		t.Errorf("the second sitectl restart with the release broken: exit %d, want 5 and no pin\n%s", code, stderr)
	}
	if n := reloads() - before; n != 0 {
		t.Errorf("the second failed restart made systemd reload %d times", n)
	}
	h.run("rm", "/run/app-broken")
	if r, code, stderr := h.pinChangeOf("restart", "karl"); code != 0 || r.Result != "ok" {
		t.Errorf("sitectl restart with the release fixed: exit %d, report %+v\nstderr: %s", code, r, stderr)
	}
	getReply(t, url)
}

// A broken file that systemd started by itself: the operator's systemctl
// restart (a crash restart or a reboot does the same) ran the edited file,
// whose start fails, and prepare overwrote the last good copy with it.
// sitectl restart then goes back to the version the site last ran from
// and stopped cleanly (its ExecStopPost= marked it, prepare kept it), and
// pins it.
// Before, the rollback had nothing to go back to: exit 5, the site down.
func TestABrokenFileSystemdStartedIsRolledBackToTheVersionThatRan(t *testing.T) {
	port := freePort(t)
	good := goSite(port, "")
	h := newHost(t, map[string]string{"karl": good})
	h.run("systemctl", "start", "site-karl.socket")
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	getReply(t, url)
	const lastGood = "/var/lib/sitectl/sites/karl/last-good.toml"
	const lastRan = "/var/lib/sitectl/sites/karl/last-ran.toml"
	broken := strings.Replace(good, `exec = ["/usr/local/bin/webapp"]`, `exec = ["/usr/local/bin/webapp", "--fail-start"]`, 1)
	if broken == good {
		t.Fatal("the test's edit left the site file as it was")
	}
	h.writeSite("karl", broken)
	h.run("systemctl", "daemon-reload")
	if _, err := h.try("systemctl", "restart", "site-karl.service"); err == nil {
		t.Fatal("systemctl restart of the broken file succeeded: the test's app did not fail")
	}
	if got := h.run("cat", lastGood); got != broken {
		t.Fatalf("the failed start left the last good copy %q, want the broken file: the test does not show what it means to", got)
	}
	if got := h.run("cat", lastRan); got != good {
		t.Fatalf("the clean stop before the failed start kept %q as the version that ran, want the good file", got)
	}

	r, code, stderr := h.pinChangeOf("restart", "karl")
	if code != 4 || r.Result != "rolled-back" || r.Pinned == "" {
		t.Fatalf("sitectl restart karl after systemd started the broken file: exit %d, report %+v; want 4, rolled-back and pinned\nstderr: %s", code, r, stderr)
	}
	if err := siteAnswers(url, "normal"); err != nil {
		t.Fatalf("after the rollback: %v", err)
	}
	if got := h.run("cat", lastGood); got != good {
		t.Errorf("the pin put back %q as the last good copy, want the version that ran", got)
	}
	if pin, _ := h.pinOf("karl"); pin == nil || pin.Copy != lastGood {
		t.Errorf("sitectl status karl --json: site_file.pinned %+v, want the copy %s", pin, lastGood)
	}
	// systemd's own restarts run the pinned version now.
	h.run("systemctl", "restart", "site-karl.service")
	if err := siteAnswers(url, "normal"); err != nil {
		t.Errorf("after systemctl restart while pinned: %v", err)
	}
}

// A site pinned to its last good copy listens where the copy says, not
// where its failed file does: a new site file that claims the copy's port
// (free, as far as the files tell) gets no units, and the pinned site keeps
// serving on it after the daemon-reload.
func TestPinnedSiteKeepsItsPortFromANewcomer(t *testing.T) {
	h, good, url, _ := servingShop(t)
	oldPort := strings.TrimPrefix(url[strings.LastIndex(url, ":"):], ":")
	oldPort = strings.TrimSuffix(oldPort, "/")
	newPort := fmt.Sprint(freePort(t))
	broken := strings.Replace(strings.Replace(good, "app:application", "nosuchmodule:application", 1), ":"+oldPort+"\"", ":"+newPort+"\"", 1)
	if !strings.Contains(broken, newPort) || !strings.Contains(broken, "nosuchmodule") {
		t.Fatal("the test's edit did not move the port and break the app")
	}
	h.writeSite("shop", broken)
	h.run("systemctl", "daemon-reload")
	if r, code, stderr := h.pinChangeOf("restart", "shop"); code != 4 || r.Pinned == "" {
		t.Fatalf("the failed restart: exit %d, %+v\n%s", code, r, stderr)
	}
	if err := siteAnswers(url, "normal"); err != nil {
		t.Fatalf("after the rollback: %v", err)
	}

	h.writeSite("able", goSite(mustAtoi(t, oldPort), ""))
	h.run("systemctl", "daemon-reload")
	if ls := h.show("site-able.socket", "LoadState")["LoadState"]; ls != "not-found" {
		t.Errorf("the newcomer on the pinned site's port got units: site-able.socket is %s", ls)
	}
	if p := h.show("site-shop.socket", "LoadState", "ActiveState"); p["LoadState"] != "loaded" || p["ActiveState"] != "active" {
		t.Errorf("the pinned site's socket after the reload: %v", p)
	}
	_, stderr, code := h.result("sitectl", "check", "/etc/sitectl/sites/able.toml")
	if code != 2 || !strings.Contains(stderr, "/etc/sitectl/sites/able.toml") || !strings.Contains(stderr, "site shop") {
		t.Errorf("sitectl check does not blame the newcomer: exit %d\n%s", code, stderr)
	}
	if err := siteAnswers(url, "normal"); err != nil {
		t.Errorf("the pinned site after the newcomer's reload: %v", err)
	}
}

func mustAtoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
