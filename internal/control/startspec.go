package control

import (
	"context"
	"fmt"

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
