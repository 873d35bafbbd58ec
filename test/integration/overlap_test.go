//go:build integration

package integration

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sitectl/sitectl/internal/loadgen"
)

// overlapServers run with handoff = "overlap". genPID is the pid of the
// generation that answered: the Go app answers itself, gunicorn and uWSGI
// answer from a worker whose parent is the generation's master.
var overlapServers = []struct {
	name   string
	site   func(port int) string
	genPID func(appReply) int
	sleep  func(seconds int) string
}{
	{"go", func(p int) string {
		// A cold start of a second: what overlap hides from visitors.
		return goSite(p, "handoff = \"overlap\"\nenvironment = { WEBAPP_START_DELAY = \"1s\" }\n"+modeSites)
	}, func(r appReply) int { return r.PID }, func(s int) string { return fmt.Sprintf("/sleep?d=%ds", s) }},
	{"gunicorn", func(p int) string { return gunicornSite(p, "handoff = \"overlap\"\n"+modeSites) },
		func(r appReply) int { return r.PPID }, func(s int) string { return fmt.Sprintf("/sleep?s=%d", s) }},
	{"uwsgi", func(p int) string { return uwsgiSite(p, "handoff = \"overlap\"\n"+modeSites) },
		func(r appReply) int { return r.PPID }, func(s int) string { return fmt.Sprintf("/sleep?s=%d", s) }},
}

// launcherResources counts what the launcher holds: open fds and threads.
func (h *host) launcherResources() (fds, threads int) {
	h.t.Helper()
	pid := h.show("site-ov.service", "MainPID")["MainPID"]
	fds = len(strings.Fields(h.run("ls", "/proc/"+pid+"/fd")))
	for _, l := range strings.Split(h.run("cat", "/proc/"+pid+"/status"), "\n") {
		if v, ok := strings.CutPrefix(l, "Threads:"); ok {
			threads, _ = strconv.Atoi(strings.TrimSpace(v))
		}
	}
	return fds, threads
}

func (h *host) cgroupProcs(unit string) []string {
	cg := h.show(unit, "ControlGroup")["ControlGroup"]
	out, _ := h.try("cat", "/sys/fs/cgroup"+cg+"/cgroup.procs")
	return strings.Fields(out)
}

