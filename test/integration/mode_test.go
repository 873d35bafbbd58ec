//go:build integration

package integration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os/exec"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sitectl/sitectl/internal/loadgen"
)

const maintenancePage = "<h1>karl is down for maintenance</h1>\n"

// modeSites adds the modes the tests switch between to a site file.
const modeSites = `
[probe]
path = "/"
timeout = "10s"

[modes.read-only]
environment = { READ_ONLY = "1" }

[modes.maintenance]
serve = "maintenance"
page = "/srv/maint/page.html"
static_dir = "/srv/maint/static"
retry_after = "5m"

[modes.broken]
environment = { WEBAPP_FAIL_START = "1", WSGI_FAIL_IMPORT = "1" }

[modes.slow]
environment = { WEBAPP_START_DELAY = "2s" }
`

func installMaintenance(h *host) {
	h.writeFile("/srv/maint/page.html", maintenancePage, 0o644)
	h.writeFile("/srv/maint/static/style.css", "h1{color:red}", 0o644)
}

// result runs a command inside and returns stdout, stderr and exit code.
func (h *host) result(name string, args ...string) (string, string, int) {
	h.t.Helper()
	cmd := h.sb.Command(h.ctx, name, args...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		return out.String(), errb.String(), ee.ExitCode()
	case err != nil:
		h.t.Fatalf("%s: %v", name, err)
	}
	return out.String(), errb.String(), 0
}

type modeReport struct {
	Site    string   `json:"site"`
	From    string   `json:"from"`
	To      string   `json:"to"`
	Result  string   `json:"result"`
	MainPID int      `json:"main_pid"`
	Reason  string   `json:"reason"`
	Journal []string `json:"journal"`
}

func (h *host) mode(site, mode string, extra ...string) (modeReport, int, string) {
	h.t.Helper()
	out, stderr, code := h.result("sitectl", append([]string{"mode", site, mode, "--json"}, extra...)...)
	var r modeReport
	if err := json.Unmarshal([]byte(out), &r); err != nil && code < 2 {
		h.t.Fatalf("sitectl mode %s %s: exit %d, output %q, stderr %q", site, mode, code, out, stderr)
	}
	return r, code, stderr
}

// modeCheck accepts what a site may answer in any of its modes: 200 from the
// app with its mode in X-Site-Mode, or the maintenance page with 503.
func modeCheck(status int, hdr http.Header, body string) error {
	switch hdr.Get("X-Site-Mode") {
	case "normal", "read-only":
		if status == 200 {
			return nil
		}
	case "maintenance":
		if status == 503 && hdr.Get("Retry-After") == "300" && body == maintenancePage {
			return nil
		}
	}
	return fmt.Errorf("status %d mode %q Retry-After %q body %.60q", status, hdr.Get("X-Site-Mode"), hdr.Get("Retry-After"), body)
}

type window struct {
	start, end time.Time
	mode       string
}

