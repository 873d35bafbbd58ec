//go:build integration

package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sitectl/sitectl/internal/loadgen"
)

// warmSite is a Go app site with keep_previous: its generations announce
// the keep-alive switch (activation.SwitchKeepAlives), and the modes
// normal and read-only stand for the releases r1 and r2.
func warmSite(port int, keep string) string {
	return goSite(port, fmt.Sprintf("handoff = \"overlap\"\nkeep_previous = %q\nenvironment = { WEBAPP_KEEPALIVE_SWITCH = \"1\" }\n%s", keep, modeSites))
}

// changeJSON is what the warm tests read of sitectl's --json report.
type changeJSON struct {
	To       string `json:"to"`
	Result   string `json:"result"`
	Rollback string `json:"rollback"`
	NoWarm   string `json:"no_warm"`
}

func (h *host) change(args ...string) changeJSON {
	h.t.Helper()
	out, stderr, code := h.result("sitectl", append(args, "--json")...)
	var rep changeJSON
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code != 0 {
		h.t.Fatalf("sitectl %v: exit %d, %v: %s %s", args, code, err, out, stderr)
	}
	return rep
}

// firstAnswerIn polls url, a new connection each time, until a response
// comes from mode, and returns when that response came.
func firstAnswerIn(ctx context.Context, url, mode string) (time.Time, error) {
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	for {
		resp, err := c.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.Header.Get("X-Site-Mode") == mode {
				return time.Now(), nil
			}
		}
		if ctx.Err() != nil {
			return time.Time{}, ctx.Err()
		}
	}
}

// warmServers are the servers of the warm rollback tests; genPID is the
// pid of the generation that answered (see overlapServers).
var warmServers = []struct {
	name   string
	site   func(port int, keep string) string
	genPID func(appReply) int
}{
	{"go", warmSite, func(r appReply) int { return r.PID }},
	{"gunicorn", func(p int, keep string) string {
		return gunicornSite(p, fmt.Sprintf("handoff = \"overlap\"\nkeep_previous = %q\n%s", keep, modeSites))
	}, func(r appReply) int { return r.PPID }},
	{"uwsgi", func(p int, keep string) string {
		return uwsgiSite(p, fmt.Sprintf("handoff = \"overlap\"\nkeep_previous = %q\n%s", keep, modeSites))
	}, func(r appReply) int { return r.PPID }},
}

// Issue 15 on the booted systemd, Go app, gunicorn and uWSGI: under
// fixed-rate load without keep-alive, a deploy (a mode switch, r1 normal
// → r2 read-only) keeps r1 warm and gives every new request to r2;
// sitectl rollback flips back to r1 without a process start (the flip is
// logged: command issued → first answer from r1), r2 drains and is gone,
// nothing fails. For the Go app also: a warm generation stops by itself
// after keep_previous, and a rollback after the warm generation was killed
// goes cold and says why.
func TestWarmRollback(t *testing.T) {
	for _, srv := range warmServers {
		t.Run(srv.name, func(t *testing.T) {
			port, short := freePort(t), freePort(t)
			sites := map[string]string{"warm": srv.site(port, "1h")}
			if srv.name == "go" {
				sites["short"] = srv.site(short, "5s")
			}
			h := newHost(t, sites)
			installMaintenance(h)
			h.run("systemctl", "start", "site-warm.socket")
			if n := strings.Count(h.run("systemctl", "cat", "site-warm.socket"), fmt.Sprintf("ListenStream=127.0.0.1:%d\n", port)); n != 2 {
				t.Fatalf("the socket unit lists the address %d times, want 2", n)
			}
			url := fmt.Sprintf("http://127.0.0.1:%d/", port)
			r1 := warmDeployRollback(t, h, url, srv.genPID)
			if srv.name != "go" {
				return
			}
			h.run("systemctl", "start", "site-short.socket")
			warmExpires(t, h, fmt.Sprintf("http://127.0.0.1:%d/", short))
			warmKilled(t, h, url, r1)
		})
	}
}

