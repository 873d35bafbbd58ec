package generator

import (
	"fmt"

	"github.com/sitectl/sitectl/internal/site"
)

// descriptorMargin is what PID 1 holds besides the sites' listening
// sockets, with room to spare: its own sockets, journal streams, the
// connections of systemctl and sitectl, the sockets of other units.
const descriptorMargin = 1024

// Listeners counts the listening sockets systemd holds for sites: one per
// listener of each site.
func Listeners(sites []*site.Site) int {
	n := 0
	for _, s := range sites {
		n += len(s.Listeners)
	}
	return n
}

// DescriptorWarning is a warning for the journal when PID 1's open-file
// limit (soft) is too low for the sites' listeners, or "". On every
// daemon-reload systemd 252 duplicates each descriptor it holds to carry
// it over; when it cannot, it gives the reload up, keeps every unit as it
// was (site files changed since are not applied, new sites not loaded) and
// still tells systemctl daemon-reload that it is done.
func DescriptorWarning(listeners int, soft uint64) string {
	need := 2*uint64(listeners) + descriptorMargin
	if soft >= need {
		return ""
	}
	return fmt.Sprintf("PID 1 may open %d files, and the %d listening sockets of the sites need about %d during every daemon-reload: "+
		"when PID 1 runs out, systemd gives the reload up without an error and no site change is applied; "+
		"raise PID 1's open-file limit (systemd raises its own to fs.nr_open at boot unless a container's limit caps it)",
		soft, listeners, need)
}
