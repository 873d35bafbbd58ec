// Package pubpath looks at paths as any user of the host could: root's
// services that answer a deployer (sitectl's state service) must not
// show them what only root may see. A deployer points their release
// symlink where they like: at another site's files, at root-only ones,
// or at /proc/PID/root and /proc/PID/cwd of another site's process,
// which root's CAP_SYS_PTRACE would follow into that site's private
// /tmp or working directory. What pubpath resolves goes through
// directories that anyone may search, never into /proc or /sys, and
// never under a directory the caller says it cannot see as the host does
// (its own sandbox's /tmp, say); anything else is ErrHidden, which
// callers take for "cannot tell".
package pubpath

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// ErrHidden: the path goes where not every user may look, or where the
// caller cannot see what the host has.
var ErrHidden = errors.New("not visible to every user")

// maxLinks is how many symlinks one resolution follows, as the kernel's
// limit (MAXSYMLINKS).
const maxLinks = 40

// never are the trees nobody's paths are followed into: the kernel's
// views of processes and devices, where a link leads into another
// process's root or working directory.
var never = []string{"/proc", "/sys"}

// Resolver resolves paths as any user could.
type Resolver struct {
	// Unseen are directories the caller sees differently from the host
	// (its unit's ProtectHome= or PrivateTmp=): paths under them are
	// ErrHidden.
	Unseen []string
}

// Resolve returns p with its symlinks resolved, or ErrHidden, or the
// error of the first component that is not there (fs.ErrNotExist: in
// a directory anyone may search, everyone can tell that it is not).
func (r Resolver) Resolve(p string) (string, error) {
	w, err := r.walk(p)
	if err != nil {
		return "", err
	}
	w.close()
	return w.resolved, nil
}

// Stat is os.Stat of p resolved so.
func (r Resolver) Stat(p string) (fs.FileInfo, error) {
	w, err := r.walk(p)
	if err != nil {
		return nil, err
	}
	w.close()
	return w.info(), nil
}

// Open opens p, resolved so, for reading, if it is a regular file that
// anyone may read; otherwise ErrHidden. It opens what was resolved,
// through the directories it went through (held open, never a path
// walked again), so a symlink swapped meanwhile leads nowhere else.
func (r Resolver) Open(p string) (*os.File, error) {
	w, err := r.walk(p)
	if err != nil {
		return nil, err
	}
	defer w.close()
	if w.st.Mode&unix.S_IFMT != unix.S_IFREG || w.st.Mode&0o004 == 0 {
		return nil, fmt.Errorf("%s: %w (not a file every user may read)", w.resolved, ErrHidden)
	}
	fd, err := unix.Openat(w.dir, w.name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: w.resolved, Err: err}
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Ino != w.st.Ino || st.Dev != w.st.Dev {
		unix.Close(fd)
		return nil, fmt.Errorf("%s: %w (it changed while it was opened)", w.resolved, ErrHidden)
	}
	return os.NewFile(uintptr(fd), w.resolved), nil
}

// walked is where a walk ended: the last component's name in the
// directory held open, and its stat.
type walked struct {
	resolved string
	dir      int // the directory that holds name; open (O_PATH)
	name     string
	st       unix.Stat_t
}

func (w *walked) close() { unix.Close(w.dir) }

func (w *walked) info() fs.FileInfo {
	return fileInfo{name: filepath.Base(w.resolved), st: w.st}
}

