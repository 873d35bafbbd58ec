package cli

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sitectl/sitectl/internal/control"
	"github.com/sitectl/sitectl/internal/flow"
	"github.com/sitectl/sitectl/internal/lifecycle"
	"github.com/sitectl/sitectl/internal/modes"
	"github.com/sitectl/sitectl/internal/paths"
	"github.com/sitectl/sitectl/internal/site"
	"github.com/sitectl/sitectl/internal/stateservice"
	"github.com/sitectl/sitectl/internal/status"
	"github.com/sitectl/sitectl/internal/units"
)

// hungSystemd is a PID 1 that never answers: every call waits until its
// context ends.
type hungSystemd struct{}

func (hungSystemd) wait(ctx context.Context) ([]control.Unit, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

func (h hungSystemd) Units(ctx context.Context, _ ...string) ([]control.Unit, error) {
	return h.wait(ctx)
}

func (h hungSystemd) UnitsByName(ctx context.Context, _ ...string) ([]control.Unit, error) {
	return h.wait(ctx)
}

func (h hungSystemd) List(ctx context.Context, _ ...string) ([]control.Unit, error) {
	return h.wait(ctx)
}

func (h hungSystemd) States(ctx context.Context, _ ...string) ([]control.Unit, error) {
	return h.wait(ctx)
}

func (h hungSystemd) Restart(ctx context.Context, _ string) error {
	_, err := h.wait(ctx)
	return err
}

func (h hungSystemd) Stop(ctx context.Context, _ string) error {
	_, err := h.wait(ctx)
	return err
}

func (h hungSystemd) Reload(ctx context.Context, _ string) error {
	_, err := h.wait(ctx)
	return err
}

func (h hungSystemd) ResetFailed(ctx context.Context, _ string) error {
	_, err := h.wait(ctx)
	return err
}

// shorten sets *v to d for the test.
func shorten[T any](t *testing.T, v *T, d T) {
	t.Helper()
	old := *v
	*v = d
	t.Cleanup(func() { *v = old })
}

// within runs f and fails the test when it takes longer than limit.
func within(t *testing.T, limit time.Duration, f func() error) error {
	t.Helper()
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- f() }()
	select {
	case err := <-done:
		return err
	case <-time.After(limit):
		t.Fatalf("still waiting after %s (started %s ago)", limit, time.Since(start).Round(time.Millisecond))
		return nil
	}
}

// testDirs is a config directory with site karl, and an empty state
// directory.
func testDirs(t *testing.T) paths.Dirs {
	t.Helper()
	d := paths.Dirs{Config: t.TempDir(), State: t.TempDir()}
	site := "exec = [\"/usr/local/bin/app\"]\nreload_trigger = \"/srv/karl/restart.txt\"\n\n[[listen]]\naddress = \"127.0.0.1:8080\"\n"
	if err := os.WriteFile(filepath.Join(d.Config, "karl.toml"), []byte(site), 0o644); err != nil {
		t.Fatal(err)
	}
	return d
}

// TestStatusGivesUpOnAHungSystemd: status and list give systemd a bounded
// time to answer, and say so with exit 7, for one site and for all.
func TestStatusGivesUpOnAHungSystemd(t *testing.T) {
	shorten(t, &systemdReadTimeout, 200*time.Millisecond)
	e := &env{dirs: testDirs(t), stdout: io.Discard, stderr: io.Discard}
	for _, req := range []status.Request{{Names: []string{"karl"}}, {}, {Brief: true}} {
		err := within(t, 5*time.Second, func() error {
			_, err := e.gatherFrom(context.Background(), status.Sources{Dirs: e.dirs, Systemd: hungSystemd{}}, req)
			return err
		})
		if err == nil || !strings.Contains(err.Error(), "systemd did not answer within 200ms") || codeOf(err) != exitUnavailable {
			t.Errorf("%+v: got %v (exit %d), want systemd did not answer within 200ms, exit %d", req, err, codeOf(err), exitUnavailable)
		}
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("%+v: %v does not wrap the deadline", req, err)
		}
	}
}

