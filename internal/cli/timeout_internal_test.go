package cli

import (
	"context"
	"errors"
	"io"
	"os"
	"testing"
	"time"

	"github.com/sitectl/sitectl/internal/flow"
	"github.com/sitectl/sitectl/internal/modes"
	"github.com/sitectl/sitectl/internal/stateservice"
)

// A change whose timeout does not fit the site (too short for its
// settle_time, or longer than a day) is refused before the change waits
// for systemd's connection or takes the site's lock, which creates the
// site's state: exit 2, and nothing written.
func TestTimeoutThatDoesNotFitChangesNothing(t *testing.T) {
	e := &env{dirs: testDirs(t), stdout: io.Discard, stderr: io.Discard}
	s, err := e.loadSite("karl")
	if err != nil {
		t.Fatal(err)
	}
	for _, timeout := range []time.Duration{s.SettleTime * 10 / 4, flow.MaxTimeout + time.Second, 500000 * time.Hour} {
		// A connection that never comes: a change that waits for it
		// has gone past the check.
		conn := &pendingConn{done: make(chan struct{})}
		who := modes.Local{Store: modes.Store{Dir: e.dirs.State}, UID: 0, PID: os.Getpid()}
		req := stateservice.Request{Verb: stateservice.VerbRestart, Site: "karl", TimeoutMS: timeout.Milliseconds()}
		done := make(chan error, 1)
		go func() {
			_, err := e.localChange(context.Background(), context.Background(), req, s, who, func(string, ...any) {}, conn, nil)
			done <- err
		}()
		select {
		case err := <-done:
			if codeOf(err) != exitUsage || !errors.Is(err, flow.ErrBadTimeout) {
				t.Errorf("timeout %v: exit %d, %v; want exit 2", timeout, codeOf(err), err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("timeout %v: the change went on to wait for systemd", timeout)
		}
		if entries, err := os.ReadDir(e.dirs.State); err != nil || len(entries) != 0 {
			t.Errorf("timeout %v: the state directory holds %v (%v)", timeout, entries, err)
		}
	}
}
