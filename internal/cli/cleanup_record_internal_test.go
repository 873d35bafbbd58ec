package cli

import (
	"strings"
	"testing"

	"github.com/sitectl/sitectl/internal/cleanup"
	"github.com/sitectl/sitectl/internal/status"
	"github.com/sitectl/sitectl/internal/term"
)

// status tells a cleanup whose listing failed, and the processes the
// hooks left.
func TestStatusPrintsTheLastCleanup(t *testing.T) {
	base := status.Site{Site: "karl", File: "/etc/sitectl/sites/karl.toml", SiteFile: status.FileState{State: "ok"}, Mode: "normal",
		Unit: "site-karl.service", LoadState: "loaded", State: "idle", ActiveState: "inactive", SubState: "dead"}
	when := *at("2026-11-21T06:12:58Z")
	for _, c := range []struct {
		rec  cleanup.Record
		want string
	}{
		{cleanup.Record{Time: when, Result: cleanup.ResultListFailed, Reason: "more than 131072 processes"},
			"    cleanup: listing-failed at Sat 2026-11-21 06:12:58 UTC; 4s ago: 0 processes left behind as far as they were listed, 0 killed by systemd\n             listing the processes failed: more than 131072 processes"},
		{cleanup.Record{Time: when, Result: cleanup.ResultOK, Leftovers: 1, Remaining: 2, HookLeftovers: 2},
			"    cleanup: ok at Sat 2026-11-21 06:12:58 UTC; 4s ago: 1 processes left behind, 2 killed by systemd (2 left running by the hooks)"},
	} {
		s := base
		s.Cleanup = &c.rec
		if got := printed(t, term.Style{UTF8: true}, s); !strings.Contains(got, c.want) {
			t.Errorf("%s: status lacks %q:\n%s", c.rec.Result, c.want, got)
		}
	}
}
