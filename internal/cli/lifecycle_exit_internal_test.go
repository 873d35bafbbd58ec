package cli

import (
	"context"
	"errors"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sitectl/sitectl/internal/control"
	"github.com/sitectl/sitectl/internal/lifecycle"
	"github.com/sitectl/sitectl/internal/modes"
	"github.com/sitectl/sitectl/internal/site"
)

// startFails is systemd whose units are all loaded and inactive and
// whose start jobs fail; statesErr fails every read of the units.
type startFails struct {
	reloads   int
	statesErr error
}

func (a *startFails) States(ctx context.Context, names ...string) ([]control.Unit, error) {
	if a.statesErr != nil {
		return nil, a.statesErr
	}
	var us []control.Unit
	for _, n := range names {
		us = append(us, control.Unit{Name: n, LoadState: "loaded", ActiveState: "inactive", SubState: "dead"})
	}
	return us, nil
}
func (a *startFails) StatesMatching(ctx context.Context, p ...string) ([]control.Unit, error) {
	return nil, nil
}
func (a *startFails) Start(ctx context.Context, unit string) error {
	return &control.JobError{Verb: "start", Unit: unit, Result: "failed"}
}
func (a *startFails) Stop(ctx context.Context, unit string) error        { return nil }
func (a *startFails) ResetFailed(ctx context.Context, unit string) error { return nil }
func (a *startFails) DaemonReload(ctx context.Context) error             { a.reloads++; return nil }
func (a *startFails) NeedDaemonReload(ctx context.Context, unit string) (bool, error) {
	return false, nil
}

// Exit 1 says that nothing was changed. enable, disable and remove have
// no rollback: one that fails after it changed something (enable of a
// site out of service removes the marker and has systemd reload before
// its socket fails to start) exits 5, the site needs attention, and says
// how far it got. One that fails before it changed anything exits 1.
func TestLifecycleFailedPartWayIsNotExit1(t *testing.T) {
	e := &env{dirs: testDirs(t), stdout: io.Discard, stderr: io.Discard}
	s, err := e.loadSite("karl")
	if err != nil {
		t.Fatal(err)
	}
	st := modes.Store{Dir: e.dirs.State}
	enable := func(sd lifecycle.Systemd) error {
		return e.lifecycleOn(context.Background(), sd, "enable", "karl", changeFlags{timeout: time.Minute}, s,
			func(ctx context.Context, le *lifecycle.Env) (lifecycle.Report, error) {
				return lifecycle.Enable(ctx, le, s)
			})
	}

	// In service already, and systemd cannot be read: nothing changed.
	err = enable(&startFails{statesErr: errors.New("the bus went away")})
	if codeOf(err) != exitFailed {
		t.Errorf("enable that changed nothing: exit %d, %v; want 1", codeOf(err), err)
	}

	if _, err := st.SetOutOfService("karl", true, 0); err != nil {
		t.Fatal(err)
	}
	sd := &startFails{}
	err = enable(sd)
	out, _, _ := st.OutOfService("karl")
	if out || sd.reloads == 0 {
		t.Fatalf("the fake did not let enable change anything: out of service %v, reloads %d", out, sd.reloads)
	}
	if codeOf(err) != exitRollbackFail || !strings.Contains(err.Error(), "did this much before it failed: the site was marked in service") ||
		!strings.Contains(err.Error(), "systemd reloaded its units") {
		t.Errorf("enable that removed the marker and reloaded, then failed: exit %d, %v; want 5 and what it did", codeOf(err), err)
	}
}

func TestPartly(t *testing.T) {
	rep := lifecycle.Report{Site: "karl", Action: "remove", StateForgotten: true, Stopped: []string{"site-karl.socket"}, Started: []string{"site-new.socket"}}
	want := "sitectl remove karl did this much before it failed: its state was forgotten; stopped site-karl.socket; started site-new.socket; `sitectl status karl` shows where it stands; the same command again goes on from there"
	if got := partly(rep); got != want {
		t.Errorf("partly:\n%s\nwant\n%s", got, want)
	}
	if changedAnything(lifecycle.Report{Site: "karl", Action: "disable", Started: []string{}, Stopped: []string{}}) {
		t.Error("an empty report changed something")
	}
}

// A site file that claims another site's listener has no units: the
// generator skips it, and the site that listens keeps the listener.
// enable of it is an operator's mistake (a copied file whose port was
// not changed): exit 2 with the collision, and nothing done, where it
// had systemd reload every unit of the host and then blamed a missing
// generator with exit 5.
func TestEnableOfASiteWhoseListenerAnotherKeepsChangesNothing(t *testing.T) {
	e := &env{dirs: testDirs(t), stdout: io.Discard, stderr: io.Discard}
	st := modes.Store{Dir: e.dirs.State}
	karl, err := e.loadSite("karl")
	if err != nil {
		t.Fatal(err)
	}
	if err := st.WriteGenerated([]*site.Site{karl}); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(e.dirs.SiteFile("karl"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(e.dirs.SiteFile("able"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := e.loadSite("able")
	if err != nil {
		t.Fatal(err)
	}
	sd := &startFails{}
	err = e.lifecycleOn(context.Background(), sd, "enable", "able", changeFlags{timeout: time.Minute}, s,
		func(ctx context.Context, le *lifecycle.Env) (lifecycle.Report, error) {
			return e.enable(ctx, le, s)
		})
	if codeOf(err) != exitUsage || err == nil || !strings.Contains(err.Error(), "collides with") || !strings.Contains(err.Error(), "of site karl") {
		t.Errorf("enable of a site whose listener karl keeps: exit %d, %v; want 2 and the collision", codeOf(err), err)
	}
	if sd.reloads != 0 {
		t.Errorf("enable had systemd reload %d times", sd.reloads)
	}
}

// enable or disable that waited for another sitectl's change of the site
// acts on the site file as it is once that change is done, as root's
// change does: a file broken meanwhile is refused (exit 2), with nothing
// done, where the verb went on with the file read before the wait.
func TestLifecycleAfterAWaitReadsTheFileAgain(t *testing.T) {
	e := &env{dirs: testDirs(t), stdout: io.Discard, stderr: io.Discard}
	s, err := e.loadSite("karl")
	if err != nil {
		t.Fatal(err)
	}
	held, err := modes.Store{Dir: e.dirs.State}.LockSite(s, false) // another sitectl's change
	if err != nil {
		t.Fatal(err)
	}
	ran := false
	done := make(chan error, 1)
	go func() {
		done <- e.lifecycleOn(context.Background(), &startFails{}, "enable", "karl", changeFlags{timeout: time.Minute}, s,
			e.onFileAsItIs("enable", "karl", func(ctx context.Context, le *lifecycle.Env, s *site.Site) (lifecycle.Report, error) {
				ran = true
				return lifecycle.Report{Site: s.Name, Action: "enable"}, nil
			}))
	}()
	time.Sleep(300 * time.Millisecond) // it waits for the lock
	if err := os.WriteFile(e.dirs.SiteFile("karl"), []byte("exec = [\"/bin/app\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	held.Unlock()
	select {
	case err = <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("enable did not end after the lock was released")
	}
	if ran || codeOf(err) != exitUsage || err == nil || !strings.Contains(err.Error(), "site karl has mistakes") {
		t.Errorf("enable of a file broken during its wait: ran %v, exit %d, %v; want exit 2 and nothing run", ran, codeOf(err), err)
	}
}
