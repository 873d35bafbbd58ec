//go:build integration

// Package integration tests sitectl against a real systemd: each test boots
// its own systemd 252 as PID 1 of fresh namespaces (package sandbox), installs
// the freshly built binaries and site files into it, and drives it the way an
// operator would. They need root. They are behind the "integration" build
// tag so that a plain `go test ./...` stays fast; the README's test command
// runs them, and they fail (never skip) when systemd cannot be booted.
package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sitectl/sitectl/test/sandbox"
)

// bin holds the binaries built once for all tests, on the host outside /tmp
// (the sandbox gets its own /tmp).
var bin string

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "integration tests boot a systemd in new namespaces and need root: run them as root (the README's test command does)")
		return 1
	}
	sandbox.HandleSignals()
	if err := sandbox.ReapStale(os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "reaping sandboxes left by an earlier run:", err)
	}
	dir, err := os.MkdirTemp("/var/tmp", "sitectl-it-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	bin = dir
	root, _ := filepath.Abs("../..")
	for _, pkg := range []string{"./cmd/sitectl", "./cmd/sitectl-generator", "./test/apps/webapp", "./examples/go-read-only", "./examples/worker-cleanup"} {
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, filepath.Base(pkg)), pkg)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "building %s: %v\n%s", pkg, err, out)
			return 1
		}
	}
	code := m.Run()
	sandbox.CloseAll()
	return code
}

// host is one booted sandbox with sitectl installed.
type host struct {
	t   *testing.T
	sb  *sandbox.Sandbox
	ctx context.Context
}

// newHost boots a sandbox, installs sitectl, the generator and the test apps,
// writes the given site files (name → TOML) and reloads systemd so the
// generator runs.
func newHost(t *testing.T, sites map[string]string) *host {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	t.Cleanup(cancel)
	h := &host{t: t, sb: sandbox.New(t, sandbox.Options{Name: shortName(t.Name())}), ctx: ctx}
	h.install(filepath.Join(bin, "sitectl"), "/usr/bin/sitectl", 0o755)
	h.install(filepath.Join(bin, "sitectl-generator"), "/usr/lib/systemd/system-generators/sitectl-generator", 0o755)
	h.install(filepath.Join(bin, "webapp"), "/usr/local/bin/webapp", 0o755)
	h.install(filepath.Join(bin, "go-read-only"), "/usr/local/bin/go-read-only", 0o755)
	h.install(filepath.Join(bin, "worker-cleanup"), "/usr/local/bin/worker-cleanup", 0o755)
	h.install("../../examples/worker-cleanup/release-stale-locks", "/usr/local/lib/worker-cleanup/release-stale-locks", 0o755)
	wsgi, err := os.ReadFile("../apps/wsgi/app.py")
	if err != nil {
		t.Fatal(err)
	}
	h.writeFile("/srv/wsgi/app.py", string(wsgi), 0o644)
	example, err := os.ReadFile("../../examples/wsgi-read-only/app.py")
	if err != nil {
		t.Fatal(err)
	}
	h.writeFile("/srv/wsgi-read-only/app.py", string(example), 0o644)
	for name, content := range sites {
		h.writeSite(name, content)
	}
	h.run("systemctl", "daemon-reload")
	return h
}

func shortName(s string) string {
	s = strings.ToLower(s)
	s = strings.NewReplacer("/", "-", "_", "-").Replace(s)
	if len(s) > 20 {
		s = s[len(s)-20:]
	}
	return strings.Trim(s, "-")
}

func (h *host) install(hostPath, path string, mode os.FileMode) {
	h.t.Helper()
	if err := h.sb.CopyFile(h.ctx, hostPath, path, mode); err != nil {
		h.t.Fatalf("installing %s: %v", path, err)
	}
}

func (h *host) writeFile(path, content string, mode os.FileMode) {
	h.t.Helper()
	if err := h.sb.WriteFile(h.ctx, path, []byte(content), mode); err != nil {
		h.t.Fatalf("writing %s: %v", path, err)
	}
}