// Acceptance a and c: 20 switches cycling normal → read-only → maintenance →
// normal under load: nothing fails, every response after a switch returned
// carries the new mode, maintenance answers the configured page; a neighbour
// site under load is untouched.
func TestModeSwitchesUnderLoad(t *testing.T) {
	for _, app := range []struct {
		name string
		site func(int, string) string
	}{{"go", goSite}, {"gunicorn", gunicornSite}} {
		t.Run(app.name, func(t *testing.T) {
			port, nport := freePort(t), freePort(t)
			h := newHost(t, map[string]string{
				"karl":  app.site(port, modeSites),
				"neigh": goSite(nport, ""),
			})
			installMaintenance(h)
			h.run("systemctl", "start", "site-karl.socket", "site-neigh.socket")
			url, nurl := fmt.Sprintf("http://127.0.0.1:%d/", port), fmt.Sprintf("http://127.0.0.1:%d/", nport)
			getReply(t, url)
			neighPID := getReply(t, nurl).PID

			ctx, cancel := context.WithCancel(h.ctx)
			var wg sync.WaitGroup
			var res, nres []loadgen.Result
			wg.Add(2)
			go func() {
				defer wg.Done()
				res = loadgen.Run(ctx, loadgen.Config{URL: url, Rate: 100, Duration: 5 * time.Minute, Check: modeCheck})
			}()
			go func() {
				defer wg.Done()
				nres = loadgen.Run(ctx, loadgen.Config{URL: nurl, Rate: 100, Duration: 5 * time.Minute})
			}()

			cycle := []string{"read-only", "maintenance", "normal"}
			var windows []window
			current := "normal"
			for i := 0; i < 20; i++ {
				to := cycle[i%3]
				time.Sleep(300 * time.Millisecond)
				w := window{start: time.Now(), mode: to}
				r, code, stderr := h.mode("karl", to)
				w.end = time.Now()
				if code != 0 || r.Result != "ok" || r.From != current || r.To != to {
					t.Fatalf("switch %d to %s: exit %d, %+v, %s", i+1, to, code, r, stderr)
				}
				windows = append(windows, w)
				current = to
			}
			time.Sleep(500 * time.Millisecond)
			cancel()
			wg.Wait()

			var lengths []string
			for _, w := range windows {
				lengths = append(lengths, fmt.Sprintf("%s %.1fs", w.mode, w.end.Sub(w.start).Seconds()))
			}
			t.Logf("%s: switch lengths: %s", app.name, strings.Join(lengths, ", "))
			s := loadgen.Summarize(res)
			t.Logf("%s: 20 mode switches under load: %v", app.name, s)
			if s.Failed != 0 {
				for _, f := range loadgen.Failures(res)[:min(5, s.Failed)] {
					t.Logf("failed at %s: %s %s", f.Start.Format("15:04:05.000"), f.Outcome, f.Detail)
				}
				t.Errorf("%d of %d requests failed during mode switches", s.Failed, s.Requests)
			}
			// After each switch returned (and before the next began), every
			// response carries the new mode.
			checked := 0
			for i, w := range windows {
				until := time.Now()
				if i+1 < len(windows) {
					until = windows[i+1].start
				}
				for _, r := range res {
					if r.Outcome == loadgen.OK && r.Start.After(w.end) && r.Start.Before(until) {
						checked++
						if got := r.Header.Get("X-Site-Mode"); got != w.mode {
							t.Errorf("request at %s, after the switch to %s returned, answered by mode %q", r.Start.Format("15:04:05.000"), w.mode, got)
						}
					}
				}
			}
			if checked < 100 {
				t.Errorf("only %d responses fell between switches", checked)
			}

			ns := loadgen.Summarize(nres)
			t.Logf("%s: neighbour during the switches: %v", app.name, ns)
			if ns.Failed != 0 {
				t.Errorf("the neighbour failed %d requests", ns.Failed)
			}
			if pid := getReply(t, nurl).PID; pid != neighPID {
				t.Errorf("the neighbour's main PID changed from %d to %d", neighPID, pid)
			}
			if got := h.show("site-neigh.service", "NRestarts")["NRestarts"]; got != "0" {
				t.Errorf("the neighbour restarted %s times", got)
			}

			// The maintenance server also serves the static directory.
			h.mode("karl", "maintenance")
			status, body := get(t, url+"style.css")
			if status != 200 || body != "h1{color:red}" {
				t.Errorf("static file in maintenance: %d %q", status, body)
			}
		})
	}
}

