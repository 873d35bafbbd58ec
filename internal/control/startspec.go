package control

import (
	"context"
	"fmt"
	"slices"
	"strings"

	sd "github.com/coreos/go-systemd/v22/dbus"
	"github.com/godbus/dbus/v5"
)

// StartSpec is what systemd starts a service with, as it has the unit
// loaded now: a restart runs this, whatever the files on disk say.
type StartSpec struct {
	// Argv is ExecStart='s command line (the first command when there are
	// several), or nil when the unit has none.
	Argv []string
	// User and Group are User= and Group= ("" when not set); with
	// DynamicUser= systemd makes the user up at each start.
	User, Group string
	DynamicUser bool
	// SupplementaryGroups are SupplementaryGroups=.
	SupplementaryGroups []string
	// WorkingDirectory is WorkingDirectory= ("" when not set, "~" for the
	// user's home); WorkingDirectoryOptional is its "-" prefix: a
	// directory that does not exist is then no failure.
	WorkingDirectory         string
	WorkingDirectoryOptional bool
	// Credentials are the paths of LoadCredential= (a relative one names
	// a credential systemd itself was given).
	Credentials []string
	// NeedDaemonReload: the unit's file, or the site file it was generated
	// from (SourcePath=), changed since systemd loaded it.
	NeedDaemonReload bool
	// LoadState is the unit's: "masked" is one systemd refuses to start.
	LoadState string
	// Fragment is the unit file systemd loaded (FragmentPath=): the
	// generator's, or a copy that shadows it (/etc/systemd/system, as
	// `systemctl edit --full` writes); DropIns are the drop-ins applied
	// to it (DropInPaths=), set-property's among them.
	Fragment string
	DropIns  []string
	// Type is the service's Type= ("notify", "exec", "simple", ...):
	// when systemd counts a start as done.
	Type string
	// Paths are the paths the unit's mount namespace is built with that
	// must exist: those of ReadWritePaths=, ReadOnlyPaths= and
	// InaccessiblePaths= without a "-" prefix, and the sources of
	// BindPaths= and BindReadOnlyPaths= not marked so.
	Paths []RequiredPath
	// EnvironmentFiles are those of EnvironmentFile= without a "-"
	// prefix: systemd must read them.
	EnvironmentFiles []string
	// Commands are the programs of ExecStartPre= and ExecStartPost=
	// whose failure fails the start (no "-" prefix).
	Commands []Command
	// AmbientCapabilities are AmbientCapabilities=, a mask of capability
	// numbers: the capabilities the unit's processes keep as its user.
	AmbientCapabilities uint64
	// NoExecPaths are NoExecPaths=, which the unit's mount namespace
	// mounts noexec. MountsOver: the unit sets ExecPaths=, a bind mount
	// (BindPaths=, BindReadOnlyPaths=) or a TemporaryFileSystem=, so a
	// path in its namespace may be on another mount than on the host's.
	NoExecPaths []string
	MountsOver  bool
	// PrivateTmp, ProtectHome and Inaccessible (InaccessiblePaths= as
	// systemd has them, with their prefixes) are the settings that hide
	// host paths from the unit's processes (units.Hides).
	PrivateTmp   bool
	ProtectHome  string
	Inaccessible []string
}

// Command is a program a start runs besides the app's, and the setting
// that names it.
type Command struct {
	Setting, Path string
	// AsUser: it runs as the unit's User=, with no privileges beyond the
	// app's. Not for a command prefixed "+" (full privileges) or "!" (no
	// user change), nor "!!", which systemd turns into either depending
	// on the kernel: those run as root.
	AsUser bool
}

// RequiredPath is a path that must exist for a unit to start, and the
// setting that names it.
type RequiredPath struct {
	Setting, Path string
}

