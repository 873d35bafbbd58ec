package main

import (
	"math"
	"slices"
	"sort"
	"strconv"
	"time"

	"github.com/sitectl/sitectl/internal/loadgen"
)

// Window is one switch window: from the moment the switch command was issued
// until it returned plus the tail (Options.Tail). Start and End are on the
// same clock as the load generator's request start times.
type Window struct {
	Start time.Time
	End   time.Time
}

// Overlaps reports whether a request that started at start and took lat
// overlaps the window: [start, start+lat] and [w.Start, w.End] share an
// instant. A request that began before the switch was issued but was still
// waiting when it was counts as inside; so does one that began in the tail.
func (w Window) Overlaps(start time.Time, lat time.Duration) bool {
	end := start.Add(lat)
	return !end.Before(w.Start) && !start.After(w.End)
}

// InAnyWindow reports whether the request overlaps any of the windows.
func InAnyWindow(ws []Window, start time.Time, lat time.Duration) bool {
	for _, w := range ws {
		if w.Overlaps(start, lat) {
			return true
		}
	}
	return false
}

// Sample is one request as the benchmark keeps it: when it started, how
// long it took, how it ended and which process answered. Unlike a
// loadgen.Result (a time.Time's location, the error's text, the headers
// and the body) it holds no pointer. A full run keeps over a million
// requests, in the process that also generates the load. Kept as
// loadgen.Results, they grew a heap of pointers all run long: each
// garbage collection had to mark it, and between collections the
// generator allocated from ever more fresh pages, while its requests were
// being timed. A generator at 300 requests/s beside 400,000 of them
// (306 MB) measured p99 1.6–3.5 ms, beside none or beside their Samples
// (12 MB) 0.9–1.5 ms. Memory without pointers is never marked.
type Sample struct {
	Start   int64 // Unix nanoseconds
	Latency time.Duration
	Outcome uint8 // an index into outcomes
	// PID and PPID of the process that answered, as its answer says
	// (the test apps' JSON); 0 when it does not say.
	PID, PPID int32
}

// outcomes are the load generator's outcomes by Sample.Outcome.
var outcomes = []loadgen.Outcome{loadgen.OK, loadgen.Refused, loadgen.Reset, loadgen.Timeout, loadgen.BadStatus, loadgen.OtherError}

// Samples keeps rs as Samples, in the same order.
func Samples(rs []loadgen.Result) []Sample {
	out := make([]Sample, len(rs))
	for i, r := range rs {
		o := slices.Index(outcomes, r.Outcome)
		if o < 0 {
			o = slices.Index(outcomes, loadgen.OtherError)
		}
		s := Sample{Start: r.Start.UnixNano(), Latency: r.Latency, Outcome: uint8(o)}
		if r.Outcome == loadgen.OK {
			s.PID, s.PPID = answerer(r.Body)
		}
		out[i] = s
	}
	return out
}

// OK says whether the request succeeded.
func (s Sample) OK() bool { return outcomes[s.Outcome] == loadgen.OK }

// StartTime is when the request started.
func (s Sample) StartTime() time.Time { return time.Unix(0, s.Start) }

// Split sorts samples into those that overlap a switch window and the rest
// (steady state). The order of each part is the order of rs.
func Split(rs []Sample, ws []Window) (steady, window []Sample) {
	for _, r := range rs {
		if InAnyWindow(ws, r.StartTime(), r.Latency) {
			window = append(window, r)
		} else {
			steady = append(steady, r)
		}
	}
	return steady, window
}

// Percentile returns the nearest-rank p-th percentile (0 < p <= 100) of
// sorted: the smallest value such that at least p% of the values are less
// than or equal to it. Zero for no values.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(n)))
	rank = max(1, min(n, rank))
	return sorted[rank-1]
}

// Median returns the median of ds (the mean of the two middle values for an
// even count); ds need not be sorted. Zero for no values.
func Median(ds []time.Duration) time.Duration {
	n := len(ds)
	if n == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// Stats summarises requests: how many, how many failed and why, and the
// latency percentiles of the successful ones. Failed requests are left out
// of the latencies: a refused connection fails in microseconds and would
// make a broken handoff look fast.
type Stats struct {
	Requests int            `json:"requests"`
	OK       int            `json:"ok"`
	Failed   int            `json:"failed"`
	ByKind   map[string]int `json:"failed_by_kind"`
	P50      Millis         `json:"p50_ms"`
	P99      Millis         `json:"p99_ms"`
	Max      Millis         `json:"max_ms"`
}

// Summarize computes Stats of rs.
func Summarize(rs []Sample) Stats {
	s := Stats{Requests: len(rs), ByKind: map[string]int{}}
	lat := make([]time.Duration, 0, len(rs))
	for _, r := range rs {
		if r.OK() {
			s.OK++
			lat = append(lat, r.Latency)
			continue
		}
		s.Failed++
		s.ByKind[string(outcomes[r.Outcome])]++
	}
	slices.Sort(lat)
	s.P50 = Millis(Percentile(lat, 50))
	s.P99 = Millis(Percentile(lat, 99))
	if len(lat) > 0 {
		s.Max = Millis(lat[len(lat)-1])
	}
	return s
}

// Ratio returns a/b, or 0 when b is 0 (no steady samples to compare with).
func Ratio(a, b Millis) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// Millis is a duration that marshals to JSON as milliseconds (a float).
type Millis time.Duration

// MS returns the duration in milliseconds.
func (m Millis) MS() float64 { return float64(m) / float64(time.Millisecond) }

func (m Millis) MarshalJSON() ([]byte, error) {
	return []byte(formatFloat(m.MS(), 3)), nil
}

func (m *Millis) UnmarshalJSON(b []byte) error {
	v, err := strconv.ParseFloat(string(b), 64)
	if err != nil {
		return err
	}
	*m = Millis(v * float64(time.Millisecond))
	return nil
}

func formatFloat(v float64, decimals int) string {
	p := math.Pow(10, float64(decimals))
	v = math.Round(v*p) / p
	return strconv.FormatFloat(v, 'f', -1, 64)
}

// DurationStats are the median, minimum and maximum of repeated timings
// (of the successful runs).
type DurationStats struct {
	Runs   int      `json:"runs"`
	Median Millis   `json:"median_ms"`
	Min    Millis   `json:"min_ms"`
	Max    Millis   `json:"max_ms"`
	All    []Millis `json:"all_ms,omitempty"`
	// Failed runs are left out of the times above.
	Failed int    `json:"failed,omitempty"`
	Error  string `json:"error,omitempty"` // the first failure
}

// SummarizeDurations computes DurationStats; keepAll keeps every value.
func SummarizeDurations(ds []time.Duration, keepAll bool) DurationStats {
	st := DurationStats{Runs: len(ds)}
	if len(ds) == 0 {
		return st
	}
	st.Median = Millis(Median(ds))
	st.Min = Millis(slices.Min(ds))
	st.Max = Millis(slices.Max(ds))
	if keepAll {
		for _, d := range ds {
			st.All = append(st.All, Millis(d))
		}
	}
	return st
}

// sortedKinds returns the failure kinds of m in a stable order.
func sortedKinds(m map[string]int) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
