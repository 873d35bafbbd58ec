//go:build integration

package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
)

// deployerHost boots a host with sitectl's state service as packaged and
// two sites: web, granted to the group webteam, and other, which grants
// nobody (root's alone). Users: dana (sitectl-deploy and webteam), mallory
// (sitectl-deploy only), eve (webteam only, so granted web but not allowed
// to open the socket).
func deployerHost(t *testing.T) (h *host, webURL, otherURL string) {
	t.Helper()
	h = newHost(t, nil)
	stateService(h)
	h.run("groupadd", "webteam")
	h.run("useradd", "--create-home", "--groups", "sitectl-deploy,webteam", "dana")
	h.run("useradd", "--create-home", "--groups", "sitectl-deploy", "mallory")
	h.run("useradd", "--create-home", "--groups", "webteam", "eve")
	installMaintenance(h)
	web, other := freePort(t), freePort(t)
	h.writeSite("web", goSite(web, `deployers = ["group:webteam"]`+"\n"+modeSites))
	h.writeSite("other", goSite(other, modeSites))
	h.run("systemctl", "daemon-reload")
	h.run("systemctl", "start", "site-web.socket", "site-other.socket")
	webURL, otherURL = fmt.Sprintf("http://127.0.0.1:%d/", web), fmt.Sprintf("http://127.0.0.1:%d/", other)
	getReply(t, webURL)
	getReply(t, otherURL)
	return h, webURL, otherURL
}

// as runs a command as user, with the user's groups, as a login would.
func (h *host) as(user string, args ...string) (stdout, stderr string, code int) {
	h.t.Helper()
	return h.result("setpriv", append([]string{"--reuid=" + user, "--regid=" + user, "--init-groups", "--"}, args...)...)
}

type historyEntry struct {
	From   string `json:"from"`
	To     string `json:"to"`
	UID    int    `json:"uid"`
	Result string `json:"result"`
	Reason string `json:"reason"`
}

func (h *host) history(site string) []historyEntry {
	h.t.Helper()
	var hist []historyEntry
	if err := json.Unmarshal([]byte(h.run("sitectl", "history", site, "--json")), &hist); err != nil {
		h.t.Fatalf("sitectl history %s --json: %v", site, err)
	}
	return hist
}

