package flow

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/sitectl/sitectl/internal/modes"
	"github.com/sitectl/sitectl/internal/site"
)

// pinBackTo is an Env.PinBack that goes back to the version of the site
// file at copyPath, which starts (it clears f.brokenFile), and records
// the modes it was asked for.
func pinBackTo(t *testing.T, f *fakeSystemd, asked *[]string) func(context.Context, *site.Site, string, string) (*site.Site, error) {
	return func(_ context.Context, s *site.Site, mode, reason string) (*site.Site, error) {
		if reason == "" {
			t.Error("PinBack got no reason")
		}
		*asked = append(*asked, mode)
		good := testSite(t)
		good.File = "/var/lib/sitectl/sites/karl/last-good.toml"
		f.brokenFile = false
		return good, nil
	}
}

// A site file that fails to start in every mode (the app's module name
// mistyped), then a restart: the rollback in the same mode from the same
// file would fail the same way and leave the site down. It goes back to
// the version the site ran before, pinned, and serves.
func TestFailedRestartGoesBackToTheVersionThatRan(t *testing.T) {
	e, f := newEnv(t)
	f.brokenFile = true
	var asked []string
	e.PinBack = pinBackTo(t, f, &asked)
	rep, err := Restart(context.Background(), e, testSite(t), 0)
	if !errors.Is(err, ErrRolledBack) {
		t.Fatalf("err = %v, want ErrRolledBack", err)
	}
	if rep.Result != modes.ResultRolledBack || rep.MainPID != f.pid || f.state != "active" {
		t.Errorf("report %+v, service %s", rep, f.state)
	}
	if !strings.Contains(rep.Pinned, "last-good.toml") || !strings.Contains(rep.Pinned, "/etc/sitectl/sites/karl.toml failed to start") {
		t.Errorf("pinned: %q", rep.Pinned)
	}
	if got := strings.Join(asked, ","); got != "normal" {
		t.Errorf("PinBack asked for modes %q, want normal once", got)
	}
	if len(f.restarts) != 2 {
		t.Errorf("%d restarts, want the failed one and the one from the version that ran", len(f.restarts))
	}
}

// Without a version to go back to, the rollback restarts the file as it
// is, and says that it failed: nothing is claimed.
func TestFailedRestartWithNothingToGoBackTo(t *testing.T) {
	e, f := newEnv(t)
	f.brokenFile = true
	e.PinBack = func(context.Context, *site.Site, string, string) (*site.Site, error) { return nil, nil }
	rep, err := Restart(context.Background(), e, testSite(t), 0)
	if !errors.Is(err, ErrRollbackFailed) || rep.Pinned != "" || rep.MainPID != 0 {
		t.Errorf("err = %v, report %+v", err, rep)
	}
	e, f = newEnv(t)
	f.brokenFile = true
	e.PinBack = func(context.Context, *site.Site, string, string) (*site.Site, error) {
		return nil, errors.New("disk full")
	}
	rep, err = Restart(context.Background(), e, testSite(t), 0)
	if !errors.Is(err, ErrRollbackFailed) || rep.Pinned != "" || len(rep.Warnings) != 1 || !strings.Contains(rep.Warnings[0], "disk full") {
		t.Errorf("err = %v, report %+v", err, rep)
	}
}

