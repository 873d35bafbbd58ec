package flow

import (
	"sync"
	"time"
)

// verifyingGrace is how long a verification runs at the priority the
// change was made at before Env.Verifying takes the normal one back. A
// probe of a site that serves is answered in a few ms; at idle priority
// it waits only while the host has other work, and on a host so busy
// that this starves it, it waits this long at most.
const verifyingGrace = 500 * time.Millisecond

// verifyingSoon arms Env.Verifying for verifyingGrace from now, once per
// Env; later calls leave it armed as it is.
func (e *Env) verifyingSoon() {
	if e.Verifying == nil || e.urgent != nil {
		return
	}
	call := sync.OnceFunc(e.Verifying)
	e.urgent = call
	grace := verifyingGrace
	if e.verifyGrace > 0 {
		grace = e.verifyGrace
	}
	time.AfterFunc(grace, call)
}

// verifyingNow calls Env.Verifying unless it was called.
func (e *Env) verifyingNow() {
	if e.Verifying == nil {
		return
	}
	if e.urgent == nil {
		e.urgent = sync.OnceFunc(e.Verifying)
	}
	e.urgent()
}
