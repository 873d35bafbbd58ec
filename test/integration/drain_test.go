//go:build integration

package integration

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sitectl/sitectl/internal/loadgen"
)

// servers are the apps every drain test runs against: a Go app on
// activation, Debian's gunicorn and Debian's uWSGI, each with the path of a
// request that takes a given number of seconds.
type server struct {
	name  string
	site  func(port int, extra string) string
	sleep func(seconds int) string
}

var servers = []server{
	{"go", goSite, func(s int) string { return fmt.Sprintf("/sleep?d=%ds", s) }},
	{"gunicorn", func(p int, e string) string {
		return strings.Replace(gunicornSite(p, e), `"--workers", "2"`, `"--workers", "4"`, 1)
	}, func(s int) string { return fmt.Sprintf("/sleep?s=%d", s) }},
	{"uwsgi", uwsgiSite, func(s int) string { return fmt.Sprintf("/sleep?s=%d", s) }},
}

type timedGet struct {
	status int
	body   string
	err    error
	took   time.Duration
}

func getAsync(url string) chan timedGet {
	ch := make(chan timedGet, 1)
	go func() {
		t0 := time.Now()
		c := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
		resp, err := c.Get(url)
		r := timedGet{err: err}
		if err == nil {
			b := new(strings.Builder)
			_, r.err = fmt.Fprint(b, "")
			buf := make([]byte, 4096)
			n, _ := resp.Body.Read(buf)
			resp.Body.Close()
			r.status, r.body = resp.StatusCode, string(buf[:n])
		}
		r.took = time.Since(t0)
		ch <- r
	}()
	return ch
}

// Acceptance a: a 5-second request in flight when the site is restarted or
// stopped, with a drain timeout of 10 s, completes with 200; connections made
// during the drain wait and are served after it.
func TestInFlightRequestDrains(t *testing.T) {
	for _, srv := range servers {
		for _, verb := range []string{"restart", "stop"} {
			t.Run(srv.name+"-"+verb, func(t *testing.T) {
				port := freePort(t)
				h := newHost(t, map[string]string{"drain": srv.site(port, "")})
				h.run("systemctl", "start", "site-drain.socket")
				base := fmt.Sprintf("http://127.0.0.1:%d", port)
				get(t, base+"/")
				oldPID := h.show("site-drain.service", "MainPID")["MainPID"]

				slow := getAsync(base + srv.sleep(5))
				time.Sleep(700 * time.Millisecond)
				t0 := time.Now()
				stopped := make(chan error, 1)
				go func() { _, err := h.try("systemctl", verb, "site-drain.service"); stopped <- err }()
				time.Sleep(700 * time.Millisecond)
				during := []chan timedGet{getAsync(base + "/"), getAsync(base + "/")} // made during the drain
				if err := <-stopped; err != nil {
					t.Fatalf("systemctl %s: %v", verb, err)
				}
				took := time.Since(t0)
				r := <-slow
				if r.err != nil || r.status != 200 {
					t.Fatalf("the request in flight: %v, status %d", r.err, r.status)
				}
				if took < 3*time.Second {
					t.Errorf("%s returned after %s, before the in-flight request could finish", verb, took)
				}
				for i, ch := range during {
					d := <-ch
					if d.err != nil || d.status != 200 {
						t.Errorf("request %d made during the drain: %v, status %d", i, d.err, d.status)
					}
				}
				if pid := h.show("site-drain.service", "MainPID")["MainPID"]; pid == oldPID || pid == "0" {
					t.Errorf("the requests made during the drain were not served by a new process (main PID %s, before %s)", pid, oldPID)
				}
				t.Logf("%s %s: in-flight request %s, %s took %s", srv.name, verb, r.took.Round(time.Millisecond), verb, took.Round(time.Millisecond))
			})
		}
	}
}

