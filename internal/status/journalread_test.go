package status

import (
	"context"
	"testing"
	"time"

	"github.com/sitectl/sitectl/internal/cleanup"
	"github.com/sitectl/sitectl/internal/control"
	"github.com/sitectl/sitectl/internal/site"
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

// within is whether ch is closed within 10 s.
func within(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	case <-time.After(10 * time.Second):
		return false
	}
}

// Status of a named site reads the journal while systemd is asked for its
// units: the read is a journalctl that costs more to start than to query.
func TestStatusReadsTheJournalWhileSystemdAnswers(t *testing.T) {
	d, sd := setup(t)
	started := make(chan struct{})
	when := time.Unix(1700000100, 0).UTC()
	src := Sources{Dirs: d, Systemd: waitingSystemd{sd, started},
		Journal: func(_ context.Context, site string) (*Failure, *cleanup.Record) {
			close(started)
			return &Failure{Result: "exit-code", Time: &when, ExitCode: "exited", ExitStatus: "3"}, &cleanup.Record{Result: cleanup.ResultOK}
		},
	}
	res, err := Gather(context.Background(), src, Request{Names: []string{"failed"}})
	if err != nil {
		t.Fatalf("status waited for systemd before it read the journal: %v", err)
	}
	s := res.Sites[0]
	if s.LastFailure == nil || s.LastFailure.ExitStatus != "3" || s.Cleanup == nil || s.Cleanup.Result != cleanup.ResultOK {
		t.Errorf("last failure %+v, cleanup %+v", s.LastFailure, s.Cleanup)
	}
}

// Status of every site reads each site's journal while it reads the rest
// of the site: here the start checks, which wait for the journal's read to
// have begun while it waits for them.
func TestStatusReadsTheJournalWhileItChecksTheSite(t *testing.T) {
	d, sd := setup(t)
	journalIn, checksIn := make(chan struct{}), make(chan struct{})
	src := Sources{Dirs: d, Systemd: sd,
		Journal: func(_ context.Context, site string) (*Failure, *cleanup.Record) {
			if site != "run" {
				return nil, nil
			}
			close(journalIn)
			if !within(checksIn) {
				return nil, nil
			}
			return nil, &cleanup.Record{Result: cleanup.ResultOK}
		},
		StartProblems: func(_ context.Context, s *site.Site, mode string) []string {
			if s.Name != "run" {
				return nil
			}
			close(checksIn)
			if !within(journalIn) {
				return []string{"the journal's read had not begun"}
			}
			return nil
		},
	}
	res, err := Gather(context.Background(), src, Request{})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range res.Sites {
		if s.Site == "run" && (s.Cleanup == nil || len(s.StartProblems) > 0) {
			t.Errorf("the journal was read after the start checks, not beside them: cleanup %+v, start problems %q", s.Cleanup, s.StartProblems)
		}
	}
}

// A failure read before systemd answered counts only for a loaded
// service, as when it was read after.
func TestStatusKeepsAJournalFailureOnlyForALoadedService(t *testing.T) {
	d, sd := setup(t)
	when := time.Unix(1700000100, 0).UTC()
	src := Sources{Dirs: d, Systemd: sd, Journal: func(_ context.Context, name string) (*Failure, *cleanup.Record) {
		return &Failure{Result: "exit-code", Time: &when}, nil
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
