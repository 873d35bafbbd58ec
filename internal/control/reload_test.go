package control

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// A directory removed and made again at the same path, as systemd does
// with its generator directory on every reload, is told apart; the same
// directory with files written into it is not.
func TestGeneratorDirMadeAnewIsSeen(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "generator")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	before, known := statDir(dir)
	if !known {
		t.Fatal("statDir of an existing directory: not found")
	}
	if same, _ := statDir(dir); reloadHappened(before, true, same, true) == nil {
		t.Error("an unchanged directory counted as a reload")
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "site-a.socket"), []byte("[Socket]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	after, found := statDir(dir)
	if !found {
		t.Fatal("statDir after making it again: not found")
	}
	if err := reloadHappened(before, true, after, true); err != nil {
		t.Errorf("a directory made anew: %v", err)
	}
}

func TestReloadHappened(t *testing.T) {
	a := dirID{dev: 1, ino: 10, ctime: 100}
	for _, c := range []struct {
		name          string
		before, after dirID
		known, found  bool
		ignored       bool
	}{
		{"same directory", a, a, true, true, true},
		{"new inode", a, dirID{1, 11, 100}, true, true, false},
		{"same inode, changed", a, dirID{1, 10, 101}, true, true, false},
		{"none before", dirID{}, a, false, true, false},
		{"none after", a, dirID{}, true, false, false},
	} {
		err := reloadHappened(c.before, c.known, c.after, c.found)
		if got := errors.Is(err, ErrReloadIgnored); got != c.ignored {
			t.Errorf("%s: %v, want ignored=%v", c.name, err, c.ignored)
		}
	}
}
