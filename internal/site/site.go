// Package site is the model of one web site hosted by sitectl, and the strict
// parser of the site files that declare them (/etc/sitectl/sites/NAME.toml).
//
// Parsing is pure: bytes in, a *Site or a list of positioned errors out. Every
// mistake in a file is reported as "FILE:LINE:COL: what is wrong", and all of a
// file's mistakes are reported at once. Checks that need several files (a
// listener used by two sites) live in findConflicts (LoadDir, LoadFiles).
package site

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"time"
)

// Server is the preset for the application server a site runs. It decides the
// stop signal, the default readiness protocol and the server-specific
// environment that makes a stop graceful.
type Server string

// The presets.
const (
	// ServerGeneric is any app that honours LISTEN_FDS and drains on SIGTERM.
	ServerGeneric Server = "generic"
	// ServerGunicorn is gunicorn: SIGTERM is its graceful stop, it sends
	// READY=1 when NOTIFY_SOCKET is set.
	ServerGunicorn Server = "gunicorn"
	// ServerUWSGI is uWSGI 2.0: SIGTERM is a brutal reload unless told
	// otherwise, so the preset tells it (see units.presetFor).
	ServerUWSGI Server = "uwsgi"
)

// Readiness is how the app tells systemd it serves.
type Readiness string

// The readiness protocols.
const (
	// ReadinessNotify: the app sends READY=1 (Type=notify).
	ReadinessNotify Readiness = "notify"
	// ReadinessNone: the app counts as started once exec succeeded (Type=exec).
	ReadinessNone Readiness = "none"
)

// Handoff is how a site moves to a new generation of its app (a reload, a
// mode switch, a touch of the reload trigger).
type Handoff string

// The handoffs.
const (
	// HandoffRestart stops the app and starts it again; the socket units
	// keep the listeners, so connections wait instead of being refused.
	HandoffRestart Handoff = "restart"
	// HandoffOverlap starts the new generation beside the old one, inside
	// the same unit, and lets the old one drain once the new one is ready:
	// no connection waits for a cold start.
	HandoffOverlap Handoff = "overlap"
)

// BaseValuePrefix names, in an overlap site's service, the value the
// service gives a variable that one of the site's modes sets too
// (SITECTL_BASE_NAME=value). systemd gives the launcher the value of the
// mode it started in (the mode file, EnvironmentFile=, wins over
// Environment=), and the launcher starts a generation of another mode
// from its own environment: without this, that generation would have no
// value at all for the variable, where a restart gets the service's.
const BaseValuePrefix = "SITECTL_BASE_"

// ModeShadowed is the part of env (what the service sets for the app in
// every mode) that some mode of s sets too, in env's order.
func ModeShadowed(s *Site, env []EnvVar) []EnvVar {
	set := map[string]bool{}
	for _, m := range s.Modes {
		for _, v := range m.Environment {
			set[v.Name] = true
		}
	}
	var out []EnvVar
	for _, v := range env {
		if set[v.Name] {
			out = append(out, v)
		}
	}
	return out
}

// StartPriority is the CPU priority at which an overlap site's new
// generation starts while the serving one still serves.
type StartPriority string

// The start priorities.
const (
	// StartIdle starts a reload's new generation at idle priority: its cold
	// start (importing the app) takes only CPU time nobody else wants, and
	// root's side of the reload promotes it to normal once it is ready.
	StartIdle StartPriority = "idle"
	// StartNormal starts it at the priority of the site's other processes.
	StartNormal StartPriority = "normal"
)

// Serve says what runs in a mode.
type Serve string

// What a mode can serve.
const (
	// ServeApp runs the site's own app with the mode's environment.
	ServeApp Serve = "app"
	// ServeMaintenance runs sitectl's built-in maintenance page server on the
	// site's listeners instead of the app.
	ServeMaintenance Serve = "maintenance"
)

// Defaults applied when a site file leaves a key out.
const (
	defaultModeName       = "normal"
	defaultListenerName   = "http"
	defaultDrainTimeout   = 30 * time.Second
	defaultStopTimeout    = 5 * time.Second
	defaultStartTimeout   = 60 * time.Second
	defaultSettleTime     = time.Second
	defaultCleanupTimeout = 10 * time.Second
	defaultRetryAfter     = 120 * time.Second
	DefaultProbeTimeout   = 5 * time.Second
	defaultProbeStatus    = 200
)

