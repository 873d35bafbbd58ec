package status

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sitectl/sitectl/internal/cleanup"
)

// concurrency counts the calls under way at once, and the most there were.
type concurrency struct {
	now, peak atomic.Int64
}

func (c *concurrency) enter() {
	n := c.now.Add(1)
	for p := c.peak.Load(); n > p && !c.peak.CompareAndSwap(p, n); p = c.peak.Load() {
	}
}

func (c *concurrency) leave() { c.now.Add(-1) }

// journal is a Sources.Journal that takes d, as a journalctl would.
func (c *concurrency) journal(d time.Duration) func(context.Context, string) (*Failure, *cleanup.Record) {
	return func(context.Context, string) (*Failure, *cleanup.Record) {
		c.enter()
		defer c.leave()
		time.Sleep(d)
		return nil, nil
	}
}

func siteNames(n int) []string {
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("s-%05d", i)
	}
	return names
}

// gatherAtOnce runs requests statuses of names at once, each with its own
// fake systemd (the fake is not safe for concurrent use).
func gatherAtOnce(t *testing.T, requests int, src Sources, names []string) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make([]error, requests)
	for r := range requests {
		wg.Go(func() {
			s := src
			s.Systemd = &fakeSystemd{units: src.Systemd.(*fakeSystemd).units}
			res, err := Gather(context.Background(), s, Request{Names: names})
			if err == nil && len(res.Sites) != len(names) {
				err = fmt.Errorf("%d sites of %d", len(res.Sites), len(names))
			}
			errs[r] = err
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}

// Status of many sites by name (a deployer's plain sitectl status names
// every site granted them) reads their journals a few at a time: it
// started a journalctl for every site at once.
func TestStatusOfManyNamedSitesBoundsItsJournalReads(t *testing.T) {
	d, sd := benchSites(t, 200)
	var c concurrency
	src := Sources{Dirs: d, Systemd: sd, Journal: c.journal(5 * time.Millisecond)}
	gatherAtOnce(t, 1, src, siteNames(200))
	t.Logf("200 sites by name: %d journal reads at once at most", c.peak.Load())
	if p := c.peak.Load(); p > int64(journalsPerRequest) {
		t.Errorf("%d journal reads at once; want at most %d", p, journalsPerRequest)
	}
}

// Statuses that run together in one process (the state service's) share
// one bound of journal reads: the others wait for a slot.
func TestConcurrentStatusesShareOneBoundOfJournalReads(t *testing.T) {
	d, sd := benchSites(t, 100)
	var c concurrency
	src := Sources{Dirs: d, Systemd: sd, Journal: c.journal(5 * time.Millisecond)}
	gatherAtOnce(t, 8, src, siteNames(100))
	t.Logf("8 statuses of 100 sites by name: %d journal reads at once at most", c.peak.Load())
	if p := c.peak.Load(); p > int64(cap(journalSlots)) {
		t.Errorf("%d journal reads at once; want at most %d", p, cap(journalSlots))
	}
}

// A status whose caller went away starts none of the journal reads still
// waiting for a slot.
func TestCancelledStatusStartsNoQueuedJournalRead(t *testing.T) {
	d, sd := benchSites(t, 50)
	ctx, cancel := context.WithCancel(context.Background())
	var calls atomic.Int64
	src := Sources{Dirs: d, Systemd: sd, Journal: func(context.Context, string) (*Failure, *cleanup.Record) {
		if calls.Add(1) == 1 {
			cancel()
		}
		time.Sleep(5 * time.Millisecond)
		return nil, nil
	}}
	Gather(ctx, src, Request{Names: siteNames(50)})
	if n := calls.Load(); n > int64(journalsPerRequest) {
		t.Errorf("%d journal reads after the status was cancelled by the first; want at most %d", n, journalsPerRequest)
	}
}

// The journalctl processes themselves, counted by a fake journalctl that
// notes its start and end: one status of many sites by name, and several
// at once.
func TestStatusBoundsConcurrentJournalctl(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "log")
	fake := filepath.Join(dir, "journalctl")
	script := "#!/bin/sh\necho + >>'" + log + "'\nsleep 0.02\necho - >>'" + log + "'\n"
	if err := os.WriteFile(fake, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	old := journalctl
	journalctl = fake
	t.Cleanup(func() { journalctl = old })
	d, sd := benchSites(t, 64)
	src := Sources{Dirs: d, Systemd: sd, Journal: LastJournal}
	for _, tc := range []struct {
		requests int
		bound    int
	}{{1, journalsPerRequest}, {4, cap(journalSlots)}} {
		os.Remove(log)
		gatherAtOnce(t, tc.requests, src, siteNames(64))
		peak, runs := peakOf(t, log)
		t.Logf("%d statuses of 64 sites by name: %d journalctl, at most %d at once", tc.requests, runs, peak)
		if runs != tc.requests*64 || peak > tc.bound {
			t.Errorf("%d statuses: %d journalctl, %d at once; want %d, at most %d at once", tc.requests, runs, peak, tc.requests*64, tc.bound)
		}
	}
}

// peakOf is how many journalctl the fake's log shows running at once at
// most, and how many ran.
func peakOf(t *testing.T, log string) (peak, runs int) {
	t.Helper()
	b, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, l := range strings.Fields(string(b)) {
		if l == "+" {
			n++
			runs++
		} else {
			n--
		}
		peak = max(peak, n)
	}
	return peak, runs
}