// Issue 13.1 and 13.2 on a booted systemd with real users: a deployer asks
// the state service for a switch and root's side runs it and records what
// it saw; a deployer can neither record a result nor free text (forged
// finish, forged reason with control characters, finish without begin,
// begin without finish are all refused and leave history as it was);
// grants are per site; a caller that hangs up does not stop the change.
func TestDeployersGoThroughTheStateService(t *testing.T) {
	h, webURL, otherURL := deployerHost(t)
	danaUID := strings.TrimSpace(h.run("id", "-u", "dana"))

	// dana switches, restarts and rolls back web, without sudo.
	for _, args := range [][]string{
		{"sitectl", "mode", "web", "maintenance"},
		{"sitectl", "mode", "web", "read-only"},
		{"sitectl", "restart", "web"},
	} {
		if out, stderr, code := h.as("dana", args...); code != 0 {
			t.Fatalf("dana: %v: exit %d\n%s%s", args, code, out, stderr)
		}
	}
	if r := getReply(t, webURL); r.Mode != "read-only" {
		t.Errorf("after dana's switches web serves mode %q, want read-only", r.Mode)
	}
	// Oldest first; the restart is an entry of its own.
	hist := h.history("web")
	if len(hist) != 3 || fmt.Sprint(hist[1].UID) != danaUID || hist[1].To != "read-only" || hist[1].Result != "ok" || hist[2].From != "read-only" || hist[2].To != "read-only" {
		t.Errorf("history does not record dana's switch (uid %s) as root saw it: %+v", danaUID, hist)
	}
	// What dana may see: web, not other.
	if out, stderr, code := h.as("dana", "sitectl", "list", "--json"); code != 0 || !strings.Contains(out, `"web"`) || strings.Contains(out, `"other"`) {
		t.Errorf("dana's list: exit %d, %s%s", code, out, stderr)
	}

	// Grants: other is root's alone; mallory is not named by web; eve is
	// named (webteam) but may not open the socket. Each exits 6 and
	// changes nothing.
	invWeb := h.show("site-web.service", "InvocationID")["InvocationID"]
	invOther := h.show("site-other.service", "InvocationID")["InvocationID"]
	for _, c := range []struct {
		user string
		args []string
	}{
		{"dana", []string{"sitectl", "mode", "other", "maintenance"}},
		{"dana", []string{"sitectl", "restart", "other"}},
		{"dana", []string{"sitectl", "history", "other"}},
		{"dana", []string{"sitectl", "status", "other"}},
		{"mallory", []string{"sitectl", "mode", "web", "maintenance"}},
		{"mallory", []string{"sitectl", "history", "web"}},
		{"eve", []string{"sitectl", "mode", "web", "maintenance"}},
	} {
		if out, stderr, code := h.as(c.user, c.args...); code != 6 {
			t.Errorf("%s: %v: exit %d, want 6 (permission denied)\n%s%s", c.user, c.args, code, out, stderr)
		}
	}
	if out, _, _ := h.as("mallory", "sitectl", "list", "--json"); strings.Contains(out, `"web"`) || strings.Contains(out, `"other"`) {
		t.Errorf("mallory sees sites not granted to it: %s", out)
	}
	if getReply(t, otherURL).Mode != "normal" || len(h.history("other")) != 0 {
		t.Errorf("other was changed by a deployer not granted it: %+v", h.history("other"))
	}

	// Forgeries, sent on the socket as dana: the old protocol's begin,
	// set-mode and finish, a finish without a begin, a reason full of
	// control characters, a result in a change request. Each is refused
	// as a bad request (2); neither history nor the site changes.
	before := h.run("sitectl", "history", "web", "--json")
	forged := "x\n2026-11-30T00:00:00Z  read-only -> normal  ok  0 by root\x1b[2J\x1b]0;owned\x07"
	for _, req := range []map[string]any{
		{"op": "begin", "site": "web", "mode": "maintenance"},
		{"op": "set-mode", "site": "web", "mode": "maintenance"},
		{"op": "finish", "site": "web", "result": "ok", "reason": forged},
		{"verb": "finish", "site": "web", "result": "ok", "reason": forged},
		{"verb": "mode", "site": "web", "mode": "maintenance", "result": "ok"},
		{"verb": "mode", "site": "web", "mode": "maintenance", "reason": forged},
		{"verb": "history", "site": "web", "uid": 0},
	} {
		line, _ := json.Marshal(req)
		out, stderr, code := h.as("dana", "timeout", "60", "python3", "-c", stateRequest, string(line))
		if code != 0 || !strings.Contains(out, `"code":2`) {
			t.Errorf("forged request %s: exit %d, answer %s%s; want a refusal with code 2", line, code, out, stderr)
		}
	}
	if after := h.run("sitectl", "history", "web", "--json"); after != before {
		t.Errorf("forged requests changed the history:\nbefore %s\nafter  %s", before, after)
	}
	if h.show("site-web.service", "InvocationID")["InvocationID"] != invWeb || h.show("site-other.service", "InvocationID")["InvocationID"] != invOther {
		t.Errorf("a refused request restarted a site")
	}
	if st := h.run("cat", "/var/lib/sitectl/sites/web/state.json"); strings.Contains(st, `"pending"`) {
		t.Errorf("a refused begin left a pending switch: %s", st)
	}
	// The history as printed for root carries no control character.
	if out := h.run("sitectl", "history", "web"); strings.ContainsAny(out, "\x1b\x07") {
		t.Errorf("history printed control characters: %q", out)
	}

	// A request whose caller hangs up at once is still carried out to its
	// end, and recorded as root saw it: there is no "begin without finish".
	hangup := `
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect("/run/sitectl/state.sock")
s.sendall(sys.argv[1].encode() + b"\n")
s.close()
`
	n := len(h.history("web"))
	if _, stderr, code := h.as("dana", "python3", "-c", hangup, `{"verb":"mode","site":"web","mode":"maintenance"}`); code != 0 {
		t.Fatalf("hang-up client: exit %d: %s", code, stderr)
	}
	h.waitFor("the abandoned switch to be recorded", 2*time.Minute, func() bool { return len(h.history("web")) > n })
	if hist := h.history("web"); hist[len(hist)-1].To != "maintenance" || hist[len(hist)-1].Result != "ok" || fmt.Sprint(hist[len(hist)-1].UID) != danaUID {
		t.Errorf("the switch whose caller hung up: %+v", hist[len(hist)-1])
	}
	if status, body := get(t, webURL); status != 503 || !strings.Contains(body, "maintenance") {
		t.Errorf("after the abandoned switch web answers %d %q, want the maintenance page", status, body)
	}
}