// Acceptance b: a request longer than the drain timeout: the stop ends at
// the failsafe (the app's drain deadline, or systemd's SIGKILL at
// TimeoutStopSec for an app that ignores SIGTERM), and no process remains.
func TestStopEndsAtTheFailsafe(t *testing.T) {
	const extra = `drain_timeout = "2s"
stop_timeout = "2s"`
	apps := append(append([]server{}, servers...), server{"ignores-sigterm", func(p int, _ string) string {
		return fmt.Sprintf(`exec = ["/usr/local/bin/webapp"]
readiness = "notify"
drain_timeout = "2s"
stop_timeout = "2s"
environment = { WEBAPP_IGNORE_TERM = "1" }
[[listen]]
address = "127.0.0.1:%d"
`, p)
	}, func(s int) string { return fmt.Sprintf("/sleep?d=%ds", s) }})
	for _, app := range apps {
		t.Run(app.name, func(t *testing.T) {
			port := freePort(t)
			site := app.site(port, "")
			site = strings.Replace(site, `drain_timeout = "10s"`, extra, 1)
			h := newHost(t, map[string]string{"long": site})
			h.run("systemctl", "start", "site-long.socket")
			base := fmt.Sprintf("http://127.0.0.1:%d", port)
			get(t, base+"/")
			cg := h.show("site-long.service", "ControlGroup")["ControlGroup"]
			long := getAsync(base + app.sleep(30))
			time.Sleep(700 * time.Millisecond)
			t0 := time.Now()
			h.run("systemctl", "stop", "site-long.service")
			took := time.Since(t0)
			r := <-long
			if r.err == nil && r.status == 200 {
				t.Errorf("the 30 s request completed, though the drain timeout is 2 s")
			}
			if took > 4*time.Second+1500*time.Millisecond {
				t.Errorf("stop took %s; the failsafe is at 4 s (drain 2 s + stop_timeout 2 s)", took)
			}
			if out, err := h.try("cat", "/sys/fs/cgroup"+cg+"/cgroup.procs"); err == nil && strings.TrimSpace(out) != "" {
				t.Errorf("after the stop the cgroup still holds: %s", out)
			}
			p := h.show("site-long.service", "ActiveState", "Result")
			t.Logf("%s: stop took %s, result %s, the long request got %v/%d", app.name, took.Round(time.Millisecond), p["Result"], r.err, r.status)
			if app.name == "ignores-sigterm" && (took < 3500*time.Millisecond || p["Result"] != "timeout") {
				t.Errorf("an app ignoring SIGTERM must be stopped by systemd's SIGKILL at TimeoutStopSec: took %s, result %s", took, p["Result"])
			}
		})
	}
}

// Acceptance c: an app with two children, one that releases its resource on
// SIGTERM, one that ignores SIGTERM. After the stop the marker exists, the
// hook ran with the right variables, the cgroup is empty, and the journal
// and sitectl status say what happened; a failing hook is reported and does
// not hang the stop.
func TestCleanupOfLeftoverChildren(t *testing.T) {
	h, cg := kidsServing(t, `drain_timeout = "3s"
cleanup_timeout = "2s"
cleanup = [
  ["/bin/sh", "-c", "env | grep -E '^(SITE|SITE_MODE|SERVICE_RESULT|EXIT_CODE|EXIT_STATUS)=' | sort > /srv/marks/hook.env"],
  ["/bin/false"],
]`)
	t0 := time.Now()
	h.run("systemctl", "stop", "site-kids.service")
	took := time.Since(t0)
	if took > 10*time.Second {
		t.Errorf("the stop took %s: the failing hook or the stubborn child held it up", took)
	}
	if out, err := h.try("cat", "/sys/fs/cgroup"+cg+"/cgroup.procs"); err == nil && strings.TrimSpace(out) != "" {
		t.Errorf("after the stop the cgroup still holds: %s", out)
	}
	if out, err := h.try("cat", "/srv/marks/child-0.cleaned"); err != nil || !strings.Contains(out, "terminated") {
		t.Errorf("the child that cleans up on SIGTERM left no marker: %v %q", err, out)
	}
	if _, err := h.try("cat", "/srv/marks/child-1.cleaned"); err == nil {
		t.Errorf("the child that ignores SIGTERM wrote a marker")
	}
	env := h.run("cat", "/srv/marks/hook.env")
	for _, want := range []string{"SITE=kids", "SITE_MODE=normal", "SERVICE_RESULT=success", "EXIT_CODE=exited", "EXIT_STATUS=0"} {
		if !strings.Contains(env, want+"\n") {
			t.Errorf("the hook's environment lacks %s:\n%s", want, env)
		}
	}
	journal := h.run("journalctl", "-u", "site-kids.service", "--no-pager", "-o", "cat")
	for _, want := range []string{
		"2 processes were left behind",
		"1 processes still run after 2s",
		"systemd will SIGKILL them",
		"cleanup hook failed: /bin/false: exit status 1",
		"cleanup hook-failed: 2 processes left behind, 1 still running after the timeout, 2 hooks run, 1 failed",
	} {
		if !strings.Contains(journal, want) {
			t.Errorf("the journal does not say %q:\n%s", want, journal)
		}
	}
	status := h.run("sitectl", "status", "kids")
	if !strings.Contains(status, "cleanup: hook-failed") || !strings.Contains(status, "hook failed: /bin/false: exit status 1") {
		t.Errorf("sitectl status does not show the failed hook:\n%s", status)
	}
}

