package flow

import (
	"context"
	"fmt"
	"strings"

	"github.com/sitectl/sitectl/internal/site"
	"github.com/sitectl/sitectl/internal/units"
)

// What a site file no longer declares: a named listener removed, or its
// reload trigger. The daemon-reload that loads the site's units afresh
// finds no file for their units, and systemd keeps those that are active
// as they were, "not-found" but "active": a socket unit that listens on
// nothing and is listed as running, a path unit that still watches the
// old trigger. A change that applies the file stops them once the site
// serves without them.

// goneUnits are the units of what site s's file declared when its service
// last started (was: Env.Started, the copy its last start kept, read by
// plan before the change, as its start overwrites that copy) and declares
// no longer (units.Gone). No copy leaves none.
func goneUnits(was, s *site.Site) []string {
	if was == nil {
		return nil
	}
	return units.Gone(was, s)
}

// stopGone stops the units in sw.gone that systemd still runs although it
// knows no file for them. Only a unit systemd reports "not-found" is
// stopped: one that has a file (the site's units not reloaded yet, a pin
// back to the version that declared it, a unit of the operator's own) is
// left alone. It runs once the site was shown to serve without them, and
// reports a unit only once systemd says it is inactive; a unit it could
// not stop is a warning, not a failed change.
func (sw *switchRun) stopGone(ctx context.Context) {
	if len(sw.gone) == 0 {
		return
	}
	us, err := sw.e.Systemd.States(ctx, sw.gone...)
	if err != nil {
		sw.warn("could not read %s, which the site file no longer declares: %v", strings.Join(sw.gone, ", "), err)
		return
	}
	for _, u := range us {
		if u.LoadState != "not-found" || u.ActiveState == "inactive" {
			continue
		}
		if err := sw.stopUnit(ctx, u.Name); err != nil {
			sw.warn("%s, which the site file no longer declares, still runs (%v): `systemctl stop %s` stops it", u.Name, err, u.Name)
			continue
		}
		sw.e.progress("%s: stopped %s, which the site file no longer declares", sw.s.Name, u.Name)
		sw.rep.UnitsStopped = append(sw.rep.UnitsStopped, u.Name)
	}
}

// stopUnit stops unit and checks that systemd has it inactive then.
func (sw *switchRun) stopUnit(ctx context.Context, unit string) error {
	if err := sw.e.Systemd.Stop(ctx, unit); err != nil {
		return err
	}
	us, err := sw.e.Systemd.States(ctx, unit)
	if err != nil {
		return err
	}
	if len(us) != 1 || us[0].ActiveState != "inactive" {
		state := "not listed"
		if len(us) == 1 {
			state = us[0].ActiveState
		}
		return fmt.Errorf("it is %s after the stop", state)
	}
	return nil
}