// Acceptance a and e: under load, 20 overlapped reloads and 20 mode switches
// on each server fail nothing; afterwards the launcher has leaked no fds,
// threads or processes, and a stop leaves an empty cgroup.
func TestOverlapReloadsAndSwitchesUnderLoad(t *testing.T) {
	for _, srv := range overlapServers {
		t.Run(srv.name, func(t *testing.T) {
			port := freePort(t)
			h := newHost(t, map[string]string{"ov": srv.site(port)})
			installMaintenance(h)
			h.run("systemctl", "start", "site-ov.socket")
			url := fmt.Sprintf("http://127.0.0.1:%d/", port)
			getReply(t, url)
			launcherPID := h.show("site-ov.service", "MainPID")["MainPID"]

			ctx, cancel := context.WithCancel(h.ctx)
			done := make(chan []loadgen.Result)
			go func() {
				done <- loadgen.Run(ctx, loadgen.Config{URL: url, Rate: 100, Duration: 10 * time.Minute, Check: modeCheck})
			}()
			var windows []window
			reload := func(args ...string) {
				w := window{start: time.Now()}
				_, stderr, code := h.result("sitectl", args...)
				w.end = time.Now()
				if code != 0 {
					t.Fatalf("sitectl %v: exit %d: %s", args, code, stderr)
				}
				windows = append(windows, w)
			}
			drained := func() {
				h.waitFor("the old generations to drain", 20*time.Second, func() bool {
					return !strings.Contains(h.show("site-ov.service", "StatusText")["StatusText"], "draining")
				})
			}
			for i := 0; i < 20; i++ {
				time.Sleep(200 * time.Millisecond)
				reload("reload", "ov")
			}
			drained()
			baseFDs, baseThreads := h.launcherResources()
			cycle := []string{"read-only", "maintenance", "normal"}
			for i := 0; i < 20; i++ {
				time.Sleep(200 * time.Millisecond)
				reload("mode", "ov", cycle[i%3])
			}
			reload("mode", "ov", "normal") // the 20th switch ended in maintenance
			time.Sleep(time.Second)
			cancel()
			res := <-done

			s := loadgen.Summarize(res)
			var steady, inWindow []loadgen.Result
			for _, r := range res {
				in := false
				for _, w := range windows {
					if !r.Start.Before(w.start) && r.Start.Before(w.end.Add(time.Second)) {
						in = true
						break
					}
				}
				if in {
					inWindow = append(inWindow, r)
				} else {
					steady = append(steady, r)
				}
			}
			t.Logf("%s: 20 reloads + 20 mode switches: %v", srv.name, s)
			t.Logf("%s: steady p99 %s, p99 inside reload windows %s", srv.name,
				loadgen.Summarize(steady).P99.Round(time.Microsecond), loadgen.Summarize(inWindow).P99.Round(time.Microsecond))
			for _, f := range loadgen.Failures(res)[:min(5, s.Failed)] {
				t.Logf("failed at %s: %s %s", f.Start.Format("15:04:05.000"), f.Outcome, f.Detail)
			}
			if s.Failed > 0 {
				t.Errorf("%d of %d requests failed", s.Failed, s.Requests)
			}
			if pid := h.show("site-ov.service", "MainPID")["MainPID"]; pid != launcherPID {
				t.Errorf("the launcher changed from %s to %s: systemd's main PID must stay", launcherPID, pid)
			}
			if status := h.show("site-ov.service", "StatusText")["StatusText"]; !strings.Contains(status, "mode normal, generation 42") {
				t.Errorf("status line %q, want mode normal, generation 42", status)
			}

			// No leaks: after 41 handovers the launcher holds what it held
			// after 20 (Go's thread pool grows a little and never shrinks,
			// which is no leak; a leak grows with every handover), and the
			// cgroup holds only the serving generation.
			drained()
			fds, threads := h.launcherResources()
			t.Logf("%s: launcher fds %d (after 20 handovers %d), threads %d (after 20 handovers %d)", srv.name, fds, baseFDs, threads, baseThreads)
			if fds != baseFDs {
				t.Errorf("the launcher holds %d fds after 41 handovers, %d after 20", fds, baseFDs)
			}
			if threads > baseThreads+3 {
				t.Errorf("the launcher runs %d threads after 41 handovers, %d after 20", threads, baseThreads)
			}
			procs := h.cgroupProcs("site-ov.service")
			gen := srv.genPID(getReply(t, url))
			// Every generation told to drain went to nice 19, so that its
			// exit waits for the new one's requests (launcher.drainPriority);
			// the unit's SystemCallFilter= allows it. The serving one was
			// never lowered.
			journal := h.run("journalctl", "-u", "site-ov.service", "-o", "cat", "--no-pager")
			if n := strings.Count(journal, "drains at nice 19"); n != 41 {
				t.Errorf("%d of 41 handovers logged \"drains at nice 19\"", n)
			}
			for _, p := range procs {
				if nice := statField(h.run("cat", "/proc/"+p+"/stat"), 19); nice != "0" {
					t.Errorf("process %s of the serving generation runs at nice %s, want 0", p, nice)
				}
				if p == launcherPID || p == strconv.Itoa(gen) {
					continue
				}
				if ppid := strings.Fields(h.run("cat", "/proc/"+p+"/stat"))[3]; ppid != strconv.Itoa(gen) {
					t.Errorf("process %s in the cgroup belongs to no serving generation (parent %s)", p, ppid)
				}
			}
			h.run("systemctl", "stop", "site-ov.service")
			if procs := h.cgroupProcs("site-ov.service"); len(procs) != 0 {
				t.Errorf("after stop the cgroup holds %v", procs)
			}
		})
	}
}