// Acceptance b: a mode whose app fails at start is rolled back, within the
// timeout, with no request refused; history shows the failed attempt.
func TestFailingModeRollsBackUnderLoad(t *testing.T) {
	for _, app := range []struct {
		name string
		site func(int, string) string
	}{{"go", goSite}, {"gunicorn", gunicornSite}} {
		t.Run(app.name, func(t *testing.T) {
			port := freePort(t)
			h := newHost(t, map[string]string{"karl": app.site(port, modeSites)})
			installMaintenance(h)
			h.run("systemctl", "start", "site-karl.socket")
			url := fmt.Sprintf("http://127.0.0.1:%d/", port)
			h.mode("karl", "read-only")

			ctx, cancel := context.WithCancel(h.ctx)
			done := make(chan []loadgen.Result)
			go func() {
				done <- loadgen.Run(ctx, loadgen.Config{URL: url, Rate: 100, Duration: 5 * time.Minute, Timeout: 30 * time.Second, Check: modeCheck})
			}()
			time.Sleep(500 * time.Millisecond)
			start := time.Now()
			r, code, stderr := h.mode("karl", "broken", "--timeout", "40s")
			took := time.Since(start)
			time.Sleep(500 * time.Millisecond)
			cancel()
			res := <-done

			if code != 4 || r.Result != "rolled-back" || r.From != "read-only" {
				t.Fatalf("exit %d (want 4), report %+v, stderr %s", code, r, stderr)
			}
			if took > 40*time.Second {
				t.Errorf("the failed switch took %s, over its timeout", took)
			}
			t.Logf("%s: failed switch rolled back in %s: %s; %d journal lines", app.name, took.Round(time.Millisecond), r.Reason, len(r.Journal))
			if len(r.Journal) == 0 {
				t.Errorf("no journal lines of the failed start in the report")
			}
			if rep := getReply(t, url); rep.Mode != "read-only" {
				t.Errorf("after the rollback the site serves mode %q", rep.Mode)
			}
			var hist []struct{ From, To, Result string }
			json.Unmarshal([]byte(h.run("sitectl", "history", "karl", "--json")), &hist)
			if n := len(hist); n == 0 || hist[n-1].To != "broken" || hist[n-1].Result != "rolled-back" {
				t.Errorf("history: %+v", hist)
			}
			s := loadgen.Summarize(res)
			t.Logf("%s: load during the failed switch: %v", app.name, s)
			if s.Failed != 0 {
				for _, f := range loadgen.Failures(res)[:min(5, s.Failed)] {
					t.Logf("failed at %s: %s %s", f.Start.Format("15:04:05.000"), f.Outcome, f.Detail)
				}
				t.Errorf("%d requests failed during the failed switch and its rollback", s.Failed)
			}
		})
	}
}

// Acceptance d, part 1: two switches of one site at once run one after the
// other; with --no-block the second fails at once.
func TestConcurrentSwitchesAreSerialized(t *testing.T) {
	port := freePort(t)
	h := newHost(t, map[string]string{"karl": goSite(port, modeSites)})
	installMaintenance(h)
	h.run("systemctl", "start", "site-karl.socket")
	getReply(t, fmt.Sprintf("http://127.0.0.1:%d/", port))

	type outcome struct {
		code       int
		start, end time.Time
		stderr     string
	}
	run := func(mode string, extra ...string) outcome {
		o := outcome{start: time.Now()}
		_, o.stderr, o.code = h.result("sitectl", append([]string{"mode", "karl", mode}, extra...)...)
		o.end = time.Now()
		return o
	}
	first := make(chan outcome)
	go func() { first <- run("slow") }() // its app takes 2 s to start
	// The first holds the lock (a fixed pause was not always enough
	// for it to get there on a busy host).
	h.waitFor("the first switch to take the lock", time.Minute, func() bool {
		return siteLocks(h, "karl") > 0
	})
	nb := run("read-only", "--no-block")
	if nb.code != 1 || !strings.Contains(nb.stderr, "is being changed by another sitectl (root's sitectl mode, pid ") {
		t.Errorf("--no-block while another switch runs: exit %d, %q, want it to name the switch that holds the lock", nb.code, nb.stderr)
	}
	second := run("read-only")
	f := <-first
	if f.code != 0 || second.code != 0 {
		t.Fatalf("exits %d and %d: %s %s", f.code, second.code, f.stderr, second.stderr)
	}
	if second.end.Before(f.end) {
		t.Errorf("the waiting switch finished (%s) before the first (%s)", second.end.Format("15:04:05.000"), f.end.Format("15:04:05.000"))
	}
	var hist []struct{ From, To, Result string }
	json.Unmarshal([]byte(h.run("sitectl", "history", "karl", "--json")), &hist)
	if len(hist) != 2 || hist[0].To != "slow" || hist[1].From != "slow" || hist[1].To != "read-only" {
		t.Errorf("history: %+v", hist)
	}
}

