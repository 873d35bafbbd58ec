package atomicfile

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestWriteReplacesAndLeavesNoTemp(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "mode.env")
	for _, content := range []string{"SITE_MODE=normal\n", "SITE_MODE=maintenance\n"} {
		if err := Write(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(p)
		if err != nil || string(got) != content {
			t.Fatalf("read %q, %v; want %q", got, err, content)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("directory holds %d entries, want only the target", len(entries))
	}
	if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o644 {
		t.Fatalf("mode %v, want 0644", fi.Mode().Perm())
	}
}

func TestWriteFailureKeepsOldContent(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	if err := Write(p, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Write(filepath.Join(dir, "missing", "f"), []byte("x"), 0o644); err == nil {
		t.Fatal("writing into a missing directory succeeded")
	}
	if got, _ := os.ReadFile(p); string(got) != "old" {
		t.Fatalf("old file changed to %q", got)
	}
}

func TestRemoveTakesAWholeDirectory(t *testing.T) {
	dir := t.TempDir()
	site := filepath.Join(dir, "karl")
	if err := os.MkdirAll(filepath.Join(site, "sub"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(site, "mode.env"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Remove(site); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("left behind: %v", entries)
	}
	if err := Remove(site); err == nil {
		t.Error("removing what is not there succeeded")
	}
}

// names lists the entries of dir, sorted.
func names(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var n []string
	for _, e := range entries {
		n = append(n, e.Name())
	}
	return n
}

// Symlink replaces a link at once: the new link is in place, and nothing
// is left beside it.
func TestSymlinkReplacesALink(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "site-karl.socket")
	for _, target := range []string{"../old.socket", "../site-karl.socket"} {
		if err := Symlink(target, p); err != nil {
			t.Fatal(err)
		}
		if got, err := os.Readlink(p); err != nil || got != target {
			t.Fatalf("link to %q, %v; want %q", got, err, target)
		}
	}
	if got := names(t, dir); !reflect.DeepEqual(got, []string{"site-karl.socket"}) {
		t.Errorf("directory holds %q, want only the link", got)
	}
}

// A link that cannot be made (its target is longer than a link may hold)
// leaves the old link as it was; a link that cannot be renamed into place
// (a directory is there) leaves the directory, and neither leaves a
// temporary link behind.
func TestSymlinkFailureKeepsTheOldLink(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "site-karl.socket")
	if err := Symlink("../site-karl.socket", p); err != nil {
		t.Fatal(err)
	}
	if err := Symlink(strings.Repeat("x", 5000), p); err == nil {
		t.Fatal("a link to a 5000-byte target succeeded")
	}
	if got, err := os.Readlink(p); err != nil || got != "../site-karl.socket" {
		t.Fatalf("old link: %q, %v", got, err)
	}
	sub := filepath.Join(dir, "sub")
	if err := os.MkdirAll(filepath.Join(sub, "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := Symlink("../y", sub); err == nil {
		t.Fatal("a link over a directory succeeded")
	}
	if fi, err := os.Lstat(sub); err != nil || !fi.IsDir() {
		t.Fatalf("the directory: %v, %v", fi, err)
	}
	if got := names(t, dir); !reflect.DeepEqual(got, []string{"site-karl.socket", "sub"}) {
		t.Errorf("directory holds %q", got)
	}
}

// What a crash left of an earlier removal under the name of the PID alone
// (the name Remove once used, and the PID comes round again) does not keep
// Remove from removing a directory: the copy's name is new every time. The
// leftover is young, so it is kept: another sitectl may be removing it now.
func TestRemoveIsNotBlockedByALeftover(t *testing.T) {
	dir := t.TempDir()
	site := filepath.Join(dir, "karl")
	leftover := filepath.Join(dir, fmt.Sprintf(".karl.removed-%d", os.Getpid()))
	for _, d := range []string{site, leftover} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "mode.env"), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := Remove(site); err != nil {
		t.Fatal(err)
	}
	if got := names(t, dir); !reflect.DeepEqual(got, []string{filepath.Base(leftover)}) {
		t.Errorf("directory holds %q, want only the young leftover", got)
	}
}

// RemoveStale removes the leftovers of the names it is given once they are
// older than StaleAfter, and nothing else: not younger ones, which another
// sitectl may be writing now, not those of other names, not other hidden
// files. Remove does so for its own name.
func TestRemoveStale(t *testing.T) {
	dir := t.TempDir()
	leftovers := []string{".mode.env.tmp-123", ".mode.env.removed-42", ".state.json.tmp-9"}
	kept := []string{".karl.tmp-1", ".mode.env.tmp-", ".mode.env.tmp-12x", ".mode.env.old", "mode.env", "state.json"}
	for _, n := range append(leftovers, kept...) {
		if err := os.WriteFile(filepath.Join(dir, n), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, ".mode.env.removed-7"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, ".mode.env.removed-7", "f"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	all := names(t, dir)
	// Young: nothing goes.
	if err := RemoveStale(dir, "mode.env", "state.json"); err != nil {
		t.Fatal(err)
	}
	if got := names(t, dir); !reflect.DeepEqual(got, all) {
		t.Fatalf("young leftovers removed: %q, want %q", got, all)
	}
	// An hour and a minute later: the leftovers of the names go.
	now = func() time.Time { return time.Now().Add(StaleAfter + time.Minute) }
	t.Cleanup(func() { now = time.Now })
	if err := RemoveStale(dir, "mode.env", "state.json"); err != nil {
		t.Fatal(err)
	}
	slices.Sort(kept)
	if got := names(t, dir); !reflect.DeepEqual(got, kept) {
		t.Fatalf("after: %q, want %q", got, kept)
	}
	// Remove takes the stale leftovers of its own name with it.
	if err := os.WriteFile(filepath.Join(dir, ".karl.removed-5"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "karl"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := Remove(filepath.Join(dir, "karl")); err != nil {
		t.Fatal(err)
	}
	for _, n := range names(t, dir) {
		if strings.HasPrefix(n, ".karl.removed-") || n == "karl" {
			t.Errorf("left behind: %s", n)
		}
	}
}

// MkdirAll gives every directory it creates the mode asked for, whatever
// the umask, and leaves those that exist as they are.
func TestMkdirAllModes(t *testing.T) {
	old := syscall.Umask(0o022)
	t.Cleanup(func() { syscall.Umask(old) })
	dir := t.TempDir()
	have := filepath.Join(dir, "have")
	if err := os.Mkdir(have, 0o711); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(have, "a", "b", "c")
	if err := MkdirAll(p, 0o775); err != nil {
		t.Fatal(err)
	}
	for d, want := range map[string]os.FileMode{
		have: 0o711, filepath.Join(have, "a"): 0o775, filepath.Join(have, "a", "b"): 0o775, p: 0o775,
	} {
		if fi, err := os.Stat(d); err != nil || fi.Mode() != os.ModeDir|want {
			t.Errorf("%s: %v, %v; want mode %v", d, fi.Mode(), err, want)
		}
	}
	if err := MkdirAll(p, 0o700); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o775 {
		t.Errorf("an existing directory changed to %v", fi.Mode())
	}
	f := filepath.Join(dir, "file")
	if err := os.WriteFile(f, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := MkdirAll(filepath.Join(f, "x"), 0o700); err == nil {
		t.Error("a directory under a file succeeded")
	}
	if err := MkdirAll(f, 0o700); err == nil {
		t.Error("a directory where a file is succeeded")
	}
}
