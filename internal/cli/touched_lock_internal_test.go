package cli

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sitectl/sitectl/internal/modes"
	"github.com/sitectl/sitectl/internal/site"
)

// touchedRun runs sitectl touched karl with a systemctl that records each
// of its runs in the file it returns, and no startable check.
func touchedRun(t *testing.T, e *env) (run func() error, ran string) {
	t.Helper()
	ran = filepath.Join(t.TempDir(), "ran")
	fake := filepath.Join(t.TempDir(), "systemctl")
	if err := os.WriteFile(fake, []byte("#!/bin/sh\necho \"$@\" >>"+ran+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	shorten(t, &touchedSystemctl, fake)
	shorten(t, &touchedCheck, func(context.Context, *env, *site.Site) error { return nil })
	shorten(t, &touchedOutOfService, func(context.Context, *env, *site.Site) (string, error) { return "", nil })
	return func() error {
		c := touchedCmd(e)
		c.SetArgs([]string{"karl"})
		c.SetOut(io.Discard)
		c.SetErr(io.Discard)
		c.SilenceUsage, c.SilenceErrors = true, true
		return c.Execute()
	}, ran
}

func reloads(t *testing.T, ran string) int {
	t.Helper()
	data, err := os.ReadFile(ran)
	if os.IsNotExist(err) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(data), "reload-or-restart site-karl.service\n")
}

// A touch during a change of the site (sitectl mode, restart, a deployer's
// change: whoever holds the site's lock) reloads once that change is done,
// not in its middle, where the restart would make the change fail and roll
// back; a change that outlasts touched's bound gets a clear error and no
// reload. A site no change ever locked (no lock file) reloads at once.
func TestTouchedWaitsForAChangeUnderWay(t *testing.T) {
	var stderr strings.Builder
	e := &env{dirs: testDirs(t), stdout: io.Discard, stderr: &stderr}
	run, ran := touchedRun(t, e)
	if err := within(t, 5*time.Second, run); err != nil || reloads(t, ran) != 1 {
		t.Fatalf("no lock file: %v, %d reloads", err, reloads(t, ran))
	}

	s, err := e.loadSite("karl")
	if err != nil {
		t.Fatal(err)
	}
	st := modes.Store{Dir: e.dirs.State}
	lock, err := st.LockSite(s, true)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- run() }()
	time.Sleep(500 * time.Millisecond)
	if n := reloads(t, ran); n != 1 {
		t.Fatalf("touched reloaded while a change held the site's lock (%d reloads)", n)
	}
	if err := lock.Unlock(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil || reloads(t, ran) != 2 {
			t.Fatalf("after the change: %v, %d reloads", err, reloads(t, ran))
		}
	case <-time.After(5 * time.Second):
		t.Fatal("touched did not reload after the change ended")
	}
	if !strings.Contains(stderr.String(), "site karl: /srv/karl/restart.txt was touched while another sitectl changes the site: reloading once it is done") {
		t.Errorf("touched did not say why it waited: %q", stderr.String())
	}

	lock, err = st.LockSite(s, true)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Unlock()
	shorten(t, &touchedRoundTimeout, func(*site.Site) time.Duration { return 300 * time.Millisecond })
	err = within(t, 5*time.Second, run)
	want := "site karl: not reloaded after /srv/karl/restart.txt was touched: another sitectl was still changing the site after 300ms; touch it again once that change is done"
	if err == nil || err.Error() != want || reloads(t, ran) != 2 {
		t.Errorf("a change that outlasts touched: %v (%d reloads), want %q and no reload", err, reloads(t, ran), want)
	}
}

