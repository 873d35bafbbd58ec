package probe

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/sitectl/sitectl/internal/maintenance"
	"github.com/sitectl/sitectl/internal/site"
)

func TestForMaintenanceProbesTheHealthPath(t *testing.T) {
	own := &site.Probe{Path: "/up", Status: 204, Timeout: 7 * time.Second}
	app := site.Mode{Name: "normal", Serve: site.ServeApp}
	maint := site.Mode{Name: "maintenance", Serve: site.ServeMaintenance}
	for _, c := range []struct {
		probe *site.Probe
		mode  site.Mode
		want  *site.Probe
	}{
		{nil, app, nil},
		{own, app, own},
		{nil, maint, &site.Probe{Path: maintenance.HealthPath, Status: 200, Timeout: site.DefaultProbeTimeout}},
		{own, maint, &site.Probe{Path: maintenance.HealthPath, Status: 200, Timeout: 7 * time.Second}},
	} {
		got := For(&site.Site{Probe: c.probe}, c.mode)
		if (got == nil) != (c.want == nil) || got != nil && *got != *c.want {
			t.Errorf("probe %+v, mode %s: got %+v, want %+v", c.probe, c.mode.Name, got, c.want)
		}
	}
}

// A server that answers 503 twice, then 200: Get retries until it has the
// status it wants, over TCP and over a unix socket.
func TestGetRetriesUntilTheStatus(t *testing.T) {
	var calls atomic.Int32
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/up" || r.Header.Get("User-Agent") != "sitectl-probe" {
			w.WriteHeader(400)
			return
		}
		if calls.Add(1) <= 2 {
			w.WriteHeader(503)
			return
		}
		w.WriteHeader(204)
	})
	p := &site.Probe{Path: "/up", Status: 204, Timeout: time.Second}

	srv := httptest.NewServer(h)
	defer srv.Close()
	if err := Get(context.Background(), Target{Host: strings.TrimPrefix(srv.URL, "http://")}, p); err != nil || calls.Load() != 3 {
		t.Fatalf("TCP: %v after %d calls", err, calls.Load())
	}

	calls.Store(0)
	sock := filepath.Join(t.TempDir(), "probe.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	go http.Serve(ln, h)
	defer ln.Close()
	dial := func(ctx context.Context) (net.Conn, error) { return (&net.Dialer{}).DialContext(ctx, "unix", sock) }
	if err := Get(context.Background(), Target{Host: "generation", Dial: dial}, p); err != nil || calls.Load() != 3 {
		t.Fatalf("unix: %v after %d calls", err, calls.Load())
	}
}

// When the context ends, Get says what the last attempt got.
func TestGetReportsTheLastFailure(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(503) }))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	err := Get(ctx, Target{Host: strings.TrimPrefix(srv.URL, "http://")}, &site.Probe{Path: "/", Status: 200, Timeout: time.Second})
	if err == nil || !strings.Contains(err.Error(), "status 503, want 200") {
		t.Fatalf("err = %v", err)
	}
	srv.Close()
	ctx, cancel = context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	err = Get(ctx, Target{Host: strings.TrimPrefix(srv.URL, "http://")}, &site.Probe{Path: "/", Status: 200, Timeout: time.Second})
	if err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("closed server: err = %v", err)
	}
}

// A server that accepts and never answers, as gunicorn's master does
// while its workers load the app, is reported as such, not as the
// context's end.
func TestGetReportsNoAnswer(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-release }))
	defer srv.Close()
	defer close(release)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	err := Get(ctx, Target{Host: strings.TrimPrefix(srv.URL, "http://")}, &site.Probe{Path: "/", Status: 200, Timeout: time.Minute})
	if err == nil || !strings.HasPrefix(err.Error(), "GET "+srv.URL+"/: no answer in ") || strings.Contains(err.Error(), "deadline") {
		t.Fatalf("err = %v", err)
	}
}

func TestListenerTarget(t *testing.T) {
	for addr, want := range map[string]string{"127.0.0.1:80": "127.0.0.1:80", "0.0.0.0:81": "127.0.0.1:81", "[::]:82": "[::1]:82", "[::1]:83": "[::1]:83"} {
		if got := ListenerTarget(site.Listener{Kind: site.TCP, Address: addr}); got.Host != want || got.Dial != nil {
			t.Errorf("%s: target %+v, want host %s", addr, got, want)
		}
	}
	if got := ListenerTarget(site.Listener{Kind: site.Unix, Path: "/run/x.sock"}); got.Host != "localhost" || got.Dial == nil {
		t.Errorf("unix listener: target %+v", got)
	}
}

