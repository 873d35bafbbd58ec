package units

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"

	"github.com/sitectl/sitectl/internal/unitfile"
)

// TestScriptLeadsReadBack: the fixed scripts that entry.plain takes as
// plain are what systemd reads from their rendering.
func TestScriptLeadsReadBack(t *testing.T) {
	for _, l := range []*scriptLead{ranCleanly} {
		prefix, argv, err := unitfile.DecodeCommand(l.raw)
		if err != nil || prefix != "" || !slices.Equal(argv, l.argv) {
			t.Errorf("%s reads back as %q %q (%v), want %q", l.raw, prefix, argv, err, l.argv)
		}
	}
}

// TestRanCleanlyMarksOnlyACleanEnd runs the ExecStopPost= script as
// systemd does: only SERVICE_RESULT=success leaves the mark, and the
// script always exits 0.
func TestRanCleanlyMarksOnlyACleanEnd(t *testing.T) {
	for _, tc := range []struct {
		env  []string
		mark bool
	}{
		{[]string{"SERVICE_RESULT=success"}, true},
		{[]string{"SERVICE_RESULT=exit-code"}, false},
		{[]string{"SERVICE_RESULT=timeout"}, false},
		{[]string{"SERVICE_RESULT="}, false},
		{nil, false},
	} {
		mark := filepath.Join(t.TempDir(), "ran cleanly") // a space: an argument, not script
		cmd := exec.Command(ranCleanly.argv[0], append(ranCleanly.argv[1:], mark)...)
		cmd.Env = tc.env
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("%v: %v %s", tc.env, err, out)
		}
		if _, err := os.Stat(mark); (err == nil) != tc.mark {
			t.Errorf("%v: the mark is there: %v, want %v", tc.env, err == nil, tc.mark)
		}
	}
}
