package status

import (
	"context"

	"github.com/sitectl/sitectl/internal/cleanup"
)

// journalRead is a site's read of the journal (Sources.Journal) under way.
// It is a journalctl whose start costs more than its query (about 10 ms
// before it reads anything here), so it runs while status does the rest
// of its work for the site: for sites named to status, from before
// systemd is asked for the units.
type journalRead struct {
	done    chan struct{}
	failure *Failure
	cleanup *cleanup.Record
}

// startJournal starts the journal read of site name. The failure is read
// whatever systemd says of the service; readJournal keeps it only for a
// loaded one, as it would have asked.
func startJournal(ctx context.Context, src Sources, name string) *journalRead {
	j := &journalRead{done: make(chan struct{})}
	if src.Journal == nil {
		close(j.done)
		return j
	}
	go func() {
		defer close(j.done)
		j.failure, j.cleanup = src.Journal(ctx, name)
	}()
	return j
}

// wait returns what the read found, once it is done.
func (j *journalRead) wait() (*Failure, *cleanup.Record) {
	<-j.done
	return j.failure, j.cleanup
}
