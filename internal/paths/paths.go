// Package paths is where sitectl keeps things on a host: the site files, the
// mode state of each site, the state service's socket, the runtime
// directory of an overlap site and the sockets in it, and the flags that
// carry non-default directories to another sitectl. Every such path is
// computed here and nowhere else (as quadlet's unitdirs.go does), so the
// generator, the units, the state store, the launcher and the command line
// cannot disagree about where a file is.
package paths

import (
	"path"
	"path/filepath"
	"strconv"
)

// The packaged defaults, and the environment variables that override them.
const (
	DefaultConfigDir   = "/etc/sitectl/sites"
	DefaultStateDir    = "/var/lib/sitectl"
	DefaultStateSocket = "/run/sitectl/state.sock"
	// DefaultDialSocket is where sitectl-dial.service connects to TCP
	// addresses for the state service (package dialer).
	DefaultDialSocket = "/run/sitectl/dial.sock"
	// ListCache is where root's sitectl list keeps what it read of each
	// site file (package sitecache), in a directory of root's alone:
	// under /run, so that it starts empty at each boot.
	ListCache = "/run/sitectl/cache/list"
	// StateCache is where it keeps what it read of each site's state
	// directory (package sitecache), beside ListCache.
	StateCache = "/run/sitectl/cache/states"

	EnvConfigDir   = "SITECTL_CONFIG_DIR"
	EnvStateDir    = "SITECTL_STATE_DIR"
	envStateSocket = "SITECTL_STATE_SOCKET"
)

// Dirs are the two directories sitectl works in. The zero value is not
// useful: start from Defaults or FromEnv.
type Dirs struct {
	Config string // the site files, NAME.toml; owned by the operator
	State  string // the mode state of every site; owned by sitectl
}

// defaults are the packaged directories.
func defaults() Dirs { return Dirs{Config: DefaultConfigDir, State: DefaultStateDir} }

// FromEnv is Defaults with SITECTL_CONFIG_DIR and SITECTL_STATE_DIR applied
// when they are set and not empty, made absolute (Abs).
func FromEnv(getenv func(string) string) Dirs {
	return Dirs{Config: envOr(getenv, EnvConfigDir, DefaultConfigDir), State: envOr(getenv, EnvStateDir, DefaultStateDir)}.Abs()
}

// Abs is d with relative directories made absolute, from the working
// directory. The units written from them name these directories, and
// systemd ignores a relative SourcePath=, EnvironmentFile= or
// InaccessiblePaths= (with a warning), and runs ExecStartPre= in /: a
// relative --config-dir would give the app every site file to read and
// a site that never starts. A directory whose absolute path cannot be
// told (the working directory is gone) is kept as it is.
func (d Dirs) Abs() Dirs {
	for _, p := range []*string{&d.Config, &d.State} {
		if abs, err := filepath.Abs(*p); err == nil {
			*p = abs
		}
	}
	return d
}

// StateSocket is where sitectl's state service listens: SITECTL_STATE_SOCKET
// when set, else DefaultStateSocket.
func StateSocket(getenv func(string) string) string {
	return envOr(getenv, envStateSocket, DefaultStateSocket)
}

func envOr(getenv func(string) string, name, def string) string {
	if v := getenv(name); v != "" {
		return v
	}
	return def
}

// Flags are the global flags that give another sitectl (one a unit runs,
// or a generation the launcher starts) these directories: none for the
// defaults, so that the packaged units stay short.
func (d Dirs) Flags() []string {
	var f []string
	if d.Config != DefaultConfigDir {
		f = append(f, "--config-dir", d.Config)
	}
	if d.State != DefaultStateDir {
		f = append(f, "--state-dir", d.State)
	}
	return f
}

// Private are the directories a site's app must not see: the site files
// (secrets of every site may be in them) and the state (every site's mode
// environment and history). For the packaged config directory, its parent
// /etc/sitectl, where operators keep what belongs to sitectl. The site's
// units hide them (InaccessiblePaths=).
func (d Dirs) Private() []string {
	config := d.Config
	if config == DefaultConfigDir {
		config = path.Dir(DefaultConfigDir)
	}
	return []string{config, d.State}
}

// SiteFile is the site file of site name.
func (d Dirs) SiteFile(name string) string { return path.Join(d.Config, name+".toml") }

// SiteState is the state directory of site name: its mode file, its state
// file and its lock.
func (d Dirs) SiteState(name string) string { return path.Join(d.SitesState(), name) }

// SitesState is the directory that holds every site's state directory.
func (d Dirs) SitesState() string { return path.Join(d.State, "sites") }

// ModeEnvFile is the environment file of the site's current mode, which its
// service reads through EnvironmentFile=.
func (d Dirs) ModeEnvFile(name string) string { return path.Join(d.SiteState(name), ModeEnvBase) }

