package modes

import (
	"os"
	"testing"
	"time"

	"github.com/sitectl/sitectl/internal/site"
)

// A pin puts the version that ran back as the last good copy, holds while
// the site file is what failed, and goes with Unpin.
func TestPinHoldsWhileTheFileIsWhatFailed(t *testing.T) {
	st := Store{Dir: t.TempDir()}
	s := &site.Site{Name: "shop"}
	good := []byte("exec = [\"/bin/app\"]\n[[listen]]\naddress = \"127.0.0.1:8080\"\n")
	failed := []byte("exec = [\"/bin/app\", \"nosuch\"]\n[[listen]]\naddress = \"127.0.0.1:8080\"\n")
	if err := st.SaveLastGood(s, failed); err != nil { // the failed start's prepare
		t.Fatal(err)
	}
	if err := st.Pin(s, good, failed, "exited with status 1", 0, time.Now()); err != nil {
		t.Fatal(err)
	}
	pin, copied, err := st.Pinned("shop", failed)
	if err != nil || pin == nil || copied == nil || copied.File != st.paths().LastGoodFile("shop") || pin.Reason != "exited with status 1" {
		t.Fatalf("pinned %+v %+v %v", pin, copied, err)
	}
	if data, _ := os.ReadFile(st.paths().LastGoodFile("shop")); string(data) != string(good) {
		t.Errorf("last good copy:\n%s", data)
	}
	if fi, err := os.Stat(st.paths().PinFile("shop")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("pin file: %v %v", fi, err)
	}
	if pin, _, err := st.Pinned("shop", append(failed, '\n')); pin != nil || err != nil {
		t.Errorf("a changed file is pinned: %+v %v", pin, err)
	}
	if ok, err := st.Unpin("shop"); !ok || err != nil {
		t.Errorf("unpin: %v %v", ok, err)
	}
	if pin, _, err := st.Pinned("shop", failed); pin != nil || err != nil {
		t.Errorf("pinned after unpin: %+v %v", pin, err)
	}
	if ok, err := st.Unpin("shop"); ok || err != nil {
		t.Errorf("second unpin: %v %v", ok, err)
	}
	if err := os.WriteFile(st.paths().PinFile("shop"), []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.Pinned("shop", failed); err == nil {
		t.Error("a pin sitectl did not write was taken")
	}
}

// The generator finds pins with one read of their directory, and forget
// (sitectl remove) takes a site's pin with the rest of its state.
func TestPinsAreListedAndForgotten(t *testing.T) {
	st := Store{Dir: t.TempDir()}
	if n := st.PinnedNames(); len(n) != 0 {
		t.Errorf("pins of a new state directory: %v", n)
	}
	for _, name := range []string{"shop", "blog"} {
		if err := st.Pin(&site.Site{Name: name}, []byte("good"), []byte("bad"), "exited", 0, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	if n := st.PinnedNames(); len(n) != 2 || !n["shop"] || !n["blog"] {
		t.Errorf("pins %v", n)
	}
	if fi, err := os.Stat(st.paths().PinDir()); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("the pins' directory: %v %v", fi, err)
	}
	if ok, err := st.Forget("shop"); !ok || err != nil {
		t.Fatalf("forget: %v %v", ok, err)
	}
	if n := st.PinnedNames(); len(n) != 1 || !n["blog"] {
		t.Errorf("pins after forgetting shop: %v", n)
	}
}

// An undone pin holds nothing, and stays with its content.
func TestUndonePinHoldsNothing(t *testing.T) {
	st := Store{Dir: t.TempDir()}
	s := &site.Site{Name: "shop"}
	if err := st.Pin(s, []byte("exec = [\"/bin/app\"]\n"), []byte("bad"), "exited", 0, time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := st.Undo("shop"); err != nil {
		t.Fatal(err)
	}
	if pin, _, err := st.Pinned("shop", []byte("bad")); pin != nil || err != nil {
		t.Errorf("an undone pin holds: %+v %v", pin, err)
	}
	if p, err := st.ReadPin("shop"); err != nil || p == nil || !p.Undone || !p.Matches([]byte("bad")) {
		t.Errorf("the undone pin: %+v %v", p, err)
	}
	if err := st.Undo("other"); err != nil {
		t.Errorf("undo without a pin: %v", err)
	}
}