// A redirect within the site is followed; one to another server is the
// answer: the probe never connects anywhere but the site.
func TestGetFollowsRedirectsOnlyWithinTheSite(t *testing.T) {
	var elsewhere atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { elsewhere.Add(1) }))
	defer other.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/in":
			http.Redirect(w, r, "/up", http.StatusFound)
		case "/out":
			http.Redirect(w, r, other.URL+"/up", http.StatusFound)
		case "/up":
			w.WriteHeader(200)
		}
	}))
	defer srv.Close()
	target := Target{Host: strings.TrimPrefix(srv.URL, "http://")}
	if err := Get(context.Background(), target, &site.Probe{Path: "/in", Status: 200, Timeout: time.Second}); err != nil {
		t.Fatalf("a redirect within the site: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	err := Get(ctx, target, &site.Probe{Path: "/out", Status: 200, Timeout: time.Second})
	if err == nil || !strings.Contains(err.Error(), "status 302, want 200 (a redirect to") || elsewhere.Load() != 0 {
		t.Fatalf("a redirect off the site: %v; the other server was asked %d times", err, elsewhere.Load())
	}
	if err := Get(context.Background(), target, &site.Probe{Path: "/out", Status: 302, Timeout: time.Second}); err != nil {
		t.Fatalf("a probe that expects the redirect: %v", err)
	}
}

// The probe reaches a unix listener where it is, never through a symlink
// put in its place (the site's user may write the socket's directory): a
// link to another socket, one only root may reach say, is refused and
// nothing is sent there.
func TestUnixListenerIsNotFollowedThroughASymlink(t *testing.T) {
	dir := t.TempDir()
	serve := func(path string, hits *atomic.Int32) {
		ln, err := net.Listen("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) })}
		go srv.Serve(ln)
		t.Cleanup(func() { srv.Close() })
	}
	var siteHits, rootHits atomic.Int32
	sock := filepath.Join(dir, "http.sock")
	serve(sock, &siteHits)
	p := &site.Probe{Path: "/", Status: 200, Timeout: time.Second}
	if err := Get(context.Background(), ListenerTarget(site.Listener{Kind: site.Unix, Path: sock}), p); err != nil || siteHits.Load() == 0 {
		t.Fatalf("the site's own socket: %v (%d requests)", err, siteHits.Load())
	}

	rootOnly := filepath.Join(dir, "root.sock")
	serve(rootOnly, &rootHits)
	link := filepath.Join(dir, "link.sock")
	if err := os.Symlink(rootOnly, link); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	err := Get(ctx, ListenerTarget(site.Listener{Kind: site.Unix, Path: link}), p)
	if err == nil || !strings.Contains(err.Error(), link+" is a symlink") || rootHits.Load() != 0 {
		t.Errorf("through a symlink: %v (%d requests reached the other socket)", err, rootHits.Load())
	}
	plain := filepath.Join(dir, "plain")
	if err := os.WriteFile(plain, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel = context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := Get(ctx, ListenerTarget(site.Listener{Kind: site.Unix, Path: plain}), p); err == nil || !strings.Contains(err.Error(), "is not a socket") {
		t.Errorf("a regular file: %v", err)
	}
}

// What an app answers in place of HTTP is quoted in net/http's error, up
// to its limit on an answer's headers (10 MiB): what Get says of it is
// cut, so that root's sitectl, its history, the journal and a deployer's
// answer get a line, not megabytes of the app's bytes.
func TestGetFailureIsBounded(t *testing.T) {
	for name, answer := range map[string]string{
		"status line": strings.Repeat("\x1b[2J", 1<<18) + "\r\n\r\n",
		"header":      "HTTP/1.1 200 OK\r\nContent-Length: x" + strings.Repeat("é", 1<<19) + "\r\n\r\n",
	} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go func() {
					defer c.Close()
					c.Read(make([]byte, 4096))
					io.WriteString(c, answer)
				}()
			}
		}()
		ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
		err = Get(ctx, Target{Host: ln.Addr().String()}, &site.Probe{Path: "/", Status: 200, Timeout: time.Second})
		cancel()
		ln.Close()
		if err == nil || len(err.Error()) > 1<<10 || !strings.Contains(err.Error(), "transport connection broken") || !utf8.ValidString(err.Error()) {
			t.Errorf("%s: an error of %d bytes: %.300s", name, len(errLen(err)), errLen(err))
		}
	}
}

func errLen(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// The probe reads at most maxHeaders of an answer's headers, as it reads
// at most 64 KiB of its body: an app that sends headers without end is
// cut off there, not at net/http's 10 MiB.
func TestGetReadsBoundedHeaders(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	sent := make(chan int, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.Read(make([]byte, 4096))
				n, _ := io.WriteString(c, "HTTP/1.1 200 OK\r\n")
				line := "X-Pad: " + strings.Repeat("a", 1000) + "\r\n"
				for n < 20<<20 {
					m, err := io.WriteString(c, line)
					if n += m; err != nil {
						break
					}
				}
				sent <- n
			}()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	err = Get(ctx, Target{Host: ln.Addr().String()}, &site.Probe{Path: "/", Status: 200, Timeout: 2 * time.Second})
	if err == nil || !strings.Contains(err.Error(), strconv.Itoa(maxHeaders)) {
		t.Errorf("headers without end: %v; want the probe to stop at %d bytes", err, maxHeaders)
	}
}
