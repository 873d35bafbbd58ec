package modes

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/sitectl/sitectl/internal/site"
)

// TestListedFiles: ReadListed names the versions of the files it read,
// which StatListed finds while they do not change and not after; an absent
// file is the zero FileID, something else than a regular file an error,
// and a symlink is followed. StatListedAt says the same as StatListed at
// every step, errors included.
func TestListedFiles(t *testing.T) {
	st := Store{Dir: t.TempDir()}
	if err := os.MkdirAll(filepath.Dir(st.EnvPath("a")), 0o700); err != nil {
		t.Fatal(err)
	}
	sites, err := unix.Open(st.SitesDir(), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(sites)
	stat := func(step string) (Files, error) {
		t.Helper()
		f, err := st.StatListed("a")
		at, atErr := st.StatListedAt(sites, "a")
		if at != f || fmt.Sprint(atErr) != fmt.Sprint(err) {
			t.Fatalf("%s: StatListed %+v %v, StatListedAt %+v %v", step, f, err, at, atErr)
		}
		return f, err
	}
	l, f, err := st.ReadListed("a")
	if err != nil || l.Recorded || f != (Files{}) {
		t.Fatalf("no files: %+v %+v %v", l, f, err)
	}
	if err := os.WriteFile(st.EnvPath("a"), []byte("SITE_MODE=\"maintenance\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(st.statePath("a"), []byte(`{"previous_mode":"normal","history":[]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	l, f, err = st.ReadListed("a")
	if err != nil || l.Mode != "maintenance" || !l.Recorded || l.State.PreviousMode != "normal" || f.Mode.Ino == 0 || f.State.Ino == 0 {
		t.Fatalf("both files: %+v %+v %v", l, f, err)
	}
	if !l.Written.Equal(modTime(f.Mode)) || l.Written.IsZero() {
		t.Fatalf("written %v, the mode file's mtime %v", l.Written, modTime(f.Mode))
	}
	if now, err := stat("unchanged"); err != nil || now != f {
		t.Fatalf("unchanged: %+v %v, want %+v", now, err, f)
	}
	if err := os.Remove(st.statePath("a")); err != nil {
		t.Fatal(err)
	}
	if now, err := stat("state file removed"); err != nil || now.Mode != f.Mode || now.State != (site.FileID{}) {
		t.Fatalf("state file removed: %+v %v", now, err)
	}
	if err := os.Mkdir(st.statePath("a"), 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := stat("a directory as the state file"); err == nil || !strings.Contains(err.Error(), st.statePath("a")+" is not a regular file") {
		t.Fatalf("a directory as the state file: %v", err)
	}
	if err := os.Remove(st.statePath("a")); err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(st.Dir, "elsewhere.env")
	if err := os.Rename(st.EnvPath("a"), target); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, st.EnvPath("a")); err != nil {
		t.Fatal(err)
	}
	if now, err := stat("a symlinked mode file"); err != nil || now.Mode.Ino != f.Mode.Ino || now.Mode.Mtime != f.Mode.Mtime {
		t.Fatalf("a symlinked mode file: %+v %v, want the target's inode and mtime %+v", now, err, f.Mode)
	}
}
