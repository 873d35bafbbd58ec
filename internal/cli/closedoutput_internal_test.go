package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sitectl/sitectl/internal/control"
	"github.com/sitectl/sitectl/internal/flow"
	"github.com/sitectl/sitectl/internal/lifecycle"
	"github.com/sitectl/sitectl/internal/modes"
	"github.com/sitectl/sitectl/internal/site"
	"github.com/sitectl/sitectl/internal/stateservice"
)

// closedOutputSite is where the child of TestChangeExitCodeSurvivesAClosedOutput
// finds its site, and whether it is that child; closedOutputState is its
// state directory. Both are the parent's, which removes them: the child
// exits with os.Exit, which skips a t.TempDir's removal.
const (
	closedOutputSite  = "SITECTL_TEST_CLOSED_OUTPUT_CONFIG"
	closedOutputState = "SITECTL_TEST_CLOSED_OUTPUT_STATE"
)

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
		os.Exit(Main([]string{"--config-dir", dir, "--state-dir", os.Getenv(closedOutputState), "restart", "karl"}, os.Stdout, os.Stderr))
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	r.Close() // nobody reads: every write gets SIGPIPE, or EPIPE
	defer w.Close()
	cmd := exec.Command(os.Args[0], "-test.run=^TestChangeExitCodeSurvivesAClosedOutput$")
	dirs := testDirs(t)
	cmd.Env = append(os.Environ(), closedOutputSite+"="+dirs.Config, closedOutputState+"="+dirs.State)
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

// fullOutput is standard output on a full disk (`> /dev/full`).
type fullOutput struct{}

func (fullOutput) Write([]byte) (int, error) {
	return 0, &os.PathError{Op: "write", Path: "/dev/stdout", Err: syscall.ENOSPC}
}

// cannedChange is the state service with a change that ends as report
// and err say, whatever the site.
type cannedChange struct {
	backend
	report flow.Report
	err    error
}

func (c cannedChange) Change(context.Context, context.Context, stateservice.Request, *site.Site, stateservice.Caller, func(string), func() (*site.Site, error)) (any, error) {
	return c.report, c.err
}

// serveCanned serves a deployer of every site the changes of c.
func serveCanned(t *testing.T, c cannedChange) {
	t.Helper()
	serveBackend(t, c, func(site.Deployer) (int, bool) { return 1000, true })
}

// TestChangeReportThatCannotBeWritten: a change whose report cannot be
// written (`sitectl restart web --json > /dev/full`) exits as the change
// ended, not 1 ("nothing was changed") after a restart that served, and
// says on standard error that its report was lost, not nothing.
func TestChangeReportThatCannotBeWritten(t *testing.T) {
	d := testDirs(t)
	web := "deployers = [\"user:dana\"]\nexec = [\"/usr/local/bin/app\"]\n\n[[listen]]\naddress = \"127.0.0.1:8090\"\n"
	if err := os.WriteFile(filepath.Join(d.Config, "web.toml"), []byte(web), 0o644); err != nil {
		t.Fatal(err)
	}
	shorten(t, &effectiveUID, func() int { return 1000 })
	served := flow.Report{Site: "web", From: "normal", To: "normal", Result: modes.ResultOK, Changed: true, MainPID: 42}
	rolledBack := flow.Report{Site: "web", From: "normal", To: "normal", Result: modes.ResultRolledBack, Changed: true}
	for _, c := range []struct {
		change cannedChange
		json   bool
		code   int
	}{
		{cannedChange{report: served}, true, exitOK},
		{cannedChange{report: served}, false, exitOK},
		{cannedChange{report: rolledBack, err: withCode(exitRolledBack, errors.New("site web did not serve; rolled back"))}, true, exitRolledBack},
	} {
		c.change.backend = backend{e: &env{dirs: d, stdout: io.Discard, stderr: io.Discard}}
		serveCanned(t, c.change)
		args := []string{"--config-dir", d.Config, "--state-dir", d.State, "restart", "web"}
		if c.json {
			args = append(args, "--json")
		}
		var stderr bytes.Buffer
		code := Main(args, fullOutput{}, &stderr)
		lost := "sitectl: warning: site web: the report of sitectl restart could not be written to standard output: write /dev/stdout: no space left on device; the exit code still says how it ended, and `sitectl history web` what it did"
		if code != c.code || !strings.Contains(stderr.String(), lost) {
			t.Errorf("%s (result %s) to a full disk: exit %d, standard error %q; want exit %d and %q", strings.Join(args[4:], " "), c.change.report.Result, code, stderr.String(), c.code, lost)
		}
	}
}

// TestLifecycleReportThatCannotBeWritten: enable, disable or remove
// whose report cannot be written exits as the verb ended: 5 for one that
// failed part way (not 1, "nothing was changed"), 0 for one that did
// what it was asked, and says that its report was lost.
func TestLifecycleReportThatCannotBeWritten(t *testing.T) {
	partial := lifecycle.Report{Site: "karl", Action: "remove", Changed: true, Stopped: []string{"site-karl.service"}}
	done := lifecycle.Report{Site: "karl", Action: "remove", Changed: true, Stopped: []string{"site-karl.service", "site-karl.socket"}, StateForgotten: true}
	for _, c := range []struct {
		report lifecycle.Report
		err    error
		json   bool
		code   int
	}{
		{partial, errors.New("site-karl.socket did not stop"), true, exitRollbackFail},
		{done, nil, true, exitOK},
		{done, nil, false, exitOK},
	} {
		var stderr bytes.Buffer
		e := &env{dirs: testDirs(t), stdout: fullOutput{}, stderr: &stderr}
		f := changeFlags{timeout: time.Minute, asJSON: c.json}
		err := e.lifecycleOn(context.Background(), nil, "remove", "karl", f, nil, func(context.Context, *lifecycle.Env) (lifecycle.Report, error) {
			return c.report, c.err
		})
		code := exitOK
		if err != nil {
			code = codeOf(err)
		}
		lost := "sitectl: warning: site karl: the report of sitectl remove could not be written to standard output: write /dev/stdout: no space left on device; the exit code still says how it ended, and `sitectl status karl` where the site stands"
		if code != c.code || !strings.Contains(stderr.String(), lost) {
			t.Errorf("remove (--json %v) that ended with %v, to a full disk: %v (exit %d), standard error %q; want exit %d and %q", c.json, c.err, err, code, stderr.String(), c.code, lost)
		}
	}
}
