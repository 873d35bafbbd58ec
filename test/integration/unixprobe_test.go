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

// The site's user may write the directory of its unix socket. It swaps
// the socket for a symlink to a socket only root may reach: root's probe
// (sitectl's, and the state service's for a deployer) used to connect
// there, send its request as root and take the answer for the site's, so
// that a restart whose app answers 404 said ok. The probe does not
// follow the link: nothing reaches the other socket, and the restart is
// not ok.
func TestProbeDoesNotFollowASymlinkAtTheSocket(t *testing.T) {
	h := newHost(t, nil)
	stateService(h)
	h.run("useradd", "--system", "sa")
	h.run("useradd", "--create-home", "--groups", "sitectl-deploy", "dana")
	h.run("mkdir", "-p", "/srv/a/run")
	h.run("chown", "sa:sa", "/srv/a/run")
	h.run("systemd-run", "--unit=rootonly", "python3", "-c", rootOnlyServer)
	h.waitFor("the root-only server", time.Minute, func() bool { _, err := h.try("test", "-S", "/run/rootonly/sock"); return err == nil })
	// The app answers 404 on the probe's path: the restart must fail.
	h.writeSite("a", unixSite("/srv/a/run/http.sock", "sa", "/srv/a/run", "deployers = [\"user:dana\"]\n[probe]\npath = \"/probe-from-root\"\ntimeout = \"2s\""))
	h.run("systemctl", "daemon-reload")
	h.run("systemctl", "start", "site-a.socket")
	if out, stderr, code := h.result("sitectl", "restart", "a"); code == 0 || !strings.Contains(stderr, "status 404") {
		t.Fatalf("the premise: a restart whose app answers 404 exits %d\n%s%s", code, out, stderr)
	}

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
		if !strings.Contains(stderr, "/srv/a/run/http.sock is a symlink") {
			t.Errorf("%s's restart does not say the socket is a symlink: exit %d\n%s%s", who, code, out, stderr)
		}
	}
	if got, _ := h.try("cat", "/run/rootonly/got"); strings.Contains(got, "GET") {
		t.Errorf("root's probe reached the root-only socket:\n%s", got)
	}
}
