package cli

import (
	"bytes"
	"testing"
)

// TestVersionBefore: a rollback goes back to the copy the service last
// started from while it is not known to fail (it is the copy that last
// ran, or the service runs it now); else to the copy that last ran. A
// start that systemd made by itself from a broken file, which overwrote
// the last good copy, is not gone back to. Never to the file as it is.
func TestVersionBefore(t *testing.T) {
	v1, v2, broken := []byte("v1"), []byte("v2"), []byte("broken")
	for _, tc := range []struct {
		name            string
		data, good, ran []byte
		runs            bool
		want            []byte
	}{
		{"an edit of a site that runs", broken, v1, v1, true, v1},
		{"an edit, no copy ran yet (a new site)", broken, v1, nil, false, v1},
		{"systemd started the broken file, which crash-loops", broken, broken, v1, false, v1},
		{"a broken start, then another edit", v2, broken, v1, false, v1},
		{"a version started by systemctl serves now", broken, v2, v1, true, v2},
		{"a version started by systemctl, idle now, not seen to work", broken, v2, v1, false, v1},
		{"the file is what ran", v1, v1, v1, true, nil},
		{"the file is what ran, after a broken start", v1, broken, v1, false, nil},
		{"no copy at all", broken, nil, nil, false, nil},
		{"only a copy that ran", broken, nil, v1, false, v1},
	} {
		asked := false
		got := versionBefore(tc.data, tc.good, tc.ran, func() bool { asked = true; return tc.runs })
		if !bytes.Equal(got, tc.want) || (got == nil) != (tc.want == nil) {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
		if asked && bytes.Equal(tc.good, tc.ran) {
			t.Errorf("%s: systemd was asked whether the service runs, though the copy it started from is the one that ran", tc.name)
		}
	}
}