// Issue 13.1: a field an app controls (its journal lines) reaches a
// deployer's terminal and root's escaped, through the state service too.
func TestDeployerSeesEscapedJournal(t *testing.T) {
	h, _, _ := deployerHost(t)
	port := freePort(t)
	h.writeSite("evil", fmt.Sprintf(`exec = ["/bin/sh", "-c", "printf 'start \\033[2J\\033]0;owned\\007 forged\\n' >&2; exit 1"]
deployers = ["user:dana"]
start_timeout = "10s"
[[listen]]
address = "127.0.0.1:%d"
`, port))
	h.run("systemctl", "daemon-reload")
	h.run("systemctl", "start", "site-evil.socket") // root puts it in service
	out, stderr, code := h.as("dana", "sitectl", "restart", "evil")
	if code == 0 {
		t.Fatalf("a site that cannot start restarted: %s%s", out, stderr)
	}
	if strings.ContainsAny(out+stderr, "\x1b\x07") {
		t.Errorf("control characters of the app's journal reached the deployer's terminal: %q", out+stderr)
	}
	if !strings.Contains(stderr, `\x1b[2J`) {
		t.Errorf("the journal of the failed start is not shown, escaped: %q", stderr)
	}
	for _, args := range [][]string{{"sitectl", "status", "evil"}, {"sitectl", "history", "evil"}} {
		o, e, _ := h.as("dana", args...)
		ro, re, _ := h.result(args[0], args[1:]...)
		if strings.ContainsAny(o+e+ro+re, "\x1b\x07") {
			t.Errorf("%v printed control characters: %q %q", args, o+e, ro+re)
		}
	}
}

// Issue 13.3: one deployer's 40 idle connections do not block another
// deployer; each gets an answer (busy at once, or the request deadline);
// a connection the service drops maps to exit 7 (unavailable), not 6.
func TestStateServiceBoundsConnections(t *testing.T) {
	h, webURL, _ := deployerHost(t)
	h.run("usermod", "--append", "--groups", "webteam", "mallory")
	// mallory holds 40 idle connections and reports how each ended.
	hold := `
import json, socket, sys, time
conns = []
for i in range(40):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(120)
    s.connect("/run/sitectl/state.sock")
    conns.append(s)
open("/home/mallory/holding", "w").close()
codes = []
for s in conns:
    data = b""
    while not data.endswith(b"\n"):
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    codes.append(json.loads(data)["final"]["code"] if data else -1)
print(json.dumps(codes))
`
	done := make(chan string, 1)
	go func() {
		out, stderr, code := h.as("mallory", "timeout", "300", "python3", "-c", hold)
		done <- fmt.Sprintf("%d\n%s\n%s", code, out, stderr)
	}()
	h.waitFor("mallory's 40 connections", 2*time.Minute, func() bool {
		_, err := h.try("test", "-e", "/home/mallory/holding")
		return err == nil
	})
	// dana is not blocked.
	if out, stderr, code := h.as("dana", "sitectl", "mode", "web", "read-only"); code != 0 {
		t.Errorf("dana, while mallory holds 40 connections: exit %d\n%s%s", code, out, stderr)
	}
	if getReply(t, webURL).Mode != "read-only" {
		t.Errorf("dana's switch did not happen")
	}
	res := <-done
	code, rest, _ := strings.Cut(res, "\n")
	out, _, _ := strings.Cut(rest, "\n")
	var codes []int
	if code != "0" || json.Unmarshal([]byte(out), &codes) != nil || len(codes) != 40 {
		t.Fatalf("mallory's connections: %s", res)
	}
	busy, deadline := 0, 0
	for _, c := range codes {
		switch c {
		case 7:
			busy++
		case 2:
			deadline++
		default:
			t.Errorf("an idle connection ended with code %d", c)
		}
	}
	t.Logf("of 40 idle connections of one uid: %d refused as busy at once, %d closed at the request deadline", busy, deadline)
	if busy == 0 || deadline == 0 {
		t.Errorf("per-uid limit and request deadline: codes %v", codes)
	}

	// A connection cut before the answer (the service killed while dana
	// waits for the site's lock, held by root) is exit 7, not 6.
	h.run("systemd-run", "--unit=hold-web-lock", "flock", "/var/lib/sitectl/sites/web/lock", "sleep", "600")
	cut := make(chan string, 1)
	go func() {
		out, stderr, code := h.as("dana", "sitectl", "mode", "web", "normal")
		cut <- fmt.Sprintf("%d\n%s%s", code, out, stderr)
	}()
	h.waitFor("dana's request to reach the service", 2*time.Minute, func() bool {
		out, _ := h.try("ss", "-xH")
		return strings.Count(out, "/run/sitectl/state.sock") > 0
	})
	h.run("systemctl", "kill", "--signal=SIGKILL", "sitectl-state.service")
	h.run("systemctl", "stop", "sitectl-state.socket")
	res = <-cut
	if !strings.HasPrefix(res, "7\n") || !strings.Contains(res, "ended the connection") {
		t.Errorf("dana, whose connection the service dropped: %s; want exit 7 and that the connection ended", res)
	}
	h.run("systemctl", "stop", "hold-web-lock")
}

