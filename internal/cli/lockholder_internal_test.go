package cli

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sitectl/sitectl/internal/modes"
	"github.com/sitectl/sitectl/internal/stateservice"
)

// TestBusySiteSaysWhoChangesIt: a change refused or given up because
// another sitectl holds the site's lock says who holds it, what it does and
// since when (a deployer's change through the state service, root's own
// change, a touch's reload), so that the operator knows whom to wait for
// or what to stop; a holder that is gone, or a lock nobody named, says
// nothing of one.
func TestBusySiteSaysWhoChangesIt(t *testing.T) {
	e := &env{dirs: testDirs(t)}
	s, err := e.loadSite("karl")
	if err != nil {
		t.Fatal(err)
	}
	st := modes.Store{Dir: e.dirs.State}
	noBlock := stateservice.Request{Verb: stateservice.VerbMode, Site: "karl", NoBlock: true, TimeoutMS: 200}
	wait := stateservice.Request{Verb: stateservice.VerbMode, Site: "karl", TimeoutMS: 200}
	quiet := func(string, ...any) {}
	busy := func(req stateservice.Request) string {
		t.Helper()
		lock, _, err := lockSite(context.Background(), st, s, req, modes.Holder{PID: os.Getpid(), Verb: "mode"}, quiet)
		if err == nil {
			lock.Unlock()
			t.Fatal("the lock was taken while another sitectl held it")
		}
		return err.Error()
	}

	// A deployer's restart, run by the state service (this process).
	held, _, err := lockSite(context.Background(), st, s, stateservice.Request{Verb: stateservice.VerbRestart, Site: "karl"}, modes.Holder{PID: os.Getpid(), UID: 1001, Verb: "restart"}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	want := "site karl is being changed by another sitectl (sitectl restart of uid 1001, run by sitectl's state service, pid " + strconv.Itoa(os.Getpid()) + ", since "
	if got := busy(noBlock); !strings.HasPrefix(got, want) || !strings.HasSuffix(got, " ago); nothing was done") {
		t.Errorf("--no-block: got %q, want it to begin %q", got, want)
	}
	want = "site karl was still being changed by another sitectl after 200ms (sitectl restart of uid 1001"
	if got := busy(wait); !strings.HasPrefix(got, want) {
		t.Errorf("a wait: got %q, want it to begin %q", got, want)
	}
	var progress []string
	if lock, _, err := lockSite(context.Background(), st, s, wait, modes.Holder{}, func(f string, a ...any) { progress = append(progress, fmt.Sprintf(f, a...)) }); err == nil {
		lock.Unlock()
	}
	if want := "karl: waiting for another sitectl to finish with this site (sitectl restart of uid 1001"; len(progress) == 0 || !strings.HasPrefix(progress[0], want) {
		t.Errorf("the wait's progress: got %q, want it to begin %q", progress, want)
	}
	held.Unlock()
	if h, ok := st.LockHolder("karl"); ok {
		t.Errorf("a lock released still names its holder: %+v", h)
	}

	// Root's own change.
	held, _, err = lockSite(context.Background(), st, s, noBlock, modes.Holder{PID: os.Getpid(), UID: 0, Verb: "mode"}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := busy(noBlock), "(root's sitectl mode, pid "+strconv.Itoa(os.Getpid())+", since "; !strings.Contains(got, want) {
		t.Errorf("root's change: got %q, want it to say %q", got, want)
	}
	held.Unlock()

	// A holder that is gone: its words are left in the file (kill -9),
	// and its pid is not this lock's holder.
	held, err = st.LockSite(s, false)
	if err != nil {
		t.Fatal(err)
	}
	held.Hold(modes.Holder{PID: os.Getpid(), UID: 1001, Verb: "restart", Since: time.Now().Add(-time.Hour * 24 * 365)})
	if got, want := busy(noBlock), "site karl is being changed by another sitectl; nothing was done"; got != want {
		t.Errorf("a holder whose pid started after it took the lock: got %q, want %q", got, want)
	}
	held.Unlock()

	// A touch's reload holds the lock shared, and writes nothing.
	touch, err := st.TryLockExisting("karl")
	if err != nil || touch == nil {
		t.Fatalf("touch's lock: %v, %v", touch, err)
	}
	if got, want := busy(noBlock), "site karl is being changed by another sitectl (a reload after its reload_trigger was touched); nothing was done"; got != want {
		t.Errorf("a touch's reload: got %q, want %q", got, want)
	}
	touch.Unlock()
}

// Root goes first: once root's sitectl waits for a site's lock, a
// deployer's change (run by the state service) does not take it, even
// when it is free for a moment, so that a deployer who loops on changes
// of the site cannot keep root out until root's --timeout; the deployer
// gets it after root.
func TestRootWaitingGoesFirst(t *testing.T) {
	e := &env{dirs: testDirs(t)}
	s, err := e.loadSite("karl")
	if err != nil {
		t.Fatal(err)
	}
	st := modes.Store{Dir: e.dirs.State}
	quiet := func(string, ...any) {}
	dana := modes.Holder{PID: os.Getpid(), UID: 1001, Verb: "restart"}
	rootHolder := modes.Holder{PID: os.Getpid(), UID: 0, Verb: "restart"}
	req := func(noBlock bool) stateservice.Request {
		return stateservice.Request{Verb: stateservice.VerbRestart, Site: "karl", NoBlock: noBlock, TimeoutMS: 10000}
	}

	// The mark alone keeps a deployer's change out of a free lock, and
	// lets it in once it is gone.
	if err := st.EnsureLock("karl"); err != nil {
		t.Fatal(err)
	}
	mark, err := st.RootWaits("karl")
	if err != nil || mark == nil {
		t.Fatalf("root's mark: %v, %v", mark, err)
	}
	if lock, _, err := lockSite(context.Background(), st, s, req(true), dana, quiet); err == nil {
		lock.Unlock()
		t.Fatal("a deployer's change took the site's free lock while root's mark said root waits")
	}
	if again, err := st.RootWaits("karl"); err != nil || again != nil {
		t.Errorf("a second root's mark while one is held: %v, %v; want none, no error", again, err)
	}
	mark.Unlock()
	if lock, _, err := lockSite(context.Background(), st, s, req(true), dana, quiet); err != nil {
		t.Fatalf("without the mark: %v", err)
	} else {
		lock.Unlock()
	}

	// And root's sitectl, waiting for the lock, marks it.
	first, _, err := lockSite(context.Background(), st, s, req(false), dana, quiet)
	if err != nil {
		t.Fatal(err)
	}
	rootGot := make(chan *modes.Lock)
	go func() {
		lock, _, err := lockSite(context.Background(), st, s, req(false), rootHolder, quiet)
		if err != nil {
			t.Error(err)
		}
		rootGot <- lock
	}()
	deadline := time.Now().Add(10 * time.Second)
	for !st.RootWaiting("karl") {
		if time.Now().After(deadline) {
			t.Fatal("root's sitectl waits, and no mark says so")
		}
		time.Sleep(10 * time.Millisecond)
	}
	first.Unlock()
	// The lock is free until root's next try: dana's next change waits.
	if lock, _, err := lockSite(context.Background(), st, s, req(true), dana, quiet); err == nil {
		lock.Unlock()
		t.Fatal("a deployer's change took the site's lock while root waited for it")
	}
	root := <-rootGot
	if root == nil {
		t.Fatal("root did not get the lock")
	}
	if st.RootWaiting("karl") {
		t.Error("root holds the lock and still marks that it waits")
	}
	danaGot := make(chan error)
	go func() {
		lock, _, err := lockSite(context.Background(), st, s, req(false), dana, quiet)
		if err == nil {
			lock.Unlock()
		}
		danaGot <- err
	}()
	root.Unlock()
	if err := <-danaGot; err != nil {
		t.Errorf("the deployer's change after root's: %v", err)
	}
}
