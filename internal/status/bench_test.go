package status

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sitectl/sitectl/internal/control"
	"github.com/sitectl/sitectl/internal/paths"
	"github.com/sitectl/sitectl/internal/site"
)

// benchSites writes n site files of the shape test/scaleshapes uses (the
// Go test app, one TCP listener each) and the listing systemd would give
// of their units: sockets listening, services idle.
func benchSites(b testing.TB, n int) (paths.Dirs, *fakeSystemd) {
	b.Helper()
	d := paths.Dirs{Config: b.TempDir(), State: b.TempDir()}
	if err := os.MkdirAll(d.Config, 0o755); err != nil {
		b.Fatal(err)
	}
	sd := &fakeSystemd{}
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("s-%05d", i)
		c := fmt.Sprintf("exec = [\"/usr/local/bin/webapp\"]\nreadiness = \"notify\"\ndrain_timeout = \"10s\"\n\n[[listen]]\naddress = \"127.0.0.1:%d\"\n", 10000+i)
		if err := os.WriteFile(filepath.Join(d.Config, name+".toml"), []byte(c), 0o644); err != nil {
			b.Fatal(err)
		}
		sd.units = append(sd.units, loaded("site-"+name+".socket", "active", "listening"), control.Unit{Name: "site-" + name + ".service", LoadState: "loaded", ActiveState: "inactive", SubState: "dead", Result: "success"})
	}
	return d, sd
}

// listingSystemd answers List with a fixed listing, as fast as a map
// copy: the benchmark measures sitectl's own work, not the fake's.
type listingSystemd struct {
	fakeSystemd
	// delay is how long the listing takes: systemd's own work, in
	// another process (none: sitectl's work alone is measured).
	delay time.Duration
}

func (l *listingSystemd) List(context.Context, ...string) ([]control.Unit, error) {
	time.Sleep(l.delay)
	return l.units, nil
}

// BenchmarkList is sitectl list's own work for 10,000 sites: every site
// file read and parsed, the state looked up, one listing of the units.
// never-started: no site has a state directory (as in test/scaleshapes);
// started: each has a mode file, a state file and a last good copy, as
// sites that ran have. parse-only is site.LoadDir alone, the share of
// reading and parsing the site files. -cache-cold and -cache-warm are
// list with its cache of the site files (sitecache), before and after it
// was written; started-caches-warm adds the cache of the states, and
// -listing-170ms has systemd take as long to list as it does at 10,000
// sites.
func BenchmarkList(b *testing.B) {
	d, sd := benchSites(b, 10000)
	src := Sources{Dirs: d, Systemd: &listingSystemd{fakeSystemd: *sd}}
	run := func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			res, err := Gather(context.Background(), src, Request{Brief: true})
			if err != nil || len(res.Sites) != 10000 {
				b.Fatal(err, len(res.Sites))
			}
		}
	}
	b.Run("parse-only", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if res, err := site.LoadDir(d.Config, nil); err != nil || len(res.Sites) != 10000 {
				b.Fatal(err, len(res.Sites))
			}
		}
	})
	b.Run("never-started", run)
	// The same with the list cache (package sitecache): cold, every file
	// read and the cache written; warm, no file read.
	cacheSrc := src
	cacheSrc.ListCache = filepath.Join(b.TempDir(), "cache", "list")
	cacheSrc.now = func() time.Time { return time.Now().Add(time.Hour) } // the files are settled
	yes := true
	cacheSrc.cacheWrites = &yes
	var runWith func(Sources, bool) func(*testing.B)
	runCached := func(cold bool) func(b *testing.B) { return runWith(cacheSrc, cold) }
	runWith = func(cacheSrc Sources, cold bool) func(b *testing.B) {
		return func(b *testing.B) {
			if !cold { // the cache as the list before left it
				if _, err := Gather(context.Background(), cacheSrc, Request{Brief: true}); err != nil {
					b.Fatal(err)
				}
				b.ResetTimer()
			}
			for i := 0; i < b.N; i++ {
				if cold {
					b.StopTimer()
					os.Remove(cacheSrc.ListCache)
					b.StartTimer()
				}
				res, err := Gather(context.Background(), cacheSrc, Request{Brief: true})
				if err != nil || len(res.Sites) != 10000 || !cold && res.cache.Reused != 10000 ||
					!cold && cacheSrc.StateCache != "" && res.stateCache.Reused != 10000 {
					b.Fatal(err, len(res.Sites), res.cache, res.stateCache)
				}
			}
		}
	}
	b.Run("never-started-cache-cold", runCached(true))
	b.Run("never-started-cache-warm", runCached(false))
	for i := 0; i < 10000; i++ {
		name := fmt.Sprintf("s-%05d", i)
		for p, c := range map[string]string{
			d.ModeEnvFile(name):  "SITE_MODE=normal\nSITE_SERVE=app\n",
			d.StateFile(name):    `{"previous_mode":"maintenance","history":[]}`,
			d.LastGoodFile(name): "exec = [\"/usr/local/bin/webapp\"]\n",
		} {
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				b.Fatal(err)
			}
			if err := os.WriteFile(p, []byte(c), 0o644); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("started", run)
	b.Run("started-cache-warm", runCached(false))
	both := cacheSrc
	both.StateCache = filepath.Join(filepath.Dir(cacheSrc.ListCache), "states")
	b.Run("started-caches-warm", runWith(both, false))
	// The same with a listing that takes as long as systemd 252's of
	// 20,000 units on the benchmark's machine (~170 ms, in PID 1): what
	// sitectl does meanwhile costs no wall time.
	slow := both
	slow.Systemd = &listingSystemd{fakeSystemd: *sd, delay: 170 * time.Millisecond}
	b.Run("started-caches-warm-listing-170ms", runWith(slow, false))
}
