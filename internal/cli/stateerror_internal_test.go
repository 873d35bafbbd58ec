package cli

import (
	"fmt"
	"io/fs"
	"strings"
	"testing"
)

// A state write refused by the kernel is the caller's permission only when
// the caller is not root: root refused (an immutable file, a security
// module) is told so, not sent to the state service.
func TestStateErrorTellsRootFromADeployer(t *testing.T) {
	err := fmt.Errorf("cannot write state.json: %w", fs.ErrPermission)
	for _, c := range []struct {
		uid  int
		code int
		hint string
	}{
		{0, exitFailed, "immutable"},
		{1000, exitDenied, "state service"},
	} {
		old := effectiveUID
		effectiveUID = func() int { return c.uid }
		got := stateError(err)
		effectiveUID = old
		if codeOf(got) != c.code || !strings.Contains(strings.Join(hintsOf(got), " "), c.hint) {
			t.Errorf("uid %d: exit %d, hints %q; want exit %d and a hint of %q", c.uid, codeOf(got), hintsOf(got), c.code, c.hint)
		}
	}
}