// TestChangeGivesUpOnAHungSystemd: a change whose flow waits for a systemd
// that never answers, before its own deadlines begin (the unit read of a
// switch to the mode the site is in, the sockets' check of a restart's
// record), ends within twice its timeout and the margin, as a failure
// that names the bound and the verb, exit 1, the switch closed.
func TestChangeGivesUpOnAHungSystemd(t *testing.T) {
	shorten(t, &flowMargin, 100*time.Millisecond)
	e := &env{dirs: testDirs(t), stdout: io.Discard, stderr: io.Discard}
	s, err := e.loadSite("karl")
	if err != nil {
		t.Fatal(err)
	}
	s.SettleTime = 0 // a timeout of 50ms is refused against any settle_time
	st := modes.Store{Dir: e.dirs.State}
	lock, err := st.LockSite(s, false) // as localChange holds it
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Unlock()
	for _, req := range []stateservice.Request{
		{Verb: stateservice.VerbMode, Site: "karl", Mode: s.DefaultMode, TimeoutMS: 50},
		{Verb: stateservice.VerbRestart, Site: "karl", TimeoutMS: 50},
	} {
		who := modes.Local{Store: st, UID: 0, PID: os.Getpid(), Kind: req.Verb}
		fe := &flow.Env{Store: st, Writer: who, Systemd: hungSystemd{}}
		// The caller's context ends at once: the flow runs on regardless,
		// to its own bound.
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		err := within(t, 5*time.Second, func() error {
			_, err := runFlow(ctx, req, fe, s)
			return err
		})
		want := "site karl: sitectl " + req.Verb + " did not finish within 200ms (twice its timeout, and 100ms for systemd to answer): "
		if err == nil || !strings.HasPrefix(err.Error(), want) || codeOf(err) != exitFailed {
			t.Errorf("%s: got %v (exit %d), want %q..., exit %d", req.Verb, err, codeOf(err), want, exitFailed)
		}
		if state, err := st.ReadState("karl"); err != nil || state.Pending != nil {
			t.Errorf("%s: the switch was left pending: %+v, %v", req.Verb, state.Pending, err)
		}
	}
}

// TestLifecycleWaitsForTheLockWithinItsTimeout: enable, disable and remove
// wait for another sitectl's lock of the site within --timeout, and then
// fail as a change does, exit 1, without running the verb.
func TestLifecycleWaitsForTheLockWithinItsTimeout(t *testing.T) {
	e := &env{dirs: testDirs(t), stdout: io.Discard, stderr: io.Discard}
	s, err := e.loadSite("karl")
	if err != nil {
		t.Fatal(err)
	}
	held, err := modes.Store{Dir: e.dirs.State}.LockSite(s, false) // another sitectl's
	if err != nil {
		t.Fatal(err)
	}
	defer held.Unlock()
	f := changeFlags{timeout: 200 * time.Millisecond}
	ctx, cancel := context.WithTimeout(context.Background(), f.timeout) // as lifecycle gives it
	defer cancel()
	err = within(t, 5*time.Second, func() error {
		return e.lifecycleOn(ctx, nil, "enable", "karl", f, s, func(context.Context, *lifecycle.Env) (lifecycle.Report, error) {
			return lifecycle.Report{}, errors.New("the verb ran without the site's lock")
		})
	})
	want := "site karl was still being changed by another sitectl after 200ms; nothing was done"
	if err == nil || err.Error() != want || codeOf(err) != exitFailed {
		t.Errorf("got %v (exit %d), want %q, exit %d", err, codeOf(err), want, exitFailed)
	}
}

// TestTouchedGivesUpOnAReloadThatNeverEnds: sitectl touched bounds each
// systemctl reload-or-restart it runs, and says so when one never ends.
func TestTouchedGivesUpOnAReloadThatNeverEnds(t *testing.T) {
	hung := filepath.Join(t.TempDir(), "systemctl")
	if err := os.WriteFile(hung, []byte("#!/bin/sh\nexec sleep 600\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	shorten(t, &touchedSystemctl, hung)
	shorten(t, &touchedCheck, func(context.Context, *env, *site.Site) error { return nil })
	shorten(t, &touchedOutOfService, func(context.Context, *env, *site.Site) (string, error) { return "", nil })
	shorten(t, &touchedRoundTimeout, func(*site.Site) time.Duration { return 200 * time.Millisecond })
	e := &env{dirs: testDirs(t), stdout: io.Discard, stderr: io.Discard}
	c := touchedCmd(e)
	c.SetArgs([]string{"karl"})
	c.SetOut(io.Discard)
	c.SetErr(io.Discard)
	c.SilenceUsage, c.SilenceErrors = true, true
	err := within(t, 5*time.Second, c.Execute)
	want := "site karl: the reload after /srv/karl/restart.txt was touched did not finish within 200ms; systemd may still carry it out: context deadline exceeded"
	if err == nil || err.Error() != want {
		t.Errorf("got %v, want %q", err, want)
	}
}

// TestReloadUnitOutlastsTouched: the reload unit's TimeoutStartSec= is
// above all the rounds touched may run, so that touched gives up first and
// says why.
func TestReloadUnitOutlastsTouched(t *testing.T) {
	e := &env{dirs: testDirs(t)}
	s, err := e.loadSite("karl")
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range units.Render(s, e.unitOptions()) {
		if u.Name != units.ReloadServiceName("karl") {
			continue
		}
		_, after, ok := strings.Cut(u.Content, "\nTimeoutStartSec=")
		value, _, _ := strings.Cut(after, "\n")
		d, err := time.ParseDuration(value)
		if !ok || err != nil || d <= (touchedRounds+1)*touchedRoundTimeout(s) {
			t.Errorf("%s: TimeoutStartSec=%s, want more than the lock's wait and %d rounds of %s:\n%s", u.Name, value, touchedRounds, touchedRoundTimeout(s), u.Content)
		}
		return
	}
	t.Fatal("no reload unit rendered")
}