// Issues 13.4 and 13.5: a second hardened site cannot read the first
// site's mode environment, site file or credentials; the first site gets
// its credentials (after every kind of start, overlap reloads included)
// and its mode's variables; the state is root's alone;
// sitectl check warns about a world-readable site file that holds
// environment values.
func TestSitesCannotReadEachOthersSecrets(t *testing.T) {
	h := newHost(t, nil)
	a, b := freePort(t), freePort(t)
	h.run("mkdir", "-p", "--mode=0700", "/etc/credstore/a")
	h.writeFile("/etc/credstore/a/token", "cred-a-secret\n", 0o600)
	h.writeSite("a", goSite(a, `credentials = { token = "/etc/credstore/a/token" }
[modes.secret]
environment = { API_TOKEN = "mode-a-secret", WEBAPP_EXPOSE_ENV = "API_TOKEN" }
`))
	h.writeSite("b", goSite(b, ""))
	h.run("systemctl", "daemon-reload")
	h.run("systemctl", "start", "site-a.socket", "site-b.socket")
	h.run("sitectl", "mode", "a", "secret")
	urlA, urlB := fmt.Sprintf("http://127.0.0.1:%d", a), fmt.Sprintf("http://127.0.0.1:%d", b)

	// a gets what is its own, after every kind of start. (systemd 252.0
	// to 253.x upstream hand a sandboxed service's credentials to its
	// first command alone, systemd issue 27275; Debian 12's 252 carries
	// the fix, which this asserts: a site's first command is
	// ExecStartPre=+sitectl prepare.)
	readsOwn := func(after string) {
		t.Helper()
		if status, body := get(t, urlA+"/read?path=token"); status != 200 || body != "cred-a-secret\n" {
			t.Errorf("site a reading its credential after %s: %d %q", after, status, body)
		}
	}
	readsOwn("sitectl mode")
	h.run("sitectl", "restart", "a")
	readsOwn("sitectl restart")
	h.run("systemctl", "restart", "site-a.service")
	readsOwn("systemctl restart")
	// Restart=on-failure starts it again, prepared again.
	before := h.show("site-a.service", "NRestarts", "MainPID")
	h.run("kill", "-9", before["MainPID"])
	h.waitFor("site a to be started again after a crash", time.Minute, func() bool {
		now := h.show("site-a.service", "NRestarts", "ActiveState")
		return now["NRestarts"] != before["NRestarts"] && now["ActiveState"] == "active"
	})
	readsOwn("a crash and Restart=on-failure")
	// An overlap site with credentials: the first generation and the one a
	// reload starts both read them; it starts by socket activation.
	c := freePort(t)
	h.run("mkdir", "-p", "--mode=0700", "/etc/credstore/c")
	h.writeFile("/etc/credstore/c/token", "cred-c-secret\n", 0o600)
	h.writeSite("c", goSite(c, `handoff = "overlap"
credentials = { token = "/etc/credstore/c/token" }`))
	h.run("systemctl", "daemon-reload")
	h.run("systemctl", "start", "site-c.socket")
	urlC := fmt.Sprintf("http://127.0.0.1:%d", c)
	for _, after := range []string{"socket activation", "sitectl reload"} {
		if after == "sitectl reload" {
			h.run("sitectl", "reload", "c")
		}
		if status, body := get(t, urlC+"/read?path=token"); status != 200 || body != "cred-c-secret\n" {
			t.Errorf("overlap site c reading its credential after %s: %d %q", after, status, body)
		}
	}
	if status, body := get(t, urlA+"/env?name=API_TOKEN"); status != 200 || !strings.Contains(body, "mode-a-secret") {
		t.Errorf("site a's mode variable: %d %q", status, body)
	}
	credDir := strings.TrimSpace(h.run("sh", "-c", "ls -d /run/credentials/site-a.service"))
	// b gets none of it, and neither does a itself of the state and site
	// files (they may hold other sites' secrets).
	for _, c := range []struct{ url, path string }{
		{urlB, "/var/lib/sitectl/sites/a/mode.env"},
		{urlB, "/var/lib/sitectl/sites/a/state.json"},
		{urlB, "/etc/sitectl/sites/a.toml"},
		{urlB, credDir + "/token"},
		{urlB, "/etc/credstore/a/token"},
		{urlA, "/var/lib/sitectl/sites/b/mode.env"},
		{urlA, "/etc/sitectl/sites/b.toml"},
		{urlA, "/run/credentials/site-c.service/token"},
		{urlC, credDir + "/token"},
		{urlC, "/etc/credstore/a/token"},
	} {
		if status, body := get(t, c.url+"/read?path="+c.path); status == 200 || strings.Contains(body, "secret") {
			t.Errorf("%s read %s: %d %q", c.url, c.path, status, body)
		}
	}
	// Root's alone: no local user reads the state either.
	h.run("useradd", "--create-home", "eve")
	for path, want := range map[string]string{
		"/var/lib/sitectl": "700 root", "/var/lib/sitectl/sites": "700 root", "/var/lib/sitectl/sites/a": "700 root",
		"/var/lib/sitectl/sites/a/mode.env": "600 root", "/var/lib/sitectl/sites/a/state.json": "600 root",
	} {
		if st := strings.TrimSpace(h.run("stat", "-c", "%a %U", path)); st != want {
			t.Errorf("%s: %s, want %s", path, st, want)
		}
	}
	if out, _, code := h.as("eve", "cat", "/var/lib/sitectl/sites/a/mode.env"); code == 0 {
		t.Errorf("a local user read the mode file: %q", out)
	}
	// check warns that a's file (0644, with environment values) is
	// readable by all, and is quiet once it is not.
	_, stderr, code := h.result("sitectl", "check", "/etc/sitectl/sites/a.toml")
	if code != 0 || !strings.Contains(stderr, "warning: the file holds environment values and anyone on this host may read it") {
		t.Errorf("check of a world-readable site file with environment values: exit %d %q", code, stderr)
	}
	h.run("chmod", "0600", "/etc/sitectl/sites/a.toml")
	if _, stderr, code := h.result("sitectl", "check", "/etc/sitectl/sites/a.toml"); code != 0 || strings.Contains(stderr, "may read it") {
		t.Errorf("check of a 0600 site file: exit %d %q", code, stderr)
	}
}

