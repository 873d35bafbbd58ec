package status

import (
	"context"
	"testing"
	"time"

	"github.com/sitectl/sitectl/internal/cleanup"
	"github.com/sitectl/sitectl/internal/control"
)

// waitingSystemd answers a read of units by name only once the named
// sites' journal reads have started.
type waitingSystemd struct {
	*fakeSystemd
	started <-chan struct{}
}

func (w waitingSystemd) UnitsByName(ctx context.Context, names ...string) ([]control.Unit, error) {
	select {
	case <-w.started:
	case <-time.After(10 * time.Second):
		return nil, context.DeadlineExceeded
	}
	return w.fakeSystemd.UnitsByName(ctx, names...)
}

// Status of a named site reads its last failure and its last cleanup at
// once, and while systemd is asked for its units: each read is a
// journalctl that costs more to start than to query.
func TestStatusReadsTheJournalWhileSystemdAnswers(t *testing.T) {
	d, sd := setup(t)
	failureIn, cleanupIn := make(chan struct{}), make(chan struct{})
	both := make(chan struct{})
	go func() {
		<-failureIn
		<-cleanupIn
		close(both)
	}()
	// Each read waits for the other to have begun: read one after the
	// other, they never finish.
	waitBoth := func() bool {
		select {
		case <-both:
			return true
		case <-time.After(10 * time.Second):
			return false
		}
	}
	when := time.Unix(1700000100, 0).UTC()
	src := Sources{Dirs: d, Systemd: waitingSystemd{sd, both},
		LastFailure: func(_ context.Context, unit string) *Failure {
			close(failureIn)
			if !waitBoth() {
				return nil
			}
			return &Failure{Result: "exit-code", Time: &when, ExitCode: "exited", ExitStatus: "3"}
		},
		LastCleanup: func(_ context.Context, site string) *cleanup.Record {
			close(cleanupIn)
			if !waitBoth() {
				return nil
			}
			return &cleanup.Record{Result: cleanup.ResultOK}
		},
	}
	res, err := Gather(context.Background(), src, Request{Names: []string{"failed"}})
	if err != nil {
		t.Fatalf("status waited for systemd before it read the journal: %v", err)
	}
	s := res.Sites[0]
	if s.LastFailure == nil || s.LastFailure.ExitStatus != "3" || s.Cleanup == nil || s.Cleanup.Result != cleanup.ResultOK {
		t.Errorf("the journal reads did not run at once: last failure %+v, cleanup %+v", s.LastFailure, s.Cleanup)
	}
}

// A failure read before systemd answered counts only for a loaded
// service, as when it was read after.
func TestStatusKeepsAJournalFailureOnlyForALoadedService(t *testing.T) {
	d, sd := setup(t)
	when := time.Unix(1700000100, 0).UTC()
	src := Sources{Dirs: d, Systemd: sd, LastFailure: func(_ context.Context, unit string) *Failure {
		return &Failure{Result: "exit-code", Time: &when}
	}}
	res, err := Gather(context.Background(), src, Request{Names: []string{"failed", "gone"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Sites) != 2 {
		t.Fatalf("%d sites; want failed and gone", len(res.Sites))
	}
	for _, s := range res.Sites {
		if (s.LastFailure != nil) != (s.LoadState == "loaded") {
			t.Errorf("%s, service %s: last failure %+v", s.Site, s.LoadState, s.LastFailure)
		}
	}
}
