package sandbox

import "testing"

// A port from FreePort never lies in the range the kernel gives outgoing
// connections, and is not handed out twice.
func TestFreePortIsBelowTheEphemeralRange(t *testing.T) {
	lo, _, err := EphemeralRange()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	for range 200 {
		p, err := FreePort()
		if err != nil {
			t.Fatal(err)
		}
		if p >= lo || p < lowestPort {
			t.Fatalf("port %d is outside [%d, %d)", p, lowestPort, lo)
		}
		if seen[p] {
			t.Fatalf("port %d handed out twice", p)
		}
		seen[p] = true
	}
}
