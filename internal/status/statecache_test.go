package status

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sitectl/sitectl/internal/paths"
	"github.com/sitectl/sitectl/internal/sitecache"
)

// stateCached is src with a list cache and a state cache in a directory of
// the test's own, as cached makes them.
func stateCached(t *testing.T, src Sources) (Sources, string) {
	t.Helper()
	src, _ = cached(t, src)
	src.StateCache = filepath.Join(filepath.Dir(src.ListCache), "states")
	return src, src.StateCache
}

const pendingState = `{"previous_mode":"normal","pending":{"since":"2026-12-01T10:00:00Z","kind":"mode","from":"normal","to":"alpha","uid":0,"pid":1},"history":[]}`

// writeFile writes content to path, making its directory.
func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// withStates gives setup's sites the state directories of sites that have
// run: mode files, state files, a switch pending (loop), a state file
// without a mode file (down), and a directory with neither (broken's, which
// holds its last good file). run started after its mode was written.
func withStates(t *testing.T, d paths.Dirs, sd *fakeSystemd) {
	t.Helper()
	writeFile(t, d.ModeEnvFile("idle"), "SITE_MODE=\"alpha\"\n")
	writeFile(t, d.ModeEnvFile("run"), "SITE_MODE=\"bravo\"\n")
	writeFile(t, d.StateFile("run"), `{"previous_mode":"alpha","changed_at":"2026-12-01T10:00:00Z","history":[{"kind":"mode"}]}`)
	writeFile(t, d.ModeEnvFile("failed"), "SITE_MODE=\"normal\"\n")
	writeFile(t, d.ModeEnvFile("half"), "SITE_MODE=\"normal\"\n")
	writeFile(t, d.StateFile("down"), `{"previous_mode":"bravo","history":[]}`)
	writeFile(t, d.ModeEnvFile("loop"), "SITE_MODE=\"normal\"\n")
	writeFile(t, d.StateFile("loop"), pendingState)
	for i, u := range sd.units {
		if u.Name == "site-run.service" {
			sd.units[i].Since = time.Now().Add(time.Hour)
		}
	}
}

// rewriteStateCache replaces the state cache file with what edit makes of
// it.
func rewriteStateCache(t *testing.T, path string, edit func(*sitecache.StateCache)) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	c, err := sitecache.DecodeStates(data)
	if err != nil {
		t.Fatal(err)
	}
	edit(&c)
	if err := os.WriteFile(path, sitecache.EncodeStates(c), 0o600); err != nil {
		t.Fatal(err)
	}
}

// poisonStates gives every record a previous mode no site has: a list
// that trusted the cache would show it.
func poisonStates(c *sitecache.StateCache) {
	for i := range c.Records {
		c.Records[i].PreviousMode = "poisoned"
	}
}

// replaceFile replaces path with content by rename, as sitectl writes.
func replaceFile(t *testing.T, path, content string) {
	t.Helper()
	changeFile(t, path, func() {
		tmp := path + ".new"
		if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
	})
}

// TestStateCacheGivesTheSameList: with the state cache cold, warm, after a
// same-size edit of a mode file with its mtime put back, a state file
// replaced, removed and added, a pending switch ended, a mode file removed,
// a state directory removed, a damaged cache and caches of another build
// or directory, list says exactly what it says without a cache; the files
// of unchanged states are not read, and a pending switch is never cached.
func TestStateCacheGivesTheSameList(t *testing.T) {
	d, sd := setup(t)
	withStates(t, d, sd)
	fresh := Sources{Dirs: d, Systemd: sd}
	src, cache := stateCached(t, fresh)
	step := func(name string, trusted, reused int, wrote bool) {
		t.Helper()
		got := listOf(t, src)
		sameList(t, name, got, listOf(t, fresh))
		if want := (sitecache.Stats{Trusted: trusted, Reused: reused, Wrote: wrote}); got.stateCache != want {
			t.Fatalf("%s: the state cache did %+v, want %+v", name, got.stateCache, want)
		}
	}
	// idle, run, failed, half, down and broken have a state directory
	// that can be recorded; loop's switch is pending.
	step("cold", 0, 0, true)
	if s := bySite(listOf(t, src).Sites); s["run"].PreviousMode != "alpha" || !s["run"].ModeApplied || s["loop"].Pending == nil || s["idle"].Mode != "alpha" {
		t.Fatalf("the states are not listed: %+v", s)
	}
	if fi, err := os.Stat(cache); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("the state cache file: %v %v, want 0600", fi.Mode(), err)
	}
	step("warm", 6, 6, false)

	sameSizeEdit(t, d.ModeEnvFile("idle"), "alpha", "bravo")
	step("same-size edit of a mode file, mtime put back", 6, 5, true)
	step("warm again", 6, 6, false)

	replaceFile(t, d.StateFile("run"), `{"previous_mode":"charlie","history":[]}`)
	step("a state file replaced", 6, 5, true)

	if err := os.Remove(d.StateFile("down")); err != nil {
		t.Fatal(err)
	}
	step("a state file removed", 6, 5, true)

	writeFile(t, d.StateFile("idle"), `{"previous_mode":"delta","history":[]}`)
	step("a state file added", 6, 5, true)

	replaceFile(t, d.StateFile("loop"), `{"previous_mode":"normal","history":[]}`)
	step("the pending switch ended", 6, 6, true)
	step("seven records", 7, 7, false)

	if err := os.Remove(d.ModeEnvFile("failed")); err != nil {
		t.Fatal(err)
	}
	step("a mode file removed", 7, 6, true)

	if err := os.RemoveAll(d.SiteState("half")); err != nil {
		t.Fatal(err)
	}
	step("a state directory removed", 7, 6, true)
	step("warm at last", 6, 6, false)

	data, _ := os.ReadFile(cache)
	data[len(data)/2] ^= 0x10
	os.WriteFile(cache, data, 0o600)
	step("damaged cache", 0, 0, true)
	os.WriteFile(cache, data[:len(data)/2], 0o600)
	step("truncated cache", 0, 0, true)
	rewriteStateCache(t, cache, func(c *sitecache.StateCache) { c.Build = "another sitectl"; poisonStates(c) })
	step("cache of another build", 0, 0, true)
	rewriteStateCache(t, cache, func(c *sitecache.StateCache) { c.Dir += "-other"; poisonStates(c) })
	step("cache of another directory", 0, 0, true)

	// status of all sites reads every file, and not the cache.
	rewriteStateCache(t, cache, poisonStates)
	res, err := Gather(context.Background(), src, Request{})
	if err != nil {
		t.Fatal(err)
	}
	want, _ := Gather(context.Background(), fresh, Request{})
	sameList(t, "status", res, want)
	if res.stateCache != (sitecache.Stats{}) {
		t.Fatalf("status used the state cache: %+v", res.stateCache)
	}
}