// warmDeployRollback deploys r2 over r1 and rolls back under load, and
// returns r1's generation pid.
func warmDeployRollback(t *testing.T, h *host, url string, genPID func(appReply) int) int {
	r1 := genPID(getReply(t, url))
	ctx, cancel := context.WithCancel(h.ctx)
	done := make(chan []loadgen.Result)
	go func() {
		done <- loadgen.Run(ctx, loadgen.Config{URL: url, Rate: 100, Duration: 10 * time.Minute, Check: modeCheck})
	}()
	kept := make(chan []keptResult)
	go func() { kept <- keepAliveClient(ctx, url) }()
	time.Sleep(time.Second)
	if rep := h.change("mode", "warm", "read-only"); rep.Result != "ok" {
		t.Fatalf("deploy: %+v", rep)
	}
	deployed := time.Now()
	reply := getReply(t, url)
	r2 := genPID(reply)
	if reply.Mode != "read-only" || r2 == r1 {
		t.Fatalf("after the deploy %+v answered, want read-only from a new generation", reply)
	}
	if status := h.show("site-warm.service", "StatusText")["StatusText"]; !strings.Contains(status, "warm: generation 1 until") {
		t.Errorf("status line %q does not name the warm generation", status)
	}
	if _, err := h.try("kill", "-0", fmt.Sprint(r1)); err != nil {
		t.Fatalf("r1 (pid %d) is not running while warm: %v", r1, err)
	}
	checkWarmStatus(t, h, r1)
	time.Sleep(2 * time.Second) // load on r2 while r1 is warm

	// What running any command in the sandbox costs, for the log: part
	// of the flip as measured here.
	t0 := time.Now()
	h.run("true")
	t.Logf("running a command in the sandbox takes %s", time.Since(t0).Round(100*time.Microsecond))

	fctx, fcancel := context.WithTimeout(h.ctx, time.Minute)
	defer fcancel()
	first := make(chan time.Time, 1)
	issued := time.Now()
	go func() { at, _ := firstAnswerIn(fctx, url, "normal"); first <- at }()
	rep := h.change("rollback", "warm")
	returned := time.Now()
	at := <-first
	t.Logf("warm rollback: %+v; first answer from r1 %s after the command was issued (sitectl rollback returned after %s)",
		rep, at.Sub(issued).Round(100*time.Microsecond), returned.Sub(issued).Round(time.Millisecond))
	if rep.Rollback != "warm" || rep.To != "normal" || rep.Result != "ok" {
		t.Fatalf("rollback: %+v, want a warm rollback to normal", rep)
	}
	logFlip(t, h, issued)
	if back := genPID(getReply(t, url)); back != r1 {
		t.Errorf("after the rollback generation pid %d answered, want r1's %d: no process was to start", back, r1)
	}
	h.waitFor("r2 to drain and exit", time.Minute, func() bool {
		_, err := h.try("kill", "-0", fmt.Sprint(r2))
		return err != nil
	})
	time.Sleep(time.Second)
	cancel()
	checkWarmLoad(t, <-done, deployed, issued, returned)
	checkKeptAlive(t, <-kept, deployed, issued)
	return r1
}

// warmExpires: keep_previous ran out, the warm generation drains by
// itself; a rollback then is cold and says why.
func warmExpires(t *testing.T, h *host, url string) {
	s1 := getReply(t, url)
	h.change("mode", "short", "read-only")
	h.waitFor("the warm generation of short to stop after keep_previous", time.Minute, func() bool {
		_, err := h.try("kill", "-0", fmt.Sprint(s1.PID))
		return err != nil
	})
	if j := h.run("journalctl", "-u", "site-short.service", "-o", "cat", "--no-pager"); !strings.Contains(j, "warm generation 1 drains: keep_previous 5s ran out") {
		t.Errorf("the journal does not say why the warm generation stopped:\n%s", j)
	}
	if rep := h.change("rollback", "short"); rep.Rollback != "cold" || rep.Result != "ok" || !strings.Contains(rep.NoWarm, "no warm generation (generation 1 was drained: keep_previous 5s ran out)") {
		t.Errorf("rollback after keep_previous: %+v", rep)
	}
	if r := getReply(t, url); r.Mode != "normal" || r.PID == s1.PID {
		t.Errorf("after the cold rollback %+v answered, want normal from a new generation", r)
	}
}

