package status

import (
	"context"
	"strings"
	"time"

	"github.com/sitectl/sitectl/internal/launcher"
	"github.com/sitectl/sitectl/internal/modes"
	"github.com/sitectl/sitectl/internal/paths"
	"github.com/sitectl/sitectl/internal/procfs"
	"github.com/sitectl/sitectl/internal/site"
)

// askTimeout bounds the question to an overlap site's launcher.
const askTimeout = 2 * time.Second

// ServedMode is the mode the process that serves site s runs, as its own
// environment says (SITE_MODE, which systemd or the launcher set when it
// started): the service's main process, or for an overlap site the
// generation its launcher reports as serving. It is what a switch verifies
// (package flow), read the same way: as root, from /proc. "" when no
// process serves or it cannot be read.
func ServedMode(ctx context.Context, s *site.Site, mainPID int) string {
	pid := mainPID
	if s.Handoff == site.HandoffOverlap {
		ctx, cancel := context.WithTimeout(ctx, askTimeout)
		defer cancel()
		st, err := launcher.AskStatus(ctx, paths.RuntimeDirectoryPath(s.Name))
		if err != nil || st.Serving == nil {
			return ""
		}
		pid = st.Serving.PID
	}
	if pid <= 0 {
		return ""
	}
	env, err := procfs.Environ(pid)
	if err != nil {
		return ""
	}
	return modeOf(env)
}

// modeOf is SITE_MODE in an environment, "" without it.
func modeOf(env []string) string {
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, modes.VarMode+"="); ok {
			return v
		}
	}
	return ""
}
