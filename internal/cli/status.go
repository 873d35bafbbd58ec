package cli

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/sitectl/sitectl/internal/cleanup"
	"github.com/sitectl/sitectl/internal/control"
	"github.com/sitectl/sitectl/internal/flow"
	"github.com/sitectl/sitectl/internal/modes"
	"github.com/sitectl/sitectl/internal/par"
	"github.com/sitectl/sitectl/internal/site"
	"github.com/sitectl/sitectl/internal/units"
)

// siteStatus is what status and list report of a site. The field names are
// a contract with scripts (snake_case, stable).
type siteStatus struct {
	Name         string `json:"name"`
	File         string `json:"file"`
	Mode         string `json:"mode"`
	PreviousMode string `json:"previous_mode"`
	// ModeApplied: the running process started after the mode was
	// recorded, so it runs in that mode.
	ModeApplied bool `json:"mode_applied"`
	// Pending is a switch in progress (Busy) or one that was cut short.
	Pending     *modes.Pending `json:"pending"`
	Busy        bool           `json:"busy"`
	Unit        string         `json:"unit"`
	LoadState   string         `json:"load_state"`
	ActiveState string         `json:"active_state"`
	SubState    string         `json:"sub_state"`
	MainPID     int            `json:"main_pid"`
	Since       *time.Time     `json:"since"`
	Result      string         `json:"result"`
	StatusText  string         `json:"status_text"`
	Listeners   []string       `json:"listeners"`
	Release     string         `json:"release"`
	Ready       bool           `json:"ready"`
	// LastCleanup is what the last stop's cleanup found and did (status
	// only, read from the journal; nil when unknown).
	LastCleanup *cleanup.Record `json:"last_cleanup,omitempty"`
}

func statusCmd(e *env) *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:     "status [SITE...]",
		GroupID: "run",
		Short:   "Show the mode and state of sites (all when none are named)",
		Long: `Show sites: their recorded mode and previous mode, whether the running process
runs in that mode, a switch in progress or cut short, the service's state from
systemd, the listeners and the release (the working directory, symlinks resolved).`,
		ValidArgsFunction: e.completeSites,
		RunE: func(c *cobra.Command, names []string) error {
			sts, err := e.statuses(c.Context(), names, false)
			if err != nil {
				return err
			}
			for i := range sts {
				sts[i].LastCleanup = cleanup.Last(c.Context(), sts[i].Name)
			}
			if asJSON {
				return writeJSON(e.stdout, sts)
			}
			for i, s := range sts {
				if i > 0 {
					fmt.Fprintln(e.stdout)
				}
				printStatus(e, s)
			}
			return nil
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "report as JSON on standard output")
	return c
}

func listCmd(e *env) *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:     "list",
		GroupID: "run",
		Short:   "List all sites with their mode and state, one line each",
		Long: `List all valid sites of the config directory with their mode and state, one line
each. Made for thousands of sites: systemd is asked for one listing of the site
services and for details only of those that are not inactive, so an inactive site
has no "since" here (its result is "success", as for every inactive service);
` + "`sitectl status SITE`" + ` reads everything of one site.`,
		Args: args(0, 0, "no arguments"),
		RunE: func(c *cobra.Command, _ []string) error {
			sts, err := e.statuses(c.Context(), nil, true)
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(e.stdout, sts)
			}
			tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "SITE\tMODE\tSTATE\tPID\tSINCE\tLISTENERS")
			for _, s := range sts {
				mode := s.Mode
				if s.Pending != nil {
					mode += "*"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s/%s\t%d\t%s\t%s\n", s.Name, mode, s.ActiveState, s.SubState, s.MainPID, since(s.Since), strings.Join(s.Listeners, ","))
			}
			return tw.Flush()
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "report as JSON on standard output")
	return c
}

func since(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.Local().Format("2006-01-02 15:04:05")
}

func printStatus(e *env, s siteStatus) {
	dot := "○"
	if s.Ready {
		dot = "●"
	}
	fmt.Fprintf(e.stdout, "%s %s (%s)\n", dot, s.Name, s.File)
	mode := s.Mode
	if s.PreviousMode != "" {
		mode += " (previous: " + s.PreviousMode + ")"
	}
	if !s.ModeApplied && s.ActiveState == "active" {
		mode += "; recorded after the running process started: it applies at the next restart"
	}
	fmt.Fprintf(e.stdout, "     mode: %s\n", mode)
	if p := s.Pending; p != nil {
		what := "cut short (sitectl stopped before it finished); the next change closes it"
		if s.Busy {
			what = "in progress"
		}
		fmt.Fprintf(e.stdout, "   switch: %s → %s since %s, %s\n", p.From, p.To, p.Since.Local().Format(time.DateTime), what)
	}
	state := s.ActiveState + " (" + s.SubState + ")"
	if s.Since != nil {
		state += " since " + since(s.Since)
	}
	if s.MainPID > 0 {
		state += fmt.Sprintf("; main PID %d", s.MainPID)
	}
	fmt.Fprintf(e.stdout, "    state: %s\n", state)
	if s.StatusText != "" {
		fmt.Fprintf(e.stdout, "   status: %s\n", s.StatusText)
	}
	fmt.Fprintf(e.stdout, "   listen: %s\n", strings.Join(s.Listeners, ", "))
	if s.Release != "" {
		fmt.Fprintf(e.stdout, "  release: %s\n", s.Release)
	}
	if c := s.LastCleanup; c != nil {
		fmt.Fprintf(e.stdout, "  cleanup: %s at %s: %d processes left behind, %d killed by systemd\n", c.Result, c.Time.Local().Format(time.DateTime), c.Leftovers, c.Remaining)
		for _, f := range c.HookFailures {
			fmt.Fprintf(e.stdout, "           hook failed: %s\n", f)
		}
	}
}

