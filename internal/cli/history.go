package cli

import (
	"context"
	"os/user"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/sitectl/sitectl/internal/modes"
	"github.com/sitectl/sitectl/internal/site"
	"github.com/sitectl/sitectl/internal/stateservice"
	"github.com/sitectl/sitectl/internal/term"
)

// historyEntry is one change as history --json prints it.
type historyEntry struct {
	Time   time.Time `json:"time" doc:"when the change began"`
	Kind   string    `json:"kind" doc:"what was asked for: mode, restart, reload or rollback; empty in entries recorded before sitectl recorded it" enum:"mode,restart,reload,rollback,"`
	From   string    `json:"from" doc:"the mode before the change"`
	To     string    `json:"to" doc:"the mode the change switched to"`
	UID    int       `json:"uid" doc:"the uid of who asked for the change"`
	User   string    `json:"user" doc:"the user name of uid on this host; empty when it has none"`
	Result string    `json:"result" doc:"how the change ended" enum:"ok,rolled-back,rollback-failed,interrupted,stopped"`
	Reason string    `json:"reason" doc:"why it failed or was cut short; empty for ok"`
}

func historyCmd(e *env) *cobra.Command {
	var asJSON bool
	var last int
	c := &cobra.Command{
		Use:     "history SITE",
		GroupID: "run",
		Short:   "Show a site's changes: when, what kind, from and to which mode, by whom, and how they ended",
		Long: `Show a site's changes, oldest first: when each began (with the time zone), its
kind (mode, restart, reload or rollback; "-" for changes recorded before sitectl
recorded kinds), the mode before and after, the user who asked (the name, or the uid
when it has none on this host), the result and the reason. A change cut short (sitectl killed) is shown as
interrupted as soon as its sitectl is gone, as the next change records it; one
in progress is not shown until it ends. A site keeps 200
changes: root's newest 100 stay whatever others do, and the other places are shared
in turn by everyone who changed the site, so that no one's many changes push out
another's few.`,
		Args:              args(1, 1, "one site"),
		ValidArgsFunction: e.completeOneSite,
		RunE: func(c *cobra.Command, a []string) error {
			if last < 0 {
				return usageErrorf("--last %d: give a number of entries, 1 or more (0 for all)", last)
			}
			h, err := e.historyOf(c.Context(), a[0], last)
			if err != nil {
				return err
			}
			entries := historyEntries(h, lookupUser)
			if asJSON {
				return writeJSON(e.stdout, entries)
			}
			return e.printHistory(entries)
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "report as JSON on standard output")
	c.Flags().IntVarP(&last, "last", "n", 0, "show only the last `N` entries (0: all)")
	return c
}

// historyEntries are the entries as printed, with user names.
func historyEntries(h []modes.Entry, userName func(uid int) string) []historyEntry {
	out := make([]historyEntry, 0, len(h))
	names := map[int]string{}
	for _, en := range h {
		name, ok := names[en.UID]
		if !ok {
			name = userName(en.UID)
			names[en.UID] = name
		}
		out = append(out, historyEntry{Time: en.Time, Kind: en.Kind, From: en.From, To: en.To, UID: en.UID, User: name, Result: en.Result, Reason: en.Reason})
	}
	return out
}

// lookupUser is the user name of uid on this host, or "".
func lookupUser(uid int) string {
	u, err := user.LookupId(strconv.Itoa(uid))
	if err != nil {
		return ""
	}
	return u.Username
}

func (e *env) printHistory(entries []historyEntry) error {
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	term.Fprintf(tw, "TIME\tKIND\tFROM\tTO\tRESULT\tUSER\tREASON\n")
	for _, en := range entries {
		kind, who := en.Kind, en.User
		if kind == "" {
			kind = "-"
		}
		if who == "" {
			who = strconv.Itoa(en.UID)
		}
		term.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", term.Timestamp(en.Time, time.Local), kind,
			term.Escape(en.From), term.Escape(en.To), term.Escape(en.Result), term.Escape(who), term.Escape(en.Reason))
	}
	return tw.Flush()
}

// historyOf is a site's history, the last entries only when last > 0:
// read by root, or by sitectl's state service for a deployer of the site.
func (e *env) historyOf(ctx context.Context, name string, last int) ([]modes.Entry, error) {
	if e.remote() {
		h := []modes.Entry{}
		return h, e.remoteCall(ctx, nil, stateservice.Request{Verb: stateservice.VerbHistory, Site: name, Last: last}, &h)
	}
	s, err := e.loadSite(name)
	if err != nil {
		return nil, err
	}
	return e.localHistory(s, last)
}

// localHistory reads a site's history as root.
func (e *env) localHistory(s *site.Site, last int) ([]modes.Entry, error) {
	st := modes.Store{Dir: e.dirs.State}
	state, err := st.ReadState(s.Name)
	if err != nil {
		return nil, err
	}
	// A change cut short (sitectl killed) is recorded as interrupted
	// only by the next change: until then its history would end with
	// the change before it, as if none had followed.
	h := modes.HistoryAsItStands(state, state.Pending != nil && st.Busy(s.Name))
	if last > 0 && len(h) > last {
		h = h[len(h)-last:]
	}
	if h == nil {
		h = []modes.Entry{}
	}
	return h, nil
}
