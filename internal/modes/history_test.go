package modes

import (
	"errors"
	"fmt"
	"slices"
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
	// Root's newest rootReserve stay; the other places are shared in
	// turn between root's older entries and the deployer's.
	if rest := (maxHistory - rootReserve) / 2; len(state.History) != maxHistory || byUID[0] != rootReserve+rest || byUID[1000] != rest {
		t.Errorf("history of %d entries, %d of them root's and %d the deployer's; want %d, %d and %d",
			len(state.History), byUID[0], byUID[1000], maxHistory, rootReserve+rest, rest)
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
	// Another uid's one old entry keeps its place: root's many push out
	// only root's own.
	mixed := append([]Entry{{UID: 1000, Reason: "old"}}, h...)
	if got := trimHistory(mixed); len(got) != maxHistory || got[0] != mixed[0] || got[1] != h[31] {
		t.Errorf("with an old entry of another uid: kept %d from %+v, %+v", len(got), got[0], got[1])
	}
}

// A deployer who changes a site again and again does not push another
// deployer's few changes of it out of its history, nor root's: the places
// root's newest do not hold are shared in turn.
func TestDeployersDoNotPushOneAnotherOut(t *testing.T) {
	st := Store{Dir: t.TempDir()}
	s := verifiedSite(t)
	root := Local{Store: st, UID: 0, PID: 1}
	quiet := Local{Store: st, UID: 1001, PID: 2}
	busy := Local{Store: st, UID: 1002, PID: 3}
	change(t, root, s, "normal", "read-only", ResultOK)
	for i := 0; i < 3; i++ {
		change(t, quiet, s, "read-only", "read-only", ResultOK)
	}
	var state State
	for i := 0; i < 3*maxHistory; i++ {
		state = change(t, busy, s, "read-only", "read-only", ResultOK)
	}
	byUID := map[int]int{}
	for _, e := range state.History {
		byUID[e.UID]++
	}
	if len(state.History) != maxHistory || byUID[0] != 1 || byUID[1001] != 3 || byUID[1002] != maxHistory-4 {
		t.Errorf("history of %d entries: root's %d, the quiet deployer's %d, the busy one's %d; want %d: 1, 3 and %d",
			len(state.History), byUID[0], byUID[1001], byUID[1002], maxHistory, maxHistory-4)
	}
	if first := state.History[0]; first.UID != 0 {
		t.Errorf("the oldest entry is %+v, want root's", first)
	}
}

// trimHistory keeps the order of what it keeps, each uid's newest, and
// shares the places root's reserve leaves in turn.
func TestTrimHistorySharesInTurn(t *testing.T) {
	var h []Entry
	// 150 of uid 1, then alternating 2 and 3, 60 each, then 10 of root.
	for i := 0; i < 150; i++ {
		h = append(h, Entry{UID: 1, Reason: fmt.Sprint("1-", i)})
	}
	for i := 0; i < 60; i++ {
		h = append(h, Entry{UID: 2, Reason: fmt.Sprint("2-", i)}, Entry{UID: 3, Reason: fmt.Sprint("3-", i)})
	}
	for i := 0; i < 10; i++ {
		h = append(h, Entry{UID: 0, Reason: fmt.Sprint("0-", i)})
	}
	got := trimHistory(h)
	byUID := map[int]int{}
	for _, e := range got {
		byUID[e.UID]++
	}
	// Root's 10 are in its reserve; 190 places for uids 1, 2 and 3:
	// 60 each for 2 and 3 (all they have), 70 for 1.
	if len(got) != maxHistory || byUID[0] != 10 || byUID[1] != 70 || byUID[2] != 60 || byUID[3] != 60 {
		t.Fatalf("kept %d: %v", len(got), byUID)
	}
	if got[0].Reason != "1-80" || got[len(got)-1].Reason != "0-9" {
		t.Errorf("kept from %q to %q, want from 1-80 to 0-9", got[0].Reason, got[len(got)-1].Reason)
	}
	for i := 1; i < len(got); i++ {
		if slices.Index(h, got[i-1]) >= slices.Index(h, got[i]) {
			t.Fatalf("out of order at %d: %+v before %+v", i, got[i-1], got[i])
		}
	}
}

// A switch left pending by a sitectl that died is in the history as it
// stands, as the interrupted entry the next change records; one that runs
// (its sitectl holds the site's lock) is not, and the state is not changed.
func TestHistoryAsItStands(t *testing.T) {
	st := Store{Dir: t.TempDir()}
	s := verifiedSite(t)
	root := Local{Store: st, UID: 0, PID: 4242}
	change(t, root, s, "normal", "read-only", ResultOK)
	lock, err := st.LockSite(s, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := root.Begin(s, "read-only", "normal"); err != nil {
		t.Fatal(err)
	}
	state, err := st.ReadState(s.Name)
	if err != nil {
		t.Fatal(err)
	}
	if h := HistoryAsItStands(state, st.Busy(s.Name)); len(h) != 1 {
		t.Errorf("a switch in progress is in the history: %+v", h)
	}
	lock.Unlock() // the sitectl that runs it dies
	h := HistoryAsItStands(state, st.Busy(s.Name))
	if len(h) != 2 || h[1].Result != ResultInterrupted || h[1].From != "read-only" || h[1].To != "normal" || h[1].Reason != "sitectl (pid 4242) stopped before the switch finished" {
		t.Errorf("a switch cut short: %+v", h)
	}
	if again, _ := st.ReadState(s.Name); again.Pending == nil || len(again.History) != 1 {
		t.Errorf("reading the history changed the state: %+v", again)
	}
	// The next change records it just so.
	next := change(t, root, s, "normal", "normal", ResultOK)
	if len(next.History) != 3 || next.History[1] != h[1] {
		t.Errorf("the next change recorded %+v, history showed %+v", next.History, h)
	}
}

// sitectl touched holds the site's lock while it reloads (TryLockExisting),
// but it changes no mode and records nothing: a switch left pending by a
// sitectl that died is still cut short, not "in progress", while a touch
// reloads the site; and a change still cannot run beside the touch.
func TestTouchedLockIsNoChangeInProgress(t *testing.T) {
	st := Store{Dir: t.TempDir()}
	s := verifiedSite(t)
	root := Local{Store: st, UID: 0, PID: 4242}
	change(t, root, s, "normal", "read-only", ResultOK)
	lock, err := st.LockSite(s, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := root.Begin(s, "read-only", "normal"); err != nil {
		t.Fatal(err)
	}
	lock.Unlock() // the sitectl that began it died
	// A deploy's touch reloads the site.
	touched, err := st.TryLockExisting(s.Name)
	if err != nil || touched == nil {
		t.Fatalf("touched's lock: %v, %v", touched, err)
	}
	defer touched.Unlock()
	state, err := st.ReadState(s.Name)
	if err != nil {
		t.Fatal(err)
	}
	if st.Busy(s.Name) {
		t.Error("the site is busy (a change in progress) while only a touch reloads it")
	}
	if h := HistoryAsItStands(state, st.Busy(s.Name)); len(h) != 2 || h[1].Result != ResultInterrupted {
		t.Errorf("a switch cut short, during a touch's reload: %+v", h)
	}
	if _, err := st.LockSite(s, false); !errors.Is(err, ErrLocked) {
		t.Errorf("a change beside a touch's reload: %v, want ErrLocked", err)
	}
}