// Acceptance d, part 2: sitectl killed with SIGKILL at random moments of a
// switch always leaves a state that status reports truthfully and that the
// next switch proceeds from. The kill moments are drawn from the measured
// length of each kind of switch, so that most kills land inside one.
func TestKilledSwitchLeavesUsableState(t *testing.T) {
	port := freePort(t)
	h := newHost(t, map[string]string{"karl": goSite(port, modeSites)})
	installMaintenance(h)
	h.run("systemctl", "start", "site-karl.socket")
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	getReply(t, url)
	targets := []string{"read-only", "slow", "normal"} // slow: its app takes 2 s to start
	length := map[string]time.Duration{}
	for _, m := range targets {
		t0 := time.Now()
		h.mode("karl", m, "--force")
		length[m] = time.Since(t0)
	}
	t.Logf("switch lengths: %v", length)
	kills, interrupted := 60, 0
	for i := 0; i < kills; i++ {
		to := targets[i%len(targets)]
		delay := time.Duration(rand.Int64N(int64(length[to])))
		h.run("sh", "-c", fmt.Sprintf("sitectl mode karl %s --force >/dev/null 2>&1 & p=$!; sleep %.3f; kill -9 $p 2>/dev/null; wait $p; true", to, delay.Seconds()))

		var st []struct {
			Mode        string          `json:"mode"`
			ModeApplied bool            `json:"mode_applied"`
			Pending     json.RawMessage `json:"pending"`
			Busy        bool            `json:"busy"`
			ActiveState string          `json:"active_state"`
			MainPID     int             `json:"main_pid"`
		}
		if err := json.Unmarshal([]byte(h.run("sitectl", "status", "karl", "--json")), &st); err != nil || len(st) != 1 {
			t.Fatalf("status after kill %d: %v", i, err)
		}
		s := st[0]
		if string(s.Pending) != "null" {
			interrupted++
			if s.Busy {
				t.Errorf("kill %d: status says a switch is in progress, but its sitectl is dead", i)
			}
		}
		// Truthful: when status says the running process runs the recorded
		// mode, the app answers in that mode, from that process.
		if s.ActiveState == "active" && s.ModeApplied {
			if r := getReply(t, url); r.Mode != s.Mode || r.PID != s.MainPID {
				t.Errorf("kill %d: status says mode %s (pid %d) runs, the app answers mode %s (pid %d)", i, s.Mode, s.MainPID, r.Mode, r.PID)
			}
		}
		// And the next switch proceeds from whatever was left.
		next := targets[(i+2)%len(targets)]
		if next == "slow" {
			next = "read-only"
		}
		if r, code, stderr := h.mode("karl", next, "--force"); code != 0 || r.Result != "ok" {
			t.Fatalf("kill %d: the next switch to %s: exit %d %+v %s", i, next, code, r, stderr)
		}
		if r := getReply(t, url); r.Mode != next {
			t.Fatalf("kill %d: after switching to %s the app answers %s", i, next, r.Mode)
		}
	}
	t.Logf("%d kills: %d cut a switch short, every one recovered", kills, interrupted)
	if interrupted < kills/4 {
		t.Errorf("only %d of %d kills landed inside a switch: the test did not exercise what it claims", interrupted, kills)
	}
	var hist []struct{ Result string }
	json.Unmarshal([]byte(h.run("sitectl", "history", "karl", "--json")), &hist)
	cut := 0
	for _, e := range hist {
		if e.Result == "interrupted" {
			cut++
		}
	}
	if cut != interrupted {
		t.Errorf("%d switches were cut short, history records %d", interrupted, cut)
	}
}

