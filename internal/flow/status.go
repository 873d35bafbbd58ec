package flow

import (
	"time"

	"github.com/sitectl/sitectl/internal/control"
	"github.com/sitectl/sitectl/internal/modes"
)

// ModeApplied tells whether the running service u of site name runs in the
// mode recorded for it: it is running, and it started after the mode was
// recorded, since a flow writes the mode file before the restart that
// applies it. A site without a mode file runs its default mode.
func ModeApplied(st modes.Store, name string, u control.Unit) bool {
	_, recorded, written, err := st.CurrentSince(name)
	if err != nil {
		return false
	}
	return ModeAppliedSince(recorded, written, u)
}

// ModeAppliedSince is ModeApplied for a mode file already read: recorded
// says whether the site has one, written is when it was written (its
// modification time).
func ModeAppliedSince(recorded bool, written time.Time, u control.Unit) bool {
	running := u.ActiveState == "active" && u.SubState == "running"
	switch {
	case !recorded:
		return running
	case u.Since.IsZero():
		return false
	}
	return running && !written.After(u.Since)
}
