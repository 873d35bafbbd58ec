// Package atomicfile writes files so that a crash at any instant leaves
// either the old content or the new one, never a torn or empty file: the
// data goes to a temporary file in the same directory, is synced, renamed
// over the target, and the directory is synced so the rename itself is
// durable.
//
// What a crash can leave behind is a hidden name beside the target:
// .NAME.tmp-DIGITS (a write or a link cut short) or .NAME.removed-DIGITS (a
// removal cut short). RemoveStale removes those of given names once they
// are older than StaleAfter; Remove does so for its own name.
package atomicfile

import (
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Write replaces path with data, creating it with perm if it is new.
func Write(path string, data []byte, perm os.FileMode) error {
	st, err := Stage(path, data, perm)
	if err != nil {
		return err
	}
	if err := st.Commit(); err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}

// Staged is a file or link written in full under a hidden name beside its
// path (.NAME.tmp-DIGITS), and synced, but not yet in place: Commit puts
// it there, Abort removes it. Writing many files that go together (the
// units of a site) stages them all first, so that a full disk, which
// fails a write and not a rename, changes none of them rather than some.
type Staged struct {
	tmp, path string
}

// Stage writes data to a hidden file beside path with perm, synced, for
// Commit to put in place. On error nothing is left behind.
func Stage(path string, data []byte, perm os.FileMode) (*Staged, error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return nil, fmt.Errorf("cannot write %s: %w", path, err)
	}
	done := false
	defer func() {
		if !done {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := tmp.Chmod(perm); err != nil {
		return nil, fmt.Errorf("cannot write %s: %w", path, err)
	}
	if _, err := tmp.Write(data); err != nil {
		return nil, fmt.Errorf("cannot write %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		return nil, fmt.Errorf("cannot write %s: sync: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return nil, fmt.Errorf("cannot write %s: %w", path, err)
	}
	done = true
	return &Staged{tmp: tmp.Name(), path: path}, nil
}

// StageSymlink makes a symlink to target under a hidden name beside path,
// for Commit to put in place. On error nothing is left behind.
func StageSymlink(target, path string) (*Staged, error) {
	dir := filepath.Dir(path)
	for try := 0; ; try++ {
		tmp := filepath.Join(dir, "."+filepath.Base(path)+".tmp-"+suffix())
		err := os.Symlink(target, tmp)
		if err == nil {
			return &Staged{tmp: tmp, path: path}, nil
		}
		if !errors.Is(err, fs.ErrExist) || try == 10 {
			return nil, fmt.Errorf("cannot link %s: %w", path, err)
		}
	}
}

// Path is where Commit puts the staged file.
func (s *Staged) Path() string { return s.path }

// Commit renames the staged file over its path, at once; on error the
// staged file is removed and path is left as it was. The caller syncs
// the directory (SyncDir) to make the rename durable.
func (s *Staged) Commit() error {
	if err := os.Rename(s.tmp, s.path); err != nil {
		os.Remove(s.tmp)
		return fmt.Errorf("cannot write %s: %w", s.path, err)
	}
	return nil
}

// Abort removes the staged file; path is left as it was.
func (s *Staged) Abort() { os.Remove(s.tmp) }

// SyncDir makes the renames (Commit) and new names in dir durable.
func SyncDir(dir string) error { return syncDir(dir) }

// Symlink makes path a symlink to target, replacing whatever file or link
// is there at once: the link is made under a hidden name beside path and
// renamed over it, and the directory is synced. Removing the old link
// first would leave no link at all after a crash, or after a symlink that
// fails, and a reader (systemd at daemon-reload) could find none meanwhile.
func Symlink(target, path string) error {
	st, err := StageSymlink(target, path)
	if err != nil {
		return err
	}
	if err := st.Commit(); err != nil {
		return fmt.Errorf("cannot link %s: %w", path, errors.Unwrap(err))
	}
	return syncDir(filepath.Dir(path))
}

// Remove removes path, a file or a whole directory, at once: it is renamed
// to a hidden name beside it (durably), and only then removed. A crash at
// any instant leaves path whole or gone, never half removed; what a crash
// leaves behind is the hidden name, which begins with a dot. That name is
// new for every removal: a name that a crash left behind (once the PID
// alone, which comes round again) must not make the rename fail for good,
// as a directory renamed over a directory that is not empty does. Stale
// leftovers of path's name are removed first (RemoveStale), as far as they
// can be: that is tidying, and does not fail the removal.
func Remove(path string) error {
	dir, base := filepath.Dir(path), filepath.Base(path)
	RemoveStale(dir, base)
	var gone string
	for try := 0; ; try++ {
		gone = filepath.Join(dir, "."+base+".removed-"+suffix())
		err := os.Rename(path, gone)
		if err == nil {
			break
		}
		if !(errors.Is(err, fs.ErrExist) || errors.Is(err, syscall.ENOTEMPTY)) || try == 10 {
			return fmt.Errorf("cannot remove %s: %w", path, err)
		}
	}
	if err := syncDir(dir); err != nil {
		return err
	}
	if err := os.RemoveAll(gone); err != nil {
		return fmt.Errorf("%s is gone, but cannot remove what it held (%s): %w", path, gone, err)
	}
	return nil
}

// suffix is a random decimal number for a hidden name, as os.CreateTemp
// makes them.
func suffix() string { return strconv.FormatUint(rand.Uint64(), 10) }

// StaleAfter is how long ago a leftover (.NAME.tmp-DIGITS or
// .NAME.removed-DIGITS) must have last changed before RemoveStale removes
// it. A younger one may be another sitectl's write or removal that is
// running now: its temporary file is written, or its directory emptied,
// right now, and each of those changes its ctime. None of them takes an
// hour.
const StaleAfter = time.Hour

// now is the clock RemoveStale compares with; tests move it forward.
var now = time.Now

// RemoveStale removes from dir what a crash left of writes, links and
// removals of the given names (.NAME.tmp-DIGITS and .NAME.removed-DIGITS)
// when it last changed (its ctime, which a rename sets too) more than
// StaleAfter ago. Other entries, younger ones and those of other names are
// left alone. It reads the whole directory, so it is for the owner of a
// directory to call when it writes there, not for every write: a directory
// of 30,000 units written one by one would be read 30,000 times. It
// returns the first error, after trying every leftover.
func RemoveStale(dir string, names ...string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	entries, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		return err
	}
	cutoff := now().Add(-StaleAfter)
	var first error
	for _, e := range entries {
		if !leftoverOf(e, names) {
			continue
		}
		p := filepath.Join(dir, e)
		fi, err := os.Lstat(p)
		if err != nil {
			continue // removed meanwhile
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); !ok || time.Unix(st.Ctim.Unix()).After(cutoff) {
			continue
		}
		if err := os.RemoveAll(p); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// leftoverOf says whether entry is .NAME.tmp-DIGITS or .NAME.removed-DIGITS
// for one of names.
func leftoverOf(entry string, names []string) bool {
	for _, n := range names {
		for _, kind := range []string{".tmp-", ".removed-"} {
			rest, ok := strings.CutPrefix(entry, "."+n+kind)
			if ok && rest != "" && strings.Trim(rest, "0123456789") == "" {
				return true
			}
		}
	}
	return false
}

// MkdirAll creates the directory path and the parents it lacks, each with
// perm whatever the umask, and makes each new one durable: it is synced
// and so is its parent, which holds its name. A file written into a new
// directory and synced is otherwise lost with the directory at a power
// loss. Directories that exist are left as they are.
func MkdirAll(path string, perm os.FileMode) error {
	fi, err := os.Stat(path)
	if err == nil {
		if !fi.IsDir() {
			return &fs.PathError{Op: "mkdir", Path: path, Err: syscall.ENOTDIR}
		}
		return nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	parent := filepath.Dir(path)
	if parent != path {
		if err := MkdirAll(parent, perm); err != nil {
			return err
		}
	}
	if err := os.Mkdir(path, perm); err != nil {
		if fi, serr := os.Stat(path); serr != nil || !fi.IsDir() {
			return err
		}
		// Another process made it meanwhile, and may not have synced
		// its parent yet: what is written into it must not depend on
		// that.
		return syncDir(parent)
	}
	if err := os.Chmod(path, perm); err != nil {
		os.Remove(path)
		return err
	}
	if err := syncDir(path); err != nil {
		return err
	}
	return syncDir(parent)
}

// syncDir makes the directory's entries (a rename, a new file) durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("cannot sync directory %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("cannot sync directory %s: %w", dir, err)
	}
	return nil
}