// Issue 16.2: under load a new gunicorn generation serves its share of the
// requests from the shared socket while it starts, so a rule asking it to
// be idle could never be met and every handover waited for the cap (3 s).
// The launcher now hands over on evidence: its processes stopped changing
// and none is busier than a serving worker. With an app that imports for a
// second of CPU and costs 10 ms per request, under load, the handovers
// happen on that evidence, and the journal says why; the cap stays a
// failsafe (one of the reloads may still hit it on a machine busy with
// other work, as the target allows).
func TestOverlapHandsOverOnEvidenceUnderLoad(t *testing.T) {
	port := freePort(t)
	// A generous probe timeout: on a machine busy with other work, the
	// probe's request waits behind the load.
	extra := `handoff = "overlap"
environment = { WSGI_IMPORT_CPU_SECONDS = "1", WSGI_REQUEST_CPU_MS = "10" }
[probe]
path = "/"
timeout = "30s"
`
	h := newHost(t, map[string]string{"ov": gunicornSite(port, extra)})
	h.run("systemctl", "start", "site-ov.socket")
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	getReply(t, url)

	// A rate a shared 2-core host sustains; serving its share of it (10 ms
	// of CPU a request) keeps the new generation above the old rule's tenth
	// of a CPU even on an idle machine.
	const reloads, rate = 6, 20
	ctx, cancel := context.WithCancel(h.ctx)
	done := make(chan []loadgen.Result)
	go func() {
		done <- loadgen.Run(ctx, loadgen.Config{URL: url, Rate: rate, Duration: 10 * time.Minute, Check: modeCheck})
	}()
	for i := 0; i < reloads; i++ {
		time.Sleep(time.Second)
		if _, stderr, code := h.result("sitectl", "reload", "ov"); code != 0 {
			cancel()
			<-done
			t.Fatalf("reload %d: exit %d: %s", i+1, code, stderr)
		}
	}
	cancel()
	s := loadgen.Summarize(<-done)
	t.Logf("%d overlapped reloads of gunicorn at %d req/s: %v", reloads, rate, s)
	if s.Failed > 0 {
		t.Errorf("%d of %d requests failed", s.Failed, s.Requests)
	}
	journal := h.run("journalctl", "-u", "site-ov.service", "-o", "cat", "--no-pager")
	evidence := regexp.MustCompile(`generation \d+ takes over after \S+ of waiting: its \d+ processes were unchanged for \S+( \(by their start times; \S+ sampled\))? and none was busier.*`).FindAllString(journal, -1)
	capped := regexp.MustCompile(`generation \d+ takes over at the cap of 3s, not settled: .*`).FindAllString(journal, -1)
	for _, l := range append(evidence, capped...) {
		t.Log(l)
	}
	if len(evidence)+len(capped) != reloads {
		t.Errorf("%d handovers logged why they happened, want %d:\n%s", len(evidence)+len(capped), reloads, journal)
	}
	if len(capped) > 1 {
		t.Errorf("%d of %d handovers waited for the cap, want at most 1", len(capped), reloads)
	}
}

