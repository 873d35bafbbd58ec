package flow

import (
	"context"
	"errors"
	"testing"
)

// A deployer's change of a site whose sockets root stopped is refused and
// changes nothing: its service would start them. Root's starts it.
func TestDeployerDoesNotStartAStoppedSite(t *testing.T) {
	e, f := newEnv(t)
	f.sockets.ActiveState, f.sockets.SubState = "inactive", "dead"
	f.state = "inactive"
	e.KeepStopped = true
	for _, run := range []func() error{
		func() error { _, err := Restart(context.Background(), e, testSite(t), 0); return err },
		func() error {
			_, err := SwitchMode(context.Background(), e, testSite(t), "read-only", Options{})
			return err
		},
	} {
		if err := run(); !errors.Is(err, ErrSiteStopped) {
			t.Errorf("err = %v, want ErrSiteStopped", err)
		}
	}
	if len(f.restarts) != 0 || f.resets != 0 {
		t.Errorf("restarts %v, resets %d", f.restarts, f.resets)
	}
	if st, _ := e.Store.ReadState("karl"); len(st.History) != 0 || st.Pending != nil {
		t.Errorf("a refused change was recorded: %+v", st)
	}
	if cur, _, _ := e.Store.Current("karl"); cur != "" {
		t.Errorf("a refused change recorded mode %q", cur)
	}
	e.KeepStopped = false
	if _, err := Restart(context.Background(), e, testSite(t), 0); err != nil || len(f.restarts) != 1 {
		t.Errorf("root's restart of the stopped site: %v, restarts %v", err, f.restarts)
	}
}
