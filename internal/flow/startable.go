package flow

import (
	"context"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/sitectl/sitectl/internal/control"
	"github.com/sitectl/sitectl/internal/site"
	"github.com/sitectl/sitectl/internal/sitecheck"
	"github.com/sitectl/sitectl/internal/units"
)

// ErrCannotStart: the site's service, as systemd has it loaded, would
// fail to start; nothing was changed.
var ErrCannotStart = errors.New("its service cannot start")

// startSpecs is what the check before a restart reads of systemd;
// control.Manager has it.
type startSpecs interface {
	StartSpec(ctx context.Context, unit string) (control.StartSpec, error)
}

// startable is checked before a restart, which stops the serving process
// before the new one starts: a unit that cannot start (a typo in exec,
// user, group or workdir, a release whose program is gone) would leave
// the site down, and so would the rollback, which restarts the same
// unit. It reads the unit systemd has loaded, which is what the restart
// runs, and refuses, changing nothing, only when the start would surely
// fail (sitecheck.Startable) or would not serve the mode (an ExecStart=
// that does not run sitectl's launcher cannot serve a maintenance mode).
// A mode that sitectl serves itself (maintenance) runs none of the site's
// programs.
//
// stale is not empty when the unit is older than its site file: the
// restart then runs the unit as systemd has it, not as the file says now,
// and stale says what loads the file's (reloadAdvice).
func (e *Env) startable(ctx context.Context, s *site.Site, m site.Mode) (stale string, err error) {
	problems, spec, err := e.startProblems(ctx, s, m)
	if err != nil {
		return "", err
	}
	unit := units.ServiceName(s.Name)
	if spec.NeedDaemonReload {
		stale = reloadAdvice(spec, unit, s.File)
	}
	if len(problems) == 0 {
		return stale, nil
	}
	return stale, fmt.Errorf("site %s: %s as systemd has it would not start: %s; a restart would stop the site, and so would its rollback; nothing was done (%s): %w",
		s.Name, unit, strings.Join(problems, "; "), startFix(problems[0], spec, unit, stale), ErrCannotStart)
}

// startFix says how to fix problem, the first of a start's (unit, as
// systemd has it loaded, spec; stale: its reloadAdvice when the site file
// changed since).
func startFix(problem string, spec control.StartSpec, unit, stale string) string {
	fix := "fix the site file, then `systemctl daemon-reload`"
	switch {
	case strings.HasPrefix(problem, maskedProblem):
		fix = "`systemctl unmask " + unit + "` lets it start"
	case strings.HasPrefix(problem, notLaunchedProblem):
		fix = "take that ExecStart= out, then `systemctl daemon-reload`; `systemctl revert " + unit + "` takes out every local change of the unit"
	case strings.HasPrefix(problem, typeProblem):
		fix = "take that Type= out, then `systemctl daemon-reload`; `systemctl revert " + unit + "` takes out every local change of the unit"
	case sitecheck.NoAccess(problem):
		fix = "give the site's user what it lacks on the path named (chmod o+x on a directory it must search or a program it runs, o+r on a file it reads, or the same for a group of the user's), or run the site as a user that has it, then restart again"
	case sitecheck.KernelRefuses(problem):
		fix = "fix the program named (a #! line first, with no byte order mark before it) or its mount (exec), or name another program in the site file, then `systemctl daemon-reload`"
		if len(spec.DropIns) > 0 || Shadows(spec.Fragment) {
			fix += "; or, if a local change of the unit mounts it noexec (" + strings.Join(overrides(spec), ", ") + "), take that out: `systemctl revert " + unit + "` takes out every local change"
		}
	case stale != "" && Shadows(spec.Fragment):
		fix = "systemd's units are older than the site file: " + stale
	case stale != "":
		fix = "systemd's units are older than the site file: if it is fixed there, `systemctl daemon-reload` loads it"
	default:
		if len(spec.DropIns) > 0 || Shadows(spec.Fragment) {
			// The problem may be a local change's, not the site file's.
			fix += "; or, if it comes from a local change of the unit (" + strings.Join(overrides(spec), ", ") + "), take it out: `systemctl revert " + unit + "` takes out every local change"
		}
	}
	return fix
}

