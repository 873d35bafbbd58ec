package modes

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sitectl/sitectl/internal/site"
)

// TestListedFiles: ReadListed names the versions of the files it read,
// which StatListed finds while they do not change and not after; an absent
// file is the zero FileID, something else than a regular file an error.
func TestListedFiles(t *testing.T) {
	st := Store{Dir: t.TempDir()}
	if err := os.MkdirAll(filepath.Dir(st.EnvPath("a")), 0o700); err != nil {
		t.Fatal(err)
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
	if now, err := st.StatListed("a"); err != nil || now != f {
		t.Fatalf("unchanged: %+v %v, want %+v", now, err, f)
	}
	if err := os.Remove(st.statePath("a")); err != nil {
		t.Fatal(err)
	}
	if now, err := st.StatListed("a"); err != nil || now.Mode != f.Mode || now.State != (site.FileID{}) {
		t.Fatalf("state file removed: %+v %v", now, err)
	}
	if err := os.Mkdir(st.statePath("a"), 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := st.StatListed("a"); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Fatalf("a directory as the state file: %v", err)
	}
}
