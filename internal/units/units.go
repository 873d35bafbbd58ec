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
//     reload_trigger: touching that file reloads the site. The main socket
//     wants the path unit and the path unit is part of it, so the trigger
//     is armed exactly while the site is in service.
//
// Every unit of a site that has a cgroup (sockets and services) goes into
// one of SliceGroups slices under sitectl.slice, chosen by the site's name
// (SliceName), not into system.slice: systemd 252 walks all the units of a
// slice for every unit it frees on daemon-reload, so thousands of units in
// one slice make every reload quadratic (docs/scale.md).
package units

import (
	"bytes"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"maps"
	"math"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sitectl/sitectl/internal/gunicorn"
	"github.com/sitectl/sitectl/internal/paths"
	"github.com/sitectl/sitectl/internal/site"
)

// Defaults for Options.
const (
	defaultSitectlPath = "/usr/bin/sitectl"
	DefaultSystemctl   = "/usr/bin/systemctl"
)

// Options says where things are on the host the units are for. The zero
// value means the packaged defaults.
type Options struct {
	SitectlPath string     // the sitectl binary the units run
	Dirs        paths.Dirs // where site files and mode state live

	header []string // the site's header, once Render has made it for all its units
}

// headerOf is header(s, o), made once per site by Render.
func (o Options) headerOf(s *site.Site) []string {
	if o.header != nil {
		return o.header
	}
	return header(s, o)
}

func (o Options) withDefaults() Options {
	if o.SitectlPath == "" {
		o.SitectlPath = defaultSitectlPath
	}
	if o.Dirs.Config == "" {
		o.Dirs.Config = paths.DefaultConfigDir
	}
	if o.Dirs.State == "" {
		o.Dirs.State = paths.DefaultStateDir
	}
	return o
}

// sitectl is the command line that runs a sitectl verb for a site, carrying
// the directories along when they are not the defaults.
func (o Options) sitectl(verb, name string) []string {
	argv := append([]string{o.SitectlPath}, o.Dirs.Flags()...)
	return append(argv, verb, name)
}

// Unit is one rendered unit file.
type Unit struct {
	Name    string // e.g. site-karl.service
	Content string
	// WantedBy is the target whose .wants/ directory links this unit, so
	// it starts at boot; empty for units started on demand.
	WantedBy string

	src *file // what Content was built from, for Check
}

// ServiceName is the service unit of a site.
func ServiceName(siteName string) string { return "site-" + siteName + ".service" }

// socketName is the socket unit for the listeners named fdName; the site's
// first listener name gets the plain name.
func socketName(s *site.Site, fdName string) string {
	if names := s.ListenerNames(); len(names) == 0 || names[0] == fdName {
		return MainSocketName(s.Name)
	}
	return "site-" + s.Name + "@" + fdName + ".socket"
}

// SyslogIdentifier is the journal's identifier of what a site's service
// writes to standard output and error (the app's own lines among them):
// journalctl -t site-NAME finds them.
func SyslogIdentifier(siteName string) string { return "site-" + siteName }

// MainSocketName is the socket unit of a site's first listener name, the
// one that puts the site in service (it wants the reload path unit).
func MainSocketName(siteName string) string { return "site-" + siteName + ".socket" }

// SocketNames are the socket units of a site, the main one first.
func SocketNames(s *site.Site) []string {
	var out []string
	for _, n := range s.ListenerNames() {
		out = append(out, socketName(s, n))
	}
	if len(out) == 0 {
		out = append(out, "site-"+s.Name+".socket")
	}
	return out
}

// SocketNameOf is the socket unit that holds listener l of site s.
func SocketNameOf(s *site.Site, l site.Listener) string { return socketName(s, l.Name) }

// ReloadPathName and ReloadServiceName are the touch-to-reload units of a
// site that has a reload_trigger.
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

