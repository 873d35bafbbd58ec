// Package units turns a site into its systemd units. Everything here is a
// pure function of the site and the options: no file is read or written, so
// the generator, `sitectl units render` and the tests all get exactly the same
// bytes.
//
// A site NAME gets:
//
//   - site-NAME.socket: the listeners, held by systemd across restarts, so a
//     connection made while the app restarts waits in the kernel backlog
//     instead of being refused. Listeners with another FileDescriptorName
//     than the first go into site-NAME@FDNAME.socket, since systemd names
//     sockets per socket unit.
//   - site-NAME.service: the app, hardened by default, started through
//     `sitectl launch` so that the mode recorded under the state directory
//     decides what runs.
//   - site-NAME-reload.path and site-NAME-reload.service, when the site has a
//     reload_trigger: touching that file reloads the site.
//
// Every unit of a site that has a cgroup (sockets and services) goes into
// one of SliceGroups slices under sitectl.slice, chosen by the site's name
// (SliceName), not into system.slice: systemd 252 walks all the units of a
// slice for every unit it frees on daemon-reload, so thousands of units in
// one slice make every reload quadratic (docs/scale.md).
package units

import (
	"fmt"
	"hash/fnv"
	"math"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/sitectl/sitectl/internal/site"
)

// Defaults for Options.
const (
	DefaultSitectlPath = "/usr/bin/sitectl"
	DefaultStateDir    = "/var/lib/sitectl"
	DefaultSystemctl   = "/usr/bin/systemctl"
)

// Options says where things are on the host the units are for. The zero
// value means the packaged defaults.
type Options struct {
	SitectlPath string // the sitectl binary the units run
	ConfigDir   string // where site files live
	StateDir    string // where sitectl keeps mode state
}

func (o Options) withDefaults() Options {
	if o.SitectlPath == "" {
		o.SitectlPath = DefaultSitectlPath
	}
	if o.ConfigDir == "" {
		o.ConfigDir = site.DefaultConfigDir
	}
	if o.StateDir == "" {
		o.StateDir = DefaultStateDir
	}
	return o
}

// sitectl is the command line that runs a sitectl verb for a site, carrying
// the directories along when they are not the defaults.
func (o Options) sitectl(verb, name string) []string {
	argv := []string{o.SitectlPath}
	if o.ConfigDir != site.DefaultConfigDir {
		argv = append(argv, "--config-dir", o.ConfigDir)
	}
	if o.StateDir != DefaultStateDir {
		argv = append(argv, "--state-dir", o.StateDir)
	}
	return append(argv, verb, name)
}

// Unit is one rendered unit file.
type Unit struct {
	Name    string // e.g. site-karl.service
	Content string
	// WantedBy is the target whose .wants/ directory links this unit, so
	// it starts at boot; empty for units started on demand.
	WantedBy string
}

// Names of a site's units.
func ServiceName(siteName string) string { return "site-" + siteName + ".service" }

// SocketName is the socket unit for the listeners named fdName; the site's
// first listener name gets the plain name.
func SocketName(s *site.Site, fdName string) string {
	if names := s.ListenerNames(); len(names) == 0 || names[0] == fdName {
		return "site-" + s.Name + ".socket"
	}
	return "site-" + s.Name + "@" + fdName + ".socket"
}

// ReloadPathName and ReloadServiceName are the touch-to-reload units.
func ReloadPathName(siteName string) string    { return "site-" + siteName + "-reload.path" }
func ReloadServiceName(siteName string) string { return "site-" + siteName + "-reload.service" }

// Slice is the parent slice of every site's slice group.
const Slice = "sitectl.slice"

// SliceGroups is how many slices the sites are spread over. On daemon-reload
// systemd 252 does work proportional to the number of units in a unit's
// slice, and to the number of slices in the parent slice, for every unit it
// frees; with G groups and U site units that is about 2U/G + G per unit,
// least near G = sqrt(2U). Measured at 10,000 sites (20,000 units) with
// plain socket + service pairs, systemd's CPU per reload: 23 s with 16
// groups, 11.7 s with 64, 9.8 s with 256, 10.0 s with 1024; in one slice
// it was 190 s (docs/scale.md).
const SliceGroups = 256

// SliceName is the slice of a site's units: sitectl-XX.slice, a child of
// sitectl.slice, XX a hash of the site's name, so a site stays in the same
// slice whatever other sites come and go.
func SliceName(siteName string) string {
	h := fnv.New32a()
	h.Write([]byte(siteName))
	return fmt.Sprintf("sitectl-%02x.slice", h.Sum32()%SliceGroups)
}