// Issue 13.6: with [egress], the app connects only where allow says; the
// site still serves (inbound connections come through its socket units);
// a site without [egress] connects anywhere.
func TestEgressIsRestricted(t *testing.T) {
	h := newHost(t, nil)
	p, allowed, denied := freePort(t), freePort(t), freePort(t)
	// Two targets on the loopback range: 127.0.0.2 is allowed, 127.0.0.3
	// is not.
	h.run("systemd-run", "--unit=target-allowed", "python3", "-m", "http.server", "--bind", "127.0.0.2", fmt.Sprint(allowed))
	h.run("systemd-run", "--unit=target-denied", "python3", "-m", "http.server", "--bind", "127.0.0.3", fmt.Sprint(denied))
	open := freePort(t)
	h.writeSite("shut", goSite(p, "[egress]\nallow = [\"127.0.0.2\"]\n"))
	h.writeSite("open", goSite(open, ""))
	h.run("systemctl", "daemon-reload")
	h.run("systemctl", "start", "site-shut.socket", "site-open.socket")
	if show := h.show("site-shut.service", "IPAddressDeny", "IPAddressAllow"); show["IPAddressDeny"] == "" || !strings.Contains(show["IPAddressAllow"], "127.0.0.2") {
		t.Errorf("site-shut.service: %v", show)
	}
	h.waitFor("the targets to listen", time.Minute, func() bool {
		out, _ := h.try("ss", "-ltnH")
		return strings.Contains(out, fmt.Sprintf("127.0.0.2:%d", allowed)) && strings.Contains(out, fmt.Sprintf("127.0.0.3:%d", denied))
	})
	shut, openURL := fmt.Sprintf("http://127.0.0.1:%d", p), fmt.Sprintf("http://127.0.0.1:%d", open)
	if status, body := get(t, fmt.Sprintf("%s/dial?addr=127.0.0.2:%d", shut, allowed)); status != 200 {
		t.Errorf("the restricted site connecting to an allowed address: %d %q", status, body)
	}
	if status, body := get(t, fmt.Sprintf("%s/dial?addr=127.0.0.3:%d", shut, denied)); status == 200 {
		t.Errorf("the restricted site connected to an address not allowed: %d %q", status, body)
	} else {
		t.Logf("the restricted site connecting to 127.0.0.3: %d %s", status, strings.TrimSpace(body))
	}
	if status, body := get(t, fmt.Sprintf("%s/dial?addr=127.0.0.3:%d", openURL, denied)); status != 200 {
		t.Errorf("the unrestricted site connecting to 127.0.0.3: %d %q", status, body)
	}
	// sitectl's probe and a switch still work: inbound is not filtered.
	if _, stderr, code := h.result("sitectl", "restart", "shut"); code != 0 {
		t.Errorf("restart of the restricted site: exit %d %s", code, stderr)
	}
}

// Root stopped a site with systemctl: a deployer's change would start its
// service, and with it its sockets. It is refused, and the site stays
// stopped; root's own restart starts it.
func TestDeployerDoesNotStartASiteRootStopped(t *testing.T) {
	h, webURL, _ := deployerHost(t)
	h.run("systemctl", "stop", "site-web.socket", "site-web.service")
	for _, args := range [][]string{{"sitectl", "restart", "web"}, {"sitectl", "mode", "web", "read-only"}, {"sitectl", "reload", "web"}} {
		_, stderr, code := h.as("dana", args...)
		if code != 1 || !strings.Contains(stderr, "stopped") {
			t.Errorf("dana's %v of the stopped site: exit %d, want 1\n%s", args, code, stderr)
		}
	}
	for _, u := range []string{"site-web.socket", "site-web.service"} {
		if p := h.show(u, "ActiveState"); p["ActiveState"] != "inactive" {
			t.Errorf("%s after dana's refused changes: %v", u, p)
		}
	}
	if hist := h.history("web"); len(hist) != 0 {
		t.Errorf("refused changes were recorded: %+v", hist)
	}
	h.run("sitectl", "restart", "web")
	getReply(t, webURL)
}

