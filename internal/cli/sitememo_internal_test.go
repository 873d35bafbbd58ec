package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sitectl/sitectl/internal/paths"
	"github.com/sitectl/sitectl/internal/sitecache"
)

// The state service's memo of parsed sites: a second load takes the sites
// of unchanged files from it, a changed file is read again (its grant
// with it), a removed one is gone, and loads at once share nothing.
func TestSiteMemoReusesOnlyUnchangedFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, who string) {
		t.Helper()
		src := fmt.Sprintf("exec = [\"/bin/app\"]\ndeployers = [%q]\n[[listen]]\npath = \"/run/%s/s\"\n", who, name)
		if err := os.WriteFile(filepath.Join(dir, name+".toml"), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 20 {
		write(fmt.Sprintf("s%02d", i), "user:dana")
	}
	grants := func(m *siteMemo) map[string][]string {
		t.Helper()
		// Loaded a minute "before" now's files count as settled.
		sites, err := m.load(dir, nil, time.Now().Add(time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		out := map[string][]string{}
		for _, s := range sites {
			if s.File != filepath.Join(dir, s.Name+".toml") {
				t.Errorf("site %s has file %s", s.Name, s.File)
			}
			for _, d := range s.Deployers {
				out[s.Name] = append(out[s.Name], d.String())
			}
		}
		return out
	}
	m := &siteMemo{}
	first := grants(m)
	if len(first) != 20 || len(m.sites) != 20 {
		t.Fatalf("first load: %d sites, %d kept", len(first), len(m.sites))
	}
	kept := m.sites["s03.toml"].s
	if again := grants(m); len(again) != 20 || m.sites["s03.toml"].s == kept {
		t.Errorf("second load: %d sites; the kept site was not a copy of its own", len(again))
	}
	write("s03", "user:mallory")
	if err := os.Remove(filepath.Join(dir, "s07.toml")); err != nil {
		t.Fatal(err)
	}
	after := grants(m)
	if !slices.Equal(after["s03"], []string{"user:mallory"}) || after["s07"] != nil || len(after) != 19 {
		t.Errorf("after a change and a removal: s03 %v, s07 %v, %d sites", after["s03"], after["s07"], len(after))
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() { defer wg.Done(); grants(m) }()
	}
	wg.Wait()
}

// BenchmarkSitesOfTheStateService: what the state service pays to check a
// deployer's grants on every list and status of all sites, parsing every
// site file (parse) or with its memo (memo), at 10,000 sites.
//
//	go test -run '^$' -bench SitesOfTheStateService -benchtime 10x ./internal/cli/
func BenchmarkSitesOfTheStateService(b *testing.B) {
	dir := b.TempDir()
	for i := range 10000 {
		src := fmt.Sprintf("exec = [\"/bin/app\"]\ndeployers = [\"group:team\"]\n[[listen]]\naddress = \"127.0.0.1:%d\"\n", 10000+i)
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("s-%05d.toml", i)), []byte(src), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	time.Sleep(sitecache.Settle + 100*time.Millisecond) // as on a host: files older than a load's tick
	e := &env{dirs: paths.Dirs{Config: dir, State: b.TempDir()}}
	for _, c := range []struct {
		name string
		be   backend
	}{{"parse", backend{e: e}}, {"memo", backend{e: e, memo: &siteMemo{}}}} {
		b.Run(c.name, func(b *testing.B) {
			if c.be.memo != nil {
				c.be.Sites() // the first request
			}
			for b.Loop() {
				if sites, err := c.be.Sites(); err != nil || len(sites) != 10000 {
					b.Fatalf("%d sites, %v", len(sites), err)
				}
			}
		})
	}
}