// maskedProblem is the start problem of a masked service.
const maskedProblem = "it is masked, and systemd starts no masked unit"

// notLaunchedProblem is the start problem of a service whose ExecStart=
// an operator replaced with one that does not run sitectl's launcher, in
// a mode only the launcher serves.
const notLaunchedProblem = "its ExecStart= does not run sitectl's launcher"

// typeProblem is the start problem of a service whose Type= an operator
// changed to one whose start the launcher never completes.
const typeProblem = "its Type="

// neverStarted are the service types whose start systemd counts as done
// on something sitectl's launcher never does while the site serves: the
// start job would wait until the unit's start timeout, and systemd would
// then stop the site, the process it started included. The generator
// writes Type=notify or Type=exec; simple, exec, idle and notify all
// start (with simple and idle systemd counts the start done at once).
var neverStarted = map[string]string{
	"oneshot": "for its first process to exit, and sitectl's launcher exits only when the site stops",
	"forking": "for its first process to exit after forking the daemon, and sitectl's launcher neither forks nor exits",
	"dbus":    "for a name on D-Bus (BusName=), which sitectl's launcher never takes",
}

// generatorDirs are where systemd's generators write units; a unit file
// systemd loaded from anywhere else shadows the one sitectl-generator
// wrote (systemctl edit --full, a copy, static units).
var generatorDirs = []string{"/run/systemd/generator/", "/run/systemd/generator.early/", "/run/systemd/generator.late/"}

// Shadows tells whether fragment, a unit file systemd loaded, is not the
// generator's.
func Shadows(fragment string) bool {
	if fragment == "" {
		return false
	}
	for _, d := range generatorDirs {
		if strings.HasPrefix(fragment, d) {
			return false
		}
	}
	return true
}

// reloadAdvice says how systemd comes to load the site file's version of
// unit, whose loaded version spec describes, once the file changed: a
// daemon-reload, unless systemd loads it from a file that shadows the
// generator's, which no daemon-reload changes: then it names the commands
// that remove that file or write it anew from the site file, file.
func reloadAdvice(spec control.StartSpec, unit, file string) string {
	if Shadows(spec.Fragment) {
		return fmt.Sprintf("systemd loads %s from %s, which shadows the unit sitectl generates, so no daemon-reload brings the site file's changes: remove that file (`systemctl revert %s`) or write it anew (`sitectl units render --dir %s %s`), then `systemctl daemon-reload`", unit, spec.Fragment, unit, path.Dir(spec.Fragment), file)
	}
	return "`systemctl daemon-reload` loads the rest; the next restart applies it"
}

// overrides are the files that make the unit systemd loaded other than
// what sitectl generates: a file that shadows the generator's, and the
// drop-ins (set-property's among them).
func overrides(spec control.StartSpec) []string {
	var out []string
	if Shadows(spec.Fragment) {
		out = append(out, spec.Fragment)
	}
	out = append(out, spec.DropIns...)
	if len(out) == 0 {
		out = append(out, "a drop-in")
	}
	return out
}

// launches tells whether a service's command line runs sitectl's
// launcher for site name: `sitectl [FLAGS] launch NAME [FLAGS] -- ...`.
func launches(argv []string, name string) bool {
	end := slices.Index(argv, "--")
	if end < 0 {
		end = len(argv)
	}
	i := slices.Index(argv[:end], "launch")
	return i > 0 && i+1 < end && argv[i+1] == name
}

