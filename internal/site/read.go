package site

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/sitectl/sitectl/internal/term"
	"golang.org/x/sys/unix"
)

// MaxFileSize bounds a site file. A real one is a few hundred bytes to a
// few KiB; the bound keeps a mistake (a log file, a symlink to /dev/zero)
// from costing the generator and every sitectl verb their memory, and a
// hostile file from costing them their time: at 1 MiB, one file of many
// keys or listeners took the generator 14-25 s of CPU, and systemd kills
// a generator after 90 s, before it has written any site's units.
const MaxFileSize = 64 << 10

// MaxCopySize bounds what ReadFile reads: a copy sitectl keeps of a site
// file (the last good copy the generator falls back to, the copy a pin
// holds), which a sitectl before the bound of MaxFileSize may have kept
// of a file of up to 1 MiB. Such a site keeps running from its copy while
// its file is refused, as for any other mistake in it, instead of losing
// its units at the upgrade's daemon-reload.
const MaxCopySize = 1 << 20

// MaxPageSize bounds a maintenance mode's page file. A page is a few
// kilobytes (its images are static files); the bound keeps a mistake (a
// log file, a symlink to /dev/zero) from costing every site in
// maintenance its memory. The maintenance server refuses a larger one,
// and sitectl check and a switch say so before.
const MaxPageSize = 1 << 20

// ReadFile is the one way sitectl reads a site file: the generator, check,
// units render, every verb that loads one site, and the state service all
// come through here. It refuses anything that is not a regular file (a
// named pipe would block the reader forever, a device such as /dev/zero
// would never end) and files larger than MaxCopySize, without reading them.
//
// A symlink to a regular file is followed: operators keep site files in a
// checkout and link them. The target's type is checked with stat before the
// file is opened, so a device is never opened at all; the opened file is
// checked again with fstat, so a file swapped in between cannot get past.
// It is opened with O_NONBLOCK, so even then nothing can block the open or
// a read, and at most MaxCopySize+1 bytes are read, so a file that grows
// (or lies about its size, as files under /proc do) cannot either.
//
// A missing file gives an error that wraps fs.ErrNotExist. Every error is
// worded for an operator and starts with the path.
func ReadFile(path string) ([]byte, error) { return readFile(unix.AT_FDCWD, path, path, false, false) }

