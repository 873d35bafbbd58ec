package status

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sitectl/sitectl/internal/launcher"
	"github.com/sitectl/sitectl/internal/modes"
	"github.com/sitectl/sitectl/internal/paths"
	"github.com/sitectl/sitectl/internal/procfs"
	"github.com/sitectl/sitectl/internal/site"
)

// askTimeout bounds the question to an overlap site's launcher, and with it
// the reading of a warm generation's memory.
const askTimeout = 2 * time.Second

// ServedProcess is what the process that serves a site says of itself:
// the environment it started with, and the release it runs from.
type ServedProcess struct {
	Env []string
	// Release is the working directory it runs from, symlinks resolved:
	// for an overlap site the one its generation started in, as its
	// launcher reports it; otherwise the main process's current
	// directory. "" for a site without workdir, or when it cannot be read.
	Release string
}

// Served is what the process that serves site s says of itself. Its
// environment says the mode it runs (SITE_MODE, which systemd or the
// launcher set when it started) and with which variables: the service's
// main process, or for an overlap site the generation its launcher
// reports as serving. It is what a switch verifies (package flow), read
// the same way: as root, from /proc. Its Env is nil when no process
// serves or it cannot be read. It holds the site's secrets: status keeps
// what it says of them, never their values.
//
// Whether the main process is an overlap site's launcher is asked of the
// running service, not of the site file: the file's handoff may have
// changed since the service started, and a launcher's own environment
// names the mode it started in, not the one its generation serves. A
// launcher answers on its control socket (its peer is the main process);
// a main process that has no listening control socket is the app (or
// the maintenance server) itself. One that does not answer is not read.
func Served(ctx context.Context, s *site.Site, mainPID int) ServedProcess {
	pid := mainPID
	ctx, cancel := context.WithTimeout(ctx, askTimeout)
	defer cancel()
	var release string
	st, err := askLauncher(ctx, s, mainPID)
	switch {
	case err == nil && st.Serving == nil:
		return ServedProcess{}
	case err == nil:
		// The pid is the launcher's word, and the launcher runs as the
		// site's user: root reads nothing of a process not its own.
		if launcher.CheckGeneration(procfs.Root, mainPID, st.Serving.PID) != nil {
			return ServedProcess{}
		}
		pid, release = st.Serving.PID, st.Serving.Release
	case !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ECONNREFUSED):
		return ServedProcess{} // a launcher, or the app in its place, that does not answer
	}
	if pid <= 0 {
		return ServedProcess{}
	}
	env, err := procfs.Environ(pid)
	if err != nil {
		return ServedProcess{}
	}
	if release == "" && s.Workdir != "" {
		release, _ = os.Readlink(filepath.Join(procfs.Root, strconv.Itoa(pid), "cwd"))
	}
	return ServedProcess{Env: env, Release: release}
}

// Warm is the generation a keep_previous site keeps warm, in Site.
type Warm struct {
	Generation int       `json:"generation" doc:"the generation's number"`
	MainPID    int       `json:"main_pid" doc:"its main process"`
	Mode       string    `json:"mode" doc:"the mode it runs"`
	Release    string    `json:"release" doc:"its working directory, symlinks resolved when it started; empty without workdir"`
	Since      time.Time `json:"since" doc:"when it stopped getting new connections"`
	Until      time.Time `json:"until" doc:"when it will be drained (keep_previous after since)"`
	// MemoryBytes is the sum of its processes' PSS.
	MemoryBytes int64 `json:"memory_bytes" doc:"the memory it holds: the sum of the proportional set sizes (Pss) of its processes (its session); 0 when it cannot be read"`
	// RollbackFlips is whether sitectl rollback would flip back to it
	// (see rollbackFlips), and NoFlip says why not.
	RollbackFlips bool   `json:"rollback_flips" doc:"whether sitectl rollback flips back to it: false once the site file no longer has keep_previous (the generation runs on until it is drained or the service restarts), no longer has its mode, or has another version of its mode (its environment was edited since the generation started): a rollback then goes cold"`
	NoFlip        string `json:"no_flip,omitempty" doc:"why sitectl rollback would not flip back to it (rollback_flips false); left out when it would"`
	// Env is the environment the generation started with, which tells
	// whether a rollback would flip to it; nil when it cannot be read.
	Env []string `json:"-"`
}

// rollbackFlips is whether sitectl rollback of site s would flip back to
// warm generation w, as package flow decides it: the site file has
// keep_previous and w's mode, and w runs that mode as the file has it;
// else why not.
func rollbackFlips(s *site.Site, w *Warm) (bool, string) {
	if s.KeepPrevious <= 0 {
		return false, "the site file no longer has keep_previous"
	}
	m, ok := s.Mode(w.Mode)
	if !ok {
		return false, "the site file no longer has its mode " + w.Mode
	}
	if w.Env == nil {
		return false, "its environment cannot be read"
	}
	if differ, unset := modes.Mismatch(w.Env, m); len(differ)+len(unset) > 0 {
		return false, "it runs an older version of mode " + w.Mode + " than the site file has (" + strings.Join(append(differ, unset...), ", ") + " changed)"
	}
	return true, ""
}

// WarmGeneration asks a keep_previous site's launcher, the main process
// mainPID of its service, which generation it keeps warm; nil when none
// is, or the launcher cannot say.
func WarmGeneration(ctx context.Context, s *site.Site, mainPID int) *Warm {
	ctx, cancel := context.WithTimeout(ctx, askTimeout)
	defer cancel()
	// Only root reaches the socket: anyone else is spared the dial.
	if _, err := os.Stat(filepath.Join(paths.RuntimeDirectoryPath(s.Name), paths.ControlSocket)); err != nil || mainPID <= 0 {
		return nil
	}
	return warmGeneration(ctx, s, mainPID)
}

func warmGeneration(ctx context.Context, s *site.Site, mainPID int) *Warm {
	st, err := askLauncher(ctx, s, mainPID)
	if err != nil || st.Warm == nil {
		return nil
	}
	w := st.Warm
	// As in Served: the memory of a process that is not one of the
	// launcher's own is not read, nor its word about it shown.
	if launcher.CheckGeneration(procfs.Root, mainPID, w.PID) != nil {
		return nil
	}
	mem, _, _ := procfs.SessionPSS(ctx, w.PID) // 0 when it cannot be read
	env, _ := procfs.Environ(w.PID)            // nil when it cannot be read
	return &Warm{Generation: w.Generation, MainPID: w.PID, Mode: w.Mode, Release: w.Release, Since: w.Since, Until: w.Until, MemoryBytes: mem, Env: env}
}

// askLauncher asks the launcher of overlap site s, the main process
// mainPID of its service, for its status. A variable for tests, which
// cannot listen in /run.
var askLauncher = func(ctx context.Context, s *site.Site, mainPID int) (launcher.Status, error) {
	return launcher.AskStatus(ctx, paths.RuntimeDirectoryPath(s.Name), mainPID)
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
