package modes

import (
	"fmt"
	"time"

	"github.com/sitectl/sitectl/internal/site"
)

// Writer is what a mode switch writes, as three semantic operations: it
// records its intent, sets the mode, and records its end. Local writes them
// as root; Client asks sitectl's state service to, for deployers who may not
// write the state directory themselves. Either way the mode's environment is
// always rendered from the operator's site file, and who asked is recorded
// by the writer, not claimed by the caller.
type Writer interface {
	// Begin records a switch from one mode to another as pending, closing
	// one left pending by a sitectl that was killed.
	Begin(s *site.Site, from, to string) error
	// SetMode makes mode the site's recorded mode (its environment file).
	SetMode(s *site.Site, mode string) error
	// Finish ends the pending switch with a result and a reason.
	Finish(s *site.Site, result, reason string) error
}

// Local writes the state directly; for root.
type Local struct {
	Store Store
	UID   int // who asked
	PID   int // the sitectl that runs the switch
	Now   func() time.Time
}

func (l Local) now() time.Time {
	if l.Now != nil {
		return l.Now()
	}
	return time.Now()
}

// Begin implements Writer.
func (l Local) Begin(s *site.Site, from, to string) error {
	state, err := l.Store.ReadState(s.Name)
	if err != nil {
		return err
	}
	state = closeInterrupted(state)
	state.Pending = &Pending{Since: l.now(), From: from, To: to, UID: l.UID, PID: l.PID}
	return l.Store.WriteState(s.Name, state)
}

// SetMode implements Writer.
func (l Local) SetMode(s *site.Site, mode string) error {
	m, ok := s.Mode(mode)
	if !ok {
		return fmt.Errorf("site %s has no mode %q", s.Name, mode)
	}
	return l.Store.Write(s, m)
}

// Finish implements Writer.
func (l Local) Finish(s *site.Site, result, reason string) error {
	state, err := l.Store.ReadState(s.Name)
	if err != nil {
		return err
	}
	p := state.Pending
	if p == nil {
		return fmt.Errorf("site %s has no switch in progress to finish", s.Name)
	}
	if result == ResultOK && p.From != p.To {
		state.PreviousMode = p.From
	}
	if result == ResultOK {
		state.ChangedAt = l.now()
	}
	state.History = append(state.History, Entry{Time: p.Since, From: p.From, To: p.To, UID: p.UID, Result: result, Reason: reason})
	state.Pending = nil
	return l.Store.WriteState(s.Name, state)
}

// closeInterrupted turns a pending switch left by a killed sitectl into a
// history entry. Only a holder of the site's lock may call it, so the
// pending switch cannot belong to a live sitectl.
func closeInterrupted(state State) State {
	if p := state.Pending; p != nil {
		state.History = append(state.History, Entry{Time: p.Since, From: p.From, To: p.To, UID: p.UID,
			Result: ResultInterrupted, Reason: fmt.Sprintf("sitectl (pid %d) stopped before the switch finished", p.PID)})
		state.Pending = nil
	}
	return state
}
