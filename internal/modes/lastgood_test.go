package modes

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/sitectl/sitectl/internal/site"
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

// A site held the listeners its last good copy declares, however they are
// written; a site without a copy, or with one that cannot be read, held
// none.
func TestHeld(t *testing.T) {
	st := Store{Dir: t.TempDir()}
	copyData := []byte("exec = [\"/bin/app\"]\n[[listen]]\naddress = \"127.0.0.1:8080\"\n[[listen]]\npath = \"/run/shop.sock\"\n")
	good, err := site.Parse("/etc/sitectl/sites/shop.toml", copyData)
	if err != nil {
		t.Fatal(err)
	}
	now, err := site.Parse("/etc/sitectl/sites/shop.toml", []byte("exec = [\"/bin/app\"]\n[[listen]]\naddress = \"[::ffff:127.0.0.1]:8080\"\n[[listen]]\naddress = \"127.0.0.1:8081\"\n[[listen]]\npath = \"/run/shop.sock\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	mapped, added, sock := now.Listeners[0], now.Listeners[1], now.Listeners[2]
	if st.Held(now, []site.Listener{mapped}) {
		t.Fatal("held without a copy")
	}
	if err := st.SaveLastGood(good, copyData); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		ls   []site.Listener
		want bool
	}{
		{[]site.Listener{mapped}, true},
		{[]site.Listener{sock, mapped}, true},
		{[]site.Listener{added}, false},
		{[]site.Listener{mapped, added}, false},
	} {
		if got := st.Held(now, c.ls); got != c.want {
			t.Errorf("Held(%v) = %v, want %v", c.ls, got, c.want)
		}
	}
	if err := os.WriteFile(st.paths().LastGoodFile("shop"), []byte("exec = \"/bin/app\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if st.Held(now, []site.Listener{mapped}) {
		t.Error("held by a copy with mistakes")
	}
}

// KeepRan copies the last good copy to the last ran copy, only when they
// differ; no last good copy is no change. ReadRan reads it back; none is
// nil.
func TestKeepRan(t *testing.T) {
	st := Store{Dir: t.TempDir()}
	if changed, err := st.KeepRan("karl"); changed || err != nil {
		t.Fatalf("no copy: %v %v", changed, err)
	}
	if ran, err := st.ReadRan("karl"); ran != nil || err != nil {
		t.Fatalf("no copy read: %q %v", ran, err)
	}
	s := &site.Site{Name: "karl"}
	for i, v := range []string{"v1", "v1", "v2"} {
		if err := st.SaveLastGood(s, []byte(v)); err != nil {
			t.Fatal(err)
		}
		changed, err := st.KeepRan("karl")
		if err != nil || changed != (i != 1) {
			t.Fatalf("%s: changed %v, %v", v, changed, err)
		}
		if ran, err := st.ReadRan("karl"); string(ran) != v || err != nil {
			t.Fatalf("%s: read %q %v", v, ran, err)
		}
	}
}
