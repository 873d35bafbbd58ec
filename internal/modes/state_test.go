package modes

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sitectl/sitectl/internal/atomicfile"
	"github.com/sitectl/sitectl/internal/site"
	"golang.org/x/sys/unix"
)

func TestReadSummaryIsTheStateWithoutHistory(t *testing.T) {
	st := Store{Dir: t.TempDir()}
	since := time.Date(2025, 5, 1, 12, 0, 0, 0, time.UTC)
	var long []Entry
	for i := 0; i < maxHistory; i++ {
		long = append(long, Entry{Time: since.Add(time.Duration(i) * time.Minute), From: "normal", To: "maintenance", UID: 1000, Result: ResultOK,
			Reason: strings.Repeat("a long reason ", 10)})
	}
	for name, s := range map[string]State{
		"empty":    {},
		"short":    {PreviousMode: "normal", ChangedAt: since, History: long[:2]},
		"pending":  {PreviousMode: "normal", ChangedAt: since, Pending: &Pending{Since: since, From: "normal", To: "read-only", UID: 1000, PID: 42}, History: long[:1]},
		"long":     {PreviousMode: "maintenance", ChangedAt: since, History: long},
		"verified": {PreviousMode: "normal", VerifiedMode: "maintenance", History: long[:1]},
	} {
		if err := st.WriteState(name, s); err != nil {
			t.Fatal(err)
		}
		got, err := st.ReadSummary(name)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		want, err := st.ReadState(name)
		if err != nil {
			t.Fatal(err)
		}
		want.History = nil
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: ReadSummary = %+v, want %+v", name, got, want)
		}
	}
	if fi, _ := os.Stat(st.statePath("long")); fi.Size() <= summaryHead {
		t.Fatalf("the long state is only %d bytes: it does not test reading the head", fi.Size())
	}
	if got, err := st.ReadSummary("none"); err != nil || !reflect.DeepEqual(got, State{}) {
		t.Errorf("no state: %+v, %v", got, err)
	}
}

// The history is not even read: a state whose history is damaged beyond the
// head still has its summary, while ReadState reports the damage.
func TestReadSummaryStopsAtTheHistory(t *testing.T) {
	st := Store{Dir: t.TempDir()}
	if err := st.WriteState("karl", State{PreviousMode: "normal"}); err != nil {
		t.Fatal(err)
	}
	data := `{"previous_mode": "live", "history": [` + strings.Repeat(`{"to": "x"},`, summaryHead/10) + `this is not JSON`
	if err := os.WriteFile(st.statePath("karl"), []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	if s, err := st.ReadSummary("karl"); err != nil || s.PreviousMode != "live" {
		t.Errorf("ReadSummary = %+v, %v", s, err)
	}
	if _, err := st.ReadState("karl"); err == nil {
		t.Error("ReadState read a damaged state")
	}
	// Damage before the history is still reported.
	if err := os.WriteFile(st.statePath("karl"), []byte(`{"previous_mode": 3}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := st.ReadSummary("karl"); err == nil || !strings.Contains(err.Error(), "damaged") {
		t.Errorf("damaged summary: %v", err)
	}
}

// WithState finds the sites that have state with one directory read, and
// CurrentSince gives the recorded mode with the time it was written.
func TestWithStateAndCurrentSince(t *testing.T) {
	st := Store{Dir: t.TempDir()}
	if names, ok := st.WithState(); !ok || len(names) != 0 {
		t.Errorf("no state directory yet: %v, %v", names, ok)
	}
	s, err := site.ParseNamed("/etc/sitectl/sites/karl.toml", "karl", []byte("exec = [\"/bin/app\"]\n[[listen]]\naddress = \"127.0.0.1:8080\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	m, _ := s.Mode("maintenance")
	before := time.Now().Add(-time.Second)
	if err := st.Write(s, m); err != nil {
		t.Fatal(err)
	}
	if err := st.prepareSite("other"); err != nil {
		t.Fatal(err)
	}
	names, ok := st.WithState()
	if !ok || !reflect.DeepEqual(names, map[string]bool{"karl": true, "other": true}) {
		t.Errorf("WithState = %v, %v", names, ok)
	}
	mode, recorded, written, err := st.CurrentSince("karl")
	// Written is when the mode file last changed by its change time too
	// (modTime): the rename that lands it can leave ctime after mtime.
	var fst unix.Stat_t
	if err := unix.Stat(st.EnvPath("karl"), &fst); err != nil {
		t.Fatal(err)
	}
	if err != nil || mode != "maintenance" || !recorded || !written.Equal(modTime(site.FileIDOf(&fst))) || written.Before(before) {
		t.Errorf("CurrentSince(karl) = %q %v %v %v", mode, recorded, written, err)
	}
	if mode, recorded, _, err := st.CurrentSince("other"); err != nil || recorded || mode != "" {
		t.Errorf("CurrentSince(other) = %q %v %v", mode, recorded, err)
	}
	// A state directory that cannot be read says so, and callers look at
	// each site instead.
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, ok := (Store{Dir: file}).WithState(); ok {
		t.Error("WithState of a state directory that is a file says ok")
	}
}

// Every write of a site's state first tidies the site's directory of what
// a crash left of earlier writes and removals of its files
// (atomicfile.RemoveStale, which removes only leftovers older than an
// hour: a young one is kept), and creates the directories it lacks private
// to root whatever the umask.
func TestSiteDirTidiesTheSiteDirectory(t *testing.T) {
	old := syscall.Umask(0o022)
	t.Cleanup(func() { syscall.Umask(old) })
	st := Store{Dir: filepath.Join(t.TempDir(), "state")}
	var dirs []string
	var names [][]string
	removeStale = func(dir string, n ...string) error {
		dirs, names = append(dirs, dir), append(names, n)
		return atomicfile.RemoveStale(dir, n...)
	}
	t.Cleanup(func() { removeStale = atomicfile.RemoveStale })
	if err := st.WriteState("karl", State{PreviousMode: "normal"}); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{st.Dir, filepath.Dir(st.paths().SiteState("karl")), st.paths().SiteState("karl")} {
		if fi, err := os.Stat(d); err != nil || fi.Mode() != os.ModeDir|DirMode {
			t.Errorf("%s: %v, %v", d, fi.Mode(), err)
		}
	}
	young := filepath.Join(st.paths().SiteState("karl"), ".state.json.tmp-123")
	if err := os.WriteFile(young, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := st.SetOutOfService("karl", true, 0); err != nil {
		t.Fatal(err)
	}
	want := []string{"mode.env", "state.json", "last-good.toml", "last-ran.toml", "ran-cleanly", "out-of-service"}
	if len(dirs) != 2 || dirs[1] != st.paths().SiteState("karl") || !reflect.DeepEqual(names[1], want) {
		t.Fatalf("tidied %q of %q, want %s of %q", dirs, names, st.paths().SiteState("karl"), want)
	}
	if _, err := os.Stat(young); err != nil {
		t.Errorf("a young leftover was removed: %v", err)
	}
}
