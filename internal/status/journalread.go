package status

import (
	"context"
	"sync"

	"github.com/sitectl/sitectl/internal/cleanup"
	"github.com/sitectl/sitectl/internal/units"
)

// journalRead is a site's two reads of the journal (Sources.LastFailure
// and Sources.LastCleanup) under way. Each is a journalctl whose start
// costs more than its query (about 10 ms before it reads anything here), so the two
// run at once and, for sites named to status, while systemd is asked for
// the units: status of one site then takes about one start of journalctl,
// not two after systemd's answer.
type journalRead struct {
	wg      sync.WaitGroup
	failure *Failure
	cleanup *cleanup.Record
}

// startJournal starts the journal reads of site name. The failure is read
// whatever systemd says of the service; readJournal keeps it only for a
// loaded one, as it would have asked.
func startJournal(ctx context.Context, src Sources, name string) *journalRead {
	j := &journalRead{}
	if src.LastFailure != nil {
		j.wg.Go(func() { j.failure = src.LastFailure(ctx, units.ServiceName(name)) })
	}
	if src.LastCleanup != nil {
		j.wg.Go(func() { j.cleanup = src.LastCleanup(ctx, name) })
	}
	return j
}

// wait returns what the reads found, once both are done.
func (j *journalRead) wait() (*Failure, *cleanup.Record) {
	j.wg.Wait()
	return j.failure, j.cleanup
}