// UnitPatterns match every unit a site NAME can have, whatever its file
// says (or said: the file may be gone), and no unit of another site: a
// site name cannot contain "@" or ".", nor end in "-reload".
func UnitPatterns(siteName string) []string {
	return []string{"site-" + siteName + ".*", "site-" + siteName + "@*", "site-" + siteName + "-reload.*"}
}

// Names are the names of the units Render writes for site s, in its order.
func Names(s *site.Site) []string {
	out := SocketNames(s)
	out = append(out, ServiceName(s.Name))
	if s.ReloadTrigger != "" {
		out = append(out, ReloadPathName(s.Name), ReloadServiceName(s.Name))
	}
	return out
}

// Gone are the units that site was had and site now has not: those of a
// named listener removed from the file, or of its reload trigger. Once
// systemd has loaded the site's units afresh it knows no file for them
// ("not-found"), but it keeps any that is active running as it was.
func Gone(was, now *site.Site) []string {
	keep := Names(now)
	var out []string
	for _, n := range Names(was) {
		if !slices.Contains(keep, n) {
			out = append(out, n)
		}
	}
	return out
}

// Render returns all of a site's units, sockets first.
func Render(s *site.Site, opts Options) []Unit {
	opts = opts.withDefaults()
	opts.header = header(s, opts)
	var out []Unit
	for _, name := range s.ListenerNames() {
		out = append(out, renderSocket(s, name, opts))
	}
	out = append(out, renderService(s, opts))
	if s.ReloadTrigger != "" {
		out = append(out, renderReloadPath(s, opts), renderReloadService(s, opts))
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
	u.text("Description", "Sites managed by sitectl")
	u.text("Documentation", "man:sitectl(1)")
	return Unit{Name: Slice, Content: f.String(), src: f}
}

// Check renders a site's units and reads each back as systemd 252 would
// (package unitfile): every line within systemd's limit, every value read
// exactly as meant, no value spilling into another line or swallowing the
// next. The site parser refuses what cannot be written, so for a parsed
// site this fails only when the options (a --config-dir or --state-dir
// that a unit cannot carry) or a bug make a unit say something else.
// sitectl check, units render and the generator skip a site that fails it.
func Check(s *site.Site, opts Options) error {
	_, err := RenderChecked(s, opts)
	return err
}

// RenderChecked is Render and Check in one: the units of a site whose units
// say what its site file says, or the error of Check.
func RenderChecked(s *site.Site, opts Options) ([]Unit, error) {
	if err := checkPrivate(s, opts.withDefaults().Dirs); err != nil {
		return nil, err
	}
	us := Render(s, opts)
	for i, u := range us {
		if err := u.src.check(u.Content); err != nil {
			return nil, fmt.Errorf("%s would not say what the site file says: %w", u.Name, err)
		}
		// Checked: what the unit was built from is garbage now, rather
		// than live until the generator has written 10,000 sites.
		us[i].src = nil
	}
	return us, nil
}

// checkPrivate refuses a site whose app would need a file under the
// directories its service hides from it (paths.Dirs.Private): it would not
// find it.
func checkPrivate(s *site.Site, dirs paths.Dirs) error {
	needs := map[string]string{"exec": s.Exec[0], "workdir": s.Workdir}
	for _, m := range s.Modes {
		needs["mode "+m.Name+" page"] = m.Page
		needs["mode "+m.Name+" static_dir"] = m.StaticDir
	}
	for i, p := range s.Hardening.WritablePaths {
		needs[fmt.Sprintf("writable_paths[%d]", i)] = p
	}
	for _, what := range slices.Sorted(maps.Keys(needs)) {
		p := needs[what]
		for _, private := range dirs.Private() {
			if p != "" && (p == private || strings.HasPrefix(p, private+"/")) {
				return fmt.Errorf("%s %s is under %s, which the site's service hides from the app: move it elsewhere", what, p, private)
			}
		}
	}
	return nil
}

// header is the comment at the top of every unit of a site. Units from
// the last good copy of a site file (see paths.Dirs.LastGoodFile) say so
// in their first line, which names the copy as SourcePath= does too.
func header(s *site.Site, opts Options) []string {
	if FromLastGood(s, opts) {
		file := opts.Dirs.SiteFile(s.Name)
		h := []string{
			"Automatically generated by sitectl from " + s.File + ", the last good version",
			"of " + file + ", which has mistakes or failed to start (`sitectl status " + s.Name + "`",
			"says which): the version the site last ran. Fix the site file (`sitectl check",
			file + "` shows its mistakes) and run `systemctl daemon-reload`; do not edit.",
		}
		if s.FileDigest != "" {
			h = append(h, standInPrefix+file+standInDigest+s.FileDigest)
		}
		return h
	}
	h := []string{
		"Automatically generated by sitectl from " + s.File + "; do not edit.",
		"Change the site file and run `systemctl daemon-reload`; drop-ins in",
		"/etc/systemd/system/" + ServiceName(s.Name) + ".d/ still apply.",
	}
	if s.Digest != "" {
		h = append(h, stampPrefix+s.Digest)
	}
	return h
}

// stampPrefix starts the header line that names the content of the site
// file a unit was generated from (site.Digest of its bytes). systemd tells
// a unit older than its SourcePath= only by the file's modification time,
// and only when that time is later than the one it loaded: a file put in
// place with its old time kept (cp -p, rsync -a, tar x) goes unseen. The
// stamp lets sitectl tell by the content (ParseStamp). Units from the last
// good copy carry none: their site file is not what they say.
const stampPrefix = "Site file sha256: "

// standInPrefix and standInDigest make the header line of units from a
// last good copy that names the site file they stand in for and the
// digest of its content then (ParseStandIn). Their SourcePath= is the
// copy, which does not change when the site file is fixed: without the
// line, neither systemd nor sitectl would see that the units are older
// than the file.
const (
	standInPrefix = "Stands in for the site file "
	standInDigest = ", sha256: "
)

// StampWithin is how much of a unit file ParseStamp needs at most: the
// header comes first, and is a few hundred bytes even for a site file
// path of the longest.
const StampWithin = 8 << 10

// ParseStamp finds the stamp in the start of a unit file (its first
// StampWithin bytes do): the digest of the site file the generator
// rendered it from (site.Digest), and whether there is one. Units written
// by a sitectl before stamps, units from a last good copy and units not
// sitectl's have none.
func ParseStamp(head []byte) (digest string, ok bool) {
	rest, found := headerLine(head, stampPrefix)
	if !found || !isDigest(rest) {
		return "", false
	}
	return string(rest), true
}

// headerLine is the rest of the first line of the comment header at the
// start of a unit file that begins with "# " and prefix.
func headerLine(head []byte, prefix string) ([]byte, bool) {
	for len(head) > 0 {
		var line []byte
		line, head, _ = bytes.Cut(head, []byte("\n"))
		if len(line) == 0 || line[0] != '#' {
			if len(bytes.TrimSpace(line)) == 0 {
				continue
			}
			return nil, false // past the header
		}
		if rest, found := bytes.CutPrefix(line, []byte("# "+prefix)); found {
			return rest, true
		}
	}
	return nil, false
}

// ParseStandIn finds, in the start of a unit file generated from a last
// good copy, the site file the copy stands in for and the digest of that
// file's content when the units were generated (site.Digest), and whether
// there are both.
func ParseStandIn(head []byte) (file, digest string, ok bool) {
	rest, found := headerLine(head, standInPrefix)
	if !found {
		return "", "", false
	}
	i := bytes.LastIndex(rest, []byte(standInDigest))
	if i <= 0 || !isDigest(rest[i+len(standInDigest):]) {
		return "", "", false
	}
	return string(rest[:i]), string(rest[i+len(standInDigest):]), true
}

// isDigest tells whether b is a SHA-256 in lowercase hex.
func isDigest(b []byte) bool {
	if len(b) != 2*sha256Size {
		return false
	}
	for _, c := range b {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

const sha256Size = 32

// FromLastGood tells whether site s was read from the last good copy of
// its site file rather than from the site file itself.
func FromLastGood(s *site.Site, opts Options) bool {
	opts = opts.withDefaults()
	return s.File == opts.Dirs.LastGoodFile(s.Name)
}

func unitSection(f *file, s *site.Site, description string) *section {
	u := f.section("Unit")
	u.text("Description", description)
	u.text("Documentation", "man:sitectl(1)")
	u.text("SourcePath", s.File)
	return u
}

func describe(s *site.Site) string {
	if s.Description != "" {
		return s.Description
	}
	return "Site " + s.Name
}

func renderSocket(s *site.Site, fdName string, opts Options) Unit {
	f := &file{header: opts.headerOf(s)}
	u := unitSection(f, s, fmt.Sprintf("%s: listener %s", describe(s), fdName))
	if s.ReloadTrigger != "" && socketName(s, fdName) == MainSocketName(s.Name) {
		// The trigger is armed whenever the site is in service: at boot
		// (sockets.target wants this socket), and on any start of it
		// after a daemon-reload, when sockets.target and paths.target
		// are long active and start nothing.
		u.text("Wants", ReloadPathName(s.Name))
	}
	sock := f.section("Socket")
	var unix *site.Listener
	for i, l := range s.Listeners {
		if l.Name != fdName {
			continue
		}
		sock.text("ListenStream", l.Endpoint())
		if s.KeepPrevious > 0 && l.Kind == site.TCP {
			// The warm standby: two sockets of one reuseport group,
			// one per generation, passed in the order listed
			// (docs/warm-rollback.md).
			sock.text("ListenStream", l.Endpoint())
		}
		if l.Kind == site.Unix {
			unix = &s.Listeners[i]
		}
	}
	if dualStack(s, fdName) {
		// The listener check (the site package's overlaps) counts [::] as taking the
		// port on every IPv4 address too; make it so whatever the host's
		// net.ipv6.bindv6only says.
		sock.text("BindIPv6Only", "both")
	}
	sock.text("FileDescriptorName", fdName)
	sock.text("Service", ServiceName(s.Name))
	sock.text("Slice", SliceName(s.Name))
	if s.Backlog > 0 {
		sock.text("Backlog", fmt.Sprint(s.Backlog))
	}
	if s.KeepPrevious > 0 {
		sock.text("ReusePort", "yes")
	}
	if unix != nil {
		sock.textIf("SocketUser", unix.Owner)
		sock.textIf("SocketGroup", unix.Group)
		sock.text("SocketMode", fmt.Sprintf("%04o", unix.Mode))
		// No RemoveOnStop=: systemd would unlink the path as root, through
		// whatever its directories are then; a directory someone swapped
		// for a link would make it remove another site's socket. A socket
		// file left behind is harmless: systemd binds over it on the next
		// start (it unlinks a path that is in use and binds again).
	}
	f.section("Install").text("WantedBy", "sockets.target")
	return Unit{Name: socketName(s, fdName), Content: f.String(), WantedBy: "sockets.target", src: f}
}

// dualStack reports whether the socket unit of fdName has an IPv6 wildcard.
func dualStack(s *site.Site, fdName string) bool {
	for _, l := range s.Listeners {
		if l.Name == fdName && l.Kind == site.TCP {
			if ap := netip.MustParseAddrPort(l.Address); ap.Addr().Is6() && ap.Addr().IsUnspecified() {
				return true
			}
		}
	}
	return false
}

// preset is what a server preset decides for the service.
type preset struct {
	KillSignal string
	// Environment is set for the app unless the site's own environment
	// sets the same variable.
	Environment []site.EnvVar
}

// presetFor returns the stop behaviour of a site's server preset.
//
//   - gunicorn: SIGTERM is its graceful shutdown; --graceful-timeout is set
//     to the drain timeout through GUNICORN_CMD_ARGS (command-line
//     arguments still win), and with fast_exit sitectl's config file
//     (package gunicorn), which sitectl prepare writes before each start.
//   - uwsgi: uWSGI 2.0 treats SIGTERM as a brutal reload, so a master hook
//     turns SIGTERM into gracefully_kill_them_all, and the worker mercy is
//     the drain timeout. Both are passed as UWSGI_* environment variables,
//     which uWSGI reads as options.
//   - generic: SIGTERM; the app drains within SITE_DRAIN_TIMEOUT.
func presetFor(s *site.Site) preset {
	drain := fmt.Sprint(int64(math.Ceil(s.DrainTimeout.Seconds())))
	switch s.Server {
	case site.ServerGunicorn:
		args := "--graceful-timeout " + drain
		if s.FastExit {
			args += " -c " + gunicorn.Path
		}
		return preset{KillSignal: "SIGTERM", Environment: []site.EnvVar{
			{Name: "GUNICORN_CMD_ARGS", Value: args},
		}}
	case site.ServerUWSGI:
		return preset{KillSignal: "SIGTERM", Environment: []site.EnvVar{
			{Name: "UWSGI_HOOK_MASTER_START", Value: "unix_signal:15 gracefully_kill_them_all"},
			{Name: "UWSGI_WORKER_RELOAD_MERCY", Value: drain},
		}}
	}
	return preset{KillSignal: "SIGTERM"}
}

func renderService(s *site.Site, opts Options) Unit {
	f := &file{header: opts.headerOf(s)}
	u := unitSection(f, s, describe(s))
	var sockets []string
	for _, n := range s.ListenerNames() {
		sockets = append(sockets, socketName(s, n))
	}
	u.list("Requires", sockets...)
	u.list("After", append(sockets, "network.target")...)
	// Deliberate restarts (deploys, mode switches) count as starts too, and
	// hitting the limit would also fail the socket units, closing the
	// listeners. A crash loop (RestartSec=2s, at most 5 starts in 10s) stays
	// under this limit and keeps retrying with the listeners held.
	u.text("StartLimitIntervalSec", "10s")
	u.text("StartLimitBurst", "30")

	svc := f.section("Service")
	// About 55 entries and one per variable and credential: growing the
	// slice from nothing cost a tenth of the generator's time at 10,000
	// sites, and a slice much larger than needed costs page faults.
	svc.entries = make([]entry, 0, 64+len(s.Environment)+len(s.Credentials))
	overlap := s.Handoff == site.HandoffOverlap
	if s.Readiness == site.ReadinessNotify || overlap {
		// With overlap the launcher is the main process and says READY=1
		// once its first generation is ready.
		svc.text("Type", "notify")
		svc.text("NotifyAccess", "main")
	} else {
		svc.text("Type", "exec")
	}
	svc.list("Sockets", sockets...)
	// Written as root before each start when the site has no mode state yet,
	// so that a new site starts in its default mode.
	svc.command("ExecStartPre", "+", opts.sitectl("prepare", s.Name))
	svc.command("ExecStart", "", append(append(launchArgv(s, opts), "--"), s.Exec...))
	if overlap {
		// systemctl reload returns only once the new generation serves, or
		// failed to and the old one still does. Run as root (+), since only
		// root reads the mode file: it sends the recorded mode to the
		// launcher.
		svc.command("ExecReload", "+", append(opts.sitectl("launch", s.Name), "--reload"))
		svc.text("RuntimeDirectory", paths.RuntimeDirectory(s.Name))
		svc.text("RuntimeDirectoryMode", "0700")
	}
	svc.textIf("WorkingDirectory", s.Workdir)
	// Without it, every line is tagged with the ExecStart= program's name:
	// sitectl, for every site.
	svc.text("SyslogIdentifier", SyslogIdentifier(s.Name))
	svc.text("Slice", SliceName(s.Name))

	svc.env("SITE", s.Name)
	svc.env("SITE_DRAIN_TIMEOUT", systemdSpan(s.DrainTimeout))
	var env []site.EnvVar
	for _, e := range presetFor(s).Environment {
		if !slices.ContainsFunc(s.Environment, func(o site.EnvVar) bool { return o.Name == e.Name }) {
			env = append(env, e)
		}
	}
	env = append(env, s.Environment...)
	for _, e := range env {
		svc.env(e.Name, e.Value)
	}
	if s.Handoff == site.HandoffOverlap {
		// The launcher's environment has the start mode's value of
		// these; a generation of another mode gets the service's.
		for _, e := range site.ModeShadowed(s, env) {
			svc.env(site.BaseValuePrefix+e.Name, e.Value)
		}
	}
	// Optional, because systemd reads it before every command it spawns,
	// ExecStartPre= included: prepare writes it for a new site, and
	// ExecStart= then reads it.
	svc.text("EnvironmentFile", "-"+opts.Dirs.ModeEnvFile(s.Name))

	if s.User == "" {
		svc.text("DynamicUser", "yes")
	} else {
		svc.text("User", s.User)
		svc.textIf("Group", s.Group)
	}

	svc.text("KillMode", "mixed")
	svc.text("KillSignal", presetFor(s).KillSignal)
	start := s.StartTimeout
	if s.Handoff == site.HandoffOverlap {
		// TimeoutStartSec= bounds ExecReload= too. The launcher's own
		// start deadline begins after systemd's, and the takeover (the
		// old generation's workers parked, the flip, the answer) comes
		// after it: systemd must not fail a reload the launcher then
		// completes.
		start += handoverMargin
	}
	svc.text("TimeoutStartSec", systemdSpan(start))
	svc.text("TimeoutStopSec", systemdSpan(s.DrainTimeout+s.StopTimeout))
	svc.command("ExecStopPost", "", cleanupArgv(s, opts))
	// As root, after the cleanup: a run that ended cleanly marks the copy
	// of the site file it started from as one that ran, the version a
	// later rollback goes back to (modes.Store.PromoteRan). "-": it never
	// fails a stop.
	svc.script("ExecStopPost", "-+", ranCleanly, opts.Dirs.RanCleanlyFile(s.Name))
	svc.text("Restart", "on-failure")
	svc.text("RestartSec", "2s")
	// On hosts with the cgroup cpu controller: every site gets the same
	// share of a contended CPU however many processes it runs, so the
	// second generation of an overlapped handover comes out of its own
	// site's share, not its neighbours'; while the system boots or shuts
	// down, sites yield to the services the boot waits for. Setting a
	// weight at all is what turns the controller on for the unit.
	svc.text("CPUWeight", strconv.Itoa(CPUWeight))
	svc.text("StartupCPUWeight", strconv.Itoa(StartupCPUWeight))

	for _, c := range s.Credentials {
		svc.text("LoadCredential", c.Name+":"+c.Path)
	}
	hardening(svc, s)
	// The app sees neither the site files nor the state: other sites'
	// secrets may be in them. What it needs of them comes in its
	// environment and on its command lines.
	private := opts.Dirs.Private()
	for i, p := range private {
		private[i] = "-" + p
	}
	svc.list("InaccessiblePaths", private...)
	if s.Egress != nil {
		svc.text("IPAddressDeny", "any")
		if len(s.Egress.Allow) > 0 {
			svc.list("IPAddressAllow", s.Egress.Allow...)
		}
	}
	return Unit{Name: ServiceName(s.Name), Content: f.String(), src: f}
}

// launchArgv is ExecStart= up to the "--" before the app's command line.
// An overlap site's launcher is told on its command line what it needs of
// the site file, which it cannot read.
func launchArgv(s *site.Site, opts Options) []string {
	argv := opts.sitectl("launch", s.Name)
	if s.Handoff != site.HandoffOverlap {
		return argv
	}
	// The launcher stops a draining generation that outlives its drain
	// timeout itself: systemd stops only whole units.
	argv = append(argv, "--overlap", "--drain-timeout", systemdSpan(s.DrainTimeout), "--stop-timeout", systemdSpan(s.StopTimeout),
		"--start-timeout", systemdSpan(s.StartTimeout), "--readiness", string(s.Readiness))
	if s.Workdir != "" {
		argv = append(argv, "--workdir", s.Workdir)
	}
	if p := s.Probe; p != nil {
		argv = append(argv, "--probe-path", p.Path, "--probe-status", fmt.Sprint(p.Status), "--probe-timeout", systemdSpan(p.Timeout))
	}
	if s.KeepPrevious > 0 {
		argv = append(argv, "--keep-previous", systemdSpan(s.KeepPrevious))
	}
	if s.StartPriority == site.StartNormal {
		argv = append(argv, "--start-priority", string(site.StartNormal))
	}
	return argv
}

// ranCleanly is the ExecStopPost= that leaves its argument, a mark
// (paths.Dirs.RanCleanlyFile), when the service's run ended cleanly
// (SERVICE_RESULT=success): a shell's test and redirection, the path an
// argument, never part of the script.
var ranCleanly = newScriptLead("/bin/sh", "-c", `[ "$SERVICE_RESULT" != success ] || : > "$1"`, "sh")

// cleanupArgv is ExecStopPost=: sitectl cleanup with the site's cleanup
// timeout and hooks, each hook's command line as a JSON array.
func cleanupArgv(s *site.Site, opts Options) []string {
	// systemd bounds ExecStopPost= with TimeoutStopSec= too.
	argv := append(opts.sitectl("cleanup", s.Name), "--timeout", systemdSpan(s.CleanupTimeout), "--budget", systemdSpan(s.DrainTimeout+s.StopTimeout))
	for _, h := range s.Cleanup {
		hook, _ := json.Marshal(h) // strings always encode
		argv = append(argv, "--hook", string(hook))
	}
	return argv
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
		svc.text(kv[0], kv[1])
	}
	if s.Handoff == site.HandoffOverlap {
		// The launcher lowers the priority of a draining generation
		// (launcher.drainPriority), and a starting one starts under
		// at idle priority (start_priority); without RLIMIT_NICE or
		// CAP_SYS_NICE nothing in the unit can raise one: root's side of
		// ExecReload= promotes a generation.
		svc.text("SystemCallFilter", "setpriority sched_setattr")
	}
	if s.Hardening.AllowWriteExecute {
		svc.text("MemoryDenyWriteExecute", "no")
	} else {
		svc.text("MemoryDenyWriteExecute", "yes")
	}
	if len(s.Hardening.WritablePaths) > 0 {
		svc.list("ReadWritePaths", s.Hardening.WritablePaths...)
	}
}

func renderReloadPath(s *site.Site, opts Options) Unit {
	f := &file{header: opts.headerOf(s)}
	u := unitSection(f, s, fmt.Sprintf("%s: reload when %s is touched", describe(s), s.ReloadTrigger))
	// Started by the site's main socket (its Wants=), stopped and
	// restarted with it: a touch must not bring back a site taken out of
	// service, since reload-or-restart would start its service, and
	// the service its sockets.
	u.text("PartOf", MainSocketName(s.Name))
	p := f.section("Path")
	p.text("PathChanged", s.ReloadTrigger)
	p.text("Unit", ReloadServiceName(s.Name))
	return Unit{Name: ReloadPathName(s.Name), Content: f.String(), src: f}
}

func renderReloadService(s *site.Site, opts Options) Unit {
	f := &file{header: opts.headerOf(s)}
	u := unitSection(f, s, describe(s)+": reload")
	// Touches are rate-limited by coalescing: this oneshot runs one reload
	// at a time, and triggers meanwhile queue at most one more. systemd's
	// default start limit (5 in 10 s) would instead fail this unit after a
	// burst of touches, and with it the path unit: touch-to-reload would
	// stop working until someone reset it.
	u.text("StartLimitIntervalSec", "0")
	svc := f.section("Service")
	svc.text("Type", "oneshot")
	// sitectl touched runs systemctl reload-or-restart, again while the
	// trigger was touched meanwhile: the path unit does not watch while
	// this unit runs.
	svc.command("ExecStart", "", opts.sitectl("touched", s.Name))
	// A oneshot has no start timeout unless given one: a reload job that
	// never ends would keep this unit running, and the path unit from
	// watching, for good. sitectl touched bounds its wait for the site's
	// lock and each of its reloads itself and says why it gave up; this is
	// a bit above all of them, the last resort.
	svc.text("TimeoutStartSec", systemdSpan((TouchedRounds+1)*TouchedRoundTimeout(s)+touchedMargin))
	svc.text("Slice", SliceName(s.Name))
	for _, kv := range reloadHardening {
		svc.text(kv[0], kv[1])
	}
	return Unit{Name: ReloadServiceName(s.Name), Content: f.String(), src: f}
}

// TouchedRounds bounds the reloads of one run of sitectl touched: a file
// touched without pause reloads the site this often, then the path unit
// takes over.
const TouchedRounds = 5

// TouchedRoundTimeout bounds one reload of sitectl touched, and its wait
// for a change of the site under way to end: systemctl
// reload-or-restart of the site's service, which for a restart is a stop
// (TimeoutStopSec=: the drain and the grace after it), the cleanup after
// it and a start (TimeoutStartSec=), with touchedMargin for a job queued
// behind another (a sitectl mode under way, say).
func TouchedRoundTimeout(s *site.Site) time.Duration {
	return s.DrainTimeout + s.StopTimeout + s.CleanupTimeout + s.StartTimeout + touchedMargin
}

// handoverMargin is what an overlap site's TimeoutStartSec= adds to its
// start_timeout, the launcher's own deadline for a new generation.
const handoverMargin = 10 * time.Second

// touchedMargin is the slack of sitectl touched's bounds.
const touchedMargin = time.Minute

// reloadHardening is the sandbox of site-NAME-reload.service. It runs
// sitectl touched as root for one reason: root may ask systemd over its
// private socket (/run/systemd/private) to reload-or-restart a unit without
// polkit. That takes no capability at all, only AF_UNIX and the file system
// read-only: it reads the site file and the trigger's modification time
// (ProtectHome=read-only, so a trigger under /home still counts), and
// writes nothing. PrivateUsers= keeps root root (the private socket checks
// the peer's uid) while leaving it no capability outside the unit.
// `systemd-analyze security` scores it 0.6 (test/integration checks <= 1.5).
var reloadHardening = [][2]string{
	{"NoNewPrivileges", "yes"},
	{"CapabilityBoundingSet", ""},
	{"AmbientCapabilities", ""},
	{"PrivateUsers", "yes"},
	{"ProtectSystem", "strict"},
	{"ProtectHome", "read-only"},
	{"PrivateTmp", "yes"},
	{"PrivateDevices", "yes"},
	{"PrivateNetwork", "yes"},
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
	{"MemoryDenyWriteExecute", "yes"},
	{"KeyringMode", "private"},
	{"UMask", "0077"},
	{"RestrictAddressFamilies", "AF_UNIX"},
	{"IPAddressDeny", "any"},
	{"SystemCallArchitectures", "native"},
	{"SystemCallFilter", "@system-service"},
	{"SystemCallFilter", "~@privileged @resources"},
	{"SystemCallErrorNumber", "EPERM"},
}

// systemdSpan writes a duration the way systemd reads it: whole seconds as
// "30s", anything finer in milliseconds.
func systemdSpan(d time.Duration) string {
	if d%time.Second == 0 {
		return fmt.Sprintf("%ds", d/time.Second)
	}
	return fmt.Sprintf("%dms", d/time.Millisecond)
}

// The CPU weights of every site's service (systemd's default is 100): see
// README.md, "The generated units". A drop-in overrides them.
const (
	CPUWeight        = 100
	StartupCPUWeight = 25
)
