//go:build integration

package integration

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// unixSite is a Go-app site whose listener is a unix socket at path, owned
// by user, who may write dir (where the socket is, as with gunicorn's
// socket in the app's run directory).
func unixSite(path, user, dir, extra string) string {
	return fmt.Sprintf(`exec = ["/usr/local/bin/webapp"]
readiness = "notify"
drain_timeout = "3s"
user = %q
%s
[hardening]
writable_paths = [%q]
[[listen]]
path = %q
owner = %q
mode = "0666"
`, user, extra, dir, path, user)
}

// rootOnlyServer runs, as root, a unix server on /run/rootonly/sock
// (directory 0700) that records what it gets in /run/rootonly/got and
// answers 200.
const rootOnlyServer = `
import socket, os
os.makedirs("/run/rootonly", mode=0o700, exist_ok=True)
p = "/run/rootonly/sock"
try: os.unlink(p)
except FileNotFoundError: pass
s = socket.socket(socket.AF_UNIX); s.bind(p); os.chmod(p, 0o600); s.listen(16)
while True:
    c, _ = s.accept()
    c.settimeout(2)
    try: data = c.recv(4096)
    except Exception: data = b"(nothing)"
    with open("/run/rootonly/got", "ab") as f: f.write(data + b"\n----\n")
    try: c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
    except Exception: pass
    c.close()
`

// The site's user is given the directory of its unix socket after the
// site started. It swaps the socket for a symlink to a socket only root
// may reach: root's probe (sitectl's, and the state service's for a
// deployer) used to connect there, send its request as root and take the
// answer for the site's, so that a restart whose app answers 404 said ok.
// Now the restart is refused before anything is done, since the site
// file's listener is in a directory a user may replace (and the probe
// would not follow the link either: probe's
// TestUnixListenerIsNotFollowedThroughASymlink): nothing reaches the
// other socket, and the restart is not ok.
func TestProbeDoesNotFollowASymlinkAtTheSocket(t *testing.T) {
	h := newHost(t, nil)
	stateService(h)
	h.run("useradd", "--system", "sa")
	h.run("useradd", "--create-home", "--groups", "sitectl-deploy", "dana")
	h.run("mkdir", "-p", "/srv/a/run")
	h.run("systemd-run", "--unit=rootonly", "python3", "-c", rootOnlyServer)
	h.waitFor("the root-only server", time.Minute, func() bool { _, err := h.try("test", "-S", "/run/rootonly/sock"); return err == nil })
	// The app answers 404 on the probe's path: the restart must fail.
	h.writeSite("a", unixSite("/srv/a/run/http.sock", "sa", "/srv/a/run", "deployers = [\"user:dana\"]\n[probe]\npath = \"/probe-from-root\"\ntimeout = \"2s\""))
	h.run("systemctl", "daemon-reload")
	h.run("systemctl", "start", "site-a.socket")
	if out, stderr, code := h.result("sitectl", "restart", "a"); code == 0 || !strings.Contains(stderr, "status 404") {
		t.Fatalf("the premise: a restart whose app answers 404 exits %d\n%s%s", code, out, stderr)
	}

	// The operator then gives the site's user the socket's directory (a
	// site file saying so is refused, TestListenerInAUserDirectoryIsRefused),
	// and the user swaps the socket for a link to root's.
	h.run("chown", "sa:sa", "/srv/a/run")
	h.run("setpriv", "--reuid=sa", "--regid=sa", "--clear-groups", "--", "sh", "-c",
		"mv /srv/a/run/http.sock /srv/a/run/real.sock && ln -s /run/rootonly/sock /srv/a/run/http.sock")
	for _, who := range []string{"root", "dana"} {
		var out, stderr string
		var code int
		if who == "root" {
			out, stderr, code = h.result("sitectl", "restart", "a")
		} else {
			out, stderr, code = h.as("dana", "sitectl", "restart", "a")
		}
		if code == 0 {
			t.Errorf("%s's restart through the symlink: exit 0\n%s%s", who, out, stderr)
		}
		// A deployer is told that root can see why (the state service
		// shows no site file's content).
		want := map[string]string{"root": "directory /srv/a/run is owned by uid", "dana": "the site file cannot be used; root can see why with sitectl check"}[who]
		if !strings.Contains(stderr, want) {
			t.Errorf("%s's restart does not say who may replace the socket's directory: exit %d\n%s%s", who, code, out, stderr)
		}
	}
	if got, _ := h.try("cat", "/run/rootonly/got"); strings.Contains(got, "GET") {
		t.Errorf("root's probe reached the root-only socket:\n%s", got)
	}
}