// A site taken out of service (by the change touched waited for, say) is
// not reloaded: reload-or-restart would start it again.
func TestTouchedLeavesASiteOutOfService(t *testing.T) {
	var stderr strings.Builder
	e := &env{dirs: testDirs(t), stdout: io.Discard, stderr: &stderr}
	run, ran := touchedRun(t, e)
	shorten(t, &touchedOutOfService, func(context.Context, *env, *site.Site) (string, error) {
		return "site-karl.socket is inactive", nil
	})
	if err := within(t, 5*time.Second, run); err != nil || reloads(t, ran) != 0 {
		t.Fatalf("out of service: %v, %d reloads, want none", err, reloads(t, ran))
	}
	want := "site karl: not reloaded after /srv/karl/restart.txt was touched: the site is out of service (site-karl.socket is inactive)\n"
	if stderr.String() != want {
		t.Errorf("stderr %q, want %q", stderr.String(), want)
	}
}

// prepare, which runs before every start of a site, creates the site's
// lock file: a touch of a site that has started waits for a change under
// way, the first change of the site included, whose lock file would
// otherwise appear only once that change takes it.
func TestPrepareMakesTheLockATouchWaitsFor(t *testing.T) {
	e := &env{dirs: testDirs(t), stdout: io.Discard, stderr: io.Discard}
	st := modes.Store{Dir: e.dirs.State}
	if lock, err := st.TryLockExisting("karl"); err != nil || lock != nil {
		t.Fatalf("before prepare: %v, %v; want no lock file", lock, err)
	}
	c := prepareCmd(e)
	c.SetArgs([]string{"karl"})
	c.SetOut(io.Discard)
	c.SetErr(io.Discard)
	c.SilenceUsage, c.SilenceErrors = true, true
	if err := c.Execute(); err != nil {
		t.Fatal(err)
	}
	lock, err := st.TryLockExisting("karl")
	if err != nil || lock == nil {
		t.Fatalf("after prepare: %v, %v; want the lock taken", lock, err)
	}
	lock.Unlock()
}

// A trigger put in place during a reload with the modification time it
// had (cp -p or rsync -t of a release whose files all have one time, as a
// reproducible archive's do) is a touch all the same: touched reloads
// again. The path unit does not watch while touched runs, and before it
// only a change of the modification time counted: the deploy's new code
// was never loaded, and nothing said so.
func TestTouchedSeesATriggerRewrittenWithItsOldTime(t *testing.T) {
	dir := t.TempDir()
	trigger, next, marker := filepath.Join(dir, "restart.txt"), filepath.Join(dir, "next"), filepath.Join(dir, "copied")
	old := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, f := range []string{trigger, next} {
		if err := os.WriteFile(f, []byte(filepath.Base(f)[:4]), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(f, old, old); err != nil {
			t.Fatal(err)
		}
	}
	e := &env{dirs: testDirs(t), stdout: io.Discard, stderr: io.Discard}
	siteFile := "exec = [\"/usr/local/bin/app\"]\nreload_trigger = \"" + trigger + "\"\n\n[[listen]]\naddress = \"127.0.0.1:8080\"\n"
	if err := os.WriteFile(filepath.Join(e.dirs.Config, "karl.toml"), []byte(siteFile), 0o644); err != nil {
		t.Fatal(err)
	}
	run, ran := touchedRun(t, e)
	// The first reload's systemctl: a deploy copies the next release's
	// trigger over the running one, keeping its time.
	script := "#!/bin/sh\necho \"$@\" >>" + ran + "\n[ -e " + marker + " ] || { sleep 0.05; cp -p " + next + " " + trigger + "; touch " + marker + "; }\n"
	if err := os.WriteFile(touchedSystemctl, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := within(t, 5*time.Second, run); err != nil {
		t.Fatal(err)
	}
	if data, _ := os.ReadFile(trigger); string(data) != "next" {
		t.Fatalf("the trigger was not copied over: %q", data)
	}
	if fi, err := os.Stat(trigger); err != nil || !fi.ModTime().Equal(old) {
		t.Fatalf("the trigger's time: %v, %v; want %v", fi.ModTime(), err, old)
	}
	if n := reloads(t, ran); n != 2 {
		t.Errorf("a trigger rewritten with its old time during the reload: %d reloads, want 2", n)
	}
}