// walk resolves p one component at a time, each looked at in the
// directory before it, held open: the kernel follows no symlink (each is
// read and walked again from its directory or from /), and a directory
// is entered only if anyone may search it.
func (r Resolver) walk(p string) (*walked, error) {
	if !strings.HasPrefix(p, "/") {
		return nil, fmt.Errorf("%s: %w (not an absolute path)", p, ErrHidden)
	}
	w := &walked{resolved: "/", name: "."}
	root := func() error {
		fd, err := unix.Open("/", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		w.dir, w.resolved, w.name = fd, "/", "."
		return unix.Fstat(fd, &w.st)
	}
	if err := root(); err != nil {
		return nil, err
	}
	fail := func(err error) (*walked, error) {
		w.close()
		return nil, err
	}
	rest := strings.Split(p, "/")
	links := 0
	for len(rest) > 0 {
		c := rest[0]
		rest = rest[1:]
		if c == "" || c == "." {
			continue
		}
		// w.name is a directory to go into: w.dir itself, or w.name in it.
		if w.name != "." {
			if w.st.Mode&unix.S_IFMT != unix.S_IFDIR {
				return fail(&fs.PathError{Op: "stat", Path: w.resolved + "/" + c, Err: syscall.ENOTDIR})
			}
			fd, err := unix.Openat(w.dir, w.name, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
			if err != nil {
				return fail(&fs.PathError{Op: "open", Path: w.resolved, Err: err})
			}
			var st unix.Stat_t
			if err := unix.Fstat(fd, &st); err != nil || st.Ino != w.st.Ino || st.Dev != w.st.Dev {
				unix.Close(fd)
				return fail(fmt.Errorf("%s: %w (it changed while it was looked at)", w.resolved, ErrHidden))
			}
			unix.Close(w.dir)
			w.dir, w.name = fd, "."
		}
		if c == ".." {
			fd, err := unix.Openat(w.dir, "..", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
			if err != nil {
				return fail(err)
			}
			unix.Close(w.dir)
			w.dir, w.resolved = fd, filepath.Dir(w.resolved)
			if err := unix.Fstat(fd, &w.st); err != nil {
				return fail(err)
			}
			continue
		}
		if w.st.Mode&0o001 == 0 {
			return fail(fmt.Errorf("%s: %w (not every user may search it)", w.resolved, ErrHidden))
		}
		next := filepath.Join(w.resolved, c)
		if r.hidden(next) {
			return fail(fmt.Errorf("%s: %w", next, ErrHidden))
		}
		var st unix.Stat_t
		if err := unix.Fstatat(w.dir, c, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fail(&fs.PathError{Op: "stat", Path: next, Err: err})
		}
		if st.Mode&unix.S_IFMT != unix.S_IFLNK {
			w.resolved, w.name, w.st = next, c, st
			continue
		}
		if links++; links > maxLinks {
			return fail(&fs.PathError{Op: "stat", Path: p, Err: syscall.ELOOP})
		}
		buf := make([]byte, unix.PathMax)
		n, err := unix.Readlinkat(w.dir, c, buf)
		if err != nil {
			return fail(&fs.PathError{Op: "readlink", Path: next, Err: err})
		}
		target := string(buf[:n])
		if strings.HasPrefix(target, "/") {
			w.close()
			if err := root(); err != nil {
				return nil, err
			}
		} else if err := unix.Fstat(w.dir, &w.st); err != nil {
			return fail(err)
		}
		rest = append(strings.Split(target, "/"), rest...)
	}
	return w, nil
}

// hidden: p is under a tree never followed, or one the caller cannot see.
func (r Resolver) hidden(p string) bool {
	for _, d := range append(never, r.Unseen...) {
		if p == d || strings.HasPrefix(p, strings.TrimSuffix(d, "/")+"/") {
			return true
		}
	}
	return false
}

// fileInfo is an fs.FileInfo of a stat.
type fileInfo struct {
	name string
	st   unix.Stat_t
}

func (f fileInfo) Name() string       { return f.name }
func (f fileInfo) Size() int64        { return f.st.Size }
func (f fileInfo) ModTime() time.Time { return time.Unix(f.st.Mtim.Unix()) }
func (f fileInfo) IsDir() bool        { return f.st.Mode&unix.S_IFMT == unix.S_IFDIR }
func (f fileInfo) Sys() any           { return &f.st }

func (f fileInfo) Mode() fs.FileMode {
	m := fs.FileMode(f.st.Mode & 0o777)
	switch f.st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		m |= fs.ModeDir
	case unix.S_IFLNK:
		m |= fs.ModeSymlink
	case unix.S_IFIFO:
		m |= fs.ModeNamedPipe
	case unix.S_IFSOCK:
		m |= fs.ModeSocket
	case unix.S_IFCHR:
		m |= fs.ModeDevice | fs.ModeCharDevice
	case unix.S_IFBLK:
		m |= fs.ModeDevice
	}
	if f.st.Mode&unix.S_ISUID != 0 {
		m |= fs.ModeSetuid
	}
	if f.st.Mode&unix.S_ISGID != 0 {
		m |= fs.ModeSetgid
	}
	if f.st.Mode&unix.S_ISVTX != 0 {
		m |= fs.ModeSticky
	}
	return m
}
