package cli

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/sitectl/sitectl/internal/flow"
)

// A failed rollback says the site is down only when its service does not
// run; one that runs but failed its checks is named with its PID.
func TestRollbackFailedHint(t *testing.T) {
	err := fmt.Errorf("site karl: mode x: probe; rollback: probe: %w", flow.ErrRollbackFailed)
	for pid, want := range map[int]string{
		0:   "the site is down: see `systemctl status site-karl.service`",
		412: "site-karl.service runs (main PID 412) but was not shown to serve: if its probe fails in every mode, check the probe in the site file",
	} {
		e := flowExit(err, flow.Report{Site: "karl", MainPID: pid})
		if codeOf(e) != exitRollbackFail || len(hintsOf(e)) != 1 || !strings.HasPrefix(hintsOf(e)[0], want) {
			t.Errorf("main PID %d: exit %d, hints %q, want %q", pid, codeOf(e), hintsOf(e), want)
		}
	}
	if e := flowExit(fmt.Errorf("x: %w", flow.ErrCannotStart), flow.Report{Site: "karl"}); codeOf(e) != exitFailed {
		t.Errorf("a unit that cannot start: exit %d, want %d", codeOf(e), exitFailed)
	}
}

// A change shown to serve whose history could not be written (a full or
// immutable state directory) says that the site changed, and what was not
// recorded; not "permission denied" with a deployer's hint, not only the
// write's error.
func TestChangeNotRecordedSaysTheSiteChanged(t *testing.T) {
	reason := "the site serves in mode slow, but its history could not be written (the next change records this one as interrupted): open /var/lib/sitectl/sites/karl/state.json: operation not permitted"
	err := errors.Join(fmt.Errorf("site karl: %s: %w", reason, flow.ErrNotRecorded), os.ErrPermission)
	e := flowExit(err, flow.Report{Site: "karl", Result: "ok", Reason: reason})
	if codeOf(e) != exitFailed || e.Error() != "site karl: "+reason || len(hintsOf(e)) != 1 || !strings.HasPrefix(hintsOf(e)[0], "the site changed: `sitectl status karl`") {
		t.Errorf("exit %d, %q, hints %q", codeOf(e), e, hintsOf(e))
	}
}

// A rollback that found the previous mode serving but could not record it
// again (a full state directory) exits 5, as a site not put back as it
// was, with the mode it serves and the one it would start in; not 4, and
// not "the site is down".
func TestModeNotPutBackExits5(t *testing.T) {
	err := fmt.Errorf("site karl: mode broken: failed; rollback to normal: no space left on device: %w", flow.ErrModeNotPutBack)
	e := flowExit(err, flow.Report{Site: "karl", From: "normal", To: "broken", Result: "rolled-back", MainPID: 100})
	if codeOf(e) != exitRollbackFail || len(hintsOf(e)) != 1 || !strings.HasPrefix(hintsOf(e)[0], "the site serves in mode normal again, but would start in mode broken") {
		t.Errorf("exit %d, hints %q", codeOf(e), hintsOf(e))
	}
}
