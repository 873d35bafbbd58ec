package status

import (
	"context"
	"testing"
	"time"

	"github.com/sitectl/sitectl/internal/cleanup"
)

// A cleanup records that it started, then its result. When systemd kills
// it at TimeoutStopSec= (or it dies) the last record is its start: status
// says the last stop's cleanup did not finish, or, while the service runs
// its ExecStopPost=, that it runs; never an earlier stop's result as the
// last one's.
func TestLastCleanupThatDidNotFinish(t *testing.T) {
	startedAt := time.Unix(1700000200, 0)
	for _, c := range []struct {
		unit, want string
	}{
		{"site-idle.service", cleanup.ResultUnfinished},   // inactive (dead)
		{"site-failed.service", cleanup.ResultUnfinished}, // failed
		{"site-run.service", cleanup.ResultUnfinished},    // running again since
		{"site-stopping.service", cleanup.ResultRunning},  // deactivating (stop-post)
	} {
		d, sd := setup(t)
		if c.unit == "site-stopping.service" {
			for i, u := range sd.units {
				if u.Name == "site-run.service" {
					sd.units[i].ActiveState, sd.units[i].SubState = "deactivating", "stop-post"
				}
			}
			c.unit = "site-run.service"
		}
		site := c.unit[len("site-") : len(c.unit)-len(".service")]
		src := Sources{Dirs: d, Systemd: sd, Journal: func(_ context.Context, name string) (*Failure, *cleanup.Record) {
			r := cleanup.StartedRecord(name)
			r.Time, r.HookFailures = startedAt, []string{}
			return nil, &r
		}}
		res, err := Gather(context.Background(), src, Request{Names: []string{site}})
		if err != nil || len(res.Sites) != 1 {
			t.Fatalf("%s: %v, %+v", site, err, res)
		}
		got := res.Sites[0].Cleanup
		if got == nil || got.Result != c.want || !got.Time.Equal(startedAt) {
			t.Errorf("%s (%s): last cleanup %+v, want %s", site, res.Sites[0].SubState, got, c.want)
		}
	}
}
