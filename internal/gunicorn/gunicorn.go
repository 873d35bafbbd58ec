// Package gunicorn owns the config file that the gunicorn preset hands to
// gunicorn: /run/sitectl/gunicorn.conf.py, named in GUNICORN_CMD_ARGS (-c)
// and written by sitectl prepare, as root, before each start of a gunicorn
// site's service. It loads the config gunicorn would have loaded without
// it (gunicorn.conf.py in the working directory) and adds the hooks
// worker_exit and on_exit, which end a cleanly stopping worker or master
// without Python's teardown of the interpreter (site key fast_exit): that
// teardown costs 0.1-0.3 s of CPU per process, taken from the generation
// that serves while the old one drains.
//
// It is not in the generator's directory, which systemd empties at every
// daemon-reload until the generators have run again: a generation an
// overlapped reload starts meanwhile would not find it.
package gunicorn

import (
	_ "embed"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"

	"github.com/sitectl/sitectl/internal/atomicfile"
)

// Config is the content of the file.
//
//go:embed sitectl-gunicorn.conf.py
var Config string

// Path is where the units name the file: under /run/sitectl, root's
// directory beside the state service's socket (0755), emptied at boot.
const Path = "/run/sitectl/gunicorn.conf.py"

// Ensure writes the file at path unless it is there with this content,
// creating its directory (0755) when it is missing.
//
// When it cannot be written (/run full, which any process that can write
// to it can make it: an overlap site's app in its runtime directory) and
// a file of other content is there, the file of the sitectl before an
// upgrade, that file is kept and the error wraps ErrKept: gunicorn
// starts with the hooks it started with until then, rather than the site
// not at all.
func Ensure(path string) error {
	if same, err := holds(path); err == nil && same {
		return nil
	}
	fi, err := os.Stat(path)
	kept := err == nil && fi.Mode().IsRegular() && fi.Size() > 0
	// 0755 whatever the umask: every site's user reads the file.
	if err := atomicfile.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("cannot write gunicorn's config file of sitectl: %w", err)
	}
	if err := write(path, []byte(Config), 0o644); err != nil {
		if kept {
			return fmt.Errorf("gunicorn's config file of sitectl: %w; %w", err, ErrKept)
		}
		return fmt.Errorf("gunicorn's config file of sitectl: %w", err)
	}
	return nil
}

// ErrKept says that Ensure kept the file that was there.
var ErrKept = errors.New("the one there, of another version of sitectl, is kept")

// write is atomicfile.Write; tests replace it.
var write = atomicfile.Write

// holds tells whether the file at path has Config's content, reading at
// most one byte more than that. Anything but a regular file does not, and
// is not read: it is opened without blocking, since opening a named pipe
// for reading would wait for a writer, and the site's start with it.
func holds(path string) (bool, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	if err != nil {
		return false, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return false, err
	}
	b, err := io.ReadAll(io.LimitReader(f, int64(len(Config))+1))
	if err != nil {
		return false, err
	}
	return string(b) == Config, nil
}
