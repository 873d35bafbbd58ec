package loadgen

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

func TestCountsEveryOutcome(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
	}))
	res := Run(context.Background(), Config{URL: srv.URL, Rate: 200, Duration: 500 * time.Millisecond})
	srv.Close()
	s := Summarize(res)
	if s.Requests < 80 || s.Failed != 0 {
		t.Fatalf("against a healthy server: %v", s)
	}

	// Nothing listens on a closed port: every request is refused, and
	// counted as such (no hidden retry).
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close()
	s = Summarize(Run(context.Background(), Config{URL: "http://" + addr + "/", Rate: 100, Duration: 200 * time.Millisecond}))
	if s.Requests == 0 || s.ByKind[Refused] != s.Requests {
		t.Fatalf("against a closed port: %v", s)
	}

	// A server that resets the connection.
	l, _ = net.Listen("tcp", "127.0.0.1:0")
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.(*net.TCPConn).SetLinger(0)
			c.Close()
		}
	}()
	s = Summarize(Run(context.Background(), Config{URL: "http://" + l.Addr().String() + "/", Rate: 100, Duration: 200 * time.Millisecond}))
	l.Close()
	if s.Requests == 0 || s.ByKind[Reset] != s.Requests {
		t.Fatalf("against a resetting server: %v", s)
	}
}

func TestBadStatusAndTimeout(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			time.Sleep(300 * time.Millisecond)
		}
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	s := Summarize(Run(context.Background(), Config{URL: srv.URL, Rate: 50, Duration: 100 * time.Millisecond}))
	if s.ByKind[BadStatus] != s.Requests || s.Requests == 0 {
		t.Fatalf("503s must count as bad status: %v", s)
	}
	s = Summarize(Run(context.Background(), Config{URL: srv.URL + "/slow", Rate: 50, Duration: 100 * time.Millisecond, Timeout: 50 * time.Millisecond}))
	if s.ByKind[Timeout] != s.Requests || s.Requests == 0 {
		t.Fatalf("slow answers must count as timeouts: %v", s)
	}
}

func TestOnResultSeesEveryResult(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Pid", "42")
	}))
	defer srv.Close()
	var mu sync.Mutex
	seen := 0
	res := Run(context.Background(), Config{URL: srv.URL, Rate: 200, Duration: 300 * time.Millisecond, OnResult: func(r Result) {
		mu.Lock()
		defer mu.Unlock()
		if r.Outcome == OK && r.Header.Get("X-Pid") == "42" {
			seen++
		}
	}})
	if len(res) == 0 || seen != len(res) {
		t.Fatalf("OnResult saw %d answers of %d requests", seen, len(res))
	}
}
