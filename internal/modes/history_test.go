package modes

import (
	"testing"
)

// A deployer who changes their site more than maxHistory times does not push root's
// changes of it out of its history: root's newest rootReserve entries
// stay, and the deployer's pushes out only their own.
func TestDeployerDoesNotPushRootOutOfTheHistory(t *testing.T) {
	st := Store{Dir: t.TempDir()}
	s := verifiedSite(t)
	root := Local{Store: st, UID: 0, PID: 1}
	deployer := Local{Store: st, UID: 1000, PID: 2}
	for i := 0; i < rootReserve+50; i++ {
		change(t, root, s, "normal", "read-only", ResultOK)
	}
	var state State
	for i := 0; i < maxHistory+10; i++ {
		state = change(t, deployer, s, "read-only", "read-only", ResultOK)
	}
	byUID := map[int]int{}
	for _, e := range state.History {
		byUID[e.UID]++
	}
	if len(state.History) != maxHistory || byUID[0] != rootReserve || byUID[1000] != maxHistory-rootReserve {
		t.Errorf("history of %d entries, %d of them root's and %d the deployer's; want %d, %d and %d",
			len(state.History), byUID[0], byUID[1000], maxHistory, rootReserve, maxHistory-rootReserve)
	}
	if last := state.History[len(state.History)-1]; last.UID != 1000 {
		t.Errorf("the newest entry is %+v, want the deployer's last change", last)
	}
}

// Without others' entries, the history is its newest maxHistory entries,
// in order.
func TestTrimHistoryKeepsTheNewest(t *testing.T) {
	var h []Entry
	for i := 0; i < maxHistory+30; i++ {
		h = append(h, Entry{UID: 0, Reason: string(rune('a' + i%26))})
	}
	got := trimHistory(h)
	if len(got) != maxHistory || got[0] != h[30] || got[maxHistory-1] != h[len(h)-1] {
		t.Errorf("kept %d entries from %+v to %+v", len(got), got[0], got[len(got)-1])
	}
	mixed := append([]Entry{{UID: 1000, Reason: "old"}}, h...)
	if got := trimHistory(mixed); len(got) != maxHistory || got[0] != h[30] {
		t.Errorf("with an old entry of another uid: kept %d from %+v", len(got), got[0])
	}
}