// uWSGI's worker leaves at once when told to stop between requests, and
// counts as in a request only once accept() has returned: a stop landing in
// between drops the connection just accepted (a reset). The launcher parks
// the old generation's workers in their wait before the stop (launcher's
// drainParked). Many handovers, with the maintenance server coming and
// going, at four times the rate of the test above, where one reset was seen
// once before parking existed (1 in 1,425 requests).
func TestOverlapUWSGIHandoversDropNothing(t *testing.T) {
	port := freePort(t)
	h := newHost(t, map[string]string{"ov": uwsgiSite(port, "handoff = \"overlap\"\n"+modeSites)})
	installMaintenance(h)
	h.run("systemctl", "start", "site-ov.socket")
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	getReply(t, url)

	const rate, switches = 400, 45
	ctx, cancel := context.WithCancel(h.ctx)
	done := make(chan []loadgen.Result)
	go func() {
		done <- loadgen.Run(ctx, loadgen.Config{URL: url, Rate: rate, Duration: 10 * time.Minute, Check: modeCheck})
	}()
	cycle := []string{"read-only", "maintenance", "normal"}
	for i := 0; i < switches; i++ {
		time.Sleep(100 * time.Millisecond)
		if _, stderr, code := h.result("sitectl", "mode", "ov", cycle[i%3]); code != 0 {
			cancel()
			<-done
			t.Fatalf("switch %d: exit %d: %s", i+1, code, stderr)
		}
	}
	time.Sleep(time.Second)
	cancel()
	res := <-done
	s := loadgen.Summarize(res)
	t.Logf("uwsgi: %d overlapped mode switches at %d req/s: %v", switches, rate, s)
	// Parking really happened: uWSGI's workers were caught waiting (the
	// maintenance server, a single process, has no workers to park).
	parked, handovers := 0, 0
	for _, m := range regexp.MustCompile(`drains at nice \d+ \((\d+) workers parked for the stop\)`).FindAllStringSubmatch(
		h.run("journalctl", "-u", "site-ov.service", "-o", "cat", "--no-pager"), -1) {
		n, _ := strconv.Atoi(m[1])
		parked += n
		handovers++
	}
	// Two switches in three leave a uWSGI generation of 4 workers; a worker
	// busy with a request may escape parking, most must not.
	fromUWSGI := switches * 2 / 3
	t.Logf("%d handovers, %d workers parked in all (at most %d)", handovers, parked, fromUWSGI*4)
	if handovers != switches || parked < fromUWSGI*2 {
		t.Errorf("%d handovers parked %d workers; want %d handovers parking at least %d of the %d workers of the uWSGI generations they replaced",
			handovers, parked, switches, fromUWSGI*2, fromUWSGI*4)
	}
	for _, f := range loadgen.Failures(res)[:min(5, s.Failed)] {
		t.Logf("failed at %s: %s %s", f.Start.Format("15:04:05.000"), f.Outcome, f.Detail)
	}
	if s.Failed > 0 {
		t.Errorf("%d of %d requests failed", s.Failed, s.Requests)
	}
}

// Acceptance c: a release switched through a symlink serves the new code
// after a reload, while a request in flight on the old code completes.
func TestOverlapReleaseSymlink(t *testing.T) {
	port := freePort(t)
	h := newHost(t, map[string]string{"rel": fmt.Sprintf(`exec = ["/usr/bin/gunicorn", "--workers", "2", "app:application"]
workdir = "/srv/rel/current"
server = "gunicorn"
handoff = "overlap"
drain_timeout = "10s"
[probe]
path = "/"
[[listen]]
address = "127.0.0.1:%d"
`, port)})
	release := func(name string) string {
		return fmt.Sprintf(`import time
def application(environ, start_response):
    if environ["PATH_INFO"] == "/sleep":
        time.sleep(3)
    body = b"%s"
    start_response("200 OK", [("Content-Length", str(len(body)))])
    return [body]
`, name)
	}
	h.writeFile("/srv/rel/r1/app.py", release("r1"), 0o644)
	h.writeFile("/srv/rel/r2/app.py", release("r2"), 0o644)
	h.run("ln", "-sfn", "r1", "/srv/rel/current")
	h.run("systemctl", "start", "site-rel.socket")
	url := fmt.Sprintf("http://127.0.0.1:%d", port)
	if _, body := get(t, url+"/"); body != "r1" {
		t.Fatalf("first release answers %q", body)
	}
	slow := getAsync(url + "/sleep")
	time.Sleep(500 * time.Millisecond)
	// Switch the release the way deploy tools do: a new link renamed over
	// the old one.
	h.run("sh", "-c", "ln -sfn r2 /srv/rel/next && mv -T /srv/rel/next /srv/rel/current")
	if _, stderr, code := h.result("sitectl", "reload", "rel"); code != 0 {
		t.Fatalf("reload: %d %s", code, stderr)
	}
	if _, body := get(t, url+"/"); body != "r2" {
		t.Errorf("after the reload the site answers %q, want the new release r2", body)
	}
	if r := <-slow; r.err != nil || r.status != 200 || r.body != "r1" {
		t.Errorf("the request in flight on the old release: %v %d %q, want 200 r1", r.err, r.status, r.body)
	}
	if st := h.run("sitectl", "status", "rel"); !strings.Contains(st, "release: /srv/rel/r2") {
		t.Errorf("status does not show the new release:\n%s", st)
	}
}

