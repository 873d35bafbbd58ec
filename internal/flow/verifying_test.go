package flow

import (
	"context"
	"errors"
	"testing"

	"github.com/sitectl/sitectl/internal/site"
)

// Env.Verifying comes after the change's job and before the probe, on
// each kind of change: root's sitectl takes its priority back there
// (launcher.Yield), so that the probe does not run at idle priority.
func TestVerifyingComesBetweenTheJobAndTheProbe(t *testing.T) {
	for _, c := range []struct {
		name string
		site func(t *testing.T) *site.Site
	}{
		{"restart", testSite},
		{"overlap", func(t *testing.T) *site.Site { return overlapSite(t, "") }},
	} {
		t.Run(c.name, func(t *testing.T) {
			e, f := newEnv(t)
			verifying, probed := 0, 0
			e.Verifying = func() {
				if len(f.restarts)+len(f.reloads) == 0 {
					t.Error("Verifying was called before the job")
				}
				verifying++
			}
			e.Probe = func(context.Context, *site.Site, site.Mode) error {
				if verifying == 0 {
					return errors.New("probed before Verifying")
				}
				probed++
				return nil
			}
			s := c.site(t)
			s.Probe = &site.Probe{Path: "/"}
			if _, err := SwitchMode(context.Background(), e, s, "read-only", Options{}); err != nil {
				t.Fatal(err)
			}
			if probed == 0 {
				t.Fatalf("the switch never probed (Verifying called %d times)", verifying)
			}
		})
	}
}
