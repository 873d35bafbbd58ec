package cli

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sitectl/sitectl/internal/control"
	"github.com/sitectl/sitectl/internal/jsonschema"
	"github.com/sitectl/sitectl/internal/site"
)

// grantingService is deployerService whose grants name uid 1000 for
// every user and group.
func grantingService(t *testing.T, e *env) {
	t.Helper()
	serveDeployer(t, e, func(site.Deployer) (int, bool) { return 1000, true })
}

// jsonRun is what one sitectl command line printed with --json.
type jsonRun struct {
	code   int
	stdout string
	stderr string
}

// runJSON runs sitectl args --json on dirs, as root or as a deployer
// (through the state service grantingService runs), and checks that what
// it printed is nothing or one document that fits the verb's schema.
func runJSON(t *testing.T, e *env, deployer bool, args ...string) jsonRun {
	t.Helper()
	uid := 0
	if deployer {
		uid = 1000
	}
	shorten(t, &effectiveUID, func() int { return uid })
	full := append(append([]string{}, args...), "--json", "--config-dir", e.dirs.Config, "--state-dir", e.dirs.State)
	var out, errb bytes.Buffer
	code := Main(full, &out, &errb)
	if out.Len() > 0 {
		_, schema, ok := JSONOutputOf(full)
		if !ok {
			t.Fatalf("sitectl %s: no schema", strings.Join(full, " "))
		}
		if err := jsonschema.Validate(schema, out.Bytes()); err != nil {
			t.Errorf("sitectl %s (uid %d) does not fit its schema: %v\n%s", strings.Join(args, " "), uid, err, out.String())
		}
	}
	return jsonRun{code, out.String(), errb.String()}
}

// A deployer's change prints what root's prints in the same case: nothing
// on standard output when the site does not exist or has mistakes (and
// when it is not granted, or the state service cannot be asked: then the
// change may have happened, which a report with an empty result would
// deny), and the same report, with the same exit code, once the site was
// found (a mode it does not have, no bus).
func TestDeployerChangeJSONIsRoots(t *testing.T) {
	e := &env{dirs: testDirs(t), stdout: os.Stdout, stderr: os.Stderr}
	web := "deployers = [\"user:dana\"]\nexec = [\"/usr/local/bin/app\"]\n\n[[listen]]\naddress = \"127.0.0.1:8090\"\n"
	if err := os.WriteFile(filepath.Join(e.dirs.Config, "web.toml"), []byte(web), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(e.dirs.Config, "broken.toml"), []byte("deployers = [\"user:dana\"]\nexec = 3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	shorten(t, &connectSystemd, func(context.Context) (*control.Manager, error) {
		return nil, fmt.Errorf("no bus here: %w", control.ErrUnavailable)
	})
	grantingService(t, &env{dirs: e.dirs, stdout: &bytes.Buffer{}, stderr: &bytes.Buffer{}})
	for _, verb := range []string{"mode", "restart", "reload", "rollback"} {
		cmd := func(name string) []string {
			if verb == "mode" {
				return []string{verb, name, "normal"}
			}
			return []string{verb, name}
		}
		cases := [][]string{cmd("nosuch"), cmd("broken"), cmd("web")}
		if verb == "mode" {
			cases = append(cases, []string{"mode", "web", "party"})
		}
		for _, args := range cases {
			root, dep := runJSON(t, e, false, args...), runJSON(t, e, true, args...)
			if dep.code != root.code || dep.stdout != root.stdout {
				t.Errorf("sitectl %s --json: root exits %d and prints %q; a deployer exits %d and prints %q (stderr %q)",
					strings.Join(args, " "), root.code, root.stdout, dep.code, dep.stdout, dep.stderr)
			}
		}
		// Not granted: refused before the site, as root's "no
		// permission" is.
		if r := runJSON(t, e, true, cmd("karl")...); r.code != exitDenied || r.stdout != "" {
			t.Errorf("%s of a site not granted: exit %d, standard output %q; want exit %d and nothing", verb, r.code, r.stdout, exitDenied)
		}
	}
	// No state service: nobody can tell whether the change happened.
	t.Setenv("SITECTL_STATE_SOCKET", filepath.Join(t.TempDir(), "none.sock"))
	if r := runJSON(t, e, true, "restart", "web"); r.code != exitUnavailable || r.stdout != "" {
		t.Errorf("restart without a state service: exit %d, standard output %q; want exit %d and nothing", r.code, r.stdout, exitUnavailable)
	}
}

// A deployer's status --json naming a site that does not exist leaves it
// out, as root's does: [] and exit 4 when none of them exists, not
// nothing; and the sites that do exist are still read (here, without a
// bus: exit 7 for both).
func TestDeployerStatusJSONIsRoots(t *testing.T) {
	e := &env{dirs: testDirs(t)}
	web := "deployers = [\"user:dana\"]\nexec = [\"/usr/local/bin/app\"]\n\n[[listen]]\naddress = \"127.0.0.1:8090\"\n"
	if err := os.WriteFile(filepath.Join(e.dirs.Config, "web.toml"), []byte(web), 0o644); err != nil {
		t.Fatal(err)
	}
	shorten(t, &connectSystemd, func(context.Context) (*control.Manager, error) {
		return nil, fmt.Errorf("no bus here: %w", control.ErrUnavailable)
	})
	grantingService(t, &env{dirs: e.dirs, stdout: &bytes.Buffer{}, stderr: &bytes.Buffer{}})
	for _, args := range [][]string{{"status", "nosuch"}, {"status", "nosuch", "other"}, {"status", "web", "nosuch"}} {
		root, dep := runJSON(t, e, false, args...), runJSON(t, e, true, args...)
		if dep.code != root.code || dep.stdout != root.stdout {
			t.Errorf("sitectl %s --json: root exits %d and prints %q; a deployer exits %d and prints %q (stderr %q)",
				strings.Join(args, " "), root.code, root.stdout, dep.code, dep.stdout, dep.stderr)
		}
	}
}