func (h *host) writeSite(name, content string) {
	h.t.Helper()
	h.writeFile("/etc/sitectl/sites/"+name+".toml", content, 0o644)
}

// run runs a command inside and fails the test if it fails.
func (h *host) run(name string, args ...string) string {
	h.t.Helper()
	out, err := h.sb.Run(h.ctx, name, args...)
	if err != nil {
		h.t.Fatalf("%s %s: %v", name, strings.Join(args, " "), err)
	}
	return out
}

// try runs a command inside and returns its output and error.
func (h *host) try(name string, args ...string) (string, error) {
	return h.sb.Run(h.ctx, name, args...)
}

// show returns unit properties as systemctl show gives them.
func (h *host) show(unit string, props ...string) map[string]string {
	h.t.Helper()
	out := h.run("systemctl", "show", unit, "--property="+strings.Join(props, ","))
	m := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			m[k] = v
		}
	}
	return m
}

// logMark returns journalctl's --since for "from now on", to the
// microsecond. Every sandbox's journald imports the kernel log, which the
// sandboxes share with the host and with each other: a generator that ran at
// the boot of another sandbox, or of an earlier run of the same test (the
// benchmark's boot with 10,000 sites among them), left its lines there, with
// the same paths, and journald stamps them with the time it imported them, at
// its own boot. A mark in whole seconds counted what was imported in the
// same second before it; a test that reads a log reads it from its own mark
// on.
func (h *host) logMark() string {
	h.t.Helper()
	return strings.TrimSpace(h.run("date", "+@%s.%6N"))
}

// generatorLog is what sitectl-generator logged since the mark, by way of
// the journal itself or the kernel log, with more journalctl arguments
// (a priority, a transport).
func (h *host) generatorLog(since string, args ...string) string {
	h.t.Helper()
	return h.run("journalctl", append([]string{"--no-pager", "-o", "short", "--since", since, "-t", "sitectl-generator"}, args...)...)
}

// waitFor polls cond until it holds or the timeout passes.
func (h *host) waitFor(what string, timeout time.Duration, cond func() bool) {
	h.t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			h.t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// freePort finds a TCP port that nothing listens on, below the host's
// ephemeral range (see sandbox.FreePort); the sandboxes share the host's
// network namespace.
func freePort(t *testing.T) int {
	t.Helper()
	p, err := sandbox.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// appReply is what both test apps answer on /.
type appReply struct {
	Site       string `json:"site"`
	Mode       string `json:"mode"`
	PID        int    `json:"pid"`
	PPID       int    `json:"ppid"`
	Generation string `json:"generation"`
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func getReply(t *testing.T, url string) appReply {
	t.Helper()
	status, body := get(t, url)
	var r appReply
	if status != 200 || json.Unmarshal([]byte(body), &r) != nil {
		t.Fatalf("GET %s: status %d, body %q", url, status, body)
	}
	return r
}

// goSite is a site file for the Go test app on a TCP port.
func goSite(port int, extra string) string {
	return fmt.Sprintf(`exec = ["/usr/local/bin/webapp"]
readiness = "notify"
drain_timeout = "10s"
%s
[[listen]]
address = "127.0.0.1:%d"
`, extra, port)
}

// uwsgiSite is a site file for Debian's uWSGI serving the WSGI test app over
// HTTP on the inherited socket.
func uwsgiSite(port int, extra string) string {
	return fmt.Sprintf(`exec = ["/usr/bin/uwsgi", "--master", "--plugin", "python3", "--protocol", "http", "--wsgi-file", "/srv/wsgi/app.py", "--processes", "4"]
server = "uwsgi"
drain_timeout = "10s"
%s
[[listen]]
address = "127.0.0.1:%d"
`, extra, port)
}

// gunicornSite is a site file for Debian's gunicorn serving the WSGI test app.
func gunicornSite(port int, extra string) string {
	return fmt.Sprintf(`exec = ["/usr/bin/gunicorn", "--workers", "2", "app:application"]
workdir = "/srv/wsgi"
server = "gunicorn"
drain_timeout = "10s"
%s
[[listen]]
address = "127.0.0.1:%d"
`, extra, port)
}