// Acceptance d: real gunicorn and real uWSGI, restarted 10 times each under
// fixed-rate load with slow requests in flight: 0 failed requests.
func TestRestartsWithSlowRequestsInFlight(t *testing.T) {
	for _, srv := range servers {
		t.Run(srv.name, func(t *testing.T) {
			port := freePort(t)
			h := newHost(t, map[string]string{"busy": srv.site(port, "")})
			h.run("systemctl", "start", "site-busy.socket")
			base := fmt.Sprintf("http://127.0.0.1:%d", port)
			get(t, base+"/")
			ctx, cancel := context.WithCancel(h.ctx)
			var wg sync.WaitGroup
			var fast, slow []loadgen.Result
			wg.Add(2)
			go func() {
				defer wg.Done()
				fast = loadgen.Run(ctx, loadgen.Config{URL: base + "/", Rate: 100, Duration: 5 * time.Minute, Timeout: 30 * time.Second})
			}()
			go func() {
				defer wg.Done()
				slow = loadgen.Run(ctx, loadgen.Config{URL: base + srv.sleep(1), Rate: 2, Duration: 5 * time.Minute, Timeout: 30 * time.Second})
			}()
			for i := 0; i < 10; i++ {
				time.Sleep(1200 * time.Millisecond)
				h.run("systemctl", "restart", "site-busy.service")
			}
			time.Sleep(2 * time.Second)
			cancel()
			wg.Wait()
			fs, ss := loadgen.Summarize(fast), loadgen.Summarize(slow)
			t.Logf("%s: 10 restarts: fast %v; slow %v", srv.name, fs, ss)
			for _, f := range append(loadgen.Failures(fast), loadgen.Failures(slow)...) {
				t.Errorf("failed at %s: %s %s", f.Start.Format("15:04:05.000"), f.Outcome, f.Detail)
			}
			if ss.Requests < 20 || ss.ByKind[loadgen.OK] < 20 {
				t.Errorf("only %d slow requests succeeded", ss.ByKind[loadgen.OK])
			}
		})
	}
}

// Acceptance e: a Go app built only on package activation (the
// worker-cleanup example) drains its in-flight request and has its workers
// release their locks when stopped; after a crash, sitectl cleanup and the
// site's hook release them instead.
func TestActivationAppCleansUp(t *testing.T) {
	port := freePort(t)
	h := newHost(t, map[string]string{"jobs": fmt.Sprintf(`exec = ["/usr/local/bin/worker-cleanup"]
readiness = "notify"
drain_timeout = "10s"
environment = { JOBS_DIR = "/srv/jobs", WORKER_GRACE = "2s" }
cleanup = [["/usr/local/lib/worker-cleanup/release-stale-locks"]]
cleanup_timeout = "3s"
[hardening]
writable_paths = ["/srv/jobs"]
[[listen]]
address = "127.0.0.1:%d"
`, port)})
	h.run("mkdir", "-p", "/srv/jobs")
	h.run("chmod", "1777", "/srv/jobs")
	h.run("systemctl", "start", "site-jobs.socket")
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	startJobs := func(names ...string) {
		for _, n := range names {
			resp, err := http.Post(base+"/jobs?name="+n, "text/plain", nil)
			if err != nil || resp.StatusCode != 200 {
				t.Fatalf("starting job %s: %v %v", n, err, resp)
			}
			resp.Body.Close()
		}
		h.waitFor("the workers' locks", 5*time.Second, func() bool {
			_, body := get(t, base+"/")
			return strings.Count(body, ".lock") == len(names)
		})
	}

	// A clean stop with a request in flight: it completes, the app stops
	// its workers, each releases its lock.
	startJobs("alpha", "beta")
	slow := getAsync(base + "/sleep?d=3s")
	time.Sleep(500 * time.Millisecond)
	h.run("systemctl", "stop", "site-jobs.service")
	if r := <-slow; r.err != nil || r.status != 200 {
		t.Errorf("the request in flight: %v %d", r.err, r.status)
	}
	released := h.run("cat", "/srv/jobs/released.log")
	if !strings.Contains(released, "released alpha") || !strings.Contains(released, "released beta") {
		t.Errorf("the workers did not release their locks:\n%s", released)
	}
	if locks := h.run("sh", "-c", "ls /srv/jobs/*.lock 2>/dev/null; true"); strings.TrimSpace(locks) != "" {
		t.Errorf("locks left: %s", locks)
	}
	hooks := h.run("cat", "/srv/jobs/hooks.log")
	if !strings.Contains(hooks, "site=jobs mode=normal result=success exit_code=exited exit_status=0") {
		t.Errorf("the cleanup hook's record:\n%s", hooks)
	}

	// A crash: the app is killed. With no main process left to wait for,
	// systemd (KillMode=mixed) kills the rest of the cgroup at once, before
	// ExecStopPost=, so the workers cannot release their locks: the
	// site's cleanup hook does, with the crash in its environment.
	startJobs("gamma")
	h.run("systemctl", "kill", "--signal=SIGKILL", "--kill-whom=main", "site-jobs.service")
	h.waitFor("the cleanup hook to release the crashed worker's lock", 15*time.Second, func() bool {
		out, _ := h.try("cat", "/srv/jobs/hooks.log")
		return strings.Contains(out, "removed stale gamma.lock")
	})
	cg := h.show("site-jobs.service", "ControlGroup")["ControlGroup"]
	if cg != "" {
		if out, err := h.try("cat", "/sys/fs/cgroup"+cg+"/cgroup.procs"); err == nil && strings.TrimSpace(out) != "" {
			t.Errorf("the cgroup still holds %s", out)
		}
	}
	hooks = h.run("cat", "/srv/jobs/hooks.log")
	if !strings.Contains(hooks, "result=signal exit_code=killed exit_status=KILL") {
		t.Errorf("the hook after the crash:\n%s", hooks)
	}
	if locks := h.run("sh", "-c", "ls /srv/jobs/*.lock 2>/dev/null; true"); strings.TrimSpace(locks) != "" {
		t.Errorf("locks left after the crash: %s", locks)
	}
}