// TestStateCacheIsTrusted: a record whose files did not change stands for
// them, which are not read (the poisoned record shows); one whose mode file
// changed in place, size and mtime kept, does not.
func TestStateCacheIsTrusted(t *testing.T) {
	d, sd := setup(t)
	withStates(t, d, sd)
	src, cache := stateCached(t, Sources{Dirs: d, Systemd: sd})
	listOf(t, src)
	rewriteStateCache(t, cache, poisonStates)
	sameSizeEdit(t, d.ModeEnvFile("run"), "bravo", "alpha")
	sites := bySite(listOf(t, src).Sites)
	if got := sites["down"].PreviousMode; got != "poisoned" {
		t.Fatalf("the previous mode of an unchanged site is %q: its record was not used", got)
	}
	if got := sites["run"]; got.PreviousMode != "alpha" || got.Mode != "alpha" {
		t.Fatalf("a changed site is listed from its stale record: %+v", got)
	}
}

// TestStateCacheLeavesRecentChangesOut: files changed within
// sitecache.Settle of the list are read by every list until they settle.
func TestStateCacheLeavesRecentChangesOut(t *testing.T) {
	d, sd := setup(t)
	withStates(t, d, sd)
	src, _ := stateCached(t, Sources{Dirs: d, Systemd: sd})
	// Both lists begin right after the files were written, however slow
	// the host is to get to them (time.Now could be past the Settle).
	written := time.Now()
	src.now = func() time.Time { return written }
	listOf(t, src)
	// broken's directory has neither file: nothing there to change.
	if got := listOf(t, src).stateCache; got.Reused != 1 || got.Trusted != 1 {
		t.Fatalf("files written just now were recorded: %+v", got)
	}
}

// TestStateCacheOnlyForRoot: a list that may not write the cache (not
// root) lists all the same, from the files.
func TestStateCacheOnlyForRoot(t *testing.T) {
	d, sd := setup(t)
	withStates(t, d, sd)
	src, cache := stateCached(t, Sources{Dirs: d, Systemd: sd})
	no := false
	src.cacheWrites = &no
	sameList(t, "not root", listOf(t, src), listOf(t, Sources{Dirs: d, Systemd: sd}))
	if _, err := os.Stat(cache); !os.IsNotExist(err) {
		t.Fatalf("a list that may not write the cache wrote it: %v", err)
	}
}

// TestStateCacheWithoutStates: once no site has a state directory left,
// list lists the same and stops writing the state cache.
func TestStateCacheWithoutStates(t *testing.T) {
	d, sd := setup(t)
	withStates(t, d, sd)
	fresh := Sources{Dirs: d, Systemd: sd}
	src, _ := stateCached(t, fresh)
	listOf(t, src)
	if err := os.RemoveAll(filepath.Dir(d.SiteState("x"))); err != nil {
		t.Fatal(err)
	}
	for i, want := range []sitecache.Stats{{Trusted: 6, Wrote: true}, {}, {}} {
		got := listOf(t, src)
		sameList(t, "no states", got, listOf(t, fresh))
		if got.stateCache != want {
			t.Fatalf("list %d without states: the state cache did %+v, want %+v", i, got.stateCache, want)
		}
	}
}
