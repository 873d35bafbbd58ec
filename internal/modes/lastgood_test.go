package modes

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func TestReadLastGood(t *testing.T) {
	st := Store{Dir: t.TempDir()}
	if _, ok := st.LastGood("karl"); ok {
		t.Fatal("a last good version where none was kept")
	}
	file := filepath.Join(st.Dir, "sites", "karl", "last-good.toml")
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		t.Fatal(err)
	}
	write := func(content string) {
		if err := os.WriteFile(file, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("exec = [\"/usr/bin/app\"]\nreload_trigger = \"/srv/karl/restart.txt\"\n[[listen]]\naddress = \"127.0.0.1:8000\"\n")
	s, ok := st.LastGood("karl")
	if !ok || s.Name != "karl" || s.ReloadTrigger != "/srv/karl/restart.txt" || s.File != file {
		t.Fatalf("ReadLastGood: %+v, %v", s, ok)
	}
	write("exec = 1\n")
	if _, ok := st.LastGood("karl"); ok {
		t.Error("an invalid copy read as the last good version")
	}
	// Not a regular file: refused, not read (a FIFO would block a reader).
	if err := os.Remove(file); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(file, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, ok := st.LastGood("karl"); ok {
		t.Error("a FIFO read as the last good version")
	}
}
