package flow

import (
	"errors"
	"io/fs"
	"os"

	"github.com/sitectl/sitectl/internal/control"
	"github.com/sitectl/sitectl/internal/modes"
)

// ModeApplied tells whether the running service u of site name runs in the
// mode recorded for it: it is running, and it started after the mode was
// recorded, since a flow writes the mode file before the restart that
// applies it. A site without a mode file runs its default mode.
func ModeApplied(st modes.Store, name string, u control.Unit) bool {
	running := u.ActiveState == "active" && u.SubState == "running"
	fi, err := os.Stat(st.EnvPath(name))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return running
	case err != nil || u.Since.IsZero():
		return false
	}
	return running && !fi.ModTime().After(u.Since)
}
