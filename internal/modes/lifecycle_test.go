package modes

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sitectl/sitectl/internal/atomicfile"
	"github.com/sitectl/sitectl/internal/site"
)

// The last good copy is written only when it changes, readable by root
// only, and read back as the site.
func TestLastGoodCopy(t *testing.T) {
	st := Store{Dir: t.TempDir()}
	data := []byte("exec = [\"/bin/app\"]\n[[listen]]\naddress = \"127.0.0.1:8080\"\n")
	s, err := site.Parse("/etc/sitectl/sites/karl.toml", data)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := st.ReadLastGood("karl"); got != nil || err != nil {
		t.Fatalf("no copy yet: %v %v", got, err)
	}
	if err := st.SaveLastGood(s, data); err != nil {
		t.Fatal(err)
	}
	path := st.paths().LastGoodFile("karl")
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("copy: %v %v", fi, err)
	}
	old := fi.ModTime()
	os.Chtimes(path, old.Add(-3600e9), old.Add(-3600e9))
	if err := st.SaveLastGood(s, data); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(path); !fi.ModTime().Equal(old.Add(-3600e9)) {
		t.Error("the same content was written again")
	}
	got, err := st.ReadLastGood("karl")
	if err != nil || got.Name != "karl" || got.File != path || got.Exec[0] != "/bin/app" {
		t.Errorf("read back: %+v %v", got, err)
	}
}

// disable's marker comes and goes, saying whether it changed; Forget takes
// all the site's state and says whether there was any.
func TestOutOfServiceAndForget(t *testing.T) {
	st := Store{Dir: t.TempDir()}
	for _, step := range []struct {
		out, changed bool
	}{{true, true}, {true, false}, {false, true}, {false, false}, {true, true}} {
		changed, err := st.SetOutOfService("karl", step.out, 0)
		if err != nil || changed != step.changed {
			t.Fatalf("out=%v: changed %v, %v", step.out, changed, err)
		}
		if out, _, _ := st.OutOfService("karl"); out != step.out {
			t.Fatalf("out=%v: reads %v", step.out, out)
		}
	}
	if gone, err := st.Forget("karl"); !gone || err != nil {
		t.Fatalf("forget: %v %v", gone, err)
	}
	if out, _, _ := st.OutOfService("karl"); out {
		t.Error("the marker survived Forget")
	}
	if gone, err := st.Forget("karl"); gone || err != nil {
		t.Fatalf("forget again: %v %v", gone, err)
	}
}

// enable removes the marker durably (atomicfile.Remove syncs the directory
// before it is done), so that the site is not back out of service after a
// power loss, and leaves nothing beside it.
func TestPutBackInServiceRemovesTheMarkerDurably(t *testing.T) {
	st := Store{Dir: t.TempDir()}
	if _, err := st.SetOutOfService("karl", true, 0); err != nil {
		t.Fatal(err)
	}
	var removed []string
	removeMarker = func(path string) error {
		removed = append(removed, path)
		return atomicfile.Remove(path)
	}
	t.Cleanup(func() { removeMarker = atomicfile.Remove })
	if changed, err := st.SetOutOfService("karl", false, 0); !changed || err != nil {
		t.Fatalf("changed %v, %v", changed, err)
	}
	marker := st.paths().OutOfServiceFile("karl")
	if len(removed) != 1 || removed[0] != marker {
		t.Errorf("removed durably: %q, want the marker %s", removed, marker)
	}
	if out, _, _ := st.OutOfService("karl"); out {
		t.Error("the marker is still there")
	}
	entries, _ := os.ReadDir(filepath.Dir(marker))
	for _, en := range entries {
		if strings.HasPrefix(en.Name(), ".") {
			t.Errorf("left beside the marker: %s", en.Name())
		}
	}
}

// A marker that is gone by the time enable removes it is removed: that is
// not an error.
func TestPutBackInServiceWithTheMarkerGone(t *testing.T) {
	st := Store{Dir: t.TempDir()}
	if _, err := st.SetOutOfService("karl", true, 0); err != nil {
		t.Fatal(err)
	}
	removeMarker = func(path string) error {
		os.Remove(path) // someone else was first
		return atomicfile.Remove(path)
	}
	t.Cleanup(func() { removeMarker = atomicfile.Remove })
	if changed, err := st.SetOutOfService("karl", false, 0); !changed || err != nil {
		t.Fatalf("changed %v, %v", changed, err)
	}
	if out, _, err := st.OutOfService("karl"); out || err != nil {
		t.Errorf("out of service %v, %v", out, err)
	}
}

// What a crash left of an earlier Forget of the site, under the name of
// the PID alone that atomicfile.Remove once used (and PIDs come round
// again), does not make Forget fail: `sitectl remove` of the site must
// not keep failing.
func TestForgetIsNotBlockedByALeftover(t *testing.T) {
	st := Store{Dir: t.TempDir()}
	if _, err := st.SetOutOfService("karl", true, 0); err != nil {
		t.Fatal(err)
	}
	dir := st.paths().SiteState("karl")
	leftover := filepath.Join(filepath.Dir(dir), fmt.Sprintf(".karl.removed-%d", os.Getpid()))
	if err := os.MkdirAll(filepath.Join(leftover, "sub"), 0o700); err != nil {
		t.Fatal(err)
	}
	if gone, err := st.Forget("karl"); !gone || err != nil {
		t.Fatalf("forget: %v %v", gone, err)
	}
	if _, err := os.Lstat(dir); !os.IsNotExist(err) {
		t.Errorf("the state directory is still there: %v", err)
	}
}