// Acceptance e: bad input gets one clear error line, the documented exit
// code, and changes nothing: state files byte-identical, no job run.
func TestBadInputChangesNothing(t *testing.T) {
	port := freePort(t)
	h := newHost(t, map[string]string{"karl": goSite(port, modeSites)})
	installMaintenance(h)
	h.run("systemctl", "start", "site-karl.socket")
	getReply(t, fmt.Sprintf("http://127.0.0.1:%d/", port))
	h.mode("karl", "read-only")
	snapshot := func() string {
		return h.run("sh", "-c", "cd /var/lib/sitectl && find . -type f | sort | xargs sha256sum")
	}
	before, inv := snapshot(), h.show("site-karl.service", "InvocationID")["InvocationID"]
	cases := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"unknown site", []string{"mode", "nosuch", "normal"}, 3, "site nosuch does not exist"},
		{"unknown mode", []string{"mode", "karl", "party"}, 3, "site karl has no mode party"},
		{"path in name", []string{"mode", "../x", "normal"}, 2, `site name "../x" is not valid`},
		{"empty site", []string{"mode", "", "normal"}, 2, "site name is empty"},
		{"empty mode", []string{"mode", "karl", ""}, 2, "mode name is empty"},
		{"long name", []string{"mode", strings.Repeat("k", 300), "normal"}, 2, "300 bytes long"},
		{"non-ASCII", []string{"mode", "kärl", "normal"}, 2, "is not valid"},
		{"bad mode name", []string{"mode", "karl", "Read_Only"}, 2, "is not valid"},
		{"too many args", []string{"mode", "karl", "normal", "extra"}, 2, "takes a site and a mode"},
		{"restart unknown", []string{"restart", "nosuch"}, 3, "does not exist"},
		{"rollback bad", []string{"rollback", "../etc"}, 2, "is not valid"},
	}
	for _, c := range cases {
		_, stderr, code := h.result("sitectl", c.args...)
		errLines := 0
		for _, l := range strings.Split(stderr, "\n") {
			if strings.HasPrefix(l, "sitectl: error: ") {
				errLines++
			}
		}
		if code != c.code || errLines != 1 || !strings.Contains(stderr, c.want) {
			t.Errorf("%s: exit %d (want %d), stderr %q (want one error line with %q)", c.name, code, c.code, stderr, c.want)
		}
	}
	// A user other than root asks sitectl's state service, never the bus:
	// with no service listening, that is unavailable (7), not a permission.
	_, stderr, code := h.result("setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
		"env", "DBUS_SYSTEM_BUS_ADDRESS=unix:path=/run/no-such-bus", "sitectl", "mode", "karl", "normal")
	if code != 7 || !strings.Contains(stderr, "state service cannot be reached") {
		t.Errorf("unreachable state service: exit %d (want 7), %q", code, stderr)
	}
	if after := snapshot(); after != before {
		t.Errorf("state changed by bad input:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if got := h.show("site-karl.service", "InvocationID")["InvocationID"]; got != inv {
		t.Errorf("the service was restarted by bad input")
	}
	if jobs := h.run("systemctl", "list-jobs", "--no-legend"); strings.TrimSpace(jobs) != "" {
		t.Errorf("jobs queued: %s", jobs)
	}
	// Root without a bus falls back to systemd's private socket.
	h.run("systemctl", "stop", "dbus.socket", "dbus.service")
	if r, code, stderr := h.mode("karl", "normal"); code != 0 || r.To != "normal" {
		t.Errorf("root without dbus: exit %d %+v %s", code, r, stderr)
	}
}