// Site is one web application instance on this host.
type Site struct {
	Name string
	File string // the site file it was read from
	// Digest is the SHA-256 (Digest) of the bytes the site was parsed
	// from, for the stamp on its units (units.ParseStamp): set by LoadDir,
	// LoadFiles and LoadBytes; "" from ParseNamed and for a site sitectl
	// list's cache gave without reading its file (LoadDirReusing).
	Digest string
	// FileDigest is, for a last good copy whose units stand in for its
	// site file (the file has mistakes, or failed to start and is
	// pinned), the Digest of the site file as it was then, for the stamp
	// on those units (units.ParseStandIn); "" otherwise.
	FileDigest string
	// Source is the content the site was parsed from (set with Digest,
	// by LoadDir, LoadFiles and LoadBytes): the generator records it, so
	// that a site whose file later has mistakes, and that never started
	// (prepare keeps a last good copy at each start), keeps its units.
	Source      []byte
	Description string

	Exec        []string
	Workdir     string
	User        string // empty: a dynamic user
	Group       string
	Environment []EnvVar // sorted by name

	Listeners []Listener
	Backlog   int // 0: systemd's default

	Server    Server
	Readiness Readiness
	Handoff   Handoff

	DrainTimeout time.Duration
	StopTimeout  time.Duration // grace after the drain timeout before SIGKILL
	StartTimeout time.Duration
	// SettleTime is how long the serving processes must have run, from
	// their own start, before a change counts as done.
	SettleTime     time.Duration
	CleanupTimeout time.Duration

	Modes       []Mode // sorted by name, DefaultMode always present
	DefaultMode string

	ReloadTrigger string
	Cleanup       [][]string

	Probe     *Probe
	Hardening Hardening

	// Credentials are files systemd hands the app (LoadCredential=),
	// sorted by name: the place for secrets.
	Credentials []Credential
	// Egress restricts the app's outbound network; nil: no restriction.
	Egress *Egress
	// Deployers may change the site through sitectl's state service;
	// none: root alone.
	Deployers []Deployer

	// KeepPrevious is how long an overlap site keeps the generation a
	// handover replaced running and warm, with no new connections, so
	// that a rollback flips back to it without starting a process;
	// 0: off. Only with HandoffOverlap and TCP listeners.
	KeepPrevious time.Duration

	// StartPriority is the priority of an overlap site's new generations
	// until they are ready; default StartIdle. Only with HandoffOverlap.
	StartPriority StartPriority

	// FastExit ends a gunicorn site's master and workers, once stopped
	// cleanly, right after their atexit handlers, without Python's
	// teardown of the interpreter (package gunicorn), which costs 0.1-0.3 s
	// of CPU per process. Default true for server = "gunicorn"; only there.
	FastExit bool
}

// Credential is one file systemd reads as root when the service starts
// and hands the app as $CREDENTIALS_DIRECTORY/NAME, readable by the app
// alone.
type Credential struct {
	Name      string
	Path      string
	Line, Col int // where its path is given, for the checks of the host
}

// Egress is where the app may connect to: nothing else (IPAddressDeny=any).
type Egress struct {
	// Allow are IP addresses, prefixes (10.0.0.0/8) and systemd's names
	// localhost, link-local and multicast.
	Allow []string
}

// DeployerKind tells a user from a group in a grant.
type DeployerKind string

// The kinds of deployers.
const (
	DeployerUser  DeployerKind = "user"
	DeployerGroup DeployerKind = "group"
)

// Deployer is a user or a group granted to deploy a site.
type Deployer struct {
	Kind DeployerKind
	Name string // an account name, or a numeric id
}

func (d Deployer) String() string { return string(d.Kind) + ":" + d.Name }

// EnvVar is one environment variable.
type EnvVar struct {
	Name, Value string
}

// ListenerKind tells a TCP listener from a unix socket.
type ListenerKind int

// Listener kinds.
const (
	TCP ListenerKind = iota + 1
	Unix
)