// A deployer's change that waits for the site's lock (another sitectl
// changes the site) is checked again once it holds the lock: root took
// the grant away meanwhile, so it changes nothing and says so (exit 6).
// Before, the grant was checked only before the wait, and the change ran.
func TestGrantTakenAwayWhileWaitingForTheLock(t *testing.T) {
	h, webURL, _ := deployerHost(t)
	danaUID := strings.TrimSpace(h.run("id", "-u", "dana"))
	// Root holds web's lock, as a long change of root's would, until the
	// grant is gone: held before dana's request (rootlock.service active
	// was not yet flock holding it), and not freed before the grant went
	// however slow the host (a hold of 8 s could end first).
	holdSiteLock(h, "web", "sleep", "infinity")
	h.run("systemd-run", "--unit=danareq", "-p", "User=dana", "sitectl", "mode", "web", "read-only", "--timeout", "60s")
	time.Sleep(1500 * time.Millisecond) // dana's request gets to its wait (polled: nothing to watch)
	port := strings.TrimPrefix(strings.TrimSuffix(webURL, "/"), "http://127.0.0.1:")
	h.writeSite("web", "exec = [\"/usr/local/bin/webapp\"]\nreadiness = \"notify\"\n"+modeSites+"\n[[listen]]\naddress = \"127.0.0.1:"+port+"\"\n")
	h.run("systemctl", "daemon-reload")
	releaseSiteLock(h)
	h.waitFor("dana's request to end", time.Minute, func() bool {
		out, _ := h.try("systemctl", "is-active", "danareq.service")
		return strings.TrimSpace(out) != "active" && strings.TrimSpace(out) != "activating"
	})
	if p := h.show("danareq.service", "ExecMainStatus"); p["ExecMainStatus"] != "6" {
		t.Errorf("dana's request ended with %v, want exit 6\n%s", p, h.run("journalctl", "--no-pager", "-o", "cat", "-u", "danareq.service"))
	}
	for _, e := range h.history("web") {
		if fmt.Sprint(e.UID) == danaUID {
			t.Errorf("a change by dana ran after root took the grant away: %+v", e)
		}
	}
	if m := getReply(t, webURL).Mode; m != "normal" {
		t.Errorf("web serves mode %q", m)
	}
}

// A member of sitectl-deploy granted nothing, looping on refused requests,
// does not make journald drop the lines of another deployer's change: the
// service logs at most 100 lines of one uid in 30 s, under journald's own
// rate limit of the service.
func TestRefusedFloodDoesNotSilenceAnotherDeployer(t *testing.T) {
	h, webURL, _ := deployerHost(t)
	danaUID := strings.TrimSpace(h.run("id", "-u", "dana"))
	malloryUID := strings.TrimSpace(h.run("id", "-u", "mallory"))
	// Four processes, each alternating a request that is not one and a
	// change of a site mallory is not granted: refused changes too count
	// against her share (they were logged one by one).
	flood := requestLoops(4, 20, "x", `{"verb":"restart","site":"other"}`)
	out, stderr, code := h.as("mallory", "python3", "-c", flood)
	if code != 0 {
		t.Fatalf("mallory's flood: exit %d\n%s%s", code, out, stderr)
	}
	t.Logf("mallory's 4 processes sent %s refused requests in 20 s", strings.Join(strings.Fields(out), ", "))
	if out, stderr, code := h.as("dana", "sitectl", "mode", "web", "read-only"); code != 0 {
		t.Fatalf("dana's switch: exit %d\n%s%s", code, out, stderr)
	}
	if getReply(t, webURL).Mode != "read-only" {
		t.Fatalf("dana's switch did not happen")
	}
	h.run("journalctl", "--sync")
	journal := h.run("journalctl", "--no-pager", "-o", "cat", "-u", "sitectl-state.service")
	if !strings.Contains(journal, "uid "+danaUID+" (pid ") || !strings.Contains(journal, "mode web read-only: ok") {
		t.Errorf("dana's switch is not in the journal after mallory's flood")
	}
	if n := strings.Count(journal, "uid "+malloryUID+" (pid "); n > 100 {
		t.Errorf("mallory's refused requests left %d lines in the journal, more than 100", n)
	}
	if sup, _ := h.try("journalctl", "--no-pager", "-o", "cat", "-u", "systemd-journald.service", "--grep", "Suppressed"); strings.Contains(sup, "sitectl-state") {
		t.Errorf("journald suppressed lines of the state service: %s", sup)
	}
}