// RuntimeDirectory holds an overlap site's notify, control and probe
// sockets, under /run.
func RuntimeDirectory(siteName string) string { return "site-" + siteName }

// ModeEnvFile is the environment file of the site's current mode, which the
// service reads through EnvironmentFile=.
func ModeEnvFile(stateDir, siteName string) string {
	return path.Join(stateDir, "sites", siteName, "mode.env")
}

// Render returns all of a site's units, sockets first.
func Render(s *site.Site, opts Options) []Unit {
	opts = opts.withDefaults()
	var out []Unit
	for _, name := range s.ListenerNames() {
		out = append(out, renderSocket(s, name))
	}
	out = append(out, renderService(s, opts))
	if s.ReloadTrigger != "" {
		out = append(out, renderReloadPath(s), renderReloadService(s, opts))
	}
	return out
}

// RenderSlice returns sitectl.slice, the parent of the sites' slice groups,
// so that `systemctl status sitectl.slice` names what it holds and an
// operator can give all sites together resource limits in a drop-in. The
// groups themselves (SliceName) need no file: systemd creates a slice that
// a unit names.
func RenderSlice() Unit {
	f := &file{header: []string{
		"Automatically generated by sitectl; do not edit.",
		"Every site's units are in one of the slices sitectl-XX.slice below it.",
	}}
	u := f.section("Unit")
	u.set("Description", "Sites managed by sitectl")
	u.set("Documentation", "man:sitectl(1)")
	return Unit{Name: Slice, Content: f.String()}
}

func header(s *site.Site) []string {
	return []string{
		"Automatically generated by sitectl from " + s.File + "; do not edit.",
		"Change the site file and run `systemctl daemon-reload`; drop-ins in",
		"/etc/systemd/system/" + ServiceName(s.Name) + ".d/ still apply.",
	}
}

func unitSection(f *file, s *site.Site, description string) *section {
	u := f.section("Unit")
	u.set("Description", escapeSpecifiers(description))
	u.set("Documentation", "man:sitectl(1)")
	u.set("SourcePath", s.File)
	return u
}

func describe(s *site.Site) string {
	if s.Description != "" {
		return s.Description
	}
	return "Site " + s.Name
}

func renderSocket(s *site.Site, fdName string) Unit {
	f := &file{header: header(s)}
	unitSection(f, s, fmt.Sprintf("%s: listener %s", describe(s), fdName))
	sock := f.section("Socket")
	var unix *site.Listener
	for i, l := range s.Listeners {
		if l.Name != fdName {
			continue
		}
		sock.set("ListenStream", l.Endpoint())
		if l.Kind == site.Unix {
			unix = &s.Listeners[i]
		}
	}
	sock.set("FileDescriptorName", fdName)
	sock.set("Service", ServiceName(s.Name))
	sock.set("Slice", SliceName(s.Name))
	if s.Backlog > 0 {
		sock.set("Backlog", fmt.Sprint(s.Backlog))
	}
	if unix != nil {
		sock.setIf("SocketUser", unix.Owner)
		sock.setIf("SocketGroup", unix.Group)
		sock.set("SocketMode", fmt.Sprintf("%04o", unix.Mode))
		sock.set("RemoveOnStop", "yes")
	}
	f.section("Install").set("WantedBy", "sockets.target")
	return Unit{Name: SocketName(s, fdName), Content: f.String(), WantedBy: "sockets.target"}
}

// Preset is what a server preset decides for the service.
type Preset struct {
	KillSignal string
	// Environment is set for the app unless the site's own environment
	// sets the same variable.
	Environment []site.EnvVar
}

