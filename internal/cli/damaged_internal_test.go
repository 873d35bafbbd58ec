package cli

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/sitectl/sitectl/internal/modes"
)

// A damaged file of a site's state fails a command with exit 1 and a hint
// that says how to get past it, printed after the error; the file stays.
func TestDamagedStateFileGetsARecoveryHint(t *testing.T) {
	d := testDirs(t)
	st := modes.Store{Dir: d.State}
	if err := st.WriteState("karl", modes.State{}); err != nil {
		t.Fatal(err)
	}
	path := d.StateFile("karl")
	if err := os.WriteFile(path, []byte(`{"previous_mode":`), 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr strings.Builder
	code := run(newRoot(&stdout, &stderr), []string{"history", "karl", "--config-dir", d.Config, "--state-dir", d.State}, &stderr)
	want := fmt.Sprintf("sitectl: error: the state file %s of site karl is damaged: unexpected end of JSON input\nsitectl: hint: sitectl leaves it as it is; to go on, move it aside as root (`mv %s %s.damaged`)", path, path, path)
	if code != exitFailed || !strings.HasPrefix(stderr.String(), want) {
		t.Errorf("history of a damaged state file: exit %d,\n%s\nwant exit 1 and\n%s", code, stderr.String(), want)
	}
	if data, _ := os.ReadFile(path); string(data) != `{"previous_mode":` {
		t.Errorf("the damaged state file is now %q", data)
	}
}

// The hint is not given twice when an error that carries it is wrapped
// with it again (status's errors are).
func TestDamagedHintOnce(t *testing.T) {
	d := &modes.DamagedError{Site: "karl", Path: "/s/mode.env", What: modes.DamagedMode, Err: fmt.Errorf("it has no SITE_MODE")}
	err := withCode(exitFailed, fmt.Errorf("site karl: %w", d), hintsOf(d)...)
	if h := hintsOf(err); len(h) != 1 || h[0] != d.Recovery() {
		t.Errorf("hints %q; want the recovery once", h)
	}
	if h := hintsOf(withCode(exitFailed, d, "first")); len(h) != 2 || h[0] != "first" {
		t.Errorf("hints %q; want the error's own, then the recovery", h)
	}
}
