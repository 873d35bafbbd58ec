//go:build integration

package warm

import (
	"net/http"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// parkFor is how long a whole generation stays stopped: minutes, as a
// warm standby would be (WARM_PARK_STOP overrides it, e.g. "20s").
func parkFor(t *testing.T) time.Duration {
	if v := os.Getenv("WARM_PARK_STOP"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	return 2 * time.Minute
}

// "Park when idle": stop a whole idle generation (master and workers,
// SIGSTOP) for minutes, then continue it, in either order, and see what
// its supervisor makes of the long silence: gunicorn's arbiter judges
// workers by a heartbeat file they touch (timeout 30s), uWSGI's master
// kills a worker whose request outlives harakiri (off by default). A
// keep-alive connection held by the parked generation sends a request
// during the stop: it waits for the whole stop. Every outcome is logged for
// docs/warm-rollback.md; the test checks that each server answers again.
func TestParkWholeGeneration(t *testing.T) {
	cases := []struct {
		name          string
		start         func(t *testing.T) *pyServer
		workersFirst  bool
		keepAlive     bool
		inFlight      string // a request under way when the generation is stopped
		timeoutMarker string // what the server logs when it judges a worker dead
	}{
		{"gunicorn-master-first", func(t *testing.T) *pyServer { return gunicorn(t) }, false, false, "", "WORKER TIMEOUT"},
		{"gunicorn-workers-first", func(t *testing.T) *pyServer { return gunicorn(t) }, true, false, "", "WORKER TIMEOUT"},
		{"gunicorn-gthread-keepalive", func(t *testing.T) *pyServer { return gunicorn(t, "--threads", "4") }, true, true, "", "WORKER TIMEOUT"},
		{"uwsgi-master-first", func(t *testing.T) *pyServer { return uwsgi(t, "--http-socket") }, false, false, "", "HARAKIRI"},
		{"uwsgi-harakiri30-idle", func(t *testing.T) *pyServer { return uwsgi(t, "--http-socket", "--harakiri", "30") }, false, false, "", "HARAKIRI"},
		{"uwsgi-harakiri30-inflight", func(t *testing.T) *pyServer { return uwsgi(t, "--http-socket", "--harakiri", "30") }, false, false, "/sleep?s=2", "HARAKIRI"},
		{"uwsgi-http11-keepalive", func(t *testing.T) *pyServer { return uwsgi(t, "--http11-socket") }, false, true, "", "HARAKIRI"},
	}
	stop := parkFor(t)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			s := c.start(t)
			url := s.url + "/"
			var k *kaClient
			if c.keepAlive {
				k = newKAClientTimeout(stop + time.Minute)
				k.get(t, url)
			}
			inFlight := make(chan string, 1)
			if c.inFlight != "" {
				go func() {
					resp, err := (&http.Client{Timeout: stop + time.Minute}).Get(s.url + c.inFlight)
					if err != nil {
						inFlight <- err.Error()
						return
					}
					resp.Body.Close()
					inFlight <- resp.Status
				}()
				time.Sleep(500 * time.Millisecond)
			}
			before := s.workers()
			procs := append([]int{s.master()}, before...)
			for _, p := range procs {
				syscall.Kill(p, syscall.SIGSTOP)
			}
			stopped := time.Now()
			held := make(chan time.Duration, 1)
			if k != nil {
				go func() {
					time.Sleep(time.Second)
					start := time.Now()
					k.get(t, url)
					held <- time.Since(start)
				}()
			}
			time.Sleep(stop)
			order := procs
			if c.workersFirst {
				order = append(slices.Clone(before), s.master())
			}
			for i, p := range order {
				syscall.Kill(p, syscall.SIGCONT)
				if c.workersFirst && i == len(before)-1 {
					time.Sleep(100 * time.Millisecond) // let each worker run its loop once
				}
			}
			continued := time.Now()
			start := time.Now()
			mustGet(t, url)
			firstAnswer := time.Since(start)
			time.Sleep(5 * time.Second)
			after := s.workers()
			replaced := 0
			for _, p := range before {
				if !slices.Contains(after, p) {
					replaced++
				}
			}
			out := s.out.String()
			t.Logf("%s: stopped %s; after continuing, first new request answered in %s; %d of %d workers replaced (%v -> %v); %q logged %d times",
				c.name, continued.Sub(stopped).Round(time.Second), firstAnswer.Round(time.Millisecond), replaced, len(before), before, after, c.timeoutMarker, strings.Count(out, c.timeoutMarker))
			for _, l := range strings.Split(out, "\n") {
				if strings.Contains(l, c.timeoutMarker) || strings.Contains(l, "signal") {
					t.Logf("%s: server log: %s", c.name, l)
				}
			}
			if k != nil {
				t.Logf("%s: a request on the kept-alive connection, sent 1s into the stop, took %s", c.name, (<-held).Round(time.Millisecond))
			}
			if c.inFlight != "" {
				t.Logf("%s: the request in flight at the stop (%s) ended with: %s", c.name, c.inFlight, <-inFlight)
			}
		})
	}
}