// StartSpec reads what systemd would start service unit with, in one
// pipelined round of small property reads (GetAll would send some 250).
func (m *Manager) StartSpec(ctx context.Context, unit string) (StartSpec, error) {
	var spec StartSpec
	var source string
	props := []unitProp{
		{serviceIface, "ExecStart", func(v dbus.Variant) { spec.Argv = firstArgv(v.Value()) }},
		{serviceIface, "User", func(v dbus.Variant) { spec.User, _ = v.Value().(string) }},
		{serviceIface, "Group", func(v dbus.Variant) { spec.Group, _ = v.Value().(string) }},
		{serviceIface, "DynamicUser", func(v dbus.Variant) { spec.DynamicUser, _ = v.Value().(bool) }},
		{serviceIface, "SupplementaryGroups", func(v dbus.Variant) { spec.SupplementaryGroups, _ = v.Value().([]string) }},
		{serviceIface, "WorkingDirectory", func(v dbus.Variant) {
			wd, _ := v.Value().(string)
			// systemd writes a "-" prefix (missing directory allowed)
			// as "!" on the bus.
			if len(wd) > 0 && wd[0] == '!' {
				wd, spec.WorkingDirectoryOptional = wd[1:], true
			}
			spec.WorkingDirectory = wd
		}},
		{serviceIface, "LoadCredential", func(v dbus.Variant) { spec.Credentials = credentialPaths(v.Value()) }},
		{serviceIface, "Type", func(v dbus.Variant) { spec.Type, _ = v.Value().(string) }},
		{serviceIface, "ReadWritePaths", func(v dbus.Variant) { spec.Paths = append(spec.Paths, namespacePaths("ReadWritePaths=", v.Value())...) }},
		{serviceIface, "ReadOnlyPaths", func(v dbus.Variant) { spec.Paths = append(spec.Paths, namespacePaths("ReadOnlyPaths=", v.Value())...) }},
		{serviceIface, "InaccessiblePaths", func(v dbus.Variant) {
			spec.Paths = append(spec.Paths, namespacePaths("InaccessiblePaths=", v.Value())...)
			spec.Inaccessible, _ = v.Value().([]string)
		}},
		{serviceIface, "PrivateTmp", func(v dbus.Variant) { spec.PrivateTmp, _ = v.Value().(bool) }},
		{serviceIface, "ProtectHome", func(v dbus.Variant) { spec.ProtectHome, _ = v.Value().(string) }},
		// The Ex forms (systemd 243) keep the prefixes: a "+" command runs
		// as root, which the plain forms do not tell.
		{serviceIface, "ExecStartPreEx", func(v dbus.Variant) { spec.Commands = append(spec.Commands, mustRun("ExecStartPre=", v.Value())...) }},
		{serviceIface, "ExecStartPostEx", func(v dbus.Variant) { spec.Commands = append(spec.Commands, mustRun("ExecStartPost=", v.Value())...) }},
		{serviceIface, "AmbientCapabilities", func(v dbus.Variant) { spec.AmbientCapabilities, _ = v.Value().(uint64) }},
		{serviceIface, "EnvironmentFiles", func(v dbus.Variant) { spec.EnvironmentFiles = mustRead(v.Value()) }},
		{serviceIface, "BindPaths", func(v dbus.Variant) {
			spec.Paths = append(spec.Paths, bindSources("BindPaths=", v.Value())...)
			spec.MountsOver = spec.MountsOver || anyItems(v.Value())
		}},
		{serviceIface, "BindReadOnlyPaths", func(v dbus.Variant) {
			spec.Paths = append(spec.Paths, bindSources("BindReadOnlyPaths=", v.Value())...)
			spec.MountsOver = spec.MountsOver || anyItems(v.Value())
		}},
		{serviceIface, "NoExecPaths", func(v dbus.Variant) { spec.NoExecPaths = plainPaths(v.Value()) }},
		{serviceIface, "ExecPaths", func(v dbus.Variant) { spec.MountsOver = spec.MountsOver || len(plainPaths(v.Value())) > 0 }},
		{serviceIface, "TemporaryFileSystem", func(v dbus.Variant) { spec.MountsOver = spec.MountsOver || anyItems(v.Value()) }},
		{unitIface, "NeedDaemonReload", func(v dbus.Variant) { spec.NeedDaemonReload, _ = v.Value().(bool) }},
		{unitIface, "LoadState", func(v dbus.Variant) { spec.LoadState, _ = v.Value().(string) }},
		{unitIface, "FragmentPath", func(v dbus.Variant) { spec.Fragment, _ = v.Value().(string) }},
		{unitIface, "DropInPaths", func(v dbus.Variant) { spec.DropIns, _ = v.Value().([]string) }},
	}
	if m.SourceChanged != nil {
		props = append(props,
			unitProp{unitIface, "SourcePath", func(v dbus.Variant) { source, _ = v.Value().(string) }})
	}
	if err := m.getProps(ctx, unit, props); err != nil {
		return StartSpec{}, err
	}
	if !spec.NeedDaemonReload && spec.LoadState == "loaded" {
		changed, err := m.sourceChanged(unit, spec.Fragment, source)
		if err != nil {
			return StartSpec{}, err
		}
		spec.NeedDaemonReload = changed
	}
	return spec, nil
}

// SocketOwner reads the user and group that systemd makes socket unit's
// file system sockets belong to (SocketUser= and SocketGroup=, "" when
// not set), which it resolves each time it starts the unit.
func (m *Manager) SocketOwner(ctx context.Context, unit string) (user, group string, err error) {
	err = m.getProps(ctx, unit, []unitProp{
		{socketIface, "SocketUser", func(v dbus.Variant) { user, _ = v.Value().(string) }},
		{socketIface, "SocketGroup", func(v dbus.Variant) { group, _ = v.Value().(string) }},
	})
	return user, group, err
}

// unitProp is one property of a unit to read, and what to do with it.
type unitProp struct {
	iface, name string
	set         func(v dbus.Variant)
}