// PresetFor returns the stop behaviour of a site's server preset.
//
//   - gunicorn: SIGTERM is its graceful shutdown; --graceful-timeout is set
//     to the drain timeout through GUNICORN_CMD_ARGS (command-line
//     arguments still win).
//   - uwsgi: uWSGI 2.0 treats SIGTERM as a brutal reload, so a master hook
//     turns SIGTERM into gracefully_kill_them_all, and the worker mercy is
//     the drain timeout. Both are passed as UWSGI_* environment variables,
//     which uWSGI reads as options.
//   - generic: SIGTERM; the app drains within SITE_DRAIN_TIMEOUT.
func PresetFor(s *site.Site) Preset {
	drain := fmt.Sprint(int64(math.Ceil(s.DrainTimeout.Seconds())))
	switch s.Server {
	case site.ServerGunicorn:
		return Preset{KillSignal: "SIGTERM", Environment: []site.EnvVar{
			{Name: "GUNICORN_CMD_ARGS", Value: "--graceful-timeout " + drain},
		}}
	case site.ServerUWSGI:
		return Preset{KillSignal: "SIGTERM", Environment: []site.EnvVar{
			{Name: "UWSGI_HOOK_MASTER_START", Value: "unix_signal:15 gracefully_kill_them_all"},
			{Name: "UWSGI_WORKER_RELOAD_MERCY", Value: drain},
		}}
	}
	return Preset{KillSignal: "SIGTERM"}
}

func renderService(s *site.Site, opts Options) Unit {
	f := &file{header: header(s)}
	u := unitSection(f, s, describe(s))
	var sockets []string
	for _, n := range s.ListenerNames() {
		sockets = append(sockets, SocketName(s, n))
	}
	u.set("Requires", strings.Join(sockets, " "))
	u.set("After", strings.Join(append(sockets, "network.target"), " "))
	// Deliberate restarts (deploys, mode switches) count as starts too, and
	// hitting the limit would also fail the socket units, closing the
	// listeners. A crash loop (RestartSec=2s, at most 5 starts in 10s) stays
	// under this limit and keeps retrying with the listeners held.
	u.set("StartLimitIntervalSec", "10s")
	u.set("StartLimitBurst", "30")

	svc := f.section("Service")
	overlap := s.Handoff == site.HandoffOverlap
	if s.Readiness == site.ReadinessNotify || overlap {
		// With overlap the launcher is the main process and says READY=1
		// once its first generation is ready.
		svc.set("Type", "notify")
		svc.set("NotifyAccess", "main")
	} else {
		svc.set("Type", "exec")
	}
	svc.set("Sockets", strings.Join(sockets, " "))
	// Written as root before each start when the site has no mode state yet,
	// so that a new site starts in its default mode.
	svc.set("ExecStartPre", "+"+commandLine(opts.sitectl("prepare", s.Name)))
	launch := opts.sitectl("launch", s.Name)
	if overlap {
		launch = append(launch, "--overlap")
	}
	svc.set("ExecStart", commandLine(append(append(launch, "--"), s.Exec...)))
	if overlap {
		// systemctl reload returns only once the new generation serves, or
		// failed to and the old one still does.
		svc.set("ExecReload", commandLine(append(opts.sitectl("launch", s.Name), "--reload")))
		svc.set("RuntimeDirectory", RuntimeDirectory(s.Name))
		svc.set("RuntimeDirectoryMode", "0700")
	}
	svc.setIf("WorkingDirectory", s.Workdir)
	svc.set("Slice", SliceName(s.Name))

	svc.set("Environment", environment("SITE", s.Name))
	svc.set("Environment", environment("SITE_DRAIN_TIMEOUT", systemdSpan(s.DrainTimeout)))
	for _, e := range PresetFor(s).Environment {
		if !slices.ContainsFunc(s.Environment, func(o site.EnvVar) bool { return o.Name == e.Name }) {
			svc.set("Environment", environment(e.Name, e.Value))
		}
	}
	for _, e := range s.Environment {
		svc.set("Environment", environment(e.Name, e.Value))
	}
	// Optional, because systemd reads it before every command it spawns,
	// ExecStartPre= included: prepare writes it for a new site, and
	// ExecStart= then reads it.
	svc.set("EnvironmentFile", "-"+ModeEnvFile(opts.StateDir, s.Name))

	if s.User == "" {
		svc.set("DynamicUser", "yes")
	} else {
		svc.set("User", s.User)
		svc.setIf("Group", s.Group)
	}

	svc.set("KillMode", "mixed")
	svc.set("KillSignal", PresetFor(s).KillSignal)
	svc.set("TimeoutStartSec", systemdSpan(s.StartTimeout))
	svc.set("TimeoutStopSec", systemdSpan(s.DrainTimeout+s.StopTimeout))
	svc.set("ExecStopPost", commandLine(opts.sitectl("cleanup", s.Name)))
	svc.set("Restart", "on-failure")
	svc.set("RestartSec", "2s")

	hardening(svc, s)
	return Unit{Name: ServiceName(s.Name), Content: f.String()}
}