// A mode switch that failed goes back to the previous mode from the file
// as it is first: a broken mode is no reason to undo the rest of the
// file. Only when that fails too does it go back to the version that ran.
func TestFailedSwitchGoesBackToTheVersionThatRanOnlyWhenItMust(t *testing.T) {
	e, f := newEnv(t, "broken")
	var asked []string
	e.PinBack = pinBackTo(t, f, &asked)
	if _, err := SwitchMode(context.Background(), e, testSite(t), "broken", Options{}); !errors.Is(err, ErrRolledBack) {
		t.Fatalf("err = %v", err)
	}
	if len(asked) != 0 {
		t.Errorf("a broken mode went back to the version that ran, for modes %v", asked)
	}

	e, f = newEnv(t)
	f.brokenFile = true
	e.PinBack = pinBackTo(t, f, &asked)
	rep, err := SwitchMode(context.Background(), e, testSite(t), "read-only", Options{})
	if !errors.Is(err, ErrRolledBack) || rep.Pinned == "" || f.state != "active" {
		t.Fatalf("err = %v, report %+v", err, rep)
	}
	if got := strings.Join(f.restarts, ","); got != "read-only,normal,normal" {
		t.Errorf("restarts in modes %s, want read-only, normal from the file, normal from the version that ran", got)
	}
	if cur, _, _ := e.Store.Current("karl"); cur != "normal" {
		t.Errorf("recorded mode %q", cur)
	}
}

// When the version the site ran before does not come up either, it is
// not the site file that fails (a release the app cannot run): the pin is
// undone, and the report does not claim one.
func TestPinIsUndoneWhenTheVersionThatRanFailsToo(t *testing.T) {
	e, f := newEnv(t, "normal")
	f.brokenFile = true
	var asked []string
	e.PinBack = pinBackTo(t, f, &asked)
	unpinned := 0
	e.Unpin = func(context.Context, *site.Site) error { unpinned++; return nil }
	rep, err := Restart(context.Background(), e, testSite(t), 0)
	if !errors.Is(err, ErrRollbackFailed) || rep.Pinned != "" || unpinned != 1 || len(asked) != 1 {
		t.Errorf("err = %v, pinned %q, unpinned %d, asked %v", err, rep.Pinned, unpinned, asked)
	}
	e, f = newEnv(t)
	f.brokenFile = true
	e.PinBack = pinBackTo(t, f, &asked)
	e.Unpin = func(context.Context, *site.Site) error { t.Error("a pin that came up was undone"); return nil }
	if _, err := Restart(context.Background(), e, testSite(t), 0); !errors.Is(err, ErrRolledBack) {
		t.Errorf("err = %v", err)
	}
}

// A site moved to another port whose app fails there: the pin back to the
// version that ran reloads the units, which closes the socket of the
// socket unit whose listeners it changed back. The rollback opens it again
// before it starts the service, which would get no socket otherwise. That
// holds whether the move itself found the socket lost (the operator's
// daemon-reload closed it, and the restart opened the new port) or
// stopped (it started with the new port, nothing was lost before).
func TestRollbackOfAMovedSiteOpensItsOldPortAgain(t *testing.T) {
	for _, c := range []struct {
		name       string
		lostBefore bool
		want       string
	}{
		{"lost before the move", true, "site-karl.socket,site-karl.socket"},
		{"stopped before the move", false, "site-karl.socket"},
	} {
		t.Run(c.name, func(t *testing.T) {
			e, f := newEnv(t)
			f.brokenFile = true
			var asked []string
			pin := pinBackTo(t, f, &asked)
			pinned := false
			e.PinBack = func(ctx context.Context, s *site.Site, mode, reason string) (*site.Site, error) {
				pinned = true
				return pin(ctx, s, mode, reason)
			}
			e.SocketsMissing = func(s *site.Site) ([]string, error) {
				reopened := len(f.socketRestarts)
				if c.lostBefore && reopened == 0 || pinned && reopened == len(strings.Split(c.want, ","))-1 {
					return []string{s.Listeners[0].Address}, nil
				}
				return nil, nil
			}
			rep, err := Restart(context.Background(), e, testSite(t), 0)
			if !errors.Is(err, ErrRolledBack) || rep.Result != modes.ResultRolledBack || f.state != "active" {
				t.Fatalf("restart: %v, %+v, service %s", err, rep, f.state)
			}
			if got := strings.Join(f.socketRestarts, ","); got != c.want || len(f.restarts) != 2 {
				t.Errorf("socket restarts %v, restarts %v: want %s, the socket opened before each start that lost it", got, f.restarts, c.want)
			}
		})
	}
}
