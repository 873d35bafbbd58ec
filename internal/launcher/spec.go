package launcher

import (
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sitectl/sitectl/internal/modes"
	"github.com/sitectl/sitectl/internal/probe"
	"github.com/sitectl/sitectl/internal/site"
)

// Spec is what one generation needs, made afresh for each: the mode may
// have changed, and the release symlink may point elsewhere.
type Spec struct {
	Env          []string // complete, without LISTEN_* and NOTIFY_SOCKET
	Dir          string   // the working directory, symlinks resolved
	Mode         string
	Readiness    site.Readiness
	Probe        *site.Probe
	StartTimeout time.Duration
}

// NewSpec is the spec of the next generation of site s: the mode's
// environment (the mode file's variables, as modes.Store.ReadEnv reads
// them) on top of base (see BaseEnv), in dir (the site's working directory
// with symlinks resolved, or ""). A maintenance mode is ready when the
// maintenance server says READY=1 and answers its health path (see
// probe.For). NewSpec reads nothing: whoever calls it reads the files, so
// the mode may reach the launcher any way it likes.
func NewSpec(s *site.Site, mode []site.EnvVar, base []string, dir string) Spec {
	spec := Spec{Env: slices.Clone(base), Dir: dir, Readiness: s.Readiness, StartTimeout: s.StartTimeout}
	serve := site.ServeApp
	for _, v := range mode {
		spec.Env = append(spec.Env, v.Name+"="+v.Value)
		switch v.Name {
		case modes.VarMode:
			spec.Mode = v.Value
		case modes.VarServe:
			serve = site.Serve(v.Value)
		}
	}
	if serve == site.ServeMaintenance {
		spec.Readiness = site.ReadinessNotify
	}
	spec.Probe = probe.For(s, site.Mode{Name: spec.Mode, Serve: serve})
	return spec
}

// BaseEnv is what every generation's environment starts from: the
// launcher's own (what systemd gave the service), without the variables of
// the mode file the launcher was started with (each generation gets its
// own mode's) and without what belongs to the launcher alone: its sockets
// (LISTEN_*), its notify socket and its watchdog. A variable of the start
// mode that the service sets too has the service's value again, which the
// unit gives as site.BaseValuePrefix+NAME: the start mode's had replaced
// it, and a mode that does not set it runs with the service's, as it
// does after a restart.
func BaseEnv(environ []string, startMode []site.EnvVar) []string {
	fromMode := map[string]bool{}
	for _, v := range startMode {
		fromMode[v.Name] = true
	}
	serviceValue := map[string]string{}
	for _, kv := range environ {
		if k, v, _ := strings.Cut(kv, "="); strings.HasPrefix(k, site.BaseValuePrefix) {
			serviceValue[strings.TrimPrefix(k, site.BaseValuePrefix)] = v
		}
	}
	var base []string
	for _, kv := range environ {
		k, _, _ := strings.Cut(kv, "=")
		if fromMode[k] {
			if v, ok := serviceValue[k]; ok {
				base = append(base, k+"="+v)
			}
			continue
		}
		if k == "NOTIFY_SOCKET" || strings.HasPrefix(k, "LISTEN_") || strings.HasPrefix(k, "WATCHDOG_") {
			continue
		}
		base = append(base, kv)
	}
	return base
}

// appEnv is environ without sitectl's own variables (SITECTL_*: what to
// serve, the maintenance page, the LISTEN_PID handshake): what the app
// sees.
func appEnv(environ []string) []string { return slices.DeleteFunc(slices.Clone(environ), isOwnVar) }

// isOwnVar tells whether an assignment is one of sitectl's own variables.
func isOwnVar(kv string) bool { return strings.HasPrefix(kv, "SITECTL_") }

// envSetListenPID asks a generation's shim to set LISTEN_PID to its own pid.
const envSetListenPID = "SITECTL_SET_LISTEN_PID"

// setListenPID is the generation's half of the LISTEN_PID handshake. The
// launcher cannot know a generation's pid before it forks, and the sockets
// must be for the pid the app sees (systemd's LISTEN_PID rule), so it
// starts the generation with SITECTL_SET_LISTEN_PID=1, and the shim (the
// generation's first process, which execs the app) calls this.
func setListenPID() {
	if os.Getenv(envSetListenPID) == "1" {
		os.Setenv("LISTEN_PID", strconv.Itoa(os.Getpid()))
	}
}