// hardening is the default sandbox of every site. It keeps what a web app
// needs (its inherited sockets, outgoing TCP and unix sockets, its working
// directory read-only, a private /tmp) and takes away the rest. The score of
// `systemd-analyze security` for it is checked by the test suite.
func hardening(svc *section, s *site.Site) {
	for _, kv := range [][2]string{
		{"NoNewPrivileges", "yes"},
		{"CapabilityBoundingSet", ""},
		{"AmbientCapabilities", ""},
		{"PrivateUsers", "yes"},
		{"ProtectSystem", "strict"},
		{"ProtectHome", "yes"},
		{"PrivateTmp", "yes"},
		{"PrivateDevices", "yes"},
		{"PrivateIPC", "yes"},
		{"PrivateMounts", "yes"},
		{"DevicePolicy", "closed"},
		{"ProtectKernelTunables", "yes"},
		{"ProtectKernelModules", "yes"},
		{"ProtectKernelLogs", "yes"},
		{"ProtectControlGroups", "yes"},
		{"ProtectClock", "yes"},
		{"ProtectHostname", "yes"},
		{"ProtectProc", "invisible"},
		{"ProcSubset", "pid"},
		{"RestrictNamespaces", "yes"},
		{"RestrictRealtime", "yes"},
		{"RestrictSUIDSGID", "yes"},
		{"RemoveIPC", "yes"},
		{"LockPersonality", "yes"},
		{"KeyringMode", "private"},
		{"UMask", "0027"},
		{"RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"},
		{"SystemCallArchitectures", "native"},
		{"SystemCallFilter", "@system-service"},
		{"SystemCallFilter", "~@privileged @resources"},
		// Servers such as gunicorn call setuid() with their own ids in each
		// worker; without capabilities that cannot change identity.
		{"SystemCallFilter", "@setuid"},
		{"SystemCallErrorNumber", "EPERM"},
	} {
		svc.set(kv[0], kv[1])
	}
	if s.Handoff == site.HandoffOverlap {
		// The launcher lowers the priority of a draining generation
		// (launcher.DrainPriority); without RLIMIT_NICE nothing can
		// raise one.
		svc.set("SystemCallFilter", "setpriority")
	}
	if s.Hardening.AllowWriteExecute {
		svc.set("MemoryDenyWriteExecute", "no")
	} else {
		svc.set("MemoryDenyWriteExecute", "yes")
	}
	if len(s.Hardening.WritablePaths) > 0 {
		svc.set("ReadWritePaths", strings.Join(s.Hardening.WritablePaths, " "))
	}
}

func renderReloadPath(s *site.Site) Unit {
	f := &file{header: header(s)}
	unitSection(f, s, fmt.Sprintf("%s: reload when %s is touched", describe(s), s.ReloadTrigger))
	p := f.section("Path")
	p.set("PathChanged", s.ReloadTrigger)
	p.set("Unit", ReloadServiceName(s.Name))
	f.section("Install").set("WantedBy", "paths.target")
	return Unit{Name: ReloadPathName(s.Name), Content: f.String(), WantedBy: "paths.target"}
}

func renderReloadService(s *site.Site, opts Options) Unit {
	f := &file{header: header(s)}
	u := unitSection(f, s, describe(s)+": reload")
	// Touches are rate-limited by coalescing: this oneshot runs one reload
	// at a time, and triggers meanwhile queue at most one more. systemd's
	// default start limit (5 in 10 s) would instead fail this unit after a
	// burst of touches, and with it the path unit: touch-to-reload would
	// stop working until someone reset it.
	u.set("StartLimitIntervalSec", "0")
	svc := f.section("Service")
	svc.set("Type", "oneshot")
	// sitectl touched runs systemctl reload-or-restart, again while the
	// trigger was touched meanwhile: the path unit does not watch while
	// this unit runs.
	svc.set("ExecStart", commandLine(opts.sitectl("touched", s.Name)))
	svc.set("Slice", SliceName(s.Name))
	return Unit{Name: ReloadServiceName(s.Name), Content: f.String()}
}

// systemdSpan writes a duration the way systemd reads it: whole seconds as
// "30s", anything finer in milliseconds.
func systemdSpan(d time.Duration) string {
	if d%time.Second == 0 {
		return fmt.Sprintf("%ds", d/time.Second)
	}
	return fmt.Sprintf("%dms", d/time.Millisecond)
}
