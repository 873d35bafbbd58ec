package cli

import (
	"context"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sitectl/sitectl/internal/stateservice"
)

// fakePriority counts what a change asked of its priority: the tests of
// this package never lower their own process.
type fakePriority struct{ restored atomic.Int32 }

func (p *fakePriority) Restore() error { p.restored.Add(1); return nil }

var yields atomic.Int32

func init() {
	yieldPriority = func() (priority, error) {
		yields.Add(1)
		return &fakePriority{}, nil
	}
}

// Every change yields before it does anything else, and takes its
// priority back when asked to (flow.Env.Verifying).
func TestChangeYieldsFirst(t *testing.T) {
	e := &env{dirs: testDirs(t), stdout: io.Discard, stderr: io.Discard}
	before := yields.Load()
	req := stateservice.Request{Verb: stateservice.VerbRestart, Site: "nosuch", TimeoutMS: time.Minute.Milliseconds()}
	if err := e.change(context.Background(), req, false); err == nil {
		t.Fatal("a change of a site that does not exist succeeded")
	}
	if got := yields.Load() - before; got != 1 {
		t.Fatalf("the change yielded %d times, want once", got)
	}
	p, ok := e.yielded.(*fakePriority)
	if !ok {
		t.Fatalf("the change kept %T, not what it yielded", e.yielded)
	}
	e.takeBackPriority()
	if p.restored.Load() != 1 {
		t.Errorf("takeBackPriority restored %d times, want once", p.restored.Load())
	}
}

// Root's side of a reload and the reload unit's touched yield too.
func TestReloadSidesYield(t *testing.T) {
	e := &env{dirs: testDirs(t), stdout: io.Discard, stderr: io.Discard}
	before := yields.Load()
	t.Setenv("RUNTIME_DIRECTORY", t.TempDir())
	t.Setenv("MAINPID", "")
	_ = e.reloadLauncher("karl")
	if got := yields.Load() - before; got != 1 {
		t.Errorf("root's side of the reload yielded %d times, want once", got)
	}
	before = yields.Load()
	run, _ := touchedRun(t, e)
	if err := within(t, 5*time.Second, run); err != nil {
		t.Fatal(err)
	}
	if got := yields.Load() - before; got != 1 {
		t.Errorf("touched yielded %d times, want once", got)
	}
}

// SITECTL_PRIORITY=normal keeps a change at its priority; a value it does
// not know is refused before anything is done.
func TestPriorityFromTheEnvironment(t *testing.T) {
	req := stateservice.Request{Verb: stateservice.VerbRestart, Site: "karl", TimeoutMS: time.Minute.Milliseconds()}
	for _, c := range []struct {
		value  string
		yields int32
		code   int // of the error, 0: none of yield's
	}{
		{"normal", 0, 0},
		{"idle", 1, 0},
		{"low", 0, exitUsage},
	} {
		t.Setenv(envPriority, c.value)
		e := &env{dirs: testDirs(t), stdout: io.Discard, stderr: io.Discard}
		before := yields.Load()
		err := e.yield()
		if got := yields.Load() - before; got != c.yields {
			t.Errorf("%s=%s: yielded %d times, want %d", envPriority, c.value, got, c.yields)
		}
		if c.code == 0 && err != nil || c.code != 0 && (err == nil || codeOf(err) != c.code) {
			t.Errorf("%s=%s: %v (exit %d), want exit %d", envPriority, c.value, err, codeOf(err), c.code)
		}
		if c.code != 0 {
			if err := e.change(context.Background(), req, false); err == nil || codeOf(err) != c.code || !strings.Contains(err.Error(), envPriority) {
				t.Errorf("%s=%s: the change said %v (exit %d)", envPriority, c.value, err, codeOf(err))
			}
		}
	}
}
