package status

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sitectl/sitectl/internal/paths"
	"github.com/sitectl/sitectl/internal/sitecache"
)

// cached is src with a list cache in a directory of the test's own, that
// the test's loads may write, and in which every file counts as settled
// (sitecache.Settle): the test writes its files just before it lists them.
func cached(t *testing.T, src Sources) (Sources, string) {
	t.Helper()
	src.ListCache = filepath.Join(t.TempDir(), "run", "cache", "list")
	src.now = func() time.Time { return time.Now().Add(time.Hour) }
	yes := true
	src.cacheWrites = &yes
	return src, src.ListCache
}

// listOf is list's reading of every site.
func listOf(t *testing.T, src Sources) Result {
	t.Helper()
	res, err := Gather(context.Background(), src, Request{Brief: true})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// sameList fails unless got is what list says without a cache: the same
// sites, field for field, the same mistakes and skipped files.
func sameList(t *testing.T, step string, got, want Result) {
	t.Helper()
	if !reflect.DeepEqual(got.Sites, want.Sites) {
		for i := range min(len(got.Sites), len(want.Sites)) {
			if !reflect.DeepEqual(got.Sites[i], want.Sites[i]) {
				t.Fatalf("%s: site %d differs from a list without a cache:\n got %+v\nwant %+v", step, i, got.Sites[i], want.Sites[i])
			}
		}
		t.Fatalf("%s: %d sites, want %d", step, len(got.Sites), len(want.Sites))
	}
	if g, w := errStrings(got.Skipped), errStrings(want.Skipped); !reflect.DeepEqual(g, w) {
		t.Fatalf("%s: skipped %q, want %q", step, g, w)
	}
}

func errStrings(errs []error) []string {
	var out []string
	for _, e := range errs {
		out = append(out, e.Error())
	}
	return out
}

// changeFile runs change on path until the file's change time differs
// from before: file times tick every few milliseconds, and a change in the
// tick of the file's last one would keep its identity (sitecache.Settle is
// what guards real lists against that; the test's loads skip it).
func changeFile(t *testing.T, path string, change func()) {
	t.Helper()
	var before unix.Stat_t
	if err := unix.Stat(path, &before); err != nil {
		t.Fatal(err)
	}
	for range 10000 {
		change()
		var after unix.Stat_t
		if err := unix.Stat(path, &after); err != nil {
			t.Fatal(err)
		}
		if after.Ctim != before.Ctim || after.Ino != before.Ino {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("the change time of %s never changed", path)
}

// sameSizeEdit rewrites path with old replaced by new (as long), and puts
// its modification time back: only its change time tells it changed.
func sameSizeEdit(t *testing.T, path, old, new string) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	edited := strings.Replace(string(data), old, new, 1)
	if len(edited) != len(data) || edited == string(data) {
		t.Fatalf("%q → %q is not a same-size edit of %s", old, new, path)
	}
	changeFile(t, path, func() {
		if err := os.WriteFile(path, []byte(edited), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(path, fi.ModTime(), fi.ModTime()); err != nil {
			t.Fatal(err)
		}
	})
	if after, _ := os.Stat(path); after.Size() != fi.Size() || !after.ModTime().Equal(fi.ModTime()) {
		t.Fatalf("%s: size or mtime changed", path)
	}
}

// rewriteCache replaces the cache file with what edit makes of it.
func rewriteCache(t *testing.T, path string, edit func(*sitecache.Cache)) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	c, err := sitecache.Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	edit(&c)
	if err := os.WriteFile(path, sitecache.Encode(c), 0o600); err != nil {
		t.Fatal(err)
	}
}

// poison gives every record a working directory no site has: a list that
// trusted the cache would show it as the release.
func poison(c *sitecache.Cache) {
	for i := range c.Records {
		c.Records[i].Workdir = "/poisoned"
	}
}

// TestListCacheGivesTheSameList: with the cache cold, warm, after a
// same-size edit with the mtime put back, a file replaced by rename, a
// chmod, a file made invalid, a new file that collides with a cached
// one, a damaged cache, a cache of another build and one of another
// directory, list says exactly what it says without a cache; unchanged
// files are not read.
func TestListCacheGivesTheSameList(t *testing.T) {
	d, sd := setup(t)
	fresh := Sources{Dirs: d, Systemd: sd}
	src, cache := cached(t, fresh)
	step := func(name string, trusted, reused int, wrote bool) {
		t.Helper()
		got := listOf(t, src)
		sameList(t, name, got, listOf(t, fresh))
		if want := (sitecache.Stats{Trusted: trusted, Reused: reused, Wrote: wrote}); got.cache != want {
			t.Fatalf("%s: the cache did %+v, want %+v", name, got.cache, want)
		}
	}
	// idle, down, loop, run, failed and half are valid; broken (with its
	// last good version) and gone are not, Bad_Name is skipped.
	step("cold", 0, 0, true)
	if fi, err := os.Stat(filepath.Dir(cache)); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("the cache directory: %v %v, want 0700", fi.Mode(), err)
	}
	if fi, err := os.Stat(cache); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("the cache file: %v %v, want 0600", fi.Mode(), err)
	}
	step("warm", 6, 6, false)

	sameSizeEdit(t, d.SiteFile("idle"), "1000", "1009")
	step("same-size edit, mtime put back", 6, 5, true)
	step("warm again", 6, 6, false)

	tmp := filepath.Join(d.Config, ".down.new")
	data, _ := os.ReadFile(d.SiteFile("down"))
	fi, _ := os.Stat(d.SiteFile("down"))
	if err := os.WriteFile(tmp, []byte(strings.Replace(string(data), "2000", "2008", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chtimes(tmp, fi.ModTime(), fi.ModTime())
	if err := os.Rename(tmp, d.SiteFile("down")); err != nil {
		t.Fatal(err)
	}
	step("replaced by rename", 6, 5, true)

	changeFile(t, d.SiteFile("run"), func() {
		if err := os.Chmod(d.SiteFile("run"), 0o600); err != nil {
			t.Fatal(err)
		}
		os.Chmod(d.SiteFile("run"), 0o644)
	})
	step("chmod", 6, 5, true)

	changeFile(t, d.SiteFile("loop"), func() {
		if err := os.WriteFile(d.SiteFile("loop"), []byte("exec = [\"/usr/bin/app\"]\ndrain_timout = \"5s\"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	})
	step("made invalid", 6, 5, true)
	if res := listOf(t, src); len(bySite(res.Sites)["loop"].SiteFile.Errors) == 0 {
		t.Fatal("the invalid file's mistakes are not reported")
	}
	step("invalid, warm", 5, 5, false)

	// A new site takes the port of run, whose record is trusted: run,
	// the later by name, gets the mistake, as without a cache.
	aardvark := filepath.Join(d.Config, "aardvark.toml")
	if err := os.WriteFile(aardvark, []byte(strings.ReplaceAll(siteTOML, "%PORT%", "4000")), 0o644); err != nil {
		t.Fatal(err)
	}
	step("a new site collides with a cached one", 5, 4, true)
	if res := listOf(t, src); len(bySite(res.Sites)["run"].SiteFile.Errors) == 0 {
		t.Fatal("the collision is not reported")
	}
	step("collision, warm", 5, 5, false)
	// Once run has started with that port (prepare kept its copy), run
	// keeps it and the newcomer gets the mistake, as the generator
	// decides: with the cache and without.
	data, _ = os.ReadFile(d.SiteFile("run"))
	os.MkdirAll(filepath.Dir(d.LastGoodFile("run")), 0o700)
	if err := os.WriteFile(d.LastGoodFile("run"), data, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, res := range []Result{listOf(t, src), listOf(t, fresh)} {
		if got := bySite(res.Sites); len(got["run"].SiteFile.Errors) != 0 || len(got["aardvark"].SiteFile.Errors) == 0 {
			t.Fatalf("run has started with the port: run %+v, aardvark %+v", got["run"].SiteFile, got["aardvark"].SiteFile)
		}
	}
	sameList(t, "the collision, run held the port", listOf(t, src), listOf(t, fresh))
	os.Remove(d.LastGoodFile("run"))
	sameList(t, "run's copy gone", listOf(t, src), listOf(t, fresh))
	os.Remove(aardvark)
	step("collision gone", 5, 4, true)

	data, _ = os.ReadFile(cache)
	data[len(data)/2] ^= 0x10
	os.WriteFile(cache, data, 0o600)
	step("damaged cache", 0, 0, true)
	os.WriteFile(cache, data[:len(data)/2], 0o600)
	step("truncated cache", 0, 0, true)

	rewriteCache(t, cache, func(c *sitecache.Cache) { c.Build = "another sitectl"; poison(c) })
	step("cache of another build", 0, 0, true)
	rewriteCache(t, cache, func(c *sitecache.Cache) { c.Dir += "-other"; poison(c) })
	step("cache of another directory", 0, 0, true)
	step("warm at last", 5, 5, false)

	// status of all sites reads every file, and not the cache.
	rewriteCache(t, cache, poison)
	res, err := Gather(context.Background(), src, Request{})
	if err != nil {
		t.Fatal(err)
	}
	want, _ := Gather(context.Background(), fresh, Request{})
	sameList(t, "status", res, want)
	if res.cache != (sitecache.Stats{}) {
		t.Fatalf("status used the list cache: %+v", res.cache)
	}
}

// TestListCacheIsTrusted: a record whose file did not change stands for
// the file, which is not read (the poisoned record shows); one whose file
// changed does not.
func TestListCacheIsTrusted(t *testing.T) {
	d, sd := setup(t)
	src, cache := cached(t, Sources{Dirs: d, Systemd: sd})
	listOf(t, src)
	rewriteCache(t, cache, poison)
	sameSizeEdit(t, d.SiteFile("idle"), "1000", "1009")
	sites := bySite(listOf(t, src).Sites)
	if got := sites["run"].Release; got != "/poisoned" {
		t.Fatalf("the release of an unchanged site is %q: its record was not used", got)
	}
	if got := sites["idle"]; got.Release != "" || got.Listen[0] != "127.0.0.1:1009" {
		t.Fatalf("a changed site is listed from its stale record: %+v", got)
	}
}

// TestListCacheLeavesRecentChangesOut: a file changed within
// sitecache.Settle of the list is read by every list until it settles (a
// second change in the same clock tick would keep its identity).
func TestListCacheLeavesRecentChangesOut(t *testing.T) {
	d, sd := setup(t)
	src, _ := cached(t, Sources{Dirs: d, Systemd: sd})
	// Both lists begin right after the files were written, however slow
	// the host is to get to them (time.Now could be past the Settle).
	written := time.Now()
	src.now = func() time.Time { return written }
	listOf(t, src)
	if got := listOf(t, src).cache; got.Reused != 0 || got.Trusted != 0 {
		t.Fatalf("files written just now were recorded: %+v", got)
	}
}

// TestListCacheOnlyForRoot: a list that may not write the cache (not
// root) lists all the same, from the files.
func TestListCacheOnlyForRoot(t *testing.T) {
	d, sd := setup(t)
	src, cache := cached(t, Sources{Dirs: d, Systemd: sd})
	no := false
	src.cacheWrites = &no
	sameList(t, "not root", listOf(t, src), listOf(t, Sources{Dirs: d, Systemd: sd}))
	if _, err := os.Stat(cache); !os.IsNotExist(err) {
		t.Fatalf("a list that may not write the cache wrote it: %v", err)
	}
}

// TestListCacheRecordsWhatListReads: for every valid site file of the
// units' test data, list from its record says what list from the file
// says (a field list reads that the record left out would differ).
func TestListCacheRecordsWhatListReads(t *testing.T) {
	files, _ := filepath.Glob("../units/testdata/*.toml")
	hostile, _ := filepath.Glob("../units/testdata/hostile/*.toml")
	var seen struct{ trigger, release, mode, names, unix int }
	for _, f := range append(files, hostile...) {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		d := paths.Dirs{Config: t.TempDir(), State: t.TempDir()}
		if err := os.WriteFile(filepath.Join(d.Config, filepath.Base(f)), data, 0o644); err != nil {
			t.Fatal(err)
		}
		fresh := Sources{Dirs: d, Systemd: &fakeSystemd{}}
		want := listOf(t, fresh)
		if len(want.Sites) != 1 || want.Sites[0].SiteFile.State != "ok" {
			continue // not valid, or not a site name: never cached
		}
		src, _ := cached(t, fresh)
		listOf(t, src)
		got := listOf(t, src)
		if got.cache.Reused != 1 {
			t.Fatalf("%s: not taken from the cache: %+v", f, got.cache)
		}
		sameList(t, f, got, want)
		s := want.Sites[0]
		if s.Trigger != nil {
			seen.trigger++
		}
		if s.Release != "" {
			seen.release++
		}
		if s.Mode != "normal" {
			seen.mode++
		}
		if len(s.Sockets) > 1 {
			seen.names++
		}
		for _, l := range s.Listen {
			if strings.HasPrefix(l, "/") {
				seen.unix++
			}
		}
	}
	if seen.trigger == 0 || seen.release == 0 || seen.mode == 0 || seen.names == 0 || seen.unix == 0 {
		t.Fatalf("the test data does not cover every field list reads: %+v", seen)
	}
}
