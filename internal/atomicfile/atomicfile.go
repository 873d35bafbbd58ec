// Package atomicfile writes files so that a crash at any instant leaves
// either the old content or the new one, never a torn or empty file: the
// data goes to a temporary file in the same directory, is synced, renamed
// over the target, and the directory is synced so the rename itself is
// durable.
package atomicfile

import (
	"fmt"
	"os"
	"path/filepath"
)

// Write replaces path with data, creating it with perm if it is new.
func Write(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("cannot write %s: %w", path, err)
	}
	done := false
	defer func() {
		if !done {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := tmp.Chmod(perm); err != nil {
		return fmt.Errorf("cannot write %s: %w", path, err)
	}
	if _, err := tmp.Write(data); err != nil {
		return fmt.Errorf("cannot write %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("cannot write %s: sync: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("cannot write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("cannot write %s: %w", path, err)
	}
	done = true
	return syncDir(dir)
}

// Remove removes path, a file or a whole directory, at once: it is renamed
// to a hidden name beside it (durably), and only then removed. A crash at
// any instant leaves path whole or gone, never half removed; what a crash
// leaves behind is the hidden name, which begins with a dot.
func Remove(path string) error {
	dir := filepath.Dir(path)
	gone := filepath.Join(dir, fmt.Sprintf(".%s.removed-%d", filepath.Base(path), os.Getpid()))
	if err := os.Rename(path, gone); err != nil {
		return fmt.Errorf("cannot remove %s: %w", path, err)
	}
	if err := syncDir(dir); err != nil {
		return err
	}
	if err := os.RemoveAll(gone); err != nil {
		return fmt.Errorf("%s is gone, but cannot remove what it held (%s): %w", path, gone, err)
	}
	return nil
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