// statuses gathers the status of the named sites, or of all valid sites of
// the config directory, reading systemd once for all of them. brief is for
// list: systemd's properties are read only of services that are not
// inactive (control.Manager.List), so an inactive site has no since.
func (e *env) statuses(ctx context.Context, names []string, brief bool) ([]siteStatus, error) {
	var sites []*site.Site
	if len(names) == 0 {
		res, err := site.LoadDir(e.dirs.Config)
		if err != nil {
			return nil, err
		}
		sites = res.Sites
		for _, m := range res.Errors {
			fmt.Fprintf(e.stderr, "sitectl: warning: %v\n", m)
		}
	} else {
		for _, n := range names {
			s, err := e.loadSite(n)
			if err != nil {
				return nil, err
			}
			sites = append(sites, s)
		}
	}
	mgr, err := e.connect(ctx)
	if err != nil {
		return nil, err
	}
	defer mgr.Close()
	unitNames := make([]string, len(sites))
	for i, s := range sites {
		unitNames[i] = units.ServiceName(s.Name)
	}
	var us []control.Unit
	switch {
	case len(names) == 0 && brief:
		us, err = mgr.List(ctx, "site-*.service")
	case len(names) == 0:
		us, err = mgr.Units(ctx, "site-*.service")
	default:
		us, err = mgr.UnitsByName(ctx, unitNames...)
	}
	if err != nil {
		return nil, withCode(codeOf(flowError(err, flow.Report{}, true, e.stderr)), err)
	}
	byName := map[string]control.Unit{}
	for _, u := range us {
		byName[u.Name] = u
	}
	st := modes.Store{Dir: e.dirs.State}
	withState, known := st.WithState()
	out := make([]siteStatus, len(sites))
	errs := make([]error, len(sites))
	// Each site's state is a few small files; read on all CPUs, and not
	// looked for at all for sites that have no state directory.
	par.Each(len(sites), func(i int) {
		u, ok := byName[unitNames[i]]
		if !ok {
			u = control.Unit{Name: unitNames[i], LoadState: "not-loaded", ActiveState: "inactive", SubState: "dead"}
		}
		out[i], errs[i] = siteStatusOf(st, sites[i], u, !known || withState[sites[i].Name])
	})
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// siteStatusOf puts together a site's status; hasState false says the
// site has no state directory (no mode recorded, no state).
func siteStatusOf(st modes.Store, s *site.Site, u control.Unit, hasState bool) (siteStatus, error) {
	mode, recorded, written := s.DefaultMode, false, time.Time{}
	var state modes.State
	if hasState {
		var err error
		var m string
		if m, recorded, written, err = st.CurrentSince(s.Name); err != nil {
			return siteStatus{}, err
		}
		if recorded {
			mode = m
		}
		if state, err = st.ReadSummary(s.Name); err != nil {
			return siteStatus{}, err
		}
	}
	ss := siteStatus{
		Name: s.Name, File: s.File, Mode: mode, PreviousMode: state.PreviousMode, Pending: state.Pending,
		Unit: u.Name, LoadState: u.LoadState, ActiveState: u.ActiveState, SubState: u.SubState,
		MainPID: u.MainPID, Result: u.Result, StatusText: u.StatusText, Listeners: []string{},
	}
	if !u.Since.IsZero() {
		t := u.Since
		ss.Since = &t
	}
	if state.Pending != nil {
		ss.Busy = st.Busy(s.Name)
	}
	for _, l := range s.Listeners {
		ss.Listeners = append(ss.Listeners, l.Endpoint())
	}
	if s.Workdir != "" {
		if r, err := filepath.EvalSymlinks(s.Workdir); err == nil {
			ss.Release = r
		} else {
			ss.Release = s.Workdir
		}
	}
	ss.Ready = u.ActiveState == "active" && u.SubState == "running"
	ss.ModeApplied = flow.ModeAppliedSince(recorded, written, u)
	return ss, nil
}

func historyCmd(e *env) *cobra.Command {
	var asJSON bool
	var last int
	c := &cobra.Command{
		Use:               "history SITE",
		GroupID:           "run",
		Short:             "Show a site's mode switches: when, from, to, by whom, and how they ended",
		Args:              args(1, 1, "one site"),
		ValidArgsFunction: e.completeOneSite,
		RunE: func(c *cobra.Command, a []string) error {
			s, err := e.loadSite(a[0])
			if err != nil {
				return err
			}
			state, err := modes.Store{Dir: e.dirs.State}.ReadState(s.Name)
			if err != nil {
				return err
			}
			h := state.History
			if last > 0 && len(h) > last {
				h = h[len(h)-last:]
			}
			if asJSON {
				if h == nil {
					h = []modes.Entry{}
				}
				return writeJSON(e.stdout, h)
			}
			tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "TIME\tFROM\tTO\tRESULT\tUID\tREASON")
			for _, en := range h {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\n", en.Time.Local().Format(time.DateTime), en.From, en.To, en.Result, en.UID, en.Reason)
			}
			return tw.Flush()
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "report as JSON on standard output")
	c.Flags().IntVarP(&last, "last", "n", 0, "show only the last `N` entries")
	return c
}
