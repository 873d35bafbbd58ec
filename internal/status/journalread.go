package status

import (
	"context"
	"runtime"

	"github.com/sitectl/sitectl/internal/cleanup"
)

// journalRead is a site's read of the journal (Sources.Journal) under way.
// It is a journalctl whose start costs more than its query (about 10 ms
// before it reads anything here), so it runs while status does the rest
// of its work for the site: for sites named to status, from before
// systemd is asked for the units, a few at a time (journalsPerRequest).
type journalRead struct {
	done    chan struct{}
	failure *Failure
	cleanup *cleanup.Record
}

// journalsPerRequest bounds the journal reads one status runs at once: as
// many as there are CPUs, as status of every site runs (one per site it
// works on, par.Each), and at least two. Status of sites by name starts
// the read of each before systemd is asked for their units; unbounded, a
// deployer's status of the 300 sites granted them forked 96 journalctl at
// once.
var journalsPerRequest = max(2, runtime.GOMAXPROCS(0))

// journalSlots bound the journal reads of every status this process runs
// at once (the state service answers many deployers together): twice a
// request's share, so that two requests use the CPUs while journalctl
// waits for the disk, and a request more waits for a slot instead of
// forking its own. Unbounded, eight requests for 300 sites each ran 578
// journalctl at once, and none ended in minutes.
var journalSlots = make(chan struct{}, 2*journalsPerRequest)

// journalLimit is one status's share of the journal reads.
type journalLimit chan struct{}

func newJournalLimit() journalLimit { return make(journalLimit, journalsPerRequest) }

// acquire waits for a read of the request's share and one of the
// process's, and returns what gives them back; false when ctx ended
// first.
func (l journalLimit) acquire(ctx context.Context) (release func(), ok bool) {
	select {
	case l <- struct{}{}:
	case <-ctx.Done():
		return nil, false
	}
	select {
	case journalSlots <- struct{}{}:
	case <-ctx.Done():
		<-l
		return nil, false
	}
	return func() { <-journalSlots; <-l }, true
}

// startJournal starts the journal read of site name, within the request's
// limit. The failure is read whatever
// systemd says of the service; readJournal keeps it only for a loaded
// one, as it would have asked.
func startJournal(ctx context.Context, src Sources, lim journalLimit, name string) *journalRead {
	j := &journalRead{done: make(chan struct{})}
	if src.Journal == nil {
		close(j.done)
		return j
	}
	go func() {
		defer close(j.done)
		release, ok := lim.acquire(ctx)
		if !ok {
			return // as a journal that cannot be read
		}
		defer release()
		j.failure, j.cleanup = src.Journal(ctx, name)
	}()
	return j
}

// wait returns what the read found, once it is done.
func (j *journalRead) wait() (*Failure, *cleanup.Record) {
	<-j.done
	return j.failure, j.cleanup
}
