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

// urgency calls Env.Verifying once: from a timer verifyingGrace after the
// first verification of a change began, or at once when one failed, so
// that a rollback after it runs at normal priority.
type urgency struct {
	once  sync.Once
	timer *time.Timer
}

// verifyingSoon arms Env.Verifying for verifyingGrace from now, once per
// Env; later calls leave the timer as it is.
func (e *Env) verifyingSoon() {
	if e.Verifying == nil || e.urgent != nil {
		return
	}
	u := &urgency{}
	e.urgent = u
	grace := verifyingGrace
	if e.verifyGrace > 0 {
		grace = e.verifyGrace
	}
	u.timer = time.AfterFunc(grace, func() { u.once.Do(e.Verifying) })
}

// verifyingNow calls Env.Verifying unless it was called.
func (e *Env) verifyingNow() {
	if e.Verifying == nil {
		return
	}
	if e.urgent == nil {
		e.urgent = &urgency{}
	}
	if e.urgent.timer != nil {
		e.urgent.timer.Stop()
	}
	e.urgent.once.Do(e.Verifying)
}
