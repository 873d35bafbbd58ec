package site

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// MaxFileSize bounds a site file. A real one is a few hundred bytes; the
// bound keeps a mistake (a log file, a symlink to /dev/zero) from costing
// the generator and every sitectl verb their memory.
const MaxFileSize = 1 << 20

// ReadFile is the one way sitectl reads a site file: the generator, check,
// units render, every verb that loads one site, and the state service all
// come through here. It refuses anything that is not a regular file (a
// named pipe would block the reader forever, a device such as /dev/zero
// would never end) and files larger than MaxFileSize, without reading them.
//
// A symlink to a regular file is followed: operators keep site files in a
// checkout and link them. The target's type is checked with stat before the
// file is opened, so a device is never opened at all; the opened file is
// checked again with fstat, so a file swapped in between cannot get past.
// It is opened with O_NONBLOCK, so even then nothing can block the open or
// a read, and at most MaxFileSize+1 bytes are read, so a file that grows
// (or lies about its size, as files under /proc do) cannot either.
//
// A missing file gives an error that wraps fs.ErrNotExist. Every error is
// worded for an operator and starts with the path.
func ReadFile(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, readError(path, err)
	}
	if err := checkRegular(path, fi); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	if err != nil {
		return nil, readError(path, err)
	}
	defer f.Close()
	if fi, err = f.Stat(); err != nil {
		return nil, readError(path, err)
	}
	if err := checkRegular(path, fi); err != nil {
		return nil, err
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, readError(path, err)
	}
	if len(data) > MaxFileSize {
		return nil, tooLarge(path, int64(len(data)))
	}
	return data, nil
}

// FileError is why a site file could not be read at all.
type FileError struct {
	Path   string
	Reason string
	Err    error // the underlying error, if any
}

func (e *FileError) Error() string { return e.Path + ": " + e.Reason }
func (e *FileError) Unwrap() error { return e.Err }

func readError(path string, err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	return &FileError{Path: path, Reason: fmt.Sprintf("cannot read the file: %v", err), Err: err}
}

func tooLarge(path string, size int64) error {
	return &FileError{Path: path, Reason: fmt.Sprintf("is %d bytes long; a site file may have at most %d (1 MiB)", size, MaxFileSize)}
}

func checkRegular(path string, fi fs.FileInfo) error {
	if fi.Mode().IsRegular() {
		if fi.Size() > MaxFileSize {
			return tooLarge(path, fi.Size())
		}
		return nil
	}
	what := fileKind(fi.Mode())
	if target, err := os.Readlink(path); err == nil {
		if !filepath.IsAbs(target) {
			target = filepath.Join(filepath.Dir(path), target)
		}
		what = fmt.Sprintf("a symlink to %s, which is %s", printable(target), what)
	}
	return &FileError{Path: path, Reason: "is " + what + ", not a regular file: a site file must be a regular file (or a symlink to one)"}
}

func fileKind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe (FIFO)"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a block device"
	}
	return "a special file (" + m.Type().String() + ")"
}