// runAs is the user whose access to the programs and working directory
// of spec is checked, or nil: none set (root), one made up at each start
// (DynamicUser=), or one that CAP_DAC_OVERRIDE or CAP_DAC_READ_SEARCH lets
// past the files' permissions.
func runAs(spec control.StartSpec) *sitecheck.RunAs {
	switch {
	case spec.AmbientCapabilities&(1<<capDACOverride|1<<capDACReadSearch) != 0:
		return nil
	case spec.DynamicUser:
		return &sitecheck.RunAs{Dynamic: true, SupplementaryGroups: spec.SupplementaryGroups}
	case spec.User == "":
		return nil
	}
	return &sitecheck.RunAs{User: spec.User, Group: spec.Group, SupplementaryGroups: spec.SupplementaryGroups}
}

// hiddenBy are the host's paths that a unit, as systemd has it loaded,
// hides from its processes.
func hiddenBy(spec control.StartSpec) []units.Hidden {
	var out []units.Hidden
	if spec.PrivateTmp {
		out = append(out, units.Hides("PrivateTmp", []string{"yes"})...)
	}
	out = append(out, units.Hides("ProtectHome", []string{spec.ProtectHome})...)
	return append(out, units.Hides("InaccessiblePaths", spec.Inaccessible)...)
}

// The capabilities that let a process past files' permissions (linux/capability.h).
const (
	capDACOverride   = 1
	capDACReadSearch = 2
)

// startProblems says why site s's service, as systemd has it loaded,
// would surely not start in mode m (sitecheck.Startable), or would not
// serve it, and what systemd has loaded.
func (e *Env) startProblems(ctx context.Context, s *site.Site, m site.Mode) (problems []string, spec control.StartSpec, err error) {
	r, ok := e.Systemd.(startSpecs)
	if !ok {
		return nil, control.StartSpec{}, nil
	}
	spec, err = r.StartSpec(ctx, units.ServiceName(s.Name))
	if err != nil {
		return nil, control.StartSpec{}, err
	}
	st := sitecheck.Start{Credentials: spec.Credentials}
	for _, p := range spec.Paths {
		st.Paths = append(st.Paths, sitecheck.Needed{Setting: p.Setting, Path: p.Path})
	}
	for _, c := range spec.Commands {
		st.Commands = append(st.Commands, sitecheck.Command{Setting: c.Setting, Path: c.Path, AsUser: c.AsUser})
	}
	st.EnvironmentFiles = spec.EnvironmentFiles
	st.NoExecPaths, st.MountsOver = spec.NoExecPaths, spec.MountsOver
	if m.Serve != site.ServeMaintenance {
		st.Program = appProgram(spec.Argv)
	} else {
		st.Page, st.StaticDir = m.Page, m.StaticDir
	}
	if !spec.DynamicUser {
		st.User, st.Group = spec.User, spec.Group
	}
	st.RunAs = runAs(spec)
	st.Hidden = hiddenBy(spec)
	st.SupplementaryGroups = spec.SupplementaryGroups
	if !spec.WorkingDirectoryOptional {
		st.WorkingDirectory = spec.WorkingDirectory
	}
	problems = sitecheck.Startable(e.host(), st)
	if m.Serve == site.ServeMaintenance && len(spec.Argv) > 0 && !launches(spec.Argv, s.Name) {
		// The app would start in place of the maintenance server, with
		// the mode's environment (EnvironmentFile=): an app that answers
		// every path would pass the probe, and the site be said to be in
		// maintenance while the app serves.
		problems = append([]string{fmt.Sprintf("%s (`sitectl launch %s`) but %s, as %s set it: only the launcher serves mode %s (serve = \"maintenance\"), and the app would serve in its place",
			notLaunchedProblem, s.Name, spec.Argv[0], strings.Join(overrides(spec), " and "), m.Name)}, problems...)
	}
	if why, ok := neverStarted[spec.Type]; ok {
		problems = append([]string{fmt.Sprintf("%s%s, as %s set it: systemd would wait %s, so the start would not finish, and at its start timeout systemd would stop the site",
			typeProblem, spec.Type, strings.Join(overrides(spec), " and "), why)}, problems...)
	}
	if spec.LoadState == "masked" {
		problems = append([]string{fmt.Sprintf("%s (`systemctl unmask %s`)", maskedProblem, units.ServiceName(s.Name))}, problems...)
	}
	return problems, spec, nil
}

