package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"testing"

	"github.com/sitectl/sitectl/internal/control"
)

// closedOutputSite is where the child of TestChangeExitCodeSurvivesAClosedOutput
// finds its site, and whether it is that child.
const closedOutputSite = "SITECTL_TEST_CLOSED_OUTPUT_CONFIG"

// TestChangeExitCodeSurvivesAClosedOutput: a change whose standard output
// and error are a pipe nobody reads any more (`sitectl restart karl 2>&1 |
// head -0`, an ssh session without a terminal that dropped) still exits
// with the code that says how the change ended: its failure is printed
// after the change has stopped catching signals, and the SIGPIPE of that
// write would otherwise kill sitectl, exit 141 in a shell, whatever the
// change did. Here no bus answers: exit 7.
func TestChangeExitCodeSurvivesAClosedOutput(t *testing.T) {
	if dir := os.Getenv(closedOutputSite); dir != "" {
		// The child: sitectl, as root, with a bus that cannot be reached.
		shorten(t, &effectiveUID, func() int { return 0 })
		shorten(t, &connectSystemd, func(context.Context) (*control.Manager, error) {
			return nil, fmt.Errorf("no bus here: %w", control.ErrUnavailable)
		})
		os.Exit(Main([]string{"--config-dir", dir, "--state-dir", t.TempDir(), "restart", "karl"}, os.Stdout, os.Stderr))
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	r.Close() // nobody reads: every write gets SIGPIPE, or EPIPE
	defer w.Close()
	cmd := exec.Command(os.Args[0], "-test.run=^TestChangeExitCodeSurvivesAClosedOutput$")
	cmd.Env = append(os.Environ(), closedOutputSite+"="+testDirs(t).Config)
	cmd.Stdout, cmd.Stderr = w, w
	err = cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) {
		t.Fatalf("sitectl restart with its output closed: %v, want exit %d", err, exitUnavailable)
	}
	if got := exit.ExitCode(); got != exitUnavailable {
		t.Errorf("sitectl restart with its output closed: %v (exit %d), want exit %d", exit, got, exitUnavailable)
	}
}
