package control

import (
	"strings"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
	"golang.org/x/sys/unix"
)

// ActiveEnter is read from systemd's monotonic timestamp and carries this
// process's monotonic reading: status's crash window (time.Now less it)
// is not moved by a wall clock stepped since the service became active.
func TestActiveEnterIsOnTheMonotonicClock(t *testing.T) {
	var mono unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &mono); err != nil {
		t.Fatal(err)
	}
	enter := time.Duration(mono.Nano()) - 5*time.Second
	var u Unit
	activeEnterProp.set(&u, dbus.MakeVariant(uint64(enter/time.Microsecond)))
	if ago := time.Since(u.ActiveEnter); ago < 5*time.Second || ago > 6*time.Second {
		t.Errorf("a service active since 5s ago on systemd's monotonic clock: ActiveEnter %v, %v ago", u.ActiveEnter, ago)
	}
	if !strings.Contains(u.ActiveEnter.String(), " m=") {
		t.Errorf("ActiveEnter %v has no monotonic reading: a step of the wall clock moves it", u.ActiveEnter)
	}
	if activeEnterProp.name != "ActiveEnterTimestampMonotonic" {
		t.Errorf("ActiveEnter is read from %s", activeEnterProp.name)
	}
}