// host is the host the start checks look at: Host, or the one sitectl
// runs on.
func (e *Env) host() sitecheck.Host {
	if e.Host != nil {
		return *e.Host
	}
	return sitecheck.OS
}

// servable refuses a handover to maintenance mode m of overlap site s
// whose page or static_dir the new generation, which runs the maintenance
// server as the site's user in the unit's namespace, surely could not
// open (sitecheck.Startable). The old generation would serve on, but the
// change would be tried, fail and be rolled back for a cause known
// before.
func (e *Env) servable(ctx context.Context, s *site.Site, m site.Mode) error {
	r, ok := e.Systemd.(startSpecs)
	if !ok {
		return nil
	}
	spec, err := r.StartSpec(ctx, units.ServiceName(s.Name))
	if err != nil {
		return err
	}
	problems := sitecheck.Startable(e.host(), sitecheck.Start{Page: m.Page, StaticDir: m.StaticDir, RunAs: runAs(spec), Hidden: hiddenBy(spec), MountsOver: spec.MountsOver})
	if len(problems) == 0 {
		return nil
	}
	return fmt.Errorf("site %s: mode %s would not serve: %s; a handover would start a generation that fails, and the one serving would go on; nothing was done (fix what is named, or the mode's page or static_dir in the site file, then switch again): %w",
		s.Name, m.Name, strings.Join(problems, "; "), ErrCannotStart)
}

// StartProblems says why site s's service, as systemd has it loaded,
// would surely not start in its mode cur: what a restart by sitectl
// refuses, and what a crash restart would fail on. None when it would
// start, or when that cannot be told. e needs only Systemd, and Host for
// tests.
func StartProblems(ctx context.Context, e *Env, s *site.Site, cur string) ([]string, error) {
	problems, _, err := e.startProblems(ctx, s, modeOrApp(s, cur))
	if err != nil {
		return nil, err
	}
	// Its socket units too, which a boot or `sitectl enable` starts
	// (a restart only those not listening: ownable).
	owners, err := e.ownerProblems(ctx, units.SocketNames(s))
	if err != nil {
		return nil, err
	}
	for _, p := range owners {
		problems = append(problems, p.text+": systemd could not start "+p.socket)
	}
	return problems, nil
}

// modeOrApp is mode cur of site s, or a mode that runs the app when s has
// no such mode.
func modeOrApp(s *site.Site, cur string) site.Mode {
	if m, ok := s.Mode(cur); ok {
		return m
	}
	return site.Mode{Name: cur, Serve: site.ServeApp}
}

// Startable refuses, as sitectl's own restarts do, a restart of site s in
// its mode cur (a mode of the site, or its app is checked) whose unit
// surely cannot start, for callers that restart a site without a flow
// (touch-to-reload). e needs only Systemd, and Host for tests.
func Startable(ctx context.Context, e *Env, s *site.Site, cur string) error {
	_, err := e.startable(ctx, s, modeOrApp(s, cur))
	return err
}

// appProgram is the program of the site in a service's command line: what
// follows the "--" of sitectl's launch verb (after sitectl's own flags,
// such as --config-dir, when the units name other directories), or the
// command itself for a unit that does not start through the launcher.
func appProgram(argv []string) string {
	end := slices.Index(argv, "--")
	if end > 0 && slices.Contains(argv[1:end], "launch") {
		if end+1 < len(argv) {
			return argv[end+1]
		}
		return ""
	}
	if len(argv) > 0 {
		return argv[0]
	}
	return ""
}
