package modes

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"
)

// The mode file has more than one writer: a switch records the mode it
// switches to (and back, on rollback), and `sitectl prepare`, which
// systemd runs before every start of the service, brings the file of the
// recorded mode up to date with the site file. prepare reads the file,
// renders the recorded mode and writes it back; a switch that records a
// new mode between that read and that write would be undone, and the
// service would start in the old mode while the switch believes it
// recorded the new one. The site's switch lock cannot serialize them: a
// switch holds it while the start it asked for runs prepare.
//
// So every writer of the mode file holds the site's mode lock, an flock(2)
// on its own file, around its whole read-modify-write, and only for that
// long: a few file operations, never a wait for systemd. It dies with its
// holder, as the switch lock does.

// modeLockTimeout bounds the wait for the mode lock. Its holders only
// read and write a small file; one that holds it this long is stuck.
const modeLockTimeout = 30 * time.Second

// testHookContended, when set (by tests), is called when the mode lock is
// held by someone else and the caller is about to wait for it.
var testHookContended func()

// withModeLock runs fn while holding site name's mode lock.
func (st Store) withModeLock(name string, fn func() error) error {
	f, err := lockNamed("the mode of site "+name, st.paths().ModeLockFile(name), func(path string) (*os.File, error) {
		if err := st.siteDir(name); err != nil {
			return nil, err
		}
		f, err := openLock(path, os.O_RDONLY|os.O_CREATE, 0o600)
		if err != nil {
			return nil, fmt.Errorf("cannot open the mode lock of site %s: %w", name, err)
		}
		return f, nil
	}, func(f *os.File) error {
		if err := lockWithin(f, modeLockTimeout); err != nil {
			return fmt.Errorf("cannot lock the mode of site %s (%s): %w", name, f.Name(), err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	defer f.Close() // closing releases the lock
	return fn()
}

// lockWithin takes an exclusive flock on f, waiting at most timeout.
// flock(2) itself cannot time out, so a contended lock is polled, at short
// intervals first: its holders are quick.
func lockWithin(f *os.File, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	wait := 100 * time.Microsecond
	for first := true; ; first = false {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, syscall.EINTR):
			continue
		case !errors.Is(err, syscall.EWOULDBLOCK):
			return err
		case time.Now().After(deadline):
			return fmt.Errorf("still held by another process after %s", timeout)
		}
		if first && testHookContended != nil {
			testHookContended()
		}
		time.Sleep(wait)
		wait = min(2*wait, 10*time.Millisecond)
	}
}
