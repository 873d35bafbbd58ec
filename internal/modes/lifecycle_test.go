package modes

import (
	"os"
	"testing"

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
