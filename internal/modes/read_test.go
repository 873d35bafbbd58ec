package modes

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sitectl/sitectl/internal/site"
)

// TestReadUpTo: the whole of a small file, at most n bytes of a large one,
// with the identity of the file read,
// a missing file as fs.ErrNotExist, and a FIFO refused without blocking.
func TestReadUpTo(t *testing.T) {
	dir := t.TempDir()
	for _, size := range []int{0, 1, 63, 64, 65, 4095, 4096, 4097, 100000} {
		p := filepath.Join(dir, "f")
		want := strings.Repeat("x", size)
		if err := os.WriteFile(p, []byte(want), 0o600); err != nil {
			t.Fatal(err)
		}
		for _, n := range []int64{1, 64, 4097, 1 << 20} {
			got, id, err := readUpTo(p, n)
			w := want[:min(int64(size), n)]
			if err != nil || string(got) != w || id.Ino == 0 || id.Size != int64(size) || id.Mtime == 0 || id.Ctime == 0 {
				t.Errorf("size %d, n %d: %d bytes, %+v, %v; want %d bytes", size, n, len(got), id, err, len(w))
			}
		}
	}
	if _, _, err := readUpTo(filepath.Join(dir, "none"), 10); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v, want fs.ErrNotExist", err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := readUpTo(fifo, 10); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("fifo: %v, want not a regular file", err)
	}
}

// A mode file edited with its modification time put back (touch -r) was
// written when it was changed: CurrentSince says the change time.
func TestCurrentSinceIsTheLaterOfItsTimes(t *testing.T) {
	st := Store{Dir: t.TempDir()}
	s := &site.Site{Name: "karl"}
	if err := os.MkdirAll(filepath.Dir(st.EnvPath(s.Name)), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(st.EnvPath(s.Name), []byte("SITE_MODE=\"normal\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	long := time.Now().Add(-24 * time.Hour)
	if err := os.Chtimes(st.EnvPath(s.Name), long, long); err != nil {
		t.Fatal(err)
	}
	_, ok, written, err := st.CurrentSince(s.Name)
	if err != nil || !ok || written.Before(time.Now().Add(-time.Minute)) {
		t.Errorf("CurrentSince: %v %v %v, want its change time (now), not %v", written, ok, err, long)
	}
}