// Acceptance f: status --json agrees with systemctl show.
func TestStatusMatchesSystemctlShow(t *testing.T) {
	port, port2 := freePort(t), freePort(t)
	h := newHost(t, map[string]string{"karl": goSite(port, modeSites), "other": goSite(port2, "")})
	installMaintenance(h)
	h.run("systemctl", "start", "site-karl.socket", "site-other.socket")
	h.mode("karl", "maintenance")
	var all []struct {
		Name         string   `json:"site"`
		Mode         string   `json:"mode"`
		PreviousMode string   `json:"previous_mode"`
		ActiveState  string   `json:"active_state"`
		SubState     string   `json:"sub_state"`
		MainPID      int      `json:"main_pid"`
		Listeners    []string `json:"listeners"`
		Ready        bool     `json:"ready"`
		ModeApplied  bool     `json:"mode_applied"`
	}
	for _, cmd := range [][]string{{"status", "--json"}, {"list", "--json"}, {"status", "karl", "other", "--json"}} {
		if err := json.Unmarshal([]byte(h.run("sitectl", cmd...)), &all); err != nil || len(all) != 2 {
			t.Fatalf("sitectl %v: %v (%d sites)", cmd, err, len(all))
		}
		for _, s := range all {
			p := h.show("site-"+s.Name+".service", "ActiveState", "SubState", "MainPID")
			if s.ActiveState != p["ActiveState"] || s.SubState != p["SubState"] || fmt.Sprint(s.MainPID) != p["MainPID"] {
				t.Errorf("sitectl %v for %s: %s/%s pid %d; systemctl show: %v", cmd, s.Name, s.ActiveState, s.SubState, s.MainPID, p)
			}
		}
		k := all[0]
		if k.Name != "karl" || k.Mode != "maintenance" || k.PreviousMode != "normal" || !k.Ready || !k.ModeApplied ||
			len(k.Listeners) != 1 || k.Listeners[0] != fmt.Sprintf("127.0.0.1:%d", port) {
			t.Errorf("sitectl %v: karl = %+v", cmd, k)
		}
		if o := all[1]; o.Name != "other" || o.ActiveState != "inactive" || o.Mode != "normal" {
			t.Errorf("sitectl %v: other = %+v", cmd, o)
		}
	}
}

// The documented examples of the app-side contract refuse writes in
// read-only mode and accept them otherwise.
func TestReadOnlyExamples(t *testing.T) {
	for _, app := range []struct{ name, site string }{
		{"wsgi", `exec = ["/usr/bin/gunicorn", "app:application"]
workdir = "/srv/wsgi-read-only"
server = "gunicorn"
[modes.read-only]
[[listen]]
address = "127.0.0.1:%d"
`},
		{"go", `exec = ["/usr/local/bin/go-read-only"]
readiness = "notify"
[modes.read-only]
[[listen]]
address = "127.0.0.1:%d"
`},
	} {
		t.Run(app.name, func(t *testing.T) {
			port := freePort(t)
			h := newHost(t, map[string]string{"shop": fmt.Sprintf(app.site, port)})
			h.run("systemctl", "start", "site-shop.socket")
			url := fmt.Sprintf("http://127.0.0.1:%d/orders", port)
			post := func() int {
				resp, err := http.Post(url, "text/plain", strings.NewReader("x"))
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				return resp.StatusCode
			}
			if code := post(); code != 200 {
				t.Errorf("normal mode: POST answered %d", code)
			}
			if _, code, stderr := h.mode("shop", "read-only"); code != 0 {
				t.Fatalf("switch: %d %s", code, stderr)
			}
			if code := post(); code != 503 {
				t.Errorf("read-only mode: POST answered %d, want 503", code)
			}
			if status, body := get(t, url); status != 200 || !strings.Contains(body, `"read-only"`) {
				t.Errorf("read-only mode: GET answered %d %q", status, body)
			}
		})
	}
}