// Listener is one listening socket held by the site's socket unit.
type Listener struct {
	Name    string // FileDescriptorName
	Kind    ListenerKind
	Address string // TCP: host:port, IPv6 hosts in brackets
	Path    string // Unix: absolute socket path
	// Resolved is Path with the symlinks of its directories resolved, set
	// by the loader when the directories exist at load time: two paths
	// that reach one socket through a symlinked directory collide.
	Resolved string
	Owner    string // Unix only
	Group    string // Unix only
	Mode     os.FileMode
	Line     int // where it was declared, for conflict reports
	Col      int
}

// Endpoint is the address or the path, whichever the listener has.
func (l Listener) Endpoint() string {
	if l.Kind == Unix {
		return l.Path
	}
	return l.Address
}

// Mode is a named run mode of a site.
type Mode struct {
	Name        string
	Environment []EnvVar // sorted by name; SITE_MODE is added by whoever writes it
	Serve       Serve
	Page        string // maintenance page file; empty: the built-in page
	StaticDir   string
	RetryAfter  time.Duration
}

// Probe is the HTTP check that verifies a site serves after a change.
type Probe struct {
	Path    string
	Status  int
	Timeout time.Duration
}

// Hardening holds the few exceptions a site may ask for; the zero value is
// the full default sandbox.
type Hardening struct {
	// AllowWriteExecute turns MemoryDenyWriteExecute= off, for JITs.
	AllowWriteExecute bool
	// WritablePaths are the only places the app may write besides its
	// private /tmp.
	WritablePaths []string
}

// Mode returns the named mode.
func (s *Site) Mode(name string) (Mode, bool) {
	i := slices.IndexFunc(s.Modes, func(m Mode) bool { return m.Name == name })
	if i < 0 {
		return Mode{}, false
	}
	return s.Modes[i], true
}

// ModeNames lists the site's modes in order.
func (s *Site) ModeNames() []string {
	names := make([]string, len(s.Modes))
	for i, m := range s.Modes {
		names[i] = m.Name
	}
	return names
}

// ListenerNames lists the distinct FileDescriptorNames in declaration order.
func (s *Site) ListenerNames() []string {
	var names []string
	for _, l := range s.Listeners {
		if !slices.Contains(names, l.Name) {
			names = append(names, l.Name)
		}
	}
	return names
}

// maxNameLength bounds site and mode names: they end up in unit names, paths
// and journal fields.
const maxNameLength = 32

// reservedSuffix is taken by the touch-to-reload units of a site: site "x"
// owns site-x-reload.path and site-x-reload.service.
const reservedSuffix = "-reload"

// ValidateName checks a site name: lowercase ASCII letters, digits and single
// hyphens, starting with a letter, at most maxNameLength characters.
func ValidateName(name string) error {
	if err := validateIdent("site", name); err != nil {
		return err
	}
	if strings.HasSuffix(name, reservedSuffix) {
		return fmt.Errorf("site name %q ends in %q, which is reserved for the reload units of site %q", name, reservedSuffix, strings.TrimSuffix(name, reservedSuffix))
	}
	return nil
}

// ValidateModeName checks a mode name with the same rules as a site name.
func ValidateModeName(name string) error { return validateIdent("mode", name) }

func validateIdent(what, name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%s name is empty", what)
	case len(name) > maxNameLength:
		return fmt.Errorf("%s name is %d bytes long; at most %d are allowed", what, len(name), maxNameLength)
	case !validName(name):
		return fmt.Errorf("%s name %q is not valid: use lowercase letters, digits and single hyphens, starting with a letter", what, printable(name))
	}
	return nil
}

// maxQuoted bounds the text of a site file that an error repeats: a key
// or value of a megabyte once made a message line of a megabyte, in the
// generator's log and on the operator's terminal.
const maxQuoted = 64

// printable is text of a site file (a key, a value) as an error repeats
// it: without control characters, which could mess up a terminal, and
// cut after maxQuoted bytes, with the length of the whole.
func printable(s string) string {
	if len(s) > maxQuoted {
		s = strings.ToValidUTF8(s[:maxQuoted], "") + fmt.Sprintf("…(%d bytes)", len(s))
	}
	return printablePath(s)
}

// printablePath is a path in an error, without control characters; it is
// not cut, for a command an error tells the operator to run with it.
func printablePath(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '?'
		}
		return r
	}, s)
}

// NameFromFile derives a site's name from its file name (NAME.toml).
func NameFromFile(path string) string {
	base := path[strings.LastIndex(path, "/")+1:]
	return strings.TrimSuffix(base, ".toml")
}
