//go:build integration

package warm

import (
	"io"
	"net/http"
	"net/http/httptrace"
	"syscall"
	"testing"
	"time"
)

// kaClient is a keep-alive client with one connection, as a reverse
// proxy's upstream pool would hold.
type kaClient struct {
	c *http.Client
}

func newKAClient() *kaClient { return newKAClientTimeout(10 * time.Second) }

func newKAClientTimeout(d time.Duration) *kaClient {
	return &kaClient{&http.Client{Timeout: d, Transport: &http.Transport{MaxIdleConnsPerHost: 1, MaxConnsPerHost: 1}}}
}

// get sends one request and tells whether it went over a connection used
// before, which process answered, and the response's Connection header.
func (k *kaClient) get(t *testing.T, url string) (reused bool, pid int, conn string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
		GotConn: func(i httptrace.GotConnInfo) { reused = i.Reused },
	}))
	resp, err := k.c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	r, err := parseReply(string(body))
	if err != nil {
		t.Fatalf("GET %s: %q", url, body)
	}
	return reused, r.PID, resp.Header.Get("Connection")
}

// What gunicorn 20.1 and uWSGI 2.0.21 do with keep-alive, as Debian ships
// them and with their keep-alive modes: whether a second request reuses
// the connection, how long an idle one survives, and whether a connection
// used every second stays with one worker. Logged for
// docs/warm-rollback.md; the facts the design relies on are checked.
func TestKeepAliveDefaults(t *testing.T) {
	cases := []struct {
		name      string
		start     func(t *testing.T) *pyServer
		keepAlive bool // whether the design relies on it keeping connections
	}{
		{"gunicorn-sync-default", func(t *testing.T) *pyServer { return gunicorn(t) }, false},
		{"gunicorn-gthread", func(t *testing.T) *pyServer { return gunicorn(t, "--threads", "4") }, true},
		{"gunicorn-gthread-keepalive0", func(t *testing.T) *pyServer { return gunicorn(t, "--threads", "4", "--keep-alive", "0") }, false},
		{"uwsgi-http-socket", func(t *testing.T) *pyServer { return uwsgi(t, "--http-socket") }, false},
		// What sitectl's uWSGI sites run: the uwsgi socket with HTTP on it.
		{"uwsgi-protocol-http", func(t *testing.T) *pyServer { return uwsgi(t, "--socket", "--protocol", "http") }, false},
		{"uwsgi-http11-socket", func(t *testing.T) *pyServer { return uwsgi(t, "--http11-socket") }, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			s := c.start(t)
			url := s.url + "/"
			k := newKAClient()
			k.get(t, url)
			reused, _, _ := k.get(t, url)
			t.Logf("%s: second request reused the connection: %v", c.name, reused)
			if reused != c.keepAlive {
				t.Fatalf("keep-alive: got %v, want %v", reused, c.keepAlive)
			}
			if !reused {
				return
			}
			for _, idle := range []time.Duration{time.Second, 3 * time.Second, 10 * time.Second} {
				k.get(t, url)
				time.Sleep(idle)
				again, _, _ := k.get(t, url)
				t.Logf("%s: idle %s: connection still used: %v", c.name, idle, again)
			}
			k.get(t, url)
			pids := map[int]int{}
			same := 0
			const n = 20
			for range n {
				time.Sleep(time.Second)
				r, pid, _ := k.get(t, url)
				if r {
					same++
				}
				pids[pid]++
			}
			t.Logf("%s: a request every second for %ds: %d of %d on the same connection; answered by %v", c.name, n, same, n, pids)
		})
	}
}

// gunicorn's SIGHUP replaces its workers gracefully: a keep-alive
// connection busy every second moves off the old worker. This is the way
// to make a warm gunicorn generation with keep-alive workers let go of its
// connections without stopping.
func TestGunicornHUPClosesKeepAlive(t *testing.T) {
	s := gunicorn(t, "--threads", "4")
	url := s.url + "/"
	k := newKAClient()
	_, first, _ := k.get(t, url)
	before := s.workers()
	if err := syscall.Kill(s.master(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	hup := time.Now()
	var moved time.Duration
	for i := 0; i < 30 && moved == 0; i++ {
		time.Sleep(200 * time.Millisecond)
		reused, pid, _ := k.get(t, url)
		if !reused && pid != first {
			moved = time.Since(hup)
		}
	}
	t.Logf("workers %v, after SIGHUP %v; the busy keep-alive connection left the old worker after %s", before, s.workers(), moved)
	if moved == 0 {
		t.Fatalf("after SIGHUP the connection stayed with worker %d", first)
	}
}