// A deployer's list of many sites (from the state service's manySites on)
// is gathered as root's of all sites and cut to those the deployer is
// granted, and a status of them by name: either way, what dana gets is
// root's, site for site.
func TestDeployerListOfManySitesIsRootsCut(t *testing.T) {
	h, _, _ := deployerHost(t)
	granted := []string{"web"}
	for i := range 70 {
		name := fmt.Sprintf("many-%02d", i)
		h.writeSite(name, fmt.Sprintf("exec = [\"/usr/local/bin/webapp\"]\ndeployers = [\"group:webteam\"]\n[[listen]]\npath = \"/run/many/%02d.sock\"\n", i))
		granted = append(granted, name)
	}
	h.run("systemctl", "daemon-reload")
	sort.Strings(granted)
	bySite := func(out string) map[string]json.RawMessage {
		t.Helper()
		var sites []json.RawMessage
		if err := json.Unmarshal([]byte(out), &sites); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		m := map[string]json.RawMessage{}
		for _, raw := range sites {
			var s struct {
				Site string `json:"site"`
			}
			if err := json.Unmarshal(raw, &s); err != nil {
				t.Fatal(err)
			}
			m[s.Site] = raw
		}
		return m
	}
	for _, verb := range []string{"list", "status"} {
		out, stderr, code := h.as("dana", "sitectl", verb, "--json")
		if code != 0 && code != 3 { // status: the sites never started are not running
			t.Fatalf("dana: sitectl %s --json: exit %d\n%s", verb, code, stderr)
		}
		dana := bySite(out)
		rootOut, _, _ := h.result("sitectl", verb, "--json")
		root := bySite(rootOut)
		var names []string
		for n := range dana {
			names = append(names, n)
		}
		sort.Strings(names)
		if !slices.Equal(names, granted) {
			t.Errorf("%s: dana sees %v, want the %d sites granted", verb, names, len(granted))
		}
		for _, n := range granted {
			if !bytes.Equal(dana[n], root[n]) {
				t.Errorf("%s: dana's %s differs from root's:\n%s\n%s", verb, n, dana[n], root[n])
			}
		}
	}
}

// A deployer reads the journal of the sites they may deploy through the
// state service, as root's sitectl logs shows it, and no other site's: a
// site not granted them, or a caller who may not open the socket, gets
// nothing of it. --lines, --since and -o are root's.
func TestDeployerReadsTheJournalOfTheirSitesOnly(t *testing.T) {
	h, _, _ := deployerHost(t)
	webPID := h.show("site-web.service", "MainPID")["MainPID"]
	otherPID := h.show("site-other.service", "MainPID")["MainPID"]
	h.run("journalctl", "--sync")

	out, stderr, code := h.as("dana", "sitectl", "logs", "web", "--no-pager")
	if code != 0 || !strings.Contains(out, fmt.Sprintf("started pid=%s site=\"web\"", webPID)) {
		t.Fatalf("dana: sitectl logs web: exit %d, want 0 and the app's start line\n%s%s", code, out, stderr)
	}
	if strings.Contains(out, "pid="+otherPID) || strings.Contains(out, `site="other"`) {
		t.Errorf("dana's journal of web shows site other's lines:\n%s", out)
	}

	for _, c := range []struct{ user, site string }{{"dana", "other"}, {"mallory", "web"}} {
		out, stderr, code := h.as(c.user, "sitectl", "logs", c.site, "--no-pager")
		if code != 6 || strings.Contains(out, "started pid=") {
			t.Errorf("%s: sitectl logs %s: exit %d, want 6 and nothing shown\n%s%s", c.user, c.site, code, out, stderr)
		}
	}
	// eve may not open the socket: journalctl reads the journal as she
	// may, which is not at all.
	if out, stderr, _ := h.as("eve", "sitectl", "logs", "web", "--no-pager"); strings.Contains(out, "started pid=") {
		t.Errorf("eve, who may not ask the state service, read web's journal:\n%s%s", out, stderr)
	}

	if out, stderr, code := h.as("dana", "sitectl", "logs", "web", "--no-pager", "-n", "2", "-o", "cat"); code != 0 || len(strings.Split(strings.TrimSpace(out), "\n")) != 2 {
		t.Errorf("dana: sitectl logs web -n 2 -o cat: exit %d, want 2 lines\n%s%s", code, out, stderr)
	}
	if out, stderr, code := h.as("dana", "sitectl", "logs", "web", "--no-pager", "-n", "0"); code != 0 || strings.TrimSpace(out) != "" {
		t.Errorf("dana: sitectl logs web -n 0: exit %d, want nothing\n%s%s", code, out, stderr)
	}
	if _, stderr, code := h.as("dana", "sitectl", "logs", "other", "--no-pager", "-n", "0"); code != 6 {
		t.Errorf("dana: sitectl logs other -n 0: exit %d, want 6\n%s", code, stderr)
	}
	future := fmt.Sprintf("@%d", time.Now().Add(time.Hour).Unix())
	if out, stderr, code := h.as("dana", "sitectl", "logs", "web", "--no-pager", "--since", future); code != 0 || strings.Contains(out, "started pid=") {
		t.Errorf("dana: sitectl logs web --since in an hour: exit %d\n%s%s", code, out, stderr)
	}
	out, stderr, code = h.as("dana", "sitectl", "logs", "web", "-o", "json")
	if code != 0 || strings.TrimSpace(out) == "" {
		t.Fatalf("dana: sitectl logs web -o json: exit %d\n%s%s", code, out, stderr)
	}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("a line of -o json is not JSON: %v: %.200s", err, line)
		}
		if rec["_SYSTEMD_UNIT"] != nil && !strings.HasPrefix(fmt.Sprint(rec["_SYSTEMD_UNIT"]), "site-web") && rec["UNIT"] == nil {
			t.Errorf("a record of another unit: %.300s", line)
		}
	}
	for _, args := range [][]string{{"-n", "10001"}, {"-o", "export"}, {"--since", "never"}} {
		if _, stderr, code := h.as("dana", append([]string{"sitectl", "logs", "web"}, args...)...); code != 2 {
			t.Errorf("dana: sitectl logs web %v: exit %d, want 2\n%s", args, code, stderr)
		}
	}
	// The service says whose request it answered.
	if j := h.run("journalctl", "-u", "sitectl-state.service", "-o", "cat", "--no-pager"); !strings.Contains(j, "logs web") {
		t.Errorf("the state service's journal does not record dana's logs request:\n%s", j)
	}
}

