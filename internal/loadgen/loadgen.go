// Package loadgen sends HTTP requests at a fixed rate (open loop: a slow
// answer does not slow the sender down) and records every request's start,
// latency and outcome. Keep-alive is off, so every request is a new TCP
// connection and Go's transport never silently retries one: a refused or
// reset connection is counted, not hidden.
package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Outcome classifies one request.
type Outcome string

// The outcomes. Everything but OK is a failed request.
const (
	OK         Outcome = "ok"
	Refused    Outcome = "refused"    // connection refused: nothing listened
	Reset      Outcome = "reset"      // connection reset or closed before a response
	Timeout    Outcome = "timeout"    // no response within the timeout
	BadStatus  Outcome = "bad_status" // a response, but not the expected one
	OtherError Outcome = "other"
)

// Result is one request.
type Result struct {
	Start   time.Time
	Latency time.Duration
	Outcome Outcome
	Status  int
	Detail  string // the error or the unexpected response, for failures
	Header  http.Header
	Body    string // the first 4 KiB
}

// Config of a run. Zero values mean defaults.
type Config struct {
	URL      string
	Rate     int           // requests per second; default 100
	Duration time.Duration // default 10s; the run also ends when ctx does
	Timeout  time.Duration // per request; default 10s
	// Check decides whether a response is a success; default: status 200.
	Check func(status int, header http.Header, body string) error
	// Dial overrides how connections are made (for unix sockets).
	Dial func(ctx context.Context) (net.Conn, error)
	// OnResult, if set, sees every result as soon as its request is done,
	// from the request's goroutine (so it must be safe for concurrent
	// use): a benchmark watches who answers while the load runs.
	OnResult func(Result)
}

// Run sends requests until the duration is over or ctx is done, waits for
// the ones in flight, and returns all results in start order.
func Run(ctx context.Context, cfg Config) []Result {
	if cfg.Rate <= 0 {
		cfg.Rate = 100
	}
	if cfg.Duration <= 0 {
		cfg.Duration = 10 * time.Second
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.Check == nil {
		cfg.Check = func(status int, _ http.Header, _ string) error {
			if status != http.StatusOK {
				return fmt.Errorf("status %d", status)
			}
			return nil
		}
	}
	tr := &http.Transport{DisableKeepAlives: true, MaxIdleConns: -1}
	if cfg.Dial != nil {
		tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) { return cfg.Dial(ctx) }
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: cfg.Timeout}

	var (
		mu      sync.Mutex
		results []Result
		wg      sync.WaitGroup
	)
	interval := time.Second / time.Duration(cfg.Rate)
	end := time.Now().Add(cfg.Duration)
	next := time.Now()
	for time.Now().Before(end) && ctx.Err() == nil {
		start := time.Now()
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := one(client, cfg, start)
			if cfg.OnResult != nil {
				cfg.OnResult(r)
			}
			mu.Lock()
			results = append(results, r)
			mu.Unlock()
		}()
		next = next.Add(interval)
		select {
		case <-ctx.Done():
		case <-time.After(time.Until(next)):
		}
	}
	wg.Wait()
	slices.SortFunc(results, func(a, b Result) int { return a.Start.Compare(b.Start) })
	return results
}

func one(client *http.Client, cfg Config, start time.Time) Result {
	r := Result{Start: start}
	resp, err := client.Get(cfg.URL)
	if err != nil {
		r.Latency = time.Since(start)
		r.Outcome, r.Detail = classify(err), err.Error()
		return r
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	r.Latency = time.Since(start)
	r.Status, r.Header, r.Body = resp.StatusCode, resp.Header, string(body)
	if err != nil {
		r.Outcome, r.Detail = classify(err), err.Error()
		return r
	}
	if err := cfg.Check(resp.StatusCode, resp.Header, r.Body); err != nil {
		r.Outcome, r.Detail = BadStatus, err.Error()
		return r
	}
	r.Outcome = OK
	return r
}

// classify names what went wrong with a request.
func classify(err error) Outcome {
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return Refused
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.EPIPE), strings.Contains(err.Error(), "server closed"):
		return Reset
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return Timeout
	}
	return OtherError
}

// Summary counts results by outcome and gives latency percentiles of the
// successful ones.
type Summary struct {
	Requests int
	Failed   int
	ByKind   map[Outcome]int
	P50, P99 time.Duration
	Max      time.Duration
}

// Summarize the results.
func Summarize(rs []Result) Summary {
	s := Summary{Requests: len(rs), ByKind: map[Outcome]int{}}
	var lat []time.Duration
	for _, r := range rs {
		s.ByKind[r.Outcome]++
		if r.Outcome != OK {
			s.Failed++
		}
		lat = append(lat, r.Latency)
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	if len(lat) > 0 {
		s.P50 = lat[len(lat)*50/100]
		s.P99 = lat[min(len(lat)-1, len(lat)*99/100)]
		s.Max = lat[len(lat)-1]
	}
	return s
}

func (s Summary) String() string {
	var kinds []string
	for k, n := range s.ByKind {
		if k != OK {
			kinds = append(kinds, fmt.Sprintf("%s=%d", k, n))
		}
	}
	slices.Sort(kinds)
	return fmt.Sprintf("%d requests, %d failed %v, p50 %s, p99 %s, max %s",
		s.Requests, s.Failed, kinds, s.P50.Round(time.Microsecond), s.P99.Round(time.Microsecond), s.Max.Round(time.Microsecond))
}

// Failures returns the failed results, for a test to print.
func Failures(rs []Result) []Result {
	return slices.DeleteFunc(slices.Clone(rs), func(r Result) bool { return r.Outcome == OK })
}