// getProps reads properties of unit in one pipelined round of small
// reads (GetAll would send some 250), loading the unit if systemd does
// not have it yet, and hands each to its set.
func (m *Manager) getProps(ctx context.Context, unit string, props []unitProp) error {
	return m.retried(ctx, func(l *link) error { return l.getProps(ctx, unit, props) })
}

func (l *link) getProps(ctx context.Context, unit string, props []unitProp) error {
	// systemd loads a unit it does not have yet when its object is asked.
	path := dbus.ObjectPath("/org/freedesktop/systemd1/unit/" + sd.PathBusEscape(unit))
	obj := l.bus.Object("org.freedesktop.systemd1", path)
	calls := make([]*dbus.Call, len(props))
	for i, p := range props {
		calls[i] = obj.GoWithContext(ctx, "org.freedesktop.DBus.Properties.Get", 0, nil, p.iface, p.name)
	}
	for i, p := range props {
		var v dbus.Variant
		if err := (<-calls[i].Done).Store(&v); err != nil {
			return fmt.Errorf("cannot read %s of %s: %w", p.name, unit, classify(err))
		}
		p.set(v)
	}
	return nil
}

// firstArgv is the command line of the first command of an ExecStart=
// property: a(sasbttttuii), each command's path, argv, ignore-failure
// flag and run times.
func firstArgv(v any) []string {
	cmds, _ := v.([][]any)
	if len(cmds) == 0 || len(cmds[0]) < 2 {
		return nil
	}
	argv, _ := cmds[0][1].([]string)
	return argv
}

// namespacePaths are the paths of a ReadWritePaths=-like property (as)
// that must exist: systemd keeps each one's prefixes on the bus, "-"
// (ignored when missing) and "+" (inside RootDirectory=, which sitectl's
// units do not set: checked as it is).
func namespacePaths(setting string, v any) []RequiredPath {
	paths, _ := v.([]string)
	var out []RequiredPath
	for _, p := range paths {
		optional := false
		for len(p) > 0 && (p[0] == '-' || p[0] == '+') {
			optional = optional || p[0] == '-'
			p = p[1:]
		}
		if !optional && p != "" {
			out = append(out, RequiredPath{Setting: setting, Path: p})
		}
	}
	return out
}

// bindSources are the sources of a BindPaths=-like property, a(ssbt):
// source, destination, whether a missing source is ignored, mount flags.
func bindSources(setting string, v any) []RequiredPath {
	binds, _ := v.([][]any)
	var out []RequiredPath
	for _, b := range binds {
		if len(b) < 3 {
			continue
		}
		src, _ := b[0].(string)
		if optional, _ := b[2].(bool); !optional && src != "" {
			out = append(out, RequiredPath{Setting: setting, Path: src})
		}
	}
	return out
}

// plainPaths are the paths of an ExecPaths=-like property (as), without
// their "-" prefix (ignored when missing).
func plainPaths(v any) []string {
	paths, _ := v.([]string)
	var out []string
	for _, p := range paths {
		if p = strings.TrimLeft(p, "-+"); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// anyItems tells whether an array property (BindPaths=, a(ssbt);
// TemporaryFileSystem=, a(ss)) has an item.
func anyItems(v any) bool {
	items, _ := v.([][]any)
	return len(items) > 0
}

// mustRun are the programs of an ExecStartPreEx=-like property,
// a(sasasttttuii) (each command's path, argv, flags, ...), whose failure
// fails the start: those without the flag "ignore-failure" ("-"). The
// flags "privileged" ("+"), "no-setuid" ("!") and "ambient" ("!!") say
// that it does not run as the unit's user, or may not.
func mustRun(setting string, v any) []Command {
	cmds, _ := v.([][]any)
	var out []Command
	for _, c := range cmds {
		if len(c) < 3 {
			continue
		}
		path, _ := c[0].(string)
		flags, ok := c[2].([]string)
		if !ok || slices.Contains(flags, "ignore-failure") || path == "" {
			continue
		}
		asUser := !slices.ContainsFunc(flags, func(f string) bool { return f == "privileged" || f == "no-setuid" || f == "ambient" })
		out = append(out, Command{Setting: setting, Path: path, AsUser: asUser})
	}
	return out
}

// mustRead are the files of an EnvironmentFiles property, a(sb) (each
// file and whether a missing one is ignored), that must exist.
func mustRead(v any) []string {
	files, _ := v.([][]any)
	var out []string
	for _, f := range files {
		if len(f) < 2 {
			continue
		}
		path, _ := f[0].(string)
		if optional, _ := f[1].(bool); !optional && path != "" {
			out = append(out, path)
		}
	}
	return out
}

// credentialPaths are the paths of a LoadCredential= property: a(ss),
// each credential's name and path.
func credentialPaths(v any) []string {
	pairs, _ := v.([][]any)
	var out []string
	for _, p := range pairs {
		if len(p) == 2 {
			if path, ok := p[1].(string); ok {
				out = append(out, path)
			}
		}
	}
	return out
}
