package cli_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/sitectl/sitectl/internal/cli"
)

// A mistyped verb is bad usage (exit 2) with a readable suggestion, also
// under a command that has commands of its own; only --help shows help.
func TestMistypedVerbsAreUsageErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"stauts", "shop"}, "Did you mean this?\n  status\n"},
		{[]string{"units", "write"}, `unknown command "write" for "sitectl units": its one command is render`},
		{[]string{"units"}, "sitectl units needs a command: render"},
	} {
		var stdout, stderr bytes.Buffer
		code := cli.Main(c.args, &stdout, &stderr)
		if code != 2 || !strings.Contains(stderr.String(), c.want) || strings.Contains(stderr.String(), `\t`) || stdout.Len() != 0 {
			t.Errorf("sitectl %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(c.args, " "), code, stdout.String(), stderr.String())
		}
	}
	var stdout, stderr bytes.Buffer
	if code := cli.Main([]string{"units", "--help"}, &stdout, &stderr); code != 0 || !strings.Contains(stdout.String(), "render") {
		t.Errorf("sitectl units --help: exit %d\n%s%s", code, stdout.String(), stderr.String())
	}
}