// Acceptance d: a new generation that exits, or misses its ready deadline,
// is stopped; the old one keeps serving, untouched, and nothing fails; the
// mode is restored and sitectl exits non-zero with the reason.
func TestOverlapFailureKeepsOldGeneration(t *testing.T) {
	for _, srv := range overlapServers[:2] {
		t.Run(srv.name, func(t *testing.T) {
			port := freePort(t)
			site := srv.site(port)
			site = strings.Replace(site, "[modes.slow]\nenvironment = { WEBAPP_START_DELAY = \"2s\" }", "[modes.slow]\nenvironment = { WEBAPP_START_DELAY = \"20s\" }", 1)
			site = strings.Replace(site, "drain_timeout = \"10s\"", "drain_timeout = \"10s\"\nstart_timeout = \"4s\"", 1)
			h := newHost(t, map[string]string{"ov": site})
			installMaintenance(h)
			h.run("systemctl", "start", "site-ov.socket")
			url := fmt.Sprintf("http://127.0.0.1:%d/", port)
			h.mode("ov", "read-only")
			before := getReply(t, url)

			ctx, cancel := context.WithCancel(h.ctx)
			done := make(chan []loadgen.Result)
			go func() {
				done <- loadgen.Run(ctx, loadgen.Config{URL: url, Rate: 100, Duration: 10 * time.Minute, Check: modeCheck})
			}()
			failing := []string{"broken"}
			if srv.name == "go" {
				failing = append(failing, "slow") // misses its 4 s ready deadline
			}
			for _, mode := range failing {
				r, code, stderr := h.mode("ov", mode, "--timeout", "60s")
				if code != 4 || r.Result != "rolled-back" {
					t.Errorf("switch to %s: exit %d (want 4), %+v %s", mode, code, r, stderr)
				}
				t.Logf("%s: switch to %s failed as it should: %s", srv.name, mode, r.Reason)
			}
			time.Sleep(500 * time.Millisecond)
			cancel()
			s := loadgen.Summarize(<-done)
			t.Logf("%s: load during the failed handovers: %v", srv.name, s)
			if s.Failed != 0 {
				t.Errorf("%d requests failed", s.Failed)
			}
			after := getReply(t, url)
			if srv.genPID(after) != srv.genPID(before) || after.Generation != before.Generation || after.Mode != "read-only" {
				t.Errorf("the serving generation changed: before %+v, after %+v", before, after)
			}
			if st := h.run("sitectl", "status", "ov", "--json"); !strings.Contains(st, `"mode": "read-only"`) || !strings.Contains(st, "last reload failed") {
				t.Errorf("status after the failed handovers:\n%s", st)
			}
		})
	}
}

