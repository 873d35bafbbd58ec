package cli

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/sitectl/sitectl/internal/cleanup"
	"github.com/sitectl/sitectl/internal/status"
	"github.com/sitectl/sitectl/internal/term"
)

// The cleanup writes a record as it starts, then its result; one that
// fails writes that it failed. A cleanup killed in between (systemd's
// SIGKILL at TimeoutStopSec=) leaves its start as the site's last record.
func TestCleanupRecordsItsStartThenItsResult(t *testing.T) {
	defer func(run func(context.Context, cleanup.Options) (cleanup.Report, error), send func(cleanup.Record) error) {
		runCleanup, sendRecord = run, send
	}(runCleanup, sendRecord)
	var sent []string
	sendRecord = func(r cleanup.Record) error { sent = append(sent, r.Result); return nil }
	for _, c := range []struct {
		err  error
		want string
	}{
		{nil, "started ok"},
		{errors.New("cannot read the cgroup of process 0"), "started failed"},
	} {
		sent = nil
		runCleanup = func(_ context.Context, opts cleanup.Options) (cleanup.Report, error) {
			if opts.Started == nil {
				t.Fatal("the cleanup is not told to record its start")
			}
			opts.Started()
			return cleanup.Report{}, c.err
		}
		var stderr bytes.Buffer
		e := &env{stderr: &stderr}
		err := e.cleanup("karl", cleanup.Options{Timeout: time.Second})
		if (err != nil) != (c.err != nil) || strings.Join(sent, " ") != c.want {
			t.Errorf("run error %v: %v, records %q; want %q", c.err, err, sent, c.want)
		}
	}
}

// status tells a cleanup that did not finish, one that runs, one whose
// listing failed and the processes the hooks left.
func TestStatusPrintsTheLastCleanup(t *testing.T) {
	base := status.Site{Site: "karl", File: "/etc/sitectl/sites/karl.toml", SiteFile: status.FileState{State: "ok"}, Mode: "normal",
		Unit: "site-karl.service", LoadState: "loaded", State: "idle", ActiveState: "inactive", SubState: "dead"}
	when := *at("2026-11-21T06:12:58Z")
	for _, c := range []struct {
		rec  cleanup.Record
		want string
	}{
		{cleanup.Record{Time: when, Result: cleanup.ResultUnfinished},
			"    cleanup: the last stop's cleanup did not finish: it started Sat 2026-11-21 06:12:58 UTC; 4s ago and recorded no result (systemd killed it at TimeoutStopSec=, or it failed)"},
		{cleanup.Record{Time: when, Result: cleanup.ResultRunning}, "    cleanup: running since Sat 2026-11-21 06:12:58 UTC; 4s ago"},
		{cleanup.Record{Time: when, Result: cleanup.ResultFailed, Reason: "cannot read the cgroup"}, "    cleanup: failed at Sat 2026-11-21 06:12:58 UTC; 4s ago, before it ran the hooks: cannot read the cgroup"},
		{cleanup.Record{Time: when, Result: cleanup.ResultListFailed, Reason: "more than 131072 processes"},
			"    cleanup: listing-failed at Sat 2026-11-21 06:12:58 UTC; 4s ago: 0 processes left behind as far as they were listed, 0 killed by systemd\n             listing the processes failed: more than 131072 processes"},
		{cleanup.Record{Time: when, Result: cleanup.ResultOK, Leftovers: 1, Remaining: 2, HookLeftovers: 2},
			"    cleanup: ok at Sat 2026-11-21 06:12:58 UTC; 4s ago: 1 processes left behind, 2 killed by systemd (2 left running by the hooks)"},
	} {
		s := base
		s.Cleanup = &c.rec
		if got := printed(t, term.Style{UTF8: true}, s); !strings.Contains(got, c.want) {
			t.Errorf("%s: status lacks %q:\n%s", c.rec.Result, c.want, got)
		}
	}
}
