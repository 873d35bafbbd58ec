package flow

import (
	"context"
	"errors"
	"fmt"
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
// fail (sitecheck.Startable). A mode that sitectl serves itself
// (maintenance) runs none of the site's programs.
//
// stale is true when the unit is older than its site file: the restart
// then runs the unit as systemd has it, not as the file says now.
func (e *Env) startable(ctx context.Context, s *site.Site, m site.Mode) (stale bool, err error) {
	problems, stale, err := e.startProblems(ctx, s, m)
	if err != nil || len(problems) == 0 {
		return stale, err
	}
	fix := "fix the site file, then `systemctl daemon-reload`"
	switch {
	case strings.HasPrefix(problems[0], maskedProblem):
		fix = "`systemctl unmask " + units.ServiceName(s.Name) + "` lets it start"
	case stale:
		fix = "systemd's units are older than the site file: if it is fixed there, `systemctl daemon-reload` loads it"
	}
	return stale, fmt.Errorf("site %s: %s as systemd has it would not start: %s; a restart would stop the site, and so would its rollback; nothing was done (%s): %w",
		s.Name, units.ServiceName(s.Name), strings.Join(problems, "; "), fix, ErrCannotStart)
}

// maskedProblem is the start problem of a masked service.
const maskedProblem = "it is masked, and systemd starts no masked unit"

// startProblems says why site s's service, as systemd has it loaded,
// would surely not start in mode m (sitecheck.Startable), and whether the
// unit is older than the site file.
func (e *Env) startProblems(ctx context.Context, s *site.Site, m site.Mode) (problems []string, stale bool, err error) {
	r, ok := e.Systemd.(startSpecs)
	if !ok {
		return nil, false, nil
	}
	spec, err := r.StartSpec(ctx, units.ServiceName(s.Name))
	if err != nil {
		return nil, false, err
	}
	st := sitecheck.Start{Credentials: spec.Credentials}
	if m.Serve != site.ServeMaintenance {
		st.Program = appProgram(spec.Argv)
	}
	if !spec.DynamicUser {
		st.User, st.Group = spec.User, spec.Group
	}
	if !spec.WorkingDirectoryOptional {
		st.WorkingDirectory = spec.WorkingDirectory
	}
	host := sitecheck.OS
	if e.Host != nil {
		host = *e.Host
	}
	problems = sitecheck.Startable(host, st)
	if spec.LoadState == "masked" {
		problems = append([]string{fmt.Sprintf("%s (`systemctl unmask %s`)", maskedProblem, units.ServiceName(s.Name))}, problems...)
	}
	return problems, spec.NeedDaemonReload, nil
}

// StartProblems says why site s's service, as systemd has it loaded,
// would surely not start in its mode cur: what a restart by sitectl
// refuses, and what a crash restart would fail on. None when it would
// start, or when that cannot be told. e needs only Systemd, and Host for
// tests.
func StartProblems(ctx context.Context, e *Env, s *site.Site, cur string) ([]string, error) {
	problems, _, err := e.startProblems(ctx, s, modeOrApp(s, cur))
	return problems, err
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
