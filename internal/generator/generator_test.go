package generator

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/sitectl/sitectl/internal/paths"
	"github.com/sitectl/sitectl/internal/site"
	"github.com/sitectl/sitectl/internal/units"
)

func testSites(t *testing.T, n int) []*site.Site {
	t.Helper()
	var sites []*site.Site
	// Out of name order on purpose: Files sorts.
	for i := n - 1; i >= 0; i-- {
		name := fmt.Sprintf("s%03d", i)
		data := fmt.Sprintf("exec = [\"/bin/app\"]\nreload_trigger = \"/srv/%s/restart.txt\"\n[[listen]]\naddress = \"127.0.0.1:%d\"\n", name, 10000+i)
		s, err := site.ParseNamed("/etc/sitectl/sites/"+name+".toml", name, []byte(data))
		if err != nil {
			t.Fatal(err)
		}
		sites = append(sites, s)
	}
	return sites
}

// Files renders on all CPUs and still gives the units in site name order,
// exactly as rendering one site after the other does, with sitectl.slice
// first when there are sites.
func TestFiles(t *testing.T) {
	if fs := Files(nil, units.Options{}); len(fs) != 0 {
		t.Errorf("no sites, files %v", fs)
	}
	sites := testSites(t, 200)
	got := Files(sites, units.Options{})
	want := []File{{Path: "sitectl.slice", Content: units.RenderSlice().Content}}
	for i := len(sites) - 1; i >= 0; i-- {
		for _, u := range units.Render(sites[i], units.Options{}) {
			want = append(want, File{Path: u.Name, Content: u.Content, Site: sites[i].Name})
			if u.WantedBy != "" {
				want = append(want, File{Path: filepath.Join(u.WantedBy+".wants", u.Name), Link: "../" + u.Name, Site: sites[i].Name})
			}
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Files differs from rendering the sites in order (%d files, want %d)", len(got), len(want))
	}
}

// tree reads a directory: path → content, or "-> target" for a link.
func tree(t *testing.T, dir string) map[string]string {
	t.Helper()
	m := map[string]string{}
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if fi.Mode()&os.ModeSymlink != 0 {
			target, err := os.Readlink(p)
			m[rel] = "-> " + target
			return err
		}
		if fi.Mode().Perm() != 0o644 {
			t.Errorf("%s has mode %v", rel, fi.Mode())
		}
		data, err := os.ReadFile(p)
		m[rel] = string(data)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// WriteNew, the generator's fast way into systemd's empty directory, writes
// what Write writes; into a directory that is not empty after all it
// replaces what is there.
func TestWriteNew(t *testing.T) {
	files := Files(testSites(t, 20), units.Options{})
	a, b := t.TempDir(), t.TempDir()
	if err := Write(a, files); err != nil {
		t.Fatal(err)
	}
	if err := WriteNew(b, files); err != nil {
		t.Fatal(err)
	}
	want := tree(t, a)
	if got := tree(t, b); !reflect.DeepEqual(got, want) {
		t.Fatalf("WriteNew wrote %d files, Write %d, and they differ", len(got), len(want))
	}
	if len(want) != 1+20*5 {
		t.Errorf("%d files, want %d", len(want), 1+20*5)
	}
	// Not empty after all: stale content and a stale link are replaced.
	if err := os.WriteFile(filepath.Join(b, "site-s000.service"), []byte("stale"), 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(b, "sockets.target.wants", "site-s001.socket")
	if err := os.Remove(link); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../elsewhere.socket", link); err != nil {
		t.Fatal(err)
	}
	if err := WriteNew(b, files); err != nil {
		t.Fatal(err)
	}
	if got := tree(t, b); !reflect.DeepEqual(got, want) {
		t.Errorf("WriteNew into a directory that was not empty: files differ")
	}
	// A site of which one file cannot be written (here a directory is in
	// the way of its service) gets none: not a socket without its
	// service. The other sites are whole.
	c := t.TempDir()
	if err := os.MkdirAll(filepath.Join(c, "site-s003.service", "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	err := WriteNew(c, files)
	if err == nil || !strings.Contains(err.Error(), "the units of s003 were left out, so that none is there without the others") {
		t.Errorf("WriteNew with a site's service in the way: %v", err)
	}
	got := tree(t, c)
	for p, content := range want {
		if strings.Contains(p, "site-s003") {
			if _, ok := got[p]; ok && !strings.HasPrefix(p, "site-s003.service/") {
				t.Errorf("%s of the site whose service could not be written is there", p)
			}
			continue
		}
		if got[p] != content {
			t.Errorf("%s of another site is missing or differs", p)
		}
	}
	if err := WriteNew(filepath.Join(a, "site-s000.service"), files); err == nil {
		t.Error("WriteNew into a file instead of a directory succeeded")
	}
}

// A site whose units would say something else than its file (here because
// the state directory holds a line break, which would start a unit line of
// its own) is skipped with a positioned error.
func TestCheckedSkipsUnitsThatWouldNotSayWhatTheFileSays(t *testing.T) {
	s, err := site.Parse("/etc/sitectl/sites/karl.toml", []byte("exec = [\"/bin/app\"]\nlisten = [{ address = \"127.0.0.1:8080\" }]\n"))
	if err != nil {
		t.Fatal(err)
	}
	res := Checked(site.Result{Sites: []*site.Site{s}}, units.Options{})
	if len(res.Sites) != 1 || len(res.Errors) != 0 {
		t.Fatalf("default options: %+v", res)
	}
	for _, dir := range []string{"/var/lib/x\nExecStartPre=/bin/evil", "/var/lib/x\r"} {
		res := Checked(site.Result{Sites: []*site.Site{s}}, units.Options{Dirs: paths.Dirs{State: dir}})
		if len(res.Sites) != 0 || len(res.Errors) != 1 || !strings.HasPrefix(res.Errors[0].Error(), "/etc/sitectl/sites/karl.toml:1:1: site-karl.service would not say what the site file says") {
			t.Errorf("state dir %q: %+v %v", dir, res.Sites, res.Errors)
		}
	}
}

// The log groups each skipped file's mistakes with the line that says so.
func TestMistakesAreGroupedByFile(t *testing.T) {
	errs := site.Errors{
		{File: "a.toml", Line: 1, Col: 1, Msg: "one"}, {File: "b.toml", Line: 2, Col: 3, Msg: "two"}, {File: "a.toml", Line: 4, Col: 5, Msg: "three"},
	}
	lines, n := Mistakes(errs, nil)
	want := []string{"a.toml:1:1: one", "a.toml:4:5: three", "a.toml: site skipped: no units generated for it", "b.toml:2:3: two", "b.toml: site skipped: no units generated for it"}
	if n != 2 || strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Errorf("got %d files:\n%s", n, strings.Join(lines, "\n"))
	}
}

// The log has at most MaxLoggedMistakes lines of one file's mistakes, and
// one that says how many more there are, counting those Parse did not
// list (site.MaxMistakes), and how to see them; the count of a site
// that runs its last good version counts them all too.
func TestMistakesOfAFileAreBounded(t *testing.T) {
	var b strings.Builder
	b.WriteString("exec = [\"/bin/true\"]\n[[listen]]\naddress = \"127.0.0.1:1\"\n[hardening]\n")
	for i := 0; i < 500; i++ {
		fmt.Fprintf(&b, "k%d = 1\n", i)
	}
	_, err := site.Parse("/etc/sitectl/sites/karl.toml", []byte(b.String()))
	errs, _ := err.(site.Errors)
	errs = append(errs, &site.Error{File: "/etc/sitectl/sites/other.toml", Line: 1, Col: 1, Msg: "one"})
	lines, n := Mistakes(errs, []Outcome{{File: "/etc/sitectl/sites/karl.toml", Mistakes: 500, LastGood: "/var/lib/sitectl/karl.toml"}})
	if n != 1 || len(lines) != 1+MaxLoggedMistakes+1+2 {
		t.Fatalf("%d lines, %d skipped:\n%s", len(lines), n, strings.Join(lines, "\n"))
	}
	if want := "/etc/sitectl/sites/karl.toml: and 480 more mistakes: run sitectl check /etc/sitectl/sites/karl.toml"; lines[1+MaxLoggedMistakes] != want {
		t.Errorf("got %q, want %q", lines[1+MaxLoggedMistakes], want)
	}
	res, outcomes := WithLastGood(site.Result{Errors: errs}, units.Options{Dirs: paths.Dirs{State: t.TempDir()}}, "", nil)
	if len(res.Errors) == 0 || len(outcomes) == 0 || outcomes[0].Mistakes != 500 {
		t.Errorf("outcomes %+v", outcomes)
	}
}

// BenchmarkChecked1000 reads back the units of 1000 sites, as the generator
// does at every daemon-reload on a host with 1000 sites.
//
//	go test -run '^$' -bench Checked1000 ./internal/generator
func BenchmarkChecked1000(b *testing.B) {
	var sites []*site.Site
	for i := 0; i < 1000; i++ {
		s, err := site.Parse(fmt.Sprintf("/etc/sitectl/sites/s%04d.toml", i), []byte(fmt.Sprintf(
			"exec = [\"/usr/local/bin/app\", \"--port\", \"%d\"]\nreadiness = \"notify\"\nreload_trigger = \"/srv/s/restart.txt\"\n[[listen]]\naddress = \"127.0.%d.%d:8080\"\n[modes.read-only]\nenvironment = { RO = \"1\" }\n",
			i, 1+i/250, 1+i%250)))
		if err != nil {
			b.Fatal(err)
		}
		sites = append(sites, s)
	}
	b.ResetTimer()
	for b.Loop() {
		if res := Checked(site.Result{Sites: sites}, units.Options{}); len(res.Errors) != 0 {
			b.Fatal(res.Errors)
		}
	}
}

// Checked runs on all CPUs and keeps the sites' order, and the errors in the
// order of the sites that caused them.
func TestCheckedKeepsOrder(t *testing.T) {
	sites := testSites(t, 200)
	res := Checked(site.Result{Sites: sites}, units.Options{})
	if !reflect.DeepEqual(res.Sites, sites) || len(res.Errors) != 0 {
		t.Fatalf("Checked changed the sites: %d sites, errors %v", len(res.Sites), res.Errors)
	}
}

// Write replaces a .wants/ link at once: it points to the new target and
// nothing is left beside it. A link that cannot be made (its target is
// longer than a link may hold) leaves the old link in place: a site whose
// link went missing would not start at boot.
func TestWriteReplacesALinkAtOnce(t *testing.T) {
	dir := t.TempDir()
	link := filepath.Join("sockets.target.wants", "site-karl.socket")
	for _, target := range []string{"../elsewhere.socket", "../site-karl.socket"} {
		if err := Write(dir, []File{{Path: link, Link: target}}); err != nil {
			t.Fatal(err)
		}
		if got := tree(t, dir); !reflect.DeepEqual(got, map[string]string{link: "-> " + target}) {
			t.Fatalf("after linking to %s: %v", target, got)
		}
	}
	if err := Write(dir, []File{{Path: link, Link: strings.Repeat("x", 5000)}}); err == nil {
		t.Fatal("a link to a 5000-byte target succeeded")
	}
	if got := tree(t, dir); !reflect.DeepEqual(got, map[string]string{link: "-> ../site-karl.socket"}) {
		t.Errorf("after a failed link: %v", got)
	}
}

// A file that cannot be written (here a link whose target is too long,
// as a full disk fails a write) changes none of the files: not the units
// written before it, not a site's socket without its service. Only a
// rename that fails once some files are in place leaves a mix, and says
// so (ErrPartlyWritten).
func TestWriteChangesNothingWhenAFileCannotBeWritten(t *testing.T) {
	dir := t.TempDir()
	old := Files(testSites(t, 3), units.Options{})
	if err := Write(dir, old); err != nil {
		t.Fatal(err)
	}
	want := tree(t, dir)
	files := Files(testSites(t, 3), units.Options{Dirs: paths.Dirs{Config: "/srv/sites", State: "/srv/state"}})
	files = append(files, File{Path: "sockets.target.wants/site-s999.socket", Link: strings.Repeat("x", 5000), Site: "s999"})
	err := Write(dir, files)
	if err == nil || errors.Is(err, ErrPartlyWritten) || !strings.Contains(err.Error(), "nothing in "+dir+" was changed") {
		t.Fatalf("Write with a file that cannot be written: %v", err)
	}
	if got := tree(t, dir); !reflect.DeepEqual(got, want) {
		t.Errorf("a failed Write changed the directory")
	}

	// A directory in the way of the last file: the rename fails once the
	// others are in place.
	last := files[len(files)-2]
	if err := os.MkdirAll(filepath.Join(dir, "new-"+last.Path, "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	files = append(files[:len(files)-1], File{Path: "new-" + last.Path, Content: "x"})
	if err := Write(dir, files); !errors.Is(err, ErrPartlyWritten) || !strings.Contains(err.Error(), fmt.Sprintf("the %d files before it", len(files)-1)) {
		t.Errorf("Write with a rename that fails: %v", err)
	}
}