// Touch-to-reload: touching a site's reload trigger reloads exactly that
// site; touches in a burst coalesce; a failed reload is visible in status
// and the journal.
func TestTouchToReload(t *testing.T) {
	pa, pb := freePort(t), freePort(t)
	trigger := func(name string) string {
		return "handoff = \"overlap\"\nreload_trigger = \"/srv/" + name + "/restart.txt\"\n[probe]\npath = \"/health\"\n"
	}
	h := newHost(t, map[string]string{"a": goSite(pa, trigger("a")), "b": goSite(pb, trigger("b"))})
	h.run("mkdir", "-p", "/srv/a", "/srv/b")
	h.run("systemctl", "start", "site-a.socket", "site-b.socket", "site-a-reload.path", "site-b-reload.path")
	ua, ub := fmt.Sprintf("http://127.0.0.1:%d/", pa), fmt.Sprintf("http://127.0.0.1:%d/", pb)
	ga, gb := getReply(t, ua).Generation, getReply(t, ub).Generation

	h.run("touch", "/srv/a/restart.txt")
	h.waitFor("site a to reload after the touch", 20*time.Second, func() bool { return getReply(t, ua).Generation != ga })
	if g := getReply(t, ub).Generation; g != gb {
		t.Errorf("site b reloaded too (generation %s → %s)", gb, g)
	}

	// A burst of touches: reloads coalesce while one runs.
	g0, _ := strconv.Atoi(getReply(t, ua).Generation)
	// Three bursts of 10 touches: more than 5 reloads in 10 s, which
	// systemd's default start limit would have turned into a failed unit.
	for burst := 0; burst < 3; burst++ {
		for i := 0; i < 10; i++ {
			h.run("touch", "/srv/a/restart.txt")
			time.Sleep(30 * time.Millisecond)
		}
		time.Sleep(700 * time.Millisecond)
	}
	time.Sleep(3 * time.Second)
	h.waitFor("the reloads to settle", 20*time.Second, func() bool {
		return h.show("site-a-reload.service", "ActiveState")["ActiveState"] != "activating"
	})
	g1, _ := strconv.Atoi(getReply(t, ua).Generation)
	t.Logf("3 bursts of 10 touches: %d reloads", g1-g0)
	if g1-g0 < 3 || g1-g0 >= 30 {
		t.Errorf("3 bursts of 10 touches gave %d reloads: want one per burst at least, and fewer than one per touch", g1-g0)
	}
	// After a burst the trigger still works (a start limit once disabled it).
	for _, u := range []string{"site-a-reload.path", "site-a-reload.service"} {
		if p := h.show(u, "ActiveState", "Result"); p["ActiveState"] == "failed" || p["Result"] != "success" {
			t.Errorf("%s after the burst: %v", u, p)
		}
	}
	h.run("touch", "/srv/a/restart.txt")
	h.waitFor("a reload by a touch after the burst", 20*time.Second, func() bool {
		g, _ := strconv.Atoi(getReply(t, ua).Generation)
		return g > g1
	})

	// A touch while a reload runs is not lost: systemd's path unit does not
	// watch while the reload unit runs, so sitectl touched reloads again.
	g2, _ := strconv.Atoi(getReply(t, ua).Generation)
	h.waitFor("the reloads to settle", 20*time.Second, func() bool {
		return h.show("site-a-reload.service", "ActiveState")["ActiveState"] == "inactive"
	})
	h.run("touch", "/srv/a/restart.txt")
	h.waitFor("the reload to run", 10*time.Second, func() bool {
		return h.show("site-a.service", "ActiveState")["ActiveState"] == "reloading"
	})
	h.run("touch", "/srv/a/restart.txt")
	h.waitFor("a second reload for the touch during the first", 20*time.Second, func() bool {
		g, _ := strconv.Atoi(getReply(t, ua).Generation)
		return g >= g2+2
	})
	h.waitFor("the reloads to settle", 20*time.Second, func() bool {
		return h.show("site-a-reload.service", "ActiveState")["ActiveState"] == "inactive"
	})
	if j := h.run("journalctl", "-u", "site-a-reload.service", "--no-pager", "-o", "cat"); !strings.Contains(j, "was touched again during the reload") {
		t.Errorf("the reload unit's journal does not say it reloaded again:\n%s", j)
	}

	// A reload that fails (the new generation cannot start) is visible; the
	// mode file is edited by hand here to make the next generation fail.
	h.run("sed", "-i", "s/^SITE_MODE=.*/&\\nWEBAPP_FAIL_START=\"1\"/", "/var/lib/sitectl/sites/a/mode.env")
	h.run("touch", "/srv/a/restart.txt")
	h.waitFor("the failed reload to show", 20*time.Second, func() bool {
		return strings.Contains(h.show("site-a.service", "StatusText")["StatusText"], "last reload failed")
	})
	if st := h.run("sitectl", "status", "a"); !strings.Contains(st, "last reload failed") {
		t.Errorf("sitectl status does not show the failed reload:\n%s", st)
	}
	if j := h.run("journalctl", "-u", "site-a-reload.service", "--no-pager", "-o", "cat"); !strings.Contains(j, "Failed") && !strings.Contains(j, "failed") {
		t.Errorf("the journal of the reload unit does not show the failure:\n%s", j)
	}
	if r := getReply(t, ua); r.Generation == "" {
		t.Errorf("site a no longer serves")
	}
}

// statField returns field n (1-based, as in proc(5)) of a /proc/PID/stat
// line; the command name in field 2 may hold spaces.
func statField(stat string, n int) string {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 || n < 3 {
		return ""
	}
	f := strings.Fields(stat[i+1:])
	if n-3 >= len(f) {
		return ""
	}
	return f[n-3]
}