// warmKilled: the warm generation was killed; the rollback goes cold,
// with the reason in its output.
func warmKilled(t *testing.T, h *host, url string, r1 int) {
	h.change("mode", "warm", "read-only")
	h.run("kill", "-9", fmt.Sprint(r1))
	h.waitFor("the launcher to see the warm generation die", time.Minute, func() bool {
		return !strings.Contains(h.show("site-warm.service", "StatusText")["StatusText"], "warm:")
	})
	out, stderr, code := h.result("sitectl", "rollback", "warm")
	if code != 0 || !strings.Contains(out+stderr, "warm: no warm rollback: no warm generation (warm generation 1 exited: signal: killed); rolled back cold") {
		t.Errorf("rollback after the warm generation died: exit %d:\n%s%s", code, out, stderr)
	}
	if r := getReply(t, url); r.Mode != "normal" {
		t.Errorf("after the cold rollback mode %s answered, want normal", r.Mode)
	}
}

// checkWarmLoad checks the load of TestWarmRollback: nothing failed; every
// request begun once the deploy returned and before the rollback was issued
// was answered by r2 (read-only): the warm r1 got none; and every one begun
// after the rollback returned by r1 (normal).
func checkWarmLoad(t *testing.T, res []loadgen.Result, deployed, issued, returned time.Time) {
	t.Helper()
	s := loadgen.Summarize(res)
	t.Logf("load: %v", s)
	for _, f := range loadgen.Failures(res)[:min(5, s.Failed)] {
		t.Logf("failed at %s: %s %s", f.Start.Format("15:04:05.000"), f.Outcome, f.Detail)
	}
	if s.Failed > 0 {
		t.Errorf("%d of %d requests failed", s.Failed, s.Requests)
	}
	var toR2, whileWarm, afterBack, toR1 int
	for _, r := range res {
		mode := r.Header.Get("X-Site-Mode")
		switch {
		case r.Start.After(deployed) && r.Start.Before(issued):
			whileWarm++
			if mode == "read-only" {
				toR2++
			}
		case r.Start.After(returned):
			afterBack++
			if mode == "normal" {
				toR1++
			}
		}
	}
	t.Logf("while r1 was warm: %d of %d requests answered by r2; after the rollback: %d of %d by r1", toR2, whileWarm, toR1, afterBack)
	if whileWarm == 0 || toR2 != whileWarm {
		t.Errorf("while r1 was warm, %d of %d requests were answered by r2, want all", toR2, whileWarm)
	}
	if afterBack == 0 || toR1 != afterBack {
		t.Errorf("after the rollback, %d of %d requests were answered by r1, want all", toR1, afterBack)
	}
}

// checkWarmStatus: sitectl status shows the warm generation, in text and
// JSON.
func checkWarmStatus(t *testing.T, h *host, r1 int) {
	t.Helper()
	out, stderr, code := h.result("sitectl", "status", "warm", "--json")
	var sites []struct {
		Warm *struct {
			Generation int       `json:"generation"`
			MainPID    int       `json:"main_pid"`
			Mode       string    `json:"mode"`
			Until      time.Time `json:"until"`
			Memory     int64     `json:"memory_bytes"`
		} `json:"warm"`
	}
	if err := json.Unmarshal([]byte(out), &sites); err != nil || len(sites) != 1 {
		t.Fatalf("sitectl status --json: exit %d, %v: %s %s", code, err, out, stderr)
	}
	if w := sites[0].Warm; w == nil || w.Generation != 1 || w.MainPID != r1 || w.Mode != "normal" || w.Until.IsZero() || w.Memory <= 0 {
		t.Errorf("status --json: warm %+v, want generation 1 (pid %d) in mode normal", w, r1)
	}
	text, _, _ := h.result("sitectl", "status", "warm")
	t.Logf("sitectl status:\n%s", text)
	if !strings.Contains(text, fmt.Sprintf("generation 1 (pid %d), mode normal", r1)) {
		t.Errorf("sitectl status does not show the warm generation:\n%s", text)
	}
}

