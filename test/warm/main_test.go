//go:build integration

// Package warm holds the prototypes behind docs/warm-rollback.md (issue
// 15): "steer, don't freeze" on a booted systemd 252 (steer_test.go), and
// "park when idle" with Debian's gunicorn and uWSGI (park_test.go). They
// check the facts the design rests on and log the numbers the note quotes;
// run them one at a time, as the note says.
package warm

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sitectl/sitectl/internal/site"
	"github.com/sitectl/sitectl/internal/units"
	"github.com/sitectl/sitectl/test/sandbox"
)

var bin string

func TestMain(m *testing.M) {
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "the warm prototypes boot systemd and run servers as other users: run them as root")
		os.Exit(1)
	}
	sandbox.HandleSignals()
	dir, err := os.MkdirTemp("/var/tmp", "sitectl-warm-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin = dir
	root, _ := filepath.Abs("../..")
	cmd := exec.Command("go", "build", "-o", filepath.Join(dir, "steerproto"), "./test/warm/steerproto")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building steerproto: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	sandbox.CloseAll()
	os.RemoveAll(dir)
	os.Exit(code)
}

// hardening is the [Service] part of the unit sitectl writes for an
// overlap site, without what starts sitectl itself: the sandbox
// (seccomp filter, address families, no capabilities, DynamicUser) the
// launcher and its generations run in.
func hardening(t *testing.T) string {
	t.Helper()
	s, err := site.ParseNamed("proto.toml", "proto", []byte("exec = [\"/bin/true\"]\nhandoff = \"overlap\"\nreadiness = \"notify\"\n[[listen]]\naddress = \"127.0.0.1:8080\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	skip := []string{"ExecStartPre=", "ExecStart=", "ExecReload=", "ExecStopPost=", "Sockets=", "EnvironmentFile=", "Environment=", "WorkingDirectory=", "Type=", "NotifyAccess="}
	for _, u := range units.Render(s, units.Options{}) {
		if !strings.HasSuffix(u.Name, ".service") || strings.Contains(u.Name, "reload") {
			continue
		}
		_, svc, _ := strings.Cut(u.Content, "[Service]\n")
		svc, _, _ = strings.Cut(svc, "\n[")
		var keep []string
		for _, l := range strings.Split(svc, "\n") {
			if l != "" && !hasAnyPrefix(l, skip) {
				keep = append(keep, l)
			}
		}
		return strings.Join(keep, "\n")
	}
	t.Fatal("no service unit rendered")
	return ""
}

func hasAnyPrefix(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

type box struct {
	t   *testing.T
	sb  *sandbox.Sandbox
	ctx context.Context
}

func newBox(t *testing.T) *box {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	t.Cleanup(cancel)
	name := strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name()))
	if len(name) > 20 {
		name = name[len(name)-20:]
	}
	b := &box{t: t, sb: sandbox.New(t, sandbox.Options{Name: name}), ctx: ctx}
	if err := b.sb.CopyFile(ctx, filepath.Join(bin, "steerproto"), "/usr/local/bin/steerproto", 0o755); err != nil {
		t.Fatal(err)
	}
	return b
}

func (b *box) write(path, content string) {
	b.t.Helper()
	if err := b.sb.WriteFile(b.ctx, path, []byte(content), 0o644); err != nil {
		b.t.Fatal(err)
	}
}

func (b *box) run(name string, args ...string) string {
	b.t.Helper()
	out, err := b.sb.Run(b.ctx, name, args...)
	if err != nil {
		b.t.Fatalf("%s %s: %v", name, strings.Join(args, " "), err)
	}
	return out
}

func freePort(t *testing.T) int {
	t.Helper()
	p, err := sandbox.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

var client = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

// get returns the status and body of GET url, failing the test on error.
func get(t *testing.T, url string) (int, string, http.Header) {
	t.Helper()
	resp, err := client.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, string(body), resp.Header
}

func mustGet(t *testing.T, url string) string {
	t.Helper()
	status, body, _ := get(t, url)
	if status != 200 {
		t.Fatalf("GET %s: status %d: %s", url, status, body)
	}
	return body
}

// waitGet polls url until it answers 200.
func waitGet(t *testing.T, url string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not answer: %v", url, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