// StateFile holds a site's previous mode, its pending switch and history.
func (d Dirs) StateFile(name string) string { return path.Join(d.SiteState(name), StateBase) }

// ModeEnvBase and StateBase are the names of ModeEnvFile and StateFile
// in the site's state directory.
const (
	ModeEnvBase = "mode.env"
	StateBase   = "state.json"
)

// LastGoodFile is the copy of the site file the service was last started
// from (sitectl prepare keeps it): what the site runs when its file turned
// invalid since.
func (d Dirs) LastGoodFile(name string) string { return path.Join(d.SiteState(name), "last-good.toml") }

// LastRanFile is the copy of the site file the service last ran from and
// was seen to work with: the run ended cleanly (RanCleanlyFile), or a
// change saw the site serve. A start from a file that fails overwrites
// the last good copy, not this one: it is the version a rollback goes
// back to after such a start.
func (d Dirs) LastRanFile(name string) string { return path.Join(d.SiteState(name), "last-ran.toml") }

// RanCleanlyFile is the mark the service's ExecStopPost= leaves, as root,
// when its run ended cleanly (SERVICE_RESULT=success): the last good copy
// ran, and becomes the last ran copy at the next start or change
// (modes.Store.PromoteRan). A shell's test and redirection cost a
// millisecond at each stop; a sitectl run would cost twenty.
func (d Dirs) RanCleanlyFile(name string) string { return path.Join(d.SiteState(name), "ran-cleanly") }

// HeldHintFile is which of systemd's open files held the site's sockets
// the last time sitectl looked (package sockheld owns it): a cache, which
// a wrong or missing copy only makes slower to check.
func (d Dirs) HeldHintFile(name string) string { return path.Join(d.SiteState(name), "held-fds") }

// PinFile records that the site file, as it was then, failed to start
// and the site was rolled back to its last good copy: while the file is
// unchanged, the generator and prepare start the site from that copy.
// Pins are in one directory (PinDir), so that the generator reads one
// directory, not a file per site, to find them.
func (d Dirs) PinFile(name string) string { return path.Join(d.PinDir(), name+".json") }

// PinDir holds the pins of all sites (root's alone).
func (d Dirs) PinDir() string { return path.Join(d.State, "pinned") }

// LockFile is what a switch of the site holds an flock(2) on.
func (d Dirs) LockFile(name string) string { return path.Join(d.SiteState(name), "lock") }

// RootWaitFile is what root's sitectl holds an flock(2) on while it waits
// for the site's lock: a deployer's change waits while it is held, so
// that root goes first (modes.Store.RootWaits).
func (d Dirs) RootWaitFile(name string) string {
	return path.Join(d.SiteState(name), "root-waits.lock")
}

// ModeLockFile is what every writer of the site's mode file holds an
// flock(2) on around its read-modify-write (a switch, and prepare at the
// service's start).
func (d Dirs) ModeLockFile(name string) string { return path.Join(d.SiteState(name), "mode.lock") }

// OutOfServiceFile marks a site taken out of service with `sitectl
// disable`: the generator leaves its units out of sockets.target, so it
// stays out across reboots until `sitectl enable`.
func (d Dirs) OutOfServiceFile(name string) string {
	return path.Join(d.SiteState(name), "out-of-service")
}

// RuntimeDirectory is the runtime directory of an overlap site's service
// (RuntimeDirectory=, relative to /run; systemd passes its absolute path as
// RUNTIME_DIRECTORY). It holds the launcher's sockets.
func RuntimeDirectory(site string) string { return "site-" + site }

// RuntimeDirectoryPath is the absolute path of that directory, where root's
// side of sitectl reaches the launcher of a system service.
func RuntimeDirectoryPath(site string) string { return path.Join("/run", RuntimeDirectory(site)) }

// Names of the launcher's sockets in the runtime directory.
const (
	ControlSocket = "control.sock" // sitectl launch --reload asks for a reload here
	NotifySocket  = "notify.sock"  // generations send READY=1 here
)

// ProbeSocket is the private socket through which the launcher probes
// generation n; only that generation serves it.
func ProbeSocket(n int) string { return "probe-" + strconv.Itoa(n) + ".sock" }

// GeneratedListenersFile is the generator's record of the listeners it
// gave each site's units at its last run (modes.Store.WriteGenerated):
// where two site files claim a listener, the site whose units had it
// keeps it, whether or not its service ever started. It also keeps the
// content of each site file those units came from, which stands in for
// the last good copy of a site that never started (modes.Store.GeneratedSources).
func (d Dirs) GeneratedListenersFile() string { return path.Join(d.State, "generated-listeners.json") }
