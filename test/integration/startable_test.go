//go:build integration

package integration

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// A restart stops the old process before it starts the new one. When the
// unit systemd has loaded cannot start at all (its program, its user or its
// working directory does not exist), the start fails and the rollback
// restarts that same unit: the site went down. sitectl checks first and
// refuses, changing nothing. Maintenance mode does not run the program, so
// it still works with a missing program, and the way back to normal is
// refused until the program is there.
func TestUnstartableUnitKeepsTheSiteServing(t *testing.T) {
	top, good, url, _ := servingShop(t)
	// A script whose #! line names an interpreter that is gone (a
	// virtualenv whose Python went with an upgrade).
	top.run("sh", "-c", `mkdir -p /srv/bin && printf '#!/usr/bin/no-such-python3\nprint(1)\n' > /srv/bin/gunicorn && chmod 755 /srv/bin/gunicorn`)
	// gunicorn's own script saved with Windows line endings: the kernel
	// looks for "/usr/bin/python3\r".
	top.run("sh", "-c", `sed 's/$/\r/' /usr/bin/gunicorn > /srv/bin/gunicorn-win && chmod 755 /srv/bin/gunicorn-win`)
	// The same script without its #! line (a shell run by hand runs it
	// anyway), and with a byte order mark before it (an editor's).
	top.run("sh", "-c", `tail -n +2 /usr/bin/gunicorn > /srv/bin/gunicorn-plain && chmod 755 /srv/bin/gunicorn-plain`)
	top.run("sh", "-c", `printf '\357\273\277' > /srv/bin/gunicorn-bom && cat /usr/bin/gunicorn >> /srv/bin/gunicorn-bom && chmod 755 /srv/bin/gunicorn-bom`)
	// gunicorn's script on a file system mounted noexec.
	top.run("sh", "-c", `mkdir -p /srv/noexec && mount -t tmpfs -o noexec,size=1m tmpfs /srv/noexec && cp /usr/bin/gunicorn /srv/noexec/gunicorn && chmod 755 /srv/noexec/gunicorn`)
	// What each refusal kept from happening, shown by systemctl restart.
	systemdSays := map[string]string{"writable path": "226/NAMESPACE", "windows line endings": "cannot run /srv/bin/gunicorn-win: no such file or directory",
		"no #! line": "cannot run /srv/bin/gunicorn-plain: exec format error", "byte order mark": "cannot run /srv/bin/gunicorn-bom: exec format error",
		"noexec": `cannot run /srv/noexec/gunicorn: exec: "/srv/noexec/gunicorn": permission denied`}
	// What the refusal says besides the problem, by case.
	refusalSays := map[string]string{"no #! line": "exec format error", "byte order mark": "exec format error", "noexec": "permission denied, noexec"}
	for _, c := range []struct{ name, file, problem string }{
		{"exec", strings.Replace(good, `"/usr/bin/gunicorn"`, `"/usr/bin/no-such-gunicorn"`, 1), "/usr/bin/no-such-gunicorn"},
		{"interpreter", strings.Replace(good, `"/usr/bin/gunicorn"`, `"/srv/bin/gunicorn"`, 1), "/usr/bin/no-such-python3"},
		{"credential", good + "[credentials]\ndb = \"/etc/no-such-secret\"\n", "/etc/no-such-secret"},
		{"user", strings.Replace(good, "server = \"gunicorn\"\n", "server = \"gunicorn\"\nuser = \"no-such-user\"\n", 1), `user "no-such-user"`},
		{"workdir", strings.Replace(good, `workdir = "/srv/wsgi"`, `workdir = "/srv/no-such-dir"`, 1), "/srv/no-such-dir"},
		{"writable path", good + "[hardening]\nwritable_paths = [\"/srv/wsgi\", \"/srv/no-such-uploads\"]\n", "/srv/no-such-uploads"},
		{"windows line endings", strings.Replace(good, `"/usr/bin/gunicorn"`, `"/srv/bin/gunicorn-win"`, 1), `ends with a carriage return (the file has Windows line endings): the kernel looks for the interpreter "/usr/bin/python3\r"`},
		{"no #! line", strings.Replace(good, `"/usr/bin/gunicorn"`, `"/srv/bin/gunicorn-plain"`, 1), "/srv/bin/gunicorn-plain has no #! line"},
		{"byte order mark", strings.Replace(good, `"/usr/bin/gunicorn"`, `"/srv/bin/gunicorn-bom"`, 1), "/srv/bin/gunicorn-bom starts with a byte order mark before its #! line"},
		{"noexec", strings.Replace(good, `"/usr/bin/gunicorn"`, `"/srv/noexec/gunicorn"`, 1), "/srv/noexec/gunicorn is on a file system mounted noexec on this host"},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := &host{t: t, sb: top.sb, ctx: top.ctx} // failures belong to the subtest
			if c.file == good {
				t.Fatalf("the test's edit for %s left the site file as it was", c.name)
			}
			h.writeSite("shop", c.file)
			h.run("systemctl", "daemon-reload")

			says, ok := refusalSays[c.name]
			if !ok {
				says = "does not exist"
			}
			refusedChangingNothing(h, []string{"restart", "shop"}, c.problem, says)
			if err := siteAnswers(url, "normal"); err != nil {
				t.Errorf("after the refused restart: %v", err)
			}
			// status says so before a crash restart finds out.
			if p := startProblems(h); len(p) != 1 || !strings.Contains(p[0], c.problem) {
				t.Errorf("status --json start_problems: %q, want one naming %s", p, c.problem)
			}
			if out := h.run("sitectl", "status", "shop"); !strings.Contains(out, "start: would fail: ") || !strings.Contains(out, c.problem) {
				t.Errorf("sitectl status does not say the start would fail:\n%s", out)
			}

			if says, ok := systemdSays[c.name]; ok {
				// What the refusal kept from happening: systemd cannot
				// start the unit (here: build its mount namespace, or
				// exec its program), and the site is down until the good
				// file is back (below).
				if _, _, code := h.result("systemctl", "restart", "site-shop.service"); code == 0 {
					t.Errorf("systemctl restart with the %s worked: the refusal was for nothing", c.name)
				}
				if logged := h.run("journalctl", "--no-pager", "-u", "site-shop.service"); !strings.Contains(logged, says) {
					t.Errorf("systemctl restart with the %s: the journal does not say %s: %v\n%s", c.name, says, h.show("site-shop.service", "Result", "ExecMainCode", "ExecMainStatus", "ActiveState", "SubState"), logged)
				}
			}
			back := []string{"restart", "shop"}
			if c.name == "exec" {
				if out, stderr, code := h.result("sitectl", "mode", "shop", "maintenance"); code != 0 {
					t.Errorf("sitectl mode shop maintenance with the program missing: exit %d, want 0 (the maintenance server is sitectl's)\nstdout: %s\nstderr: %s", code, out, stderr)
				}
				if err := siteAnswers(url, "maintenance"); err != nil {
					t.Errorf("after the switch to maintenance: %v", err)
				}
				refusedChangingNothing(h, []string{"mode", "shop", "normal"}, c.problem, "does not exist")
				if err := siteAnswers(url, "maintenance"); err != nil {
					t.Errorf("after the refused switch to normal: %v", err)
				}
				back = []string{"mode", "shop", "normal"}
			}

			// With the good file back the same command works.
			h.writeSite("shop", good)
			h.run("systemctl", "daemon-reload")
			if out, stderr, code := h.result("sitectl", back...); code != 0 {
				t.Fatalf("sitectl %s with the good file back: exit %d\nstdout: %s\nstderr: %s", strings.Join(back, " "), code, out, stderr)
			}
			if err := siteAnswers(url, "normal"); err != nil {
				t.Fatalf("with the good file back: %v", err)
			}
			if p := startProblems(h); len(p) != 0 {
				t.Errorf("start_problems with the good file back: %q", p)
			}
		})
	}
}