// logFlip logs the launcher's flip as its journal has it: how long the
// setsockopt took, and when it happened after the command was issued (the
// sandbox shares the host's clock).
func logFlip(t *testing.T, h *host, issued time.Time) {
	t.Helper()
	out := h.run("journalctl", "-u", "site-warm.service", "-o", "json", "--no-pager", "--grep", "flipped in")
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var e struct {
			Message  string `json:"MESSAGE"`
			Realtime string `json:"__REALTIME_TIMESTAMP"`
		}
		if json.Unmarshal([]byte(l), &e) != nil {
			continue
		}
		var us int64
		fmt.Sscan(e.Realtime, &us)
		t.Logf("the launcher, %s after the command was issued: %s", time.UnixMicro(us).Sub(issued).Round(100*time.Microsecond), e.Message)
	}
}

// keptResult is one request of keepAliveClient.
type keptResult struct {
	start time.Time
	mode  string
	pid   string
	err   error
}

// keepAliveClient sends a request every 20 ms over one kept-alive
// connection (as a reverse proxy's upstream pool would), until ctx ends.
func keepAliveClient(ctx context.Context, url string) []keptResult {
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 1, MaxConnsPerHost: 1}}
	var out []keptResult
	for ctx.Err() == nil {
		r := keptResult{start: time.Now()}
		resp, err := c.Get(url)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			r.mode, r.pid = resp.Header.Get("X-Site-Mode"), resp.Header.Get("X-Pid")
			if resp.StatusCode != http.StatusOK {
				err = fmt.Errorf("status %d", resp.StatusCode)
			}
		}
		r.err = err
		out = append(out, r)
		time.Sleep(20 * time.Millisecond)
	}
	return out
}

// checkKeptAlive: the kept-alive client lost no request, and once the
// deploy returned, none of its requests reached the warm r1 (its server
// turned keep-alive off, and the client's next connection went to r2).
// Servers without keep-alive (gunicorn's sync workers, uWSGI's HTTP
// protocol) close every connection anyway. Without the switch (checked
// with WEBAPP_KEEPALIVE_SWITCH=0) every one of them went to r1.
func checkKeptAlive(t *testing.T, res []keptResult, deployed, issued time.Time) {
	t.Helper()
	pids := map[string]bool{}
	var failed, whileWarm, toR1 int
	for _, r := range res {
		if r.err != nil {
			failed++
			t.Logf("kept-alive request at %s failed: %v", r.start.Format("15:04:05.000"), r.err)
			continue
		}
		pids[r.pid] = true
		if r.start.After(deployed) && r.start.Before(issued) {
			whileWarm++
			if r.mode != "read-only" {
				toR1++
			}
		}
	}
	t.Logf("kept-alive client: %d requests, %d failed, answered by %d processes; %d of %d while r1 was warm went to r1", len(res), failed, len(pids), toR1, whileWarm)
	if failed > 0 || whileWarm == 0 || toR1 > 0 {
		t.Errorf("kept-alive client: %d failed, %d of %d requests reached the warm r1, want none", failed, toR1, whileWarm)
	}
}