// A deployer who loops on changes of their site through the state service
// cannot keep root out of it: once root's sitectl waits for the site's
// lock, the service's next change of the site waits for root's.
func TestDeployerLoopingCannotKeepRootOut(t *testing.T) {
	h, webURL, _ := deployerHost(t)
	loop := requestLoops(6, 40, `{"verb":"restart","site":"web","timeout_ms":600000}`)
	done := make(chan string, 1)
	go func() {
		out, _, _ := h.as("dana", "python3", "-c", loop)
		done <- out
	}()
	h.waitFor("dana's restarts of web", 20*time.Second, func() bool { return len(h.history("web")) >= 2 })
	start := time.Now()
	out, stderr, code := h.result("sitectl", "restart", "web", "--timeout", "30s")
	took := time.Since(start)
	if code != 0 {
		t.Errorf("root's restart while dana loops on restarts: exit %d after %s\n%s%s", code, took.Round(time.Millisecond), out, stderr)
	}
	t.Logf("root's restart took %s; dana's 6 loops: %s", took.Round(time.Millisecond), strings.Join(strings.Fields(<-done), ", "))
	getReply(t, webURL)
	// Which changes began after root asked and before root's: the one
	// that held the lock when root began to wait may, and one that took
	// it between root's first try and its mark; no more.
	var hist []struct {
		Time time.Time `json:"time"`
		UID  int       `json:"uid"`
	}
	if err := json.Unmarshal([]byte(h.run("sitectl", "history", "web", "--json")), &hist); err != nil {
		t.Fatal(err)
	}
	before := 0
	for _, en := range hist {
		if en.UID == 0 {
			break
		}
		if en.Time.After(start) {
			before++
		}
	}
	if before > 2 {
		t.Errorf("%d of dana's restarts began after root asked and before root's (in %s)", before, took.Round(time.Millisecond))
	}
}

// requestLoops is a Python program that runs procs processes, each sending
// sitectl's state service the lines in turn, one a connection, reading
// each answer to its end, for the given seconds; each prints how many it
// sent.
func requestLoops(procs, seconds int, lines ...string) string {
	quoted := make([]string, len(lines))
	for i, l := range lines {
		quoted[i] = fmt.Sprintf("%q", l+"\n")
	}
	return fmt.Sprintf(`
import os, socket, time
lines = [l.encode() for l in [%s]]
kids = []
for k in range(%d):
    pid = os.fork()
    if pid:
        kids.append(pid)
        continue
    n, end = 0, time.time() + %d
    while time.time() < end:
        s = socket.socket(socket.AF_UNIX)
        s.connect("/run/sitectl/state.sock")
        s.sendall(lines[n %% len(lines)])
        while s.recv(65536):
            pass
        s.close()
        n += 1
    os.write(1, b"%%d\n" %% n)
    os._exit(0)
for pid in kids:
    os.waitpid(pid, 0)
`, strings.Join(quoted, ", "), procs, seconds)
}
