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

// A probe answered at once runs at the priority the change was made at:
// Env.Verifying (root's sitectl taking its priority back) does not come
// before it, and never before the change's job.
func TestVerifyingNotForAProbeAnsweredAtOnce(t *testing.T) {
	for _, c := range verifyingKinds {
		t.Run(c.name, func(t *testing.T) {
			e, f := newEnv(t)
			e.verifyGrace = time.Hour
			var verifying, probed atomic.Int32
			e.Verifying = func() { verifying.Add(1) }
			e.Probe = func(context.Context, *site.Site, site.Mode) error {
				if len(f.restarts)+len(f.reloads) == 0 {
					t.Error("probed before the job")
				}
				if verifying.Load() != 0 {
					t.Error("Verifying came before a probe answered at once")
				}
				probed.Add(1)
				return nil
			}
			s := c.site(t)
			s.Probe = &site.Probe{Path: "/"}
			if _, err := SwitchMode(context.Background(), e, s, "read-only", Options{}); err != nil {
				t.Fatal(err)
			}
			if probed.Load() == 0 {
				t.Fatal("the switch never probed")
			}
			if n := verifying.Load(); n != 0 {
				t.Fatalf("Verifying was called %d times for a probe answered at once", n)
			}
		})
	}
}

// A probe that has not succeeded within the grace gets the priority back
// while it goes on: a host busy enough to starve it at idle priority
// cannot fail the change.
func TestVerifyingComesDuringASlowProbe(t *testing.T) {
	for _, c := range verifyingKinds {
		t.Run(c.name, func(t *testing.T) {
			e, _ := newEnv(t)
			e.verifyGrace = 10 * time.Millisecond
			var verifying atomic.Int32
			e.Verifying = func() { verifying.Add(1) }
			e.Probe = func(ctx context.Context, _ *site.Site, _ site.Mode) error {
				for deadline := time.Now().Add(5 * time.Second); verifying.Load() == 0; {
					if time.Now().After(deadline) {
						return errors.New("starved: Verifying never came while the probe waited")
					}
					time.Sleep(time.Millisecond)
				}
				return nil
			}
			s := c.site(t)
			s.Probe = &site.Probe{Path: "/"}
			if _, err := SwitchMode(context.Background(), e, s, "read-only", Options{}); err != nil {
				t.Fatal(err)
			}
			if n := verifying.Load(); n != 1 {
				t.Fatalf("Verifying was called %d times, want once", n)
			}
		})
	}
}

// A failed verification takes the priority back at once, so that the
// rollback after it runs at normal priority; Verifying comes once.
func TestVerifyingComesAtOnceOnAFailure(t *testing.T) {
	for _, c := range verifyingKinds {
		t.Run(c.name, func(t *testing.T) {
			e, _ := newEnv(t)
			e.verifyGrace = time.Hour
			var verifying atomic.Int32
			e.Verifying = func() { verifying.Add(1) }
			var rolledBack bool
			e.Probe = func(_ context.Context, _ *site.Site, m site.Mode) error {
				if m.Name == "read-only" {
					return errors.New("500 Internal Server Error")
				}
				rolledBack = true
				if verifying.Load() != 1 {
					t.Errorf("the rollback's probe ran with Verifying called %d times, want once", verifying.Load())
				}
				return nil
			}
			s := c.site(t)
			s.Probe = &site.Probe{Path: "/"}
			if _, err := SwitchMode(context.Background(), e, s, "read-only", Options{}); err == nil {
				t.Fatal("a switch whose probe failed succeeded")
			}
			if !rolledBack {
				t.Fatal("the failed switch was not rolled back and verified")
			}
			if n := verifying.Load(); n != 1 {
				t.Fatalf("Verifying was called %d times, want once", n)
			}
		})
	}
}
