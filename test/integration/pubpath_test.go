//go:build integration

package integration

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// A deployer owns their site's release symlink and may point it
// anywhere. Root's state service, which answers them, resolved it as root
// (CAP_SYS_PTRACE, CAP_DAC_OVERRIDE): pointed at /proc/PID/cwd of another
// site's process, status showed that site's private release path; pointed
// at root-only files, the start check told whether they exist and their
// mode. Now it sees what any user could, and says nothing of the rest.
// And its own sandbox (ProtectHome=yes) no longer makes a credential
// under /root look missing, which refused a deployer's restart that would
// have worked.
func TestDeployerSeesNoMoreThanAnyUser(t *testing.T) {
	h := newHost(t, nil)
	stateService(h)
	h.run("groupadd", "webteam")
	h.run("useradd", "--create-home", "--groups", "sitectl-deploy,webteam", "dana")
	web, other, third := freePort(t), freePort(t), freePort(t)
	h.run("sh", "-c", "mkdir -p /srv/web/r1 /srv/web/probe && cp /usr/local/bin/webapp /srv/web/r1/webapp && ln -sfn /srv/web/r1 /srv/web/current && chown -R -h dana:dana /srv/web")
	h.writeSite("web", fmt.Sprintf(`exec = ["/srv/web/current/webapp"]
workdir = "/srv/web/current"
readiness = "notify"
drain_timeout = "10s"
deployers = ["group:webteam"]
[[listen]]
address = "127.0.0.1:%d"
`, web))
	// Another site's release lies where nobody may list it.
	h.run("sh", "-c", "mkdir -p /srv/hidden/releases/codename-falcon && chmod 0711 /srv/hidden /srv/hidden/releases && mkdir -p -m 0700 /etc/credstore/other && echo s > /etc/credstore/other/token && chmod 0600 /etc/credstore/other/token")
	h.writeSite("other", goSite(other, `workdir = "/srv/hidden/releases/codename-falcon"`))
	// A site granted to dana whose credential root keeps under /root.
	h.run("sh", "-c", "mkdir -p -m 0700 /root/credstore && echo t > /root/credstore/token && chmod 0600 /root/credstore/token")
	h.writeSite("third", goSite(third, `deployers = ["group:webteam"]
credentials = { token = "/root/credstore/token" }`))
	h.run("systemctl", "daemon-reload")
	h.run("systemctl", "start", "site-web.socket", "site-other.socket", "site-third.socket")
	for _, port := range []int{web, other, third} {
		getReply(t, fmt.Sprintf("http://127.0.0.1:%d/", port))
	}
	otherPID := h.show("site-other.service", "MainPID")["MainPID"]

	statusAs := func(user, name string) (release string, problems []string) {
		t.Helper()
		var out, stderr string
		var code int
		if user == "root" {
			out, stderr, code = h.result("sitectl", "status", name, "--json")
		} else {
			out, stderr, code = h.as(user, "sitectl", "status", name, "--json")
		}
		var sites []struct {
			Release       string   `json:"release"`
			StartProblems []string `json:"start_problems"`
		}
		if err := json.Unmarshal([]byte(out), &sites); err != nil || len(sites) != 1 {
			t.Fatalf("sitectl status %s --json as %s: exit %d %v\n%s%s", name, user, code, err, out, stderr)
		}
		return sites[0].Release, sites[0].StartProblems
	}

	// The workdir through another site's process.
	for _, target := range []string{"/proc/" + otherPID + "/cwd", "/proc/" + otherPID + "/root/srv/hidden/releases"} {
		h.as("dana", "ln", "-sfn", target, "/srv/web/current")
		if release, _ := statusAs("dana", "web"); strings.Contains(release, "codename") || strings.HasPrefix(release, "/proc/") {
			t.Errorf("with current -> %s, dana's status of web shows release %q", target, release)
		}
	}
	// The program at files only root may look at: nothing said to dana;
	// root's own status still says what root sees.
	for _, target := range []string{"/etc/credstore/other/token", "/etc/credstore/other/none", "/proc/" + otherPID + "/root/etc/hostname", "/var/lib/sitectl/sites/other/mode.env"} {
		h.as("dana", "sh", "-c", "ln -sfn "+target+" /srv/web/probe/webapp && ln -sfn /srv/web/probe /srv/web/current")
		if _, problems := statusAs("dana", "web"); len(problems) != 0 {
			t.Errorf("with the program -> %s, dana's status of web says %q", target, problems)
		}
	}
	if _, problems := statusAs("root", "web"); len(problems) != 1 || !strings.Contains(problems[0], "is not executable (mode 0600)") {
		t.Errorf("root's status of web with the program -> a 0600 file: %q", problems)
	}
	// What anyone can see is still said to dana.
	h.as("dana", "sh", "-c", "ln -sfn /srv/web/r1/none /srv/web/probe/webapp")
	if _, problems := statusAs("dana", "web"); len(problems) != 1 || !strings.Contains(problems[0], "/srv/web/current/webapp does not exist") {
		t.Errorf("dana's status of web with the program missing where anyone may look: %q", problems)
	}
	h.as("dana", "ln", "-sfn", "/srv/web/r1", "/srv/web/current")

	if _, problems := statusAs("dana", "third"); len(problems) != 0 {
		t.Errorf("dana's status of third, whose credential is under /root: %q", problems)
	}
	if out, stderr, code := h.as("dana", "sitectl", "restart", "third"); code != 0 {
		t.Errorf("dana's restart of third, whose credential is under /root: exit %d\n%s%s", code, out, stderr)
	}
}
