package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sitectl/sitectl/internal/lifecycle"
	"github.com/sitectl/sitectl/internal/site"
)

// enable, disable and remove --json that refuse their site before they
// do anything print no report, wherever they find what is wrong: a file
// with mistakes against the other sites, a file broken or gone while the
// verb waited for the site's lock, a file back for remove. As a file with
// mistakes found before the lock, which prints nothing; a report said
// in_service false of a site that may be in service.
func TestLifecycleRefusedSitePrintsNoReport(t *testing.T) {
	var stdout, stderr bytes.Buffer
	e := &env{dirs: testDirs(t), stdout: &stdout, stderr: &stderr}
	s, err := e.loadSite("karl")
	if err != nil {
		t.Fatal(err)
	}
	f := changeFlags{timeout: time.Minute, asJSON: true}
	write := func(name, content string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(e.dirs.Config, name+".toml"), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	check := func(what string, wantCode int, run func() error) {
		t.Helper()
		stdout.Reset()
		err := within(t, 10*time.Second, run)
		if codeOf(err) != wantCode || stdout.Len() != 0 {
			t.Errorf("%s: exit %d (%v), standard output %q; want exit %d and nothing", what, codeOf(err), err, stdout.String(), wantCode)
		}
	}
	lifecycleVerb := func(verb string, run func(context.Context, *lifecycle.Env, *site.Site) (lifecycle.Report, error)) func() error {
		return func() error {
			return e.lifecycleOn(context.Background(), nil, verb, "karl", f, s, e.onFileAsItIs(verb, "karl", run))
		}
	}

	// Another site, first in order, declares karl's listener.
	write("aaa", "exec = [\"/usr/local/bin/app\"]\n\n[[listen]]\naddress = \"127.0.0.1:8080\"\n")
	check("enable of a site with mistakes against the others", exitUsage, lifecycleVerb("enable", e.enable))
	if err := os.Remove(filepath.Join(e.dirs.Config, "aaa.toml")); err != nil {
		t.Fatal(err)
	}

	// The file broke, then went, while the verb waited for the lock.
	write("karl", "exec = 3\n")
	check("disable of a file broken meanwhile", exitUsage, lifecycleVerb("disable", lifecycle.Disable))
	if err := os.Remove(filepath.Join(e.dirs.Config, "karl.toml")); err != nil {
		t.Fatal(err)
	}
	check("enable of a file gone meanwhile", exitNotFound, lifecycleVerb("enable", e.enable))

	// remove: the file came back while it waited.
	write("karl", "exec = [\"/usr/local/bin/app\"]\n\n[[listen]]\naddress = \"127.0.0.1:8080\"\n")
	check("remove of a file back meanwhile", exitUsage, func() error {
		return e.lifecycleOn(context.Background(), nil, "remove", "karl", f, s, e.removeUnderLock("karl"))
	})
}
