package flow

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// A masked socket unit, listening or stopped: the restart would stop the
// service and could not start it again (it requires its sockets), nor
// could the rollback. It is refused before anything is done, naming the
// mask, not a changed site file nor a site that is down.
func TestMaskedSocketIsRefusedBeforeAnythingIsDone(t *testing.T) {
	for _, active := range []string{"active", "inactive"} {
		e, f := newEnv(t)
		f.sockets.LoadState, f.sockets.ActiveState = "masked", active
		for _, change := range []func() (Report, error){
			func() (Report, error) { return Restart(context.Background(), e, testSite(t), time.Minute) },
			func() (Report, error) {
				return SwitchMode(context.Background(), e, testSite(t), "read-only", Options{Timeout: time.Minute})
			},
		} {
			rep, err := change()
			if !errors.Is(err, ErrCannotStart) || !strings.Contains(err.Error(), "site-karl.socket is masked") ||
				!strings.Contains(err.Error(), "`systemctl unmask site-karl.socket`") || !strings.Contains(err.Error(), "nothing was done") {
				t.Errorf("socket %s and masked: %v", active, err)
			}
			if len(f.restarts)+len(f.stops)+len(f.socketRestarts) != 0 || rep.Changed {
				t.Errorf("socket %s and masked: restarts %v, stops %v, socket restarts %v", active, f.restarts, f.stops, f.socketRestarts)
			}
		}
		if st, _ := e.Store.ReadState("karl"); len(st.History) != 0 || st.Pending != nil {
			t.Errorf("recorded: %+v", st)
		}
	}
}