// Digest is the identity of a site file's content: the SHA-256 of its
// bytes, in hex. The generator stamps it on the units it writes
// (Site.Digest), so that a file changed since then is told by its
// content, whatever its modification time says (docs/operations.md).
func Digest(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// ReadSiteFile is ReadFile of a site file, which must also be root's
// alone (trusted): the generator's LoadDir, and every reader of one site
// by name (a verb, prepare, status, the state service's grant check),
// read a site file through it, so that a file the generator refuses is
// not taken by another of root's readers either (its deployers granted,
// its content kept as the last good copy the generator falls back to).
// Every directory on the way to the file must be root's alone too
// (TrustedPath): whoever may change one may put another file in its place.
func ReadSiteFile(path string) ([]byte, error) {
	if err := TrustedPath(path); err != nil {
		return nil, err
	}
	return readFile(unix.AT_FDCWD, path, path, false, true)
}

// readSiteFileAs is ReadSiteFile of a copy, at path, of the site file to
// be put at way: the directories on the way to way are checked, not
// those on the way to the copy (LoadFileAs).
func readSiteFileAs(path, way string) ([]byte, error) {
	if pp := hostView.fileProblem(way); pp != nil {
		return nil, untrustedPath(path, pp)
	}
	return readFile(unix.AT_FDCWD, path, path, false, true)
}

// trusted refuses a site file that someone other than root (or the user
// reading it, for a user's own checks) may change: it says which
// programs run as which user, and which files root hands to the app as
// credentials, so whoever may write it may read any file on the host and
// run anything as any site's user. The file's owner must be root or the
// reader, and only root may write it: not others, and the group only when
// it is root's group, nor anyone through the file's access ACL (read with
// acl when the mode bits leave it room, acl.go). The file opened is
// checked, so a symlink's target is what counts.
func trusted(path string, st *unix.Stat_t, acl func() ([]byte, error)) error {
	const why = "whoever may change a site file runs programs as its user and reads any file as root through its credentials"
	euid := uint32(unix.Geteuid())
	perm := st.Mode & 0o7777
	switch {
	case st.Uid != 0 && st.Uid != euid:
		return &FileError{Path: path, Reason: fmt.Sprintf("is owned by uid %d, not root: %s; make it root's (chown root: %s)", st.Uid, why, printablePath(path))}
	case perm&0o002 != 0, perm&0o020 != 0 && st.Gid != 0:
		return &FileError{Path: path, Reason: fmt.Sprintf("may be changed by others than its owner (mode %04o): %s; chmod go-w %s", perm, why, printablePath(path))}
	}
	who, err := aclWriterOf(perm, st.Gid, acl)
	switch {
	case err != nil:
		return &FileError{Path: path, Reason: fmt.Sprintf("may be changed by others than root: %v (mode %04o); %s; setfacl -b %s", err, perm, why, printablePath(path))}
	case who != "":
		return &FileError{Path: path, Reason: fmt.Sprintf("may be changed by %s through its access ACL (getfacl %s): %s; remove the ACL (setfacl -b %s)", who, printablePath(path), why, printablePath(path))}
	}
	return nil
}

// readFile is ReadFile of name in the directory open as dirfd (or
// unix.AT_FDCWD), which is path; path names the file in errors. regular
// says that the directory entry was a regular file when the directory was
// read (its d_type, as LoadDir gets it for free), which stands in for the
// stat before the open: the open file is checked with fstat all the same.
// A site directory of 10,000 files is read on every daemon-reload, so each
// file costs just an open (of a name, not a path to walk), an fstat, two
// reads and a close.
func readFile(dirfd int, name, path string, regular, site bool) ([]byte, error) {
	limit := int64(MaxFileSize)
	if !site {
		limit = MaxCopySize
	}
	if !regular {
		fi, err := os.Stat(path)
		if err != nil {
			return nil, readError(path, err)
		}
		if err := checkRegular(path, fi.Mode(), fi.Size(), limit); err != nil {
			return nil, err
		}
	}
	fd, err := openFile(dirfd, name)
	if err != nil {
		return nil, readError(path, err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := ignoringEINTR(func() error { return unix.Fstat(fd, &st) }); err != nil {
		return nil, readError(path, err)
	}
	if err := checkRegular(path, fileMode(st.Mode), st.Size, limit); err != nil {
		return nil, err
	}
	if site {
		if err := trusted(path, &st, func() ([]byte, error) { return fileACL(fd) }); err != nil {
			return nil, err
		}
	}
	// One byte more than the file says it holds, so that the second
	// read sees its end; files under /proc say 0 and are read on.
	data := make([]byte, 0, min(st.Size, limit)+1)
	for {
		if len(data) == cap(data) {
			data = append(data, 0)[:len(data)]
		}
		n, err := unix.Read(fd, data[len(data):min(int64(cap(data)), limit+1)])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, readError(path, err)
		}
		if n == 0 {
			break
		}
		data = data[:len(data)+n]
		if int64(len(data)) > limit {
			return nil, tooLarge(path, int64(len(data)), limit)
		}
	}
	return data, nil
}

// openFile opens name in dirfd for reading without blocking (a FIFO
// swapped in after the check must not hang the reader) and without making
// a terminal the controlling one.
func openFile(dirfd int, name string) (int, error) {
	for {
		fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
		if err != unix.EINTR {
			return fd, err
		}
	}
}

func ignoringEINTR(f func() error) error {
	for {
		if err := f(); err != unix.EINTR {
			return err
		}
	}
}

// fileMode is the type part of fs.FileMode for a stat mode.
func fileMode(m uint32) fs.FileMode {
	switch m & unix.S_IFMT {
	case unix.S_IFREG:
		return 0
	case unix.S_IFDIR:
		return fs.ModeDir
	case unix.S_IFIFO:
		return fs.ModeNamedPipe
	case unix.S_IFSOCK:
		return fs.ModeSocket
	case unix.S_IFCHR:
		return fs.ModeDevice | fs.ModeCharDevice
	case unix.S_IFBLK:
		return fs.ModeDevice
	case unix.S_IFLNK:
		return fs.ModeSymlink
	}
	return fs.ModeIrregular
}

// FileError is why a site file could not be read at all.
type FileError struct {
	Path   string
	Reason string
	Err    error // the underlying error, if any
}

func (e *FileError) Error() string { return term.Escape(e.Path) + ": " + e.Reason }
func (e *FileError) Unwrap() error { return e.Err }

func readError(path string, err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	return &FileError{Path: path, Reason: fmt.Sprintf("cannot read the file: %v", err), Err: err}
}

func tooLarge(path string, size, limit int64) error {
	if limit == MaxFileSize {
		return &FileError{Path: path, Reason: fmt.Sprintf("is %d bytes long; a site file may have at most %d (64 KiB)", size, MaxFileSize)}
	}
	return &FileError{Path: path, Reason: fmt.Sprintf("is %d bytes long; at most %d bytes are read", size, limit)}
}

func checkRegular(path string, mode fs.FileMode, size, limit int64) error {
	if mode.IsRegular() {
		if size > limit {
			return tooLarge(path, size, limit)
		}
		return nil
	}
	what := FileKind(mode)
	if target, err := os.Readlink(path); err == nil {
		if !filepath.IsAbs(target) {
			target = filepath.Join(filepath.Dir(path), target)
		}
		what = fmt.Sprintf("a symlink to %s, which is %s", printablePath(target), what)
	}
	return &FileError{Path: path, Reason: "is " + what + ", not a regular file: a site file must be a regular file (or a symlink to one)"}
}

// FileKind names the type of a file that is not a regular one, for an
// error that says why it is refused ("a named pipe (FIFO)").
func FileKind(m fs.FileMode) string {
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
