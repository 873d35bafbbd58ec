package modes

import (
	"testing"

	"github.com/sitectl/sitectl/internal/site"
)

func verifiedSite(t *testing.T) *site.Site {
	t.Helper()
	s, err := site.Parse("/etc/sitectl/sites/karl.toml", []byte(`exec = ["/bin/app"]
[[listen]]
address = "127.0.0.1:8080"
[modes.read-only]
[modes.slow]
`))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// change records a switch: Begin, and Finish with result unless result is
// empty (a sitectl killed before it finished).
func change(t *testing.T, l Local, s *site.Site, from, to, result string) State {
	t.Helper()
	if err := l.Begin(s, from, to); err != nil {
		t.Fatal(err)
	}
	if result != "" {
		if err := l.Finish(s, result, ""); err != nil {
			t.Fatal(err)
		}
	}
	st, err := l.Store.ReadState(s.Name)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// The previous mode, which sitectl rollback goes back to, is a mode a
// change showed to serve: never the target of a switch whose sitectl was
// killed before it could show it, whatever comes after.
func TestPreviousModeIsOneShownToServe(t *testing.T) {
	for _, c := range []struct {
		name string
		// the changes: from, to, result ("": killed)
		changes            [][3]string
		previous, verified string
	}{
		{"a switch", [][3]string{{"normal", "read-only", ResultOK}}, "normal", "read-only"},
		{"a restart", [][3]string{{"normal", "read-only", ResultOK}, {"read-only", "read-only", ResultOK}}, "normal", "read-only"},
		{"a failed switch", [][3]string{{"normal", "read-only", ResultOK}, {"read-only", "slow", ResultRolledBack}}, "normal", "read-only"},
		{"killed, then another mode", [][3]string{{"normal", "slow", ""}, {"slow", "read-only", ResultOK}}, "normal", "read-only"},
		{"killed, then back", [][3]string{{"normal", "read-only", ResultOK}, {"read-only", "slow", ""}, {"slow", "read-only", ResultOK}}, "normal", "read-only"},
		{"killed, then a restart", [][3]string{{"normal", "slow", ""}, {"slow", "slow", ResultOK}}, "normal", "slow"},
		{"killed twice", [][3]string{{"normal", "slow", ""}, {"slow", "read-only", ""}, {"read-only", "read-only", ResultOK}}, "normal", "read-only"},
		{"killed, rolled back to it", [][3]string{{"normal", "slow", ""}, {"slow", "read-only", ResultRolledBack}, {"slow", "read-only", ResultOK}}, "normal", "read-only"},
	} {
		t.Run(c.name, func(t *testing.T) {
			l := Local{Store: Store{Dir: t.TempDir()}, UID: 0, PID: 42}
			s := verifiedSite(t)
			var st State
			for _, ch := range c.changes {
				st = change(t, l, s, ch[0], ch[1], ch[2])
			}
			if st.PreviousMode != c.previous || st.VerifiedMode != c.verified {
				t.Errorf("previous %q (want %q), verified %q (want %q); history %+v", st.PreviousMode, c.previous, st.VerifiedMode, c.verified, st.History)
			}
		})
	}
}

// A state written before sitectl recorded the verified mode, left with a
// switch pending or interrupted, takes the mode that switch came from as
// the one verified.
func TestVerifiedModeOfAnOlderState(t *testing.T) {
	for name, old := range map[string]State{
		"pending":     {PreviousMode: "read-only", Pending: &Pending{From: "normal", To: "slow", PID: 7}},
		"interrupted": {PreviousMode: "read-only", History: []Entry{{From: "normal", To: "slow", Result: ResultInterrupted}}},
	} {
		t.Run(name, func(t *testing.T) {
			l := Local{Store: Store{Dir: t.TempDir()}, PID: 42}
			s := verifiedSite(t)
			if err := l.Store.WriteState(s.Name, old); err != nil {
				t.Fatal(err)
			}
			st := change(t, l, s, "slow", "read-only", ResultOK)
			if st.PreviousMode != "normal" || st.VerifiedMode != "read-only" {
				t.Errorf("previous %q, verified %q, want normal and read-only", st.PreviousMode, st.VerifiedMode)
			}
		})
	}
}