// keep_previous added to a running overlap site: the service restarts
// fully, but systemd keeps the socket unit's single socket until the
// socket unit restarts, so the launcher runs without warm standby and says
// why, and a rollback goes cold with that reason; after a restart of the
// socket unit the standby works.
func TestWarmNeedsTheSocketRestarted(t *testing.T) {
	port := freePort(t)
	h := newHost(t, map[string]string{"warm": goSite(port, "handoff = \"overlap\"\n"+modeSites)})
	installMaintenance(h)
	h.run("systemctl", "start", "site-warm.socket")
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	getReply(t, url)
	h.writeSite("warm", warmSite(port, "1h"))
	h.run("systemctl", "daemon-reload")
	h.change("mode", "warm", "read-only") // a full restart: the launcher's flags changed
	j := h.run("journalctl", "-u", "site-warm.service", "-o", "cat", "--no-pager", "--grep", "no warm standby")
	if !strings.Contains(j, "keep_previous is set, but no warm standby: listener 0 (http) has no second socket of its address with SO_REUSEPORT: restart the site's socket units after adding keep_previous") {
		t.Errorf("the launcher did not say why it runs without warm standby: %q", j)
	}
	h.change("mode", "warm", "normal")
	if rep := h.change("rollback", "warm"); rep.Rollback != "cold" || !strings.Contains(rep.NoWarm, "no warm standby") {
		t.Errorf("rollback without standby: %+v", rep)
	}
	h.run("systemctl", "stop", "site-warm.service", "site-warm.socket")
	h.run("systemctl", "start", "site-warm.socket")
	getReply(t, url)
	h.change("mode", "warm", "normal")
	h.change("mode", "warm", "read-only")
	if rep := h.change("rollback", "warm"); rep.Rollback != "warm" || rep.Result != "ok" {
		t.Errorf("rollback after the socket unit restarted: %+v", rep)
	}
}

// A warm generation that no longer answers (here stopped with SIGSTOP;
// in life, its workers hung or its connections went stale while it
// idled): the flip drains the newer generation, so a failed probe left
// the site down until someone stepped in. Now the rollback restarts the
// site cold in the mode it rolled back to, and says why. A site whose
// modes have no probe ("bare") is verified by the environment of the
// generation that serves and by that generation running: its rollback
// said ok, warm, while nothing answered, until the stopped generation
// counted as one that does not serve.
func TestWarmGenerationThatDoesNotServeIsRestartedCold(t *testing.T) {
	port, bare := freePort(t), freePort(t)
	h := newHost(t, map[string]string{
		"warm": warmSite(port, "1h"),
		"bare": goSite(bare, "handoff = \"overlap\"\nkeep_previous = \"1h\"\nenvironment = { WEBAPP_KEEPALIVE_SWITCH = \"1\" }\n[modes.read-only]\nenvironment = { READ_ONLY = \"1\" }\n"),
	})
	for name, p := range map[string]int{"warm": port, "bare": bare} {
		func() {
			h.run("systemctl", "start", "site-"+name+".socket")
			url := fmt.Sprintf("http://127.0.0.1:%d/", p)
			getReply(t, url)
			h.change("mode", name, "read-only")
			var sites []struct {
				Warm *struct {
					MainPID int `json:"main_pid"`
				} `json:"warm"`
			}
			out := h.run("sitectl", "status", name, "--json")
			if err := json.Unmarshal([]byte(out), &sites); err != nil || len(sites) != 1 || sites[0].Warm == nil {
				t.Fatalf("%s: no warm generation in status: %v\n%s", name, err, out)
			}
			warm := sites[0].Warm.MainPID
			h.run("kill", "-STOP", fmt.Sprint(warm))
			defer h.result("kill", "-CONT", fmt.Sprint(warm)) // gone after a cold restart

			out, stderr, code := h.result("sitectl", "rollback", name)
			if code != 0 || !strings.Contains(out, name+": no warm rollback: the warm generation did not serve after the flip") || !strings.Contains(out, "rolled back cold") {
				t.Errorf("%s: rollback onto a warm generation that does not answer: exit %d\n%s%s", name, code, out, stderr)
			}
			if name == "bare" && !strings.Contains(out, fmt.Sprintf("the serving process (pid %d) of site-bare.service is stopped, with every process of its session", warm)) {
				t.Errorf("the rollback does not say the warm generation was stopped:\n%s", out)
			}
			if r := getReply(t, url); r.Mode != "normal" {
				t.Errorf("%s: after the rollback mode %s answered, want normal", name, r.Mode)
			}
			hist := h.run("sitectl", "history", name)
			if !strings.Contains(hist, "rollback-failed") || !strings.Contains(hist, "restarting cold") {
				t.Errorf("%s: the history does not say the warm flip failed and why it restarted:\n%s", name, hist)
			}
		}()
	}
}
