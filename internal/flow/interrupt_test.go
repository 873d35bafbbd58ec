package flow

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sitectl/sitectl/internal/modes"
	"github.com/sitectl/sitectl/internal/site"
)

// interruptingSystemd is systemd whose first restart into mode slow does
// not finish by itself: sitectl is interrupted (as by Ctrl-C) while it waits.
type interruptingSystemd struct {
	*fakeSystemd
	slow      string
	interrupt context.CancelCauseFunc
	cut       bool // the one slow restart was interrupted
}

func (i *interruptingSystemd) Restart(ctx context.Context, unit string) error {
	mode, _, _ := i.store.Current(i.site)
	if err := i.fakeSystemd.Restart(ctx, unit); err != nil || mode != i.slow || i.cut || strings.HasSuffix(unit, ".socket") {
		return err
	}
	i.cut = true
	i.interrupt(fmt.Errorf("%w by SIGINT", ErrInterrupted))
	<-ctx.Done()
	return fmt.Errorf("restart of %s did not finish in time: %w", unit, ctx.Err())
}

func interruptedEnv(t *testing.T, slow string) (*Env, *interruptingSystemd) {
	e, f := newEnv(t)
	ctx, cancel := context.WithCancelCause(context.Background())
	t.Cleanup(func() { cancel(nil) })
	i := &interruptingSystemd{fakeSystemd: f, slow: slow, interrupt: cancel}
	e.Systemd, e.Interrupt = i, ctx
	e.PinBack = func(context.Context, *site.Site, string, string) (*site.Site, error) {
		t.Error("an interrupted change went back to the version of the site file the site ran before: the file did not fail")
		return nil, nil
	}
	return e, i
}

// Interrupted while the new mode comes up, a switch rolls back to the mode
// it came from, verified, and the history says so; the mode it never
// showed to serve does not become the previous one.
func TestInterruptedSwitchRollsBack(t *testing.T) {
	e, f := interruptedEnv(t, "read-only")
	s := testSite(t)
	rep, err := SwitchMode(context.Background(), e, s, "read-only", Options{})
	if !errors.Is(err, ErrRolledBack) || !strings.Contains(err.Error(), "interrupted by SIGINT before mode read-only was shown to serve") {
		t.Fatalf("err = %v, want a rollback after the interruption", err)
	}
	if rep.Result != modes.ResultRolledBack || rep.Changed || rep.MainPID != f.pid || len(rep.Journal) != 0 {
		t.Errorf("report %+v", rep)
	}
	if got := strings.Join(f.restarts, ","); got != "read-only,normal" {
		t.Errorf("restarts in modes %s, want read-only,normal", got)
	}
	if cur, _, _ := e.Store.Current("karl"); cur != "normal" {
		t.Errorf("recorded mode %q after the rollback", cur)
	}
	st, _ := e.Store.ReadState("karl")
	last := st.History[len(st.History)-1]
	if st.Pending != nil || last.To != "read-only" || last.Result != modes.ResultRolledBack || !strings.Contains(last.Reason, "interrupted") || st.PreviousMode != "" {
		t.Errorf("state %+v", st)
	}
}

// An interrupted restart (the same mode) restarts the site again from its
// file as it is: the interruption is no sign that the file fails.
func TestInterruptedRestartDoesNotPin(t *testing.T) {
	e, f := interruptedEnv(t, "normal")
	s := testSite(t)
	recordMode(t, e, s, "normal")
	rep, err := Restart(context.Background(), e, s, 0)
	if !errors.Is(err, ErrRolledBack) || rep.Pinned != "" {
		t.Fatalf("err = %v, report %+v", err, rep)
	}
	if got := strings.Join(f.restarts, ","); got != "normal,normal" {
		t.Errorf("restarts in modes %s", got)
	}
}

// Interrupted before it began, a change does nothing.
func TestInterruptedBeforeTheChangeDoesNothing(t *testing.T) {
	e, f := newEnv(t)
	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(fmt.Errorf("%w by SIGTERM", ErrInterrupted))
	e.Interrupt = ctx
	_, err := SwitchMode(context.Background(), e, testSite(t), "read-only", Options{})
	if !errors.Is(err, ErrInterrupted) || errors.Is(err, ErrRolledBack) || !strings.Contains(err.Error(), "nothing was done") {
		t.Fatalf("err = %v", err)
	}
	if st, _ := e.Store.ReadState("karl"); len(f.restarts) != 0 || st.Pending != nil || len(st.History) != 0 {
		t.Errorf("restarts %v, state %+v", f.restarts, st)
	}
	if cur, ok, _ := e.Store.Current("karl"); ok {
		t.Errorf("mode %s recorded", cur)
	}
}

// After a switch whose sitectl was killed before it could show the new
// mode to serve, sitectl rollback goes back to the mode that switch came
// from, the last one shown to serve; and a switch that serves after it
// does not make the unverified mode the previous one.
func TestRollbackAfterAKilledSwitchGoesToTheLastVerifiedMode(t *testing.T) {
	e, f := newEnv(t)
	s := testSite(t)
	if _, err := SwitchMode(context.Background(), e, s, "read-only", Options{}); err != nil {
		t.Fatal(err)
	}
	killed := func() { // sitectl killed after it recorded the switch to broken
		if err := e.Writer.Begin(s, "read-only", "broken"); err != nil {
			t.Fatal(err)
		}
		recordMode(t, e, s, "broken")
	}
	killed()
	rep, err := Rollback(context.Background(), e, s, time.Minute, false)
	if err != nil || rep.From != "broken" || rep.To != "read-only" {
		t.Fatalf("rollback right after the kill: %+v %v, want broken → read-only", rep, err)
	}
	killed()
	if _, err := SwitchMode(context.Background(), e, s, "normal", Options{}); err != nil {
		t.Fatal(err)
	}
	if st, _ := e.Store.ReadState("karl"); st.PreviousMode != "read-only" {
		t.Errorf("previous mode %q after broken → normal, want read-only (broken was never shown to serve)", st.PreviousMode)
	}
	rep, err = Rollback(context.Background(), e, s, time.Minute, false)
	if err != nil || rep.To != "read-only" {
		t.Fatalf("rollback: %+v %v, want one to read-only", rep, err)
	}
	if got := strings.Join(f.restarts, ","); got != "read-only,read-only,normal,read-only" {
		t.Errorf("restarts in modes %s", got)
	}
}
