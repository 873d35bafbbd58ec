package modes

import (
	"fmt"
	"time"

	"github.com/sitectl/sitectl/internal/site"
)

// Writer is what a mode switch writes, as three semantic operations: it
// records its intent, sets the mode, and records its end. Local writes them
// as root, in the sitectl that runs the switch: root's own, or sitectl's
// state service for a deployer. The mode's environment is always rendered
// from the operator's site file, and who asked is recorded by the writer,
// from the kernel's word, never claimed by the caller. The interface is the
// seam for the fakes of package flow's tests.
type Writer interface {
	// Begin records a switch from one mode to another as pending, closing
	// one left pending by a sitectl that was killed.
	Begin(s *site.Site, from, to string) error
	// SetMode makes mode the site's recorded mode (its environment file).
	SetMode(s *site.Site, mode string) error
	// Finish ends the pending switch with a result and a reason.
	Finish(s *site.Site, result, reason string) error
}

// Local writes the state directly, as root.
type Local struct {
	Store Store
	UID   int // who asked: root's uid, or the deployer's as SO_PEERCRED says
	PID   int // the sitectl that runs the switch
	// Kind is the kind of change recorded (KindMode, ...); empty for mode.
	Kind string
	Now  func() time.Time
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
	if state.VerifiedMode == "" {
		state.VerifiedMode = verifiedBefore(state, from)
	}
	state = closeInterrupted(state)
	kind := l.Kind
	if kind == "" {
		kind = KindMode
	}
	state.Pending = &Pending{Since: l.now(), Kind: kind, From: from, To: to, UID: l.UID, PID: l.PID}
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
	if result == ResultOK {
		state.PreviousMode = previousVerified(state, p)
		state.VerifiedMode = p.To
		state.ChangedAt = l.now()
	}
	if len(reason) > maxReason {
		reason = reason[:maxReason]
	}
	state.History = append(state.History, Entry{Time: p.Since, Kind: p.Kind, From: p.From, To: p.To, UID: p.UID, Result: result, Reason: reason})
	state.Pending = nil
	return l.Store.WriteState(s.Name, state)
}

// closeInterrupted turns a pending switch left by a killed sitectl into a
// history entry. Only a holder of the site's lock may call it, so the
// pending switch cannot belong to a live sitectl.
func closeInterrupted(state State) State {
	if p := state.Pending; p != nil {
		state.History = append(state.History, Entry{Time: p.Since, Kind: p.Kind, From: p.From, To: p.To, UID: p.UID,
			Result: ResultInterrupted, Reason: fmt.Sprintf("sitectl (pid %d) stopped before the switch finished", p.PID)})
		state.Pending = nil
	}
	return state
}

// HistoryAsItStands is the history of a site in state as it stands: a
// switch left pending by a sitectl that is gone (busy false: no one holds
// the site's lock, which is released when its holder dies) is the
// interrupted entry the next change will record for it. A switch in
// progress (busy) is not in the history yet.
func HistoryAsItStands(state State, busy bool) []Entry {
	if state.Pending == nil || busy {
		return state.History
	}
	return closeInterrupted(state).History
}

// verifiedBefore is the mode a site was last shown to serve in, for a
// state written before sitectl recorded it (VerifiedMode), as its next
// change from mode from begins: the mode a switch left pending or
// interrupted came from, or else from, the mode it runs.
func verifiedBefore(state State, from string) string {
	if p := state.Pending; p != nil {
		return p.From
	}
	if n := len(state.History); n > 0 && state.History[n-1].Result == ResultInterrupted {
		return state.History[n-1].From
	}
	return from
}

// previousVerified is the previous mode once the pending switch p served:
// the mode verified before it. A switch from a mode never shown to serve
// (a sitectl stopped before it could: kill -9, a crash) leaves the one
// before that, and so does a restart, or a return to the verified mode.
func previousVerified(state State, p *Pending) string {
	v := state.VerifiedMode
	if v == "" { // recorded by an older sitectl's Begin
		v = p.From
	}
	if v == p.To {
		return state.PreviousMode
	}
	return v
}