// list and status read many sites at once: pipelined D-Bus calls must stay
// under the bus's limit of pending replies (65 sites failed once). list
// reads systemd's properties only of services that are not inactive; apart
// from since of inactive sites and the journal's last cleanup, it reports
// what status reports, site by site.
func TestListManySites(t *testing.T) {
	sites := map[string]string{}
	base := freePort(t)
	for i := 0; i < 150; i++ {
		sites[fmt.Sprintf("s%03d", i)] = fmt.Sprintf("exec = [\"/usr/local/bin/webapp\"]\nreadiness = \"notify\"\n[[listen]]\naddress = \"127.0.0.%d:%d\"\n", 2+i%200, base)
	}
	h := newHost(t, sites)
	h.run("systemctl", "start", "--all", "site-*.socket")
	// Two run, one ran and stopped, the rest never started.
	h.run("systemctl", "start", "site-s000.service", "site-s001.service", "site-s002.service")
	h.run("systemctl", "stop", "site-s002.service")
	type entry struct {
		Name        string     `json:"site"`
		Mode        string     `json:"mode"`
		ActiveState string     `json:"active_state"`
		SubState    string     `json:"sub_state"`
		LoadState   string     `json:"load_state"`
		MainPID     int        `json:"main_pid"`
		Since       *time.Time `json:"since"`
		Result      string     `json:"result"`
		StatusText  string     `json:"status_text"`
		Ready       bool       `json:"ready"`
		ModeApplied bool       `json:"mode_applied"`
		Listeners   []string   `json:"listeners"`
	}
	var list, status []entry
	if err := json.Unmarshal([]byte(h.run("sitectl", "list", "--json")), &list); err != nil || len(list) != 150 {
		t.Fatalf("sitectl list --json: %v, %d sites", err, len(list))
	}
	out, err := h.try("sitectl", "status", "--json")
	if err != nil {
		t.Fatalf("sitectl status of 150 sites: %v", err)
	}
	if err := json.Unmarshal([]byte(out), &status); err != nil || len(status) != 150 {
		t.Fatalf("sitectl status --json: %v, %d sites", err, len(status))
	}
	for i, l := range list {
		s := status[i]
		if l.ActiveState == "inactive" {
			if l.Since != nil {
				t.Errorf("list: inactive %s has since %v", l.Name, l.Since)
			}
			l.Since = s.Since
		}
		if !reflect.DeepEqual(l, s) {
			t.Errorf("list and status differ:\nlist   %+v\nstatus %+v", l, s)
		}
	}
	// list reads systemd's listing on a connection of its own and decodes
	// it itself: what it says of each loaded service is what systemctl
	// says.
	byUnit := map[string][3]string{}
	for _, line := range strings.Split(strings.TrimSpace(h.run("systemctl", "list-units", "--all", "--plain", "--no-legend", "site-*.service")), "\n") {
		if f := strings.Fields(line); len(f) >= 4 {
			byUnit[f[0]] = [3]string{f[1], f[2], f[3]}
		}
	}
	loaded := 0
	for _, l := range list {
		sc, ok := byUnit["site-"+l.Name+".service"]
		if !ok {
			if l.LoadState != "not-loaded" {
				t.Errorf("list: %s is %s, systemctl does not list it", l.Name, l.LoadState)
			}
			continue
		}
		loaded++
		if got := [3]string{l.LoadState, l.ActiveState, l.SubState}; got != sc {
			t.Errorf("list: %s is %v, systemctl says %v", l.Name, got, sc)
		}
	}
	if loaded != len(byUnit) || loaded < 3 {
		t.Errorf("list has %d of the %d services systemctl lists", loaded, len(byUnit))
	}
	for i, want := range []string{"active", "active", "inactive", "inactive"} {
		if l := list[i]; l.ActiveState != want || l.Result != "success" || (want == "active") != (l.MainPID > 0 && l.Since != nil && l.Ready) {
			t.Errorf("list: %+v, want %s", l, want)
		}
	}
	if status[2].Since == nil {
		t.Errorf("status: the stopped s002 has no since")
	}
}

