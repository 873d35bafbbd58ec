//go:build integration

package integration

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// A site file deleted while its site serves (an rm of the wrong file, a
// rename), and the daemon-reload after it: systemd runs the units on, and
// the site serves, or holds its port. list and status show it as gone,
// with what to do, until sitectl remove stops it.
func TestDeletedSiteFileWhoseUnitsServeIsShown(t *testing.T) {
	port := freePort(t)
	h := newHost(t, map[string]string{"karl": goSite(port, "")})
	h.run("systemctl", "start", "site-karl.socket")
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	getReply(t, url)
	h.run("rm", "/etc/sitectl/sites/karl.toml")
	h.run("systemctl", "daemon-reload")
	getReply(t, url) // it still serves

	out := h.run("sitectl", "list")
	if !strings.Contains(out, "karl") || !strings.Contains(out, "gone") {
		t.Errorf("sitectl list does not show the site whose units serve:\n%s", out)
	}
	var sites []struct {
		Site     string `json:"site"`
		State    string `json:"state"`
		SiteFile struct {
			State string `json:"state"`
		} `json:"site_file"`
		MainPID int `json:"main_pid"`
	}
	if err := json.Unmarshal([]byte(h.run("sitectl", "list", "--json")), &sites); err != nil || len(sites) != 1 || sites[0].SiteFile.State != "gone" || sites[0].State != "running" ||
		sites[0].MainPID == 0 {
		t.Errorf("sitectl list --json: %+v %v", sites, err)
	}
	// Its main process, and the mode it runs, are read as for any unit:
	// systemd knows them although the unit's file is gone.
	var st []struct {
		MainPID     int   `json:"main_pid"`
		ModeApplied *bool `json:"mode_applied"`
	}
	if out, _, _ := h.result("sitectl", "status", "karl", "--json"); json.Unmarshal([]byte(out), &st) != nil || len(st) != 1 || st[0].MainPID == 0 ||
		st[0].ModeApplied == nil || !*st[0].ModeApplied {
		t.Errorf("sitectl status karl --json: main_pid and mode_applied of the site that serves on: %s", out)
	}
	stdout, stderr, code := h.result("sitectl", "status", "karl")
	if code != 0 || !strings.Contains(stdout, "gone") || !strings.Contains(stdout, "sitectl remove karl") {
		t.Errorf("sitectl status karl: exit %d, want 0 (it serves) and the file gone with what to do\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	// A site that never was is still missing.
	if _, stderr, code := h.result("sitectl", "status", "nosuch"); code != 4 || !strings.Contains(stderr, "does not exist") {
		t.Errorf("sitectl status nosuch: exit %d, %s", code, stderr)
	}

	h.run("sitectl", "remove", "karl")
	if out := h.run("sitectl", "list"); strings.Contains(out, "karl") {
		t.Errorf("sitectl list after remove still shows the site:\n%s", out)
	}
	if _, _, code := h.result("sitectl", "status", "karl"); code != 4 {
		t.Errorf("sitectl status karl after remove: exit %d, want 4", code)
	}
}

// A site file renamed (karl.toml to carl.toml, the same listener) and the
// daemon-reload after it: karl's units serve on, and carl's socket cannot
// listen while karl's holds the port. sitectl remove karl stops karl and
// starts carl's socket, so that the port serves again at once, from carl;
// before, it refused every visitor until someone started carl's socket.
func TestRemoveOfARenamedSiteHandsItsListenerOver(t *testing.T) {
	port := freePort(t)
	h := newHost(t, map[string]string{"karl": goSite(port, "")})
	h.run("systemctl", "start", "site-karl.socket")
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	getReply(t, url)
	h.run("mv", "/etc/sitectl/sites/karl.toml", "/etc/sitectl/sites/carl.toml")
	h.run("systemctl", "daemon-reload")
	getReply(t, url) // karl serves on

	out, stderr, code := h.result("sitectl", "remove", "karl")
	if code != 0 || !strings.Contains(out, "carl: took over its listeners (started site-carl.socket)") {
		t.Fatalf("sitectl remove karl: exit %d\nstdout: %s\nstderr: %s", code, out, stderr)
	}
	if err := siteAnswers(url, "normal"); err != nil {
		t.Fatalf("after remove karl: %v", err)
	}
	if got := h.show("site-carl.service", "ActiveState")["ActiveState"]; got != "active" {
		t.Errorf("carl's service is %s, want active: the port answered from elsewhere", got)
	}
	if _, _, code := h.result("sitectl", "status", "carl"); code != 0 {
		t.Errorf("sitectl status carl: exit %d, want 0", code)
	}
	// Again: nothing to remove, nothing started.
	var rep struct {
		Changed     bool     `json:"changed"`
		TakenOverBy []string `json:"taken_over_by"`
	}
	if err := json.Unmarshal([]byte(h.run("sitectl", "remove", "karl", "--json")), &rep); err != nil || rep.Changed || len(rep.TakenOverBy) != 0 {
		t.Errorf("a second remove: %+v %v", rep, err)
	}
}

// A site whose service never started (socket-activated, never visited)
// has no copy of the file it ran. Renamed, and removed before a
// daemon-reload: the listener PID 1 holds open for the renamed file,
// whose own socket is not active, is the one it takes over.
func TestRemoveOfARenamedSiteThatNeverStartedHandsItsListenerOver(t *testing.T) {
	port := freePort(t)
	h := newHost(t, map[string]string{"karl": goSite(port, "")})
	h.run("systemctl", "start", "site-karl.socket")
	if _, err := h.try("test", "-e", "/var/lib/sitectl/sites/karl/last-good.toml"); err == nil {
		t.Fatal("karl has a last good copy before its service ever started")
	}
	h.run("mv", "/etc/sitectl/sites/karl.toml", "/etc/sitectl/sites/carl.toml")

	out, stderr, code := h.result("sitectl", "remove", "karl")
	if code != 0 || !strings.Contains(out, "carl: took over its listeners (started site-carl.socket)") {
		t.Fatalf("sitectl remove karl: exit %d\nstdout: %s\nstderr: %s", code, out, stderr)
	}
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	if err := siteAnswers(url, "normal"); err != nil {
		t.Fatalf("after remove karl: %v", err)
	}
	if got := h.show("site-carl.service", "ActiveState")["ActiveState"]; got != "active" {
		t.Errorf("carl's service is %s, want active: the port answered from elsewhere", got)
	}
}

// The same rename with the daemon-reload first, as the README says: systemd
// closes the socket of the unit whose file is gone (its service does not
// run to hold a copy), and starts none of the new name's, so the port
// refuses from the reload on. remove cannot tell which site karl became,
// and says which site in service does not listen and how to start it.
func TestRemoveOfARenamedSiteThatNeverStartedAfterAReloadSaysWhatToStart(t *testing.T) {
	port := freePort(t)
	h := newHost(t, map[string]string{"karl": goSite(port, "")})
	h.run("systemctl", "start", "site-karl.socket")
	h.run("mv", "/etc/sitectl/sites/karl.toml", "/etc/sitectl/sites/carl.toml")
	h.run("systemctl", "daemon-reload")

	out, stderr, code := h.result("sitectl", "remove", "karl")
	if code != 0 || !strings.Contains(out+stderr, "site carl is in service but does not listen") || !strings.Contains(out+stderr, "`sitectl enable carl`") {
		t.Fatalf("sitectl remove karl: exit %d, want 0 and a note that says to enable carl\nstdout: %s\nstderr: %s", code, out, stderr)
	}
	h.run("sitectl", "enable", "carl")
	if err := siteAnswers(fmt.Sprintf("http://127.0.0.1:%d/", port), "normal"); err != nil {
		t.Fatalf("after sitectl enable carl: %v", err)
	}
}

// The renamed file also declares a listener another program holds: the
// new socket could not start, and once the old one stopped, systemd would
// unload it (its file is gone). remove refuses before anything (exit 1):
// the old site serves on, its state is kept.
func TestRemoveOfARenamedSiteWhoseSocketCannotBindKeepsTheOld(t *testing.T) {
	port, taken := freePort(t), freePort(t)
	h := newHost(t, map[string]string{"karl": goSite(port, "")})
	h.run("systemctl", "start", "site-karl.socket")
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	getReply(t, url)
	h.run("systemd-run", "--unit", "holder", "python3", "-c",
		fmt.Sprintf("import socket, time\ns = socket.socket()\ns.bind(('127.0.0.1', %d))\ns.listen()\ntime.sleep(3600)", taken))
	carl := goSite(port, "") + fmt.Sprintf("[[listen]]\nname = \"admin\"\naddress = \"127.0.0.1:%d\"\n", taken)
	h.writeSite("carl", carl)
	h.run("rm", "/etc/sitectl/sites/karl.toml")
	h.run("systemctl", "daemon-reload")

	out, stderr, code := h.result("sitectl", "remove", "karl")
	if code != 1 || !strings.Contains(stderr, "site carl, whose file declares the listeners of site karl, could not take them over") || !strings.Contains(stderr, "nothing was done") {
		t.Fatalf("sitectl remove karl: exit %d, want 1 and an error that says carl could not take over and nothing was done\nstdout: %s\nstderr: %s", code, out, stderr)
	}
	if err := siteAnswers(url, "normal"); err != nil {
		t.Fatalf("after the refused remove: %v", err)
	}
	if got := h.show("site-karl.socket", "ActiveState")["ActiveState"]; got != "active" {
		t.Errorf("karl's socket is %s, want active", got)
	}
	if _, err := h.try("test", "-e", "/var/lib/sitectl/sites/karl/last-good.toml"); err != nil {
		t.Errorf("karl's state was forgotten: %v", err)
	}
	// Once the port is free, remove hands the listeners over, even with
	// carl's admin socket listening already (an operator started it; the
	// other one cannot, as karl holds its port): that port is carl's own.
	h.run("systemctl", "stop", "holder")
	h.run("systemctl", "start", "site-carl@admin.socket")
	if out, stderr, code := h.result("sitectl", "remove", "karl"); code != 0 || !strings.Contains(out, "carl: took over its listeners") {
		t.Fatalf("sitectl remove karl with the port free: exit %d\nstdout: %s\nstderr: %s", code, out, stderr)
	}
	if err := siteAnswers(url, "normal"); err != nil {
		t.Fatalf("after the handover: %v", err)
	}
}

// A site file deleted while its site was idle, and the daemon-reload
// after it: the socket unit stays active, loaded from no file, and systemd
// closes its socket. Visitors are refused; list and status said the site
// was idle and listening (exit 0). The same for a socket unit masked while
// it listened.
func TestDeletedIdleSiteIsStopped(t *testing.T) {
	port, port2 := freePort(t), freePort(t)
	h := newHost(t, map[string]string{"karl": goSite(port, ""), "lena": goSite(port2, "")})
	h.run("systemctl", "start", "site-karl.socket", "site-lena.socket")
	h.run("rm", "/etc/sitectl/sites/karl.toml")
	h.run("systemctl", "daemon-reload")
	h.run("systemctl", "mask", "--runtime", "site-lena.socket")
	if ls := h.run("ss", "-Hltn"); strings.Contains(ls, fmt.Sprintf(":%d ", port)) || strings.Contains(ls, fmt.Sprintf(":%d ", port2)) {
		t.Fatalf("systemd still listens on %d or %d:\n%s", port, port2, ls)
	}
	for _, name := range []string{"karl", "lena"} {
		st, code := h.statusOf(name)
		if code != 3 || st.State != "stopped" || st.Running || st.Socket != "stopped" {
			t.Errorf("sitectl status %s: exit %d, %+v; want 3, stopped", name, code, st)
		}
	}
	got, _ := h.everySite("list")
	for _, name := range []string{"karl", "lena"} {
		if s := got[name]; s.State != "stopped" || s.Running {
			t.Errorf("sitectl list: %s %+v, want stopped", name, s)
		}
	}
}