// systemd bounds ExecStopPost= with the unit's TimeoutStopSec= (drain and
// stop timeouts, 2s here), not with cleanup_timeout (10s): a child that
// ignores SIGTERM (the second) took the cleanup's whole wait, systemd killed the
// cleanup ("stop-post timed out"), no hook ran and no record was written.
// The wait is now cut to fit, and the hook runs.
func TestCleanupFitsInTheStopTimeout(t *testing.T) {
	h, _ := kidsServing(t, `drain_timeout = "1s"
stop_timeout = "1s"
cleanup_timeout = "10s"
cleanup = [["/bin/sh", "-c", "echo ran > /srv/marks/hook.ran"]]`)
	h.run("systemctl", "stop", "site-kids.service")
	if out, err := h.try("cat", "/srv/marks/hook.ran"); err != nil || strings.TrimSpace(out) != "ran" {
		t.Errorf("the cleanup hook did not run: %v %q", err, out)
	}
	if r := h.show("site-kids.service", "Result")["Result"]; r != "success" {
		t.Errorf("the stop's result: %s", r)
	}
	journal := h.run("journalctl", "-u", "site-kids.service", "--no-pager", "-o", "cat")
	for _, want := range []string{"not 10s: systemd gives the cleanup 2s (TimeoutStopSec=) and 1 hooks follow", "cleanup hook /bin/sh -c echo ran > /srv/marks/hook.ran succeeded", "cleanup ok: 2 processes left behind, 1 still running"} {
		if !strings.Contains(journal, want) {
			t.Errorf("the journal does not say %q:\n%s", want, journal)
		}
	}
	if strings.Contains(journal, "timed out") {
		t.Errorf("systemd timed the stop out:\n%s", journal)
	}
}

// kidsServing boots a host with site kids: the Go app with two children,
// one that cleans up on SIGTERM (a marker in /srv/marks) and one that
// ignores it, and settings (drain, cleanup) added to its file; it returns
// once the app and both children run, with the service's cgroup.
func kidsServing(t *testing.T, settings string) (*host, string) {
	t.Helper()
	port := freePort(t)
	h := newHost(t, map[string]string{"kids": fmt.Sprintf(`exec = ["/usr/local/bin/webapp", "--spawn-children", "2"]
readiness = "notify"
environment = { WEBAPP_CHILD_MARKER_DIR = "/srv/marks", WEBAPP_CHILD_IGNORE_TERM = "1" }
%s
[hardening]
writable_paths = ["/srv/marks"]
[[listen]]
address = "127.0.0.1:%d"
`, settings, port)})
	h.run("mkdir", "-p", "/srv/marks")
	h.run("chmod", "1777", "/srv/marks")
	h.run("systemctl", "start", "site-kids.socket")
	getReply(t, fmt.Sprintf("http://127.0.0.1:%d/", port))
	cg := h.show("site-kids.service", "ControlGroup")["ControlGroup"]
	h.waitFor("the app and its 2 children", 5*time.Second, func() bool {
		return len(strings.Fields(h.run("cat", "/sys/fs/cgroup"+cg+"/cgroup.procs"))) == 3
	})
	return h, cg
}