// A timeout whose rollback share (40%) is not longer than the site's
// settle_time could never show a rollback: a failed switch said "the
// rollback failed too: the site is down" (exit 5, rollback-failed in the
// history) while the previous mode served. Such a timeout is refused
// before anything is done, with the least that works; with that much, the
// same failed switch rolls back and says so (exit 4).
func TestTimeoutLeavesTheRollbackItsSettleTime(t *testing.T) {
	port := freePort(t)
	h := newHost(t, map[string]string{"karl": goSite(port, "settle_time = \"5s\"\n"+modeSites)})
	h.run("systemctl", "start", "site-karl.socket")
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	getReply(t, url)

	// 12s: 7.2s to come up, 4.8s to roll back, under the 5s settle time.
	_, code, stderr := h.mode("karl", "broken", "--timeout", "12s")
	if code != 2 || !strings.Contains(stderr, "give at least 13s; nothing was done") {
		t.Fatalf("sitectl mode karl broken --timeout 12s: exit %d, want 2 and the least timeout\n%s", code, stderr)
	}
	if out := h.run("sitectl", "history", "karl"); strings.Contains(out, "broken") {
		t.Errorf("the refused switch is in the history:\n%s", out)
	}
	r, code, stderr := h.mode("karl", "broken", "--timeout", "20s")
	if code != 4 || r.Result != "rolled-back" {
		t.Fatalf("sitectl mode karl broken --timeout 20s: exit %d (want 4), report %+v\n%s", code, r, stderr)
	}
	if rep := getReply(t, url); rep.Mode != "normal" {
		t.Errorf("after the rollback the site serves mode %q", rep.Mode)
	}
}

// A site in maintenance whose file changed the mode's retry_after is not
// "already in mode maintenance": its server runs the old settings, which
// status says, and sitectl mode restarts it into the file's.
func TestMaintenanceSettingsChangedAreApplied(t *testing.T) {
	port := freePort(t)
	h := newHost(t, map[string]string{"karl": goSite(port, modeSites)})
	installMaintenance(h)
	h.run("systemctl", "start", "site-karl.socket")
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	retryAfter := func() string {
		t.Helper()
		c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
		resp, err := c.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.Header.Get("Retry-After")
	}
	if r, code, stderr := h.mode("karl", "maintenance"); code != 0 || r.Result != "ok" {
		t.Fatalf("sitectl mode karl maintenance: exit %d %+v %s", code, r, stderr)
	}
	if got := retryAfter(); got != "300" {
		t.Fatalf("Retry-After %q, want 300", got)
	}
	differs := func() []string {
		t.Helper()
		var st []struct {
			ServedDiffers []string `json:"served_differs"`
		}
		if err := json.Unmarshal([]byte(h.run("sitectl", "status", "karl", "--json")), &st); err != nil || len(st) != 1 {
			t.Fatalf("sitectl status karl --json: %v (%d sites)", err, len(st))
		}
		return st[0].ServedDiffers
	}
	if d := differs(); len(d) != 0 {
		t.Fatalf("status of the maintenance server as the file has it: served_differs %v", d)
	}
	h.writeSite("karl", goSite(port, strings.Replace(modeSites, `retry_after = "5m"`, `retry_after = "10m"`, 1)))
	h.run("systemctl", "daemon-reload")
	if d := differs(); strings.Join(d, ",") != "SITECTL_RETRY_AFTER" {
		t.Errorf("status after retry_after changed: served_differs %v; want SITECTL_RETRY_AFTER", d)
	}
	r, code, stderr := h.mode("karl", "maintenance")
	if code != 0 || r.Result != "ok" || strings.HasPrefix(r.Reason, "already") {
		t.Errorf("sitectl mode karl maintenance after retry_after changed: exit %d %+v %s", code, r, stderr)
	}
	if got := retryAfter(); got != "600" {
		t.Errorf("Retry-After %q after the switch, want 600", got)
	}
}