// A unix listener in a directory its site's user may change: the user
// could swap the directory for a link to another site's socket directory,
// and systemd, as root, would bind over that site's socket when this one
// starts, and (with RemoveOnStop=, which sitectl no longer writes) remove
// it when this one stops. A site file that
// says so is refused (check, the generator: no units), and so is a change
// of a site whose directory was given to its user after it started:
// nothing is stopped, and the other site keeps its socket.
func TestListenerInAUserDirectoryIsRefused(t *testing.T) {
	h := newHost(t, nil)
	for _, u := range []string{"sa", "sb", "sc"} {
		h.run("useradd", "--system", u)
	}
	h.run("mkdir", "-p", "/srv/a/run", "/srv/c/run")
	h.run("chown", "sa:sa", "/srv/a/run")
	h.writeSite("a", unixSite("/srv/a/run/s/http.sock", "sa", "/srv/a/run", ""))
	h.writeSite("b", unixSite("/run/b/http.sock", "sb", "/tmp", ""))
	h.writeSite("c", unixSite("/srv/c/run/s/http.sock", "sc", "/srv/c/run", ""))
	h.run("systemctl", "daemon-reload")

	// Refused from the file: a has no units, and check says why.
	if got := h.show("site-a.socket", "LoadState")["LoadState"]; got != "not-found" {
		t.Errorf("site a's socket unit was generated (LoadState %s)", got)
	}
	out, stderr, code := h.result("sitectl", "check", "/etc/sitectl/sites/a.toml")
	if code == 0 || !strings.Contains(out+stderr, "/etc/sitectl/sites/a.toml:9:8: listener /srv/a/run/s/http.sock: directory /srv/a/run is owned by uid") {
		t.Errorf("check of a: exit %d\n%s%s", code, out, stderr)
	}

	h.run("systemctl", "start", "site-b.socket", "site-c.socket")
	h.run("curl", "-sS", "-m", "10", "--unix-socket", "/run/b/http.sock", "http://b/")
	h.run("sitectl", "restart", "c") // c has run: it has a last good copy
	before := h.show("site-c.service", "MainPID")["MainPID"]

	// The operator gives c's user the directory; the user swaps the
	// socket's directory for a link to b's.
	h.run("chown", "sc:sc", "/srv/c/run")
	h.run("setpriv", "--reuid=sc", "--regid=sc", "--clear-groups", "--", "sh", "-c",
		"mv /srv/c/run/s /srv/c/run/s.old && ln -s /run/b /srv/c/run/s")
	for _, verb := range []string{"restart", "reload"} {
		out, stderr, code := h.result("sitectl", verb, "c")
		if code == 0 || !strings.Contains(stderr, "directory /srv/c/run is owned by uid") {
			t.Errorf("sitectl %s c: exit %d\n%s%s", verb, code, out, stderr)
		}
	}
	if after := h.show("site-c.service", "MainPID")["MainPID"]; after != before {
		t.Errorf("c's service was restarted: main PID %s, then %s", before, after)
	}
	// The operator takes c out of service: disable goes on with its
	// last good copy (the file has mistakes now), and stops c's units by
	// name, which binds nothing; systemd removes no socket file through
	// the link. Its daemon-reload then gives c no units: its last good
	// copy's listener now resolves to b's socket.
	if out, stderr, code := h.result("sitectl", "disable", "c"); code != 0 || !strings.Contains(stderr, "the last good copy") {
		t.Errorf("sitectl disable c: exit %d\n%s%s", code, out, stderr)
	}
	h.run("systemctl", "daemon-reload")
	if st := h.show("site-c.socket", "LoadState")["LoadState"]; st != "not-found" {
		t.Errorf("c's socket unit after a daemon-reload: %s", st)
	}
	if _, err := h.try("test", "-S", "/run/b/http.sock"); err != nil {
		t.Errorf("b's socket file is gone")
	}
	if out, err := h.try("curl", "-sS", "-m", "10", "--unix-socket", "/run/b/http.sock", "http://b/"); err != nil || !strings.Contains(out, `"b"`) {
		t.Errorf("b does not answer on its socket: %v %s", err, out)
	}
}
