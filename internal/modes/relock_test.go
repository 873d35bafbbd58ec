package modes

import (
	"errors"
	"os"
	"testing"

	"github.com/sitectl/sitectl/internal/site"
)

// A sitectl that opened a site's lock file just before `sitectl remove`
// forgot the site's state (lock file and all) got the lock when remove
// let go, on a file no other sitectl could open any more; the next
// sitectl created a new lock file and locked that, and both changed the
// site at once. The hook puts the remove exactly between the open and
// the flock: the lock taken must be the file at the lock's path, which
// keeps every other change out.
func TestLockFileRemovedWhileItWasTaken(t *testing.T) {
	st := Store{Dir: t.TempDir()}
	s := raceSite(t, "")
	remover, err := st.LockSite(s, false)
	if err != nil {
		t.Fatal(err)
	}
	testHookLockOpened = func() {
		testHookLockOpened = nil
		// remove, holding the lock: forgets the state, then ends.
		if _, err := st.Forget(s.Name); err != nil {
			t.Error(err)
		}
		remover.Unlock()
	}
	t.Cleanup(func() { testHookLockOpened = nil })

	lock, err := st.LockSite(s, false)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Unlock()
	held, err := lock.f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	named, err := os.Stat(st.paths().LockFile(s.Name))
	if err != nil || !os.SameFile(held, named) {
		t.Fatalf("the lock taken is not the site's lock file (%v): it was removed while it was taken", err)
	}
	if other, err := st.LockSite(s, false); !errors.Is(err, ErrLocked) {
		if other != nil {
			other.Unlock()
		}
		t.Fatalf("a second change of the site took its lock (%v) while the first held it", err)
	}
}

// The same for the touch's shared lock: a lock file removed between its
// open and its flock is looked up again; none there means no change ever
// ran (nil, nil), not a lock on a file nobody sees.
func TestSharedLockOfARemovedSite(t *testing.T) {
	st, s := removedOnceOpened(t)
	lock, err := st.TryLockExisting(s.Name)
	if err != nil || lock != nil {
		if lock != nil {
			lock.Unlock()
		}
		t.Fatalf("TryLockExisting of a site removed while it locked: %v, %v; want no lock and no error", lock, err)
	}
}

// And for the mode lock, which prepare and every switch take around
// their writes of the mode file.
func TestModeLockFileRemovedWhileItWasTaken(t *testing.T) {
	st, s := removedOnceOpened(t)
	path := st.paths().ModeLockFile(s.Name)
	err := st.withModeLock(s.Name, func() error {
		f, err := openLock(path, os.O_RDONLY, 0)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := lockWithin(f, 0); err == nil {
			return errors.New("the mode lock's file could be locked by another writer: the lock held was on a removed file")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// removedOnceOpened is a store with a site that has state, whose state
// (lock files and all) the next lock to be taken forgets between the open
// of its file and the flock, as sitectl remove could.
func removedOnceOpened(t *testing.T) (Store, *site.Site) {
	t.Helper()
	st := Store{Dir: t.TempDir()}
	s := raceSite(t, "")
	if err := st.EnsureLock(s.Name); err != nil {
		t.Fatal(err)
	}
	testHookLockOpened = func() {
		testHookLockOpened = nil
		if _, err := st.Forget(s.Name); err != nil {
			t.Error(err)
		}
	}
	t.Cleanup(func() { testHookLockOpened = nil })
	return st, s
}
