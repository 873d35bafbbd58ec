package flow

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sitectl/sitectl/internal/site"
)

// verifyingKinds are the kinds of change Env.Verifying is tested on.
var verifyingKinds = []struct {
	name string
	site func(t *testing.T) *site.Site
}{
	{"restart", testSite},
	{"overlap", func(t *testing.T) *site.Site { return overlapSite(t, "") }},
}

// switchCountingVerifying switches a site of each kind to read-only with
// a probe, grace as Env.verifyGrace and probe as Env.Probe, which sees how
// often Env.Verifying was called so far; check gets the switch's error and
// that count at its end.
func switchCountingVerifying(t *testing.T, grace time.Duration,
	probe func(verifying *atomic.Int32, m site.Mode) error,
	check func(t *testing.T, err error, verifying int32)) {
	for _, c := range verifyingKinds {
		t.Run(c.name, func(t *testing.T) {
			e, f := newEnv(t)
			e.verifyGrace = grace
			var verifying atomic.Int32
			e.Verifying = func() { verifying.Add(1) }
			e.Probe = func(_ context.Context, _ *site.Site, m site.Mode) error {
				if len(f.restarts)+len(f.reloads) == 0 {
					t.Error("probed before the job")
				}
				return probe(&verifying, m)
			}
			s := c.site(t)
			s.Probe = &site.Probe{Path: "/"}
			_, err := SwitchMode(context.Background(), e, s, "read-only", Options{})
			check(t, err, verifying.Load())
		})
	}
}

// A probe answered at once runs at the priority the change was made at:
// Env.Verifying (root's sitectl taking its priority back) does not come.
func TestVerifyingNotForAProbeAnsweredAtOnce(t *testing.T) {
	var probed atomic.Int32
	switchCountingVerifying(t, time.Hour, func(verifying *atomic.Int32, _ site.Mode) error {
		probed.Add(1)
		if verifying.Load() != 0 {
			return errors.New("Verifying came before a probe answered at once")
		}
		return nil
	}, func(t *testing.T, err error, verifying int32) {
		if err != nil {
			t.Fatal(err)
		}
		if probed.Load() == 0 {
			t.Fatal("the switch never probed")
		}
		if verifying != 0 {
			t.Fatalf("Verifying was called %d times for a probe answered at once", verifying)
		}
	})
}

// A probe that has not succeeded within the grace gets the priority back
// while it goes on: a host busy enough to starve it at idle priority
// cannot fail the change.
func TestVerifyingComesDuringASlowProbe(t *testing.T) {
	switchCountingVerifying(t, 10*time.Millisecond, func(verifying *atomic.Int32, _ site.Mode) error {
		for deadline := time.Now().Add(5 * time.Second); verifying.Load() == 0; {
			if time.Now().After(deadline) {
				return errors.New("starved: Verifying never came while the probe waited")
			}
			time.Sleep(time.Millisecond)
		}
		return nil
	}, wantVerifyingOnce(false))
}

// A failed verification takes the priority back at once, so that the
// rollback after it runs at normal priority; Verifying comes once.
func TestVerifyingComesAtOnceOnAFailure(t *testing.T) {
	var rolledBack, early atomic.Bool
	switchCountingVerifying(t, time.Hour, func(verifying *atomic.Int32, m site.Mode) error {
		if m.Name == "read-only" {
			return errors.New("500 Internal Server Error")
		}
		rolledBack.Store(true)
		early.Store(verifying.Load() == 0)
		return nil
	}, func(t *testing.T, err error, verifying int32) {
		if !rolledBack.Load() {
			t.Fatal("the failed switch was not rolled back and verified")
		}
		if early.Load() {
			t.Error("the rollback's probe ran before Verifying")
		}
		wantVerifyingOnce(true)(t, err, verifying)
	})
}

// wantVerifyingOnce checks a switch that failed or not, as failed says,
// with Verifying called once.
func wantVerifyingOnce(failed bool) func(t *testing.T, err error, verifying int32) {
	return func(t *testing.T, err error, verifying int32) {
		if failed != (err != nil) {
			t.Fatalf("the switch returned %v, want failed: %v", err, failed)
		}
		if verifying != 1 {
			t.Fatalf("Verifying was called %d times, want once", verifying)
		}
	}
}