// The same with handoff = "overlap", found by a reload: the changed exec,
// not daemon-reloaded, needs a full restart. sitectl has systemd load the
// units afresh (as TestChangeNeedingARestartRestartsFully shows), finds
// that the program does not exist, and refuses before it stops the
// launcher.
func TestUnstartableOverlapReloadKeepsTheSiteServing(t *testing.T) {
	port := freePort(t)
	good := gunicornSite(port, "handoff = \"overlap\"\n[probe]\npath = \"/\"\n")
	h := newHost(t, map[string]string{"shop": good})
	h.run("systemctl", "start", "site-shop.socket")
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	getReply(t, url)

	h.writeSite("shop", strings.Replace(good, `"/usr/bin/gunicorn"`, `"/usr/bin/no-such-gunicorn"`, 1))
	refusedChangingNothing(h, []string{"reload", "shop"}, "/usr/bin/no-such-gunicorn", "does not exist")
	if err := siteAnswers(url, "normal"); err != nil {
		t.Errorf("after the refused reload: %v", err)
	}
	if p := h.show("site-shop.service", "NeedDaemonReload"); p["NeedDaemonReload"] != "no" {
		t.Errorf("sitectl reload did not have systemd load the changed units: %v", p)
	}
}

// refusedChangingNothing runs sitectl with args on site shop and checks
// that it refuses (exit 1), saying that nothing was done and each of
// says, and that it changed nothing: the same main PID, no new history
// entry.
func refusedChangingNothing(h *host, args []string, says ...string) {
	t := h.t
	t.Helper()
	pid := h.show("site-shop.service", "MainPID")["MainPID"]
	history := h.run("sitectl", "history", "shop", "--json")
	out, stderr, code := h.result("sitectl", args...)
	for _, w := range append([]string{"nothing was done"}, says...) {
		if code != 1 || !strings.Contains(stderr, w) {
			t.Errorf("sitectl %s: exit %d, want 1 and stderr saying %q\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, w, out, stderr)
		}
	}
	if now := h.show("site-shop.service", "MainPID")["MainPID"]; now != pid {
		t.Errorf("sitectl %s changed the service: main PID %s, then %s", strings.Join(args, " "), pid, now)
	}
	if now := h.run("sitectl", "history", "shop", "--json"); now != history {
		t.Errorf("sitectl %s changed the history:\nbefore: %s\nafter:  %s", strings.Join(args, " "), history, now)
	}
}

// startProblems is start_problems of sitectl status shop --json.
func startProblems(h *host) []string {
	var sites []struct {
		StartProblems []string `json:"start_problems"`
	}
	out := h.run("sitectl", "status", "shop", "--json")
	if err := json.Unmarshal([]byte(out), &sites); err != nil || len(sites) != 1 || sites[0].StartProblems == nil {
		h.t.Errorf("sitectl status shop --json: %v\n%s", err, out)
		return nil
	}
	return sites[0].StartProblems
}

// siteAnswers says why url does not answer in mode: the app's reply with
// that mode, or for maintenance the built-in page with 503. It does not
// fail the test itself, so that a case that found the site down still puts
// it back for the next one.
func siteAnswers(url, mode string) error {
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get(url)
	if err != nil {
		return fmt.Errorf("the site does not answer: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("reading the site's answer: %v", err)
	}
	if mode == "maintenance" {
		if resp.StatusCode != 503 || !strings.Contains(string(body), "maintenance") {
			return fmt.Errorf("the site answers %d %.80q, want the maintenance page with 503", resp.StatusCode, body)
		}
		return nil
	}
	var r appReply
	if resp.StatusCode != 200 || json.Unmarshal(body, &r) != nil || r.Mode != mode {
		return fmt.Errorf("the site answers %d %.80q, want the app in mode %s", resp.StatusCode, body, mode)
	}
	return nil
}

// A deploy that switches the release symlink to a release without the
// program and touches the trigger: touch-to-reload restarts a site
// without overlap, and the site went down. The reload unit now refuses,
// saying why in its journal, and the old process serves on; the next good
// release and touch reload as before.
func TestTouchOfABrokenReleaseKeepsTheSiteServing(t *testing.T) {
	port := freePort(t)
	h := newHost(t, nil)
	h.run("sh", "-c", "mkdir -p /srv/releases/a /srv/releases/b /srv/shop && ln -s /usr/bin/gunicorn /srv/releases/a/gunicorn && ln -sfn a /srv/releases/current")
	site := strings.Replace(gunicornSite(port, "reload_trigger = \"/srv/shop/restart.txt\"\n[probe]\npath = \"/\"\n"),
		`"/usr/bin/gunicorn"`, `"/srv/releases/current/gunicorn"`, 1)
	h.writeSite("shop", site)
	h.run("systemctl", "daemon-reload")
	h.run("systemctl", "start", "site-shop.socket")
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	getReply(t, url)
	pid := h.show("site-shop.service", "MainPID")["MainPID"]

	since := h.logMark()
	h.run("sh", "-c", "ln -sfn b /srv/releases/current && touch /srv/shop/restart.txt")
	h.waitFor("the reload unit to run and fail", 30*time.Second, func() bool {
		return h.show("site-shop-reload.service", "Result")["Result"] == "exit-code"
	})
	if now := h.show("site-shop.service", "MainPID")["MainPID"]; now != pid {
		t.Errorf("the touch restarted the site onto a release without its program: main PID %s, then %s", pid, now)
	}
	if err := siteAnswers(url, "normal"); err != nil {
		t.Errorf("after the touch of the broken release: %v", err)
	}
	logged := h.run("journalctl", "--no-pager", "-u", "site-shop-reload.service", "--since", since)
	if !strings.Contains(logged, "not reloaded after /srv/shop/restart.txt was touched") || !strings.Contains(logged, "/srv/releases/current/gunicorn does not exist") {
		t.Errorf("the reload unit's journal does not say why:\n%s", logged)
	}

	h.run("sh", "-c", "ln -s /usr/bin/gunicorn /srv/releases/b/gunicorn && touch /srv/shop/restart.txt")
	h.waitFor("a restart by the good release's touch", 30*time.Second, func() bool {
		now := h.show("site-shop.service", "MainPID")["MainPID"]
		return now != pid && now != "0"
	})
	if err := siteAnswers(url, "normal"); err != nil {
		t.Errorf("after the touch of the good release: %v", err)
	}
}

// A restart of a site whose file changed since systemd loaded its units
// runs the units systemd has: it says so, as systemctl does, instead of a
// plain ok that suggests the file's change was applied.
func TestRestartOfUnitsOlderThanTheFileSaysSo(t *testing.T) {
	h, good, url, _ := servingShop(t)
	h.writeSite("shop", strings.Replace(good, `drain_timeout = "10s"`, `drain_timeout = "7s"`, 1))
	out, stderr, code := h.result("sitectl", "restart", "shop")
	want := "sitectl: warning: shop: the site file changed since systemd loaded site-shop.service: the restart runs the command line, user, sockets and settings systemd has, with the mode's environment from the file as it is now"
	if code != 0 || !strings.Contains(stderr, want) {
		t.Errorf("sitectl restart with units older than the file: exit %d, want 0 and %q\nstdout: %s\nstderr: %s", code, want, out, stderr)
	}
	out, _, code = h.result("sitectl", "restart", "shop", "--json")
	var rep struct {
		Result   string   `json:"result"`
		Warnings []string `json:"warnings"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code != 0 || rep.Result != "ok" || len(rep.Warnings) != 1 {
		t.Errorf("--json: exit %d %+v %v\n%s", code, rep, err, out)
	}
	h.run("systemctl", "daemon-reload")
	if out, stderr, code := h.result("sitectl", "restart", "shop"); code != 0 || strings.Contains(stderr, "warning") {
		t.Errorf("after a daemon-reload: exit %d\nstdout: %s\nstderr: %s", code, out, stderr)
	}
	if err := siteAnswers(url, "normal"); err != nil {
		t.Error(err)
	}
}

// A touch of the reload trigger while a sitectl change holds the site's
// lock reloads once the change is done, not in its middle: the hardened
// reload unit (a read-only state directory, its own user namespace) takes
// the lock too, and says why it waits.
func TestTouchWaitsForAChangeUnderWay(t *testing.T) {
	port := freePort(t)
	h := newHost(t, map[string]string{"shop": goSite(port, "reload_trigger = \"/srv/shop/restart.txt\"\n")})
	h.run("mkdir", "-p", "/srv/shop")
	h.run("systemctl", "start", "site-shop.socket")
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	h.run("sitectl", "restart", "shop") // creates the site's state and its lock
	pid := h.show("site-shop.service", "MainPID")["MainPID"]

	since := h.logMark()
	// Held until released below: with a hold of fixed length, a host
	// slow to start the reload unit saw the lock freed before it looked.
	holdSiteLock(h, "shop", "sleep", "infinity")
	h.run("touch", "/srv/shop/restart.txt")
	h.waitFor("the reload unit to start", time.Minute, func() bool {
		return h.show("site-shop-reload.service", "ActiveState")["ActiveState"] == "activating"
	})
	time.Sleep(1500 * time.Millisecond) // what must not happen has had time to
	if now := h.show("site-shop.service", "MainPID")["MainPID"]; now != pid {
		t.Errorf("the touch restarted the site while the lock was held: main PID %s, then %s", pid, now)
	}
	releaseSiteLock(h)
	h.waitFor("the restart once the lock is free", 30*time.Second, func() bool {
		now := h.show("site-shop.service", "MainPID")["MainPID"]
		return now != pid && now != "0" && h.show("site-shop-reload.service", "ActiveState")["ActiveState"] == "inactive"
	})
	if r := h.show("site-shop-reload.service", "Result")["Result"]; r != "success" {
		t.Errorf("the reload unit: Result=%s", r)
	}
	if err := siteAnswers(url, "normal"); err != nil {
		t.Error(err)
	}
	logged := h.run("journalctl", "--no-pager", "-u", "site-shop-reload.service", "--since", since)
	if !strings.Contains(logged, "site shop: /srv/shop/restart.txt was touched while another sitectl changes the site: reloading once it is done") {
		t.Errorf("the reload unit's journal does not say why it waited:\n%s", logged)
	}
}

// A change that waited for another sitectl's change of the site reads the
// site file again once it holds the lock: a file broken meanwhile stops it
// with exit 2 and nothing done, as it would have before the wait, instead
// of a change run from the file as it was.
func TestChangeAfterAWaitReadsTheFileAgain(t *testing.T) {
	port := freePort(t)
	good := goSite(port, "[modes.read-only]\nenvironment = { READ_ONLY = \"1\" }\n")
	h := newHost(t, map[string]string{"shop": good})
	h.run("systemctl", "start", "site-shop.socket")
	h.run("sitectl", "restart", "shop") // creates the site's state and its lock
	pid := h.show("site-shop.service", "MainPID")["MainPID"]

	// The lock is freed only once the file broke: with a hold of fixed
	// length, a busy host could free it before, and the change went on
	// from the good file. (sitectl polls for the lock, so no waiter shows
	// in /proc/locks: the pause lets it get to its wait.)
	holdSiteLock(h, "shop", "sleep", "infinity")
	type result struct {
		stdout, stderr string
		code           int
	}
	done := make(chan result, 1)
	go func() {
		out, stderr, code := h.result("sitectl", "mode", "shop", "read-only")
		done <- result{out, stderr, code}
	}()
	time.Sleep(1 * time.Second)
	h.writeSite("shop", good+"no_such_key = 1\n")
	releaseSiteLock(h)
	var r result
	select {
	case r = <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("sitectl mode did not end")
	}
	if r.code != 2 || !strings.Contains(r.stderr, "site shop has mistakes") {
		t.Errorf("sitectl mode after the file broke during its wait: exit %d, want 2 and the file's mistakes\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	if now := h.show("site-shop.service", "MainPID")["MainPID"]; now != pid {
		t.Errorf("the change went on: main PID %s, then %s", pid, now)
	}
}

// A touch that waited for a change which took the site out of service
// (sitectl disable, stop) does not bring it back: touched reloads only a
// site whose socket still listens once it holds the lock.
func TestTouchAfterTheSiteStoppedDoesNotStartIt(t *testing.T) {
	port := freePort(t)
	h := newHost(t, map[string]string{"shop": goSite(port, "reload_trigger = \"/srv/shop/restart.txt\"\n")})
	h.run("mkdir", "-p", "/srv/shop")
	h.run("systemctl", "start", "site-shop.socket")
	h.run("sitectl", "restart", "shop") // creates the site's state and its lock

	since := h.logMark()
	// What sitectl stop does, with the lock held throughout.
	holdSiteLock(h, "shop", "sh", "-c", "sleep 2; systemctl stop site-shop.socket site-shop.service; sleep 1")
	h.run("touch", "/srv/shop/restart.txt")
	h.waitFor("the reload unit to start", 10*time.Second, func() bool {
		return h.show("site-shop-reload.service", "ActiveState")["ActiveState"] == "activating"
	})
	h.waitFor("the holder to end", 20*time.Second, func() bool {
		return h.show("holder.service", "ActiveState")["ActiveState"] != "active"
	})
	h.waitFor("the reload unit to end", 30*time.Second, func() bool {
		return h.show("site-shop-reload.service", "ActiveState")["ActiveState"] == "inactive"
	})
	for _, u := range []string{"site-shop.service", "site-shop.socket"} {
		if st := h.show(u, "ActiveState")["ActiveState"]; st != "inactive" {
			t.Errorf("the touch brought the stopped site back: %s is %s", u, st)
		}
	}
	logged := h.run("journalctl", "--no-pager", "-u", "site-shop-reload.service", "--since", since)
	if !strings.Contains(logged, "site shop: not reloaded after /srv/shop/restart.txt was touched: the site is out of service (site-shop.socket is inactive)") {
		t.Errorf("the reload unit's journal does not say why it did nothing:\n%s", logged)
	}
}

// holdSiteLock runs argv in the unit holder.service while it holds site's
// lock, as a sitectl change does, and returns once the lock is held. With
// "sleep", "infinity" it holds it until releaseSiteLock: a test that must
// see something happen while the lock is held then does not depend on
// how long the host took to get there.
func holdSiteLock(h *host, site string, argv ...string) {
	lock := "/var/lib/sitectl/sites/" + site + "/lock"
	h.run("systemd-run", append([]string{"--unit=holder", "--collect", "flock", lock}, argv...)...)
	h.waitFor("the holder to take the lock", 10*time.Second, func() bool {
		_, err := h.try("flock", "-n", lock, "true")
		return err != nil
	})
}

// releaseSiteLock ends holdSiteLock's holder, and with it its hold.
func releaseSiteLock(h *host) {
	h.run("systemctl", "stop", "holder.service")
}

// siteLocks counts the flocks held on site's lock file, from
// /proc/locks. It looks, and takes no lock: a probe that took it would
// delay the very process watched.
func siteLocks(h *host, site string) (held int) {
	lock := "/var/lib/sitectl/sites/" + site + "/lock"
	out, _ := h.try("sh", "-c", `ino=$(stat -c %i `+lock+` 2>/dev/null) || exit 0; grep -- " FLOCK .*:$ino " /proc/locks; true`)
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line != "" && !strings.Contains(line, "->") {
			held++
		}
	}
	return held
}

// An operator's drop-in that the start cannot get past: Type=oneshot
// (the restart's job waited for the launcher to exit, which it never does
// while it serves; sitectl gave up with exit 5 while the new process
// served, and systemd stopped the site at the start timeout), or an
// ExecStartPre= program, an EnvironmentFile= or a path of the sandbox
// that is missing (the start fails, and so does the rollback's). The
// restart is refused before it stops anything, naming the drop-in's
// setting and `systemctl revert`, and status says the start would fail.
// The same settings marked optional ("-") are no reason; with the drop-in
// reverted the restart works.
func TestDropInThatCannotStartKeepsTheSiteServing(t *testing.T) {
	top, _, url, _ := servingShop(t)
	const dropIn = "/etc/systemd/system/site-shop.service.d/local.conf"
	for _, c := range []struct{ name, conf, problem, optional string }{
		{"type", "Type=oneshot", "Type=oneshot, as " + dropIn + " set it", ""},
		{"exec start pre", "ExecStartPre=/usr/local/bin/no-such-hook", "the program /usr/local/bin/no-such-hook (ExecStartPre=) does not exist", "ExecStartPre=-/usr/local/bin/no-such-hook"},
		{"environment file", "EnvironmentFile=/etc/default/no-such-shop", "the environment file /etc/default/no-such-shop (EnvironmentFile=) does not exist", "EnvironmentFile=-/etc/default/no-such-shop"},
		{"read-only path", "ReadOnlyPaths=/srv/no-such-ro", "the path /srv/no-such-ro (ReadOnlyPaths=) does not exist", "ReadOnlyPaths=-/srv/no-such-ro"},
		{"bind source", "BindReadOnlyPaths=/srv/no-such-src:/srv/dst", "the path /srv/no-such-src (BindReadOnlyPaths=) does not exist", "BindReadOnlyPaths=-/srv/no-such-src:/srv/dst"},
		{"noexec path", "NoExecPaths=/usr/bin/gunicorn", "the program /usr/bin/gunicorn is on a path the unit mounts noexec (NoExecPaths=/usr/bin/gunicorn)", "NoExecPaths=/srv/wsgi"},
		{"supplementary group", "SupplementaryGroups=no-such-group", `SupplementaryGroups=: group "no-such-group" does not exist on this host`, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := &host{t: t, sb: top.sb, ctx: top.ctx}
			h.writeFile(dropIn, "[Service]\n"+c.conf+"\n", 0o644)
			h.run("systemctl", "daemon-reload")
			refusedChangingNothing(h, []string{"restart", "shop"}, c.problem, "systemctl revert site-shop.service")
			if err := siteAnswers(url, "normal"); err != nil {
				t.Errorf("after the refused restart: %v", err)
			}
			if p := startProblems(h); len(p) != 1 || !strings.Contains(p[0], c.problem) {
				t.Errorf("status --json start_problems: %q, want one saying %q", p, c.problem)
			}

			if c.optional != "" {
				h.writeFile(dropIn, "[Service]\n"+c.optional+"\n", 0o644)
				h.run("systemctl", "daemon-reload")
				if out, stderr, code := h.result("sitectl", "restart", "shop"); code != 0 {
					t.Errorf("sitectl restart shop with %s: exit %d\nstdout: %s\nstderr: %s", c.optional, code, out, stderr)
				}
			}
			h.run("systemctl", "revert", "site-shop.service")
			h.run("systemctl", "daemon-reload")
			if out, stderr, code := h.result("sitectl", "restart", "shop"); code != 0 {
				t.Fatalf("sitectl restart shop with the drop-in reverted: exit %d\nstdout: %s\nstderr: %s", code, out, stderr)
			}
			if err := siteAnswers(url, "normal"); err != nil {
				t.Fatalf("after the restart with the drop-in reverted: %v", err)
			}
		})
	}
}

// A maintenance mode whose page file is not there: the maintenance server
// does not start without it, so the switch restarted the site into a
// failing start and rolled back, the site down meanwhile. The switch is
// refused before it stops anything; with the page in place it works.
func TestMaintenancePageThatIsNotThereKeepsTheSiteServing(t *testing.T) {
	h, good, url, _ := servingShop(t)
	h.writeSite("shop", good+"[modes.down]\nserve = \"maintenance\"\npage = \"/srv/down/index.html\"\n")
	h.run("systemctl", "daemon-reload")
	refusedChangingNothing(h, []string{"mode", "shop", "down"}, "the maintenance page /srv/down/index.html", "does not exist")
	if err := siteAnswers(url, "normal"); err != nil {
		t.Errorf("after the refused switch: %v", err)
	}
	// Nor one the maintenance server refuses: over 1 MiB (a log file
	// named by mistake), which it had rolled back from.
	h.run("sh", "-c", "mkdir -p /srv/down && head -c 1048577 /dev/zero > /srv/down/index.html")
	refusedChangingNothing(h, []string{"mode", "shop", "down"}, "the maintenance page /srv/down/index.html", "is 1048577 bytes long, and a maintenance page may have at most 1048576 bytes")
	h.run("sh", "-c", "echo '<h1>down for maintenance</h1>' > /srv/down/index.html")
	if out, stderr, code := h.result("sitectl", "mode", "shop", "down"); code != 0 {
		t.Fatalf("sitectl mode shop down with the page in place: exit %d\nstdout: %s\nstderr: %s", code, out, stderr)
	}
	if err := siteAnswers(url, "maintenance"); err != nil {
		t.Errorf("in mode down: %v", err)
	}
}
