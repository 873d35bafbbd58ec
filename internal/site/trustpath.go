package site

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// A site file is root's to choose, and so is every file that a site file's
// path leads to: the check of the file itself (trusted) is not enough
// when the path goes through a directory that someone else may change.
// An operator who links /etc/sitectl/sites/shop.toml to
// /srv/deploy/shop.toml, in a directory a deployer may write, lets that
// deployer put a symlink there to any file of root's: another site's file
// or its last good copy (the site then runs another site's program, as
// its user, with its credentials), or a file that is not a site file at
// all, whose first line then shows in the generator's errors. So every
// directory on the way to the file, and on the way through each symlink
// to it, must be root's alone, as OpenSSH's StrictModes and sudo ask of
// the directories of their files: owned by root (or by the reader, for a
// user's check of their own files), writable by no one else, through
// neither its mode bits nor its ACL. A world-writable sticky directory
// (/tmp) may be on the way where what is in it is root's: only its
// owner may then rename or remove it.

// pathProblem is a directory on the way to a file that someone other
// than root may change: dir is the one to fix, why says what is wrong.
type pathProblem struct{ dir, why string }

// maxLinks is how many symlinks a path may go through, as the kernel's
// limit (MAXSYMLINKS): the open fails with ELOOP beyond it.
const maxLinks = 40

// fileProblem is the pathProblem of the path p to a file, following
// symlinks as the kernel does; nil when every directory on the way is
// root's alone (or the path cannot be followed: the open then says why).
// The file itself, the last component, is not checked: trusted checks
// the file opened.
func (v fsView) fileProblem(p string) *pathProblem { return v.pathProblem(p, false) }

// dirProblem is fileProblem of a directory: itself, when it is one, is
// checked too, as the last directory on the way to the files in it.
func (v fsView) dirProblem(p string) *pathProblem { return v.pathProblem(p, true) }

func (v fsView) pathProblem(p string, dir bool) *pathProblem {
	if !filepath.IsAbs(p) {
		abs, err := filepath.Abs(p)
		if err != nil {
			return nil
		}
		p = abs
	}
	rootSt, err := v.lstat("/")
	if err != nil {
		return nil
	}
	why, rootSticky := v.check("/", rootSt)
	if why != "" {
		return &pathProblem{"/", why}
	}
	cur, sticky := "/", rootSticky
	names := splitPath(p)
	for links := 0; len(names) > 0; {
		name := names[0]
		names = names[1:]
		if name == ".." {
			// cur has no symlinks in it: its parent is what the
			// kernel goes to, and was checked on the way.
			cur = filepath.Dir(cur)
			st, err := v.lstat(cur)
			if err != nil {
				return nil
			}
			_, sticky = v.check(cur, st)
			continue
		}
		next := filepath.Join(cur, name)
		st, err := v.lstat(next)
		switch {
		case errors.Is(err, fs.ErrNotExist) && sticky:
			// Nothing to read yet, but anyone may put something there
			// before the open does.
			return &pathProblem{next, fmt.Sprintf("does not exist, and anyone may create it in %s", cur)}
		case err != nil:
			return nil
		}
		if sticky && st.Uid != 0 && st.Uid != v.euid {
			return &pathProblem{next, fmt.Sprintf("is owned by uid %d, not root, in %s, which anyone may write, where its owner may replace it", st.Uid, cur)}
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFLNK:
			target, err := v.readlink(next)
			if links++; err != nil || links > maxLinks {
				return nil
			}
			if filepath.IsAbs(target) {
				cur, sticky = "/", rootSticky
			}
			names = append(splitPath(target), names...)
			continue
		case unix.S_IFDIR:
		default:
			return nil // the file, or not a directory: the open says so
		}
		if len(names) == 0 && !dir {
			return nil // a directory as the file: ReadFile refuses it
		}
		if why, sticky = v.check(next, st); why != "" {
			return &pathProblem{next, why}
		}
		cur = next
	}
	return nil
}

// splitPath is the names of the components of p, without the empty ones
// and ".".
func splitPath(p string) []string {
	var names []string
	for _, n := range strings.Split(p, "/") {
		if n != "" && n != "." {
			names = append(names, n)
		}
	}
	return names
}

// untrustedPath is the error of ReadSiteFile for a site file at path
// whose way goes through the directory of problem pp.
func untrustedPath(path string, pp *pathProblem) error {
	return &FileError{Path: path, Reason: fmt.Sprintf("refusing it: %s on its path %s: whoever may change it may put any other file in the site file's place, "+
		"and root would run that as the site; make it root's and not writable by others (chown root: %s; chmod go-w %s)",
		printablePath(pp.dir), pp.why, printablePath(pp.dir), printablePath(pp.dir))}
}

// pathProblem is the pathProblem, seen through v, of the i-th file of the directory, p:
// the directory's own, checked once for all its files, or, for a file
// that is not a regular file in it (a symlink, say), that of its path.
func (h *dirHint) pathProblem(v fsView, i int, p string) *pathProblem {
	if h.dirProblem != nil || h.regular[i] {
		return h.dirProblem
	}
	return v.fileProblem(p)
}

// TrustedPath says why a site file at path could be replaced by a user
// other than root through a directory on its way (see fileProblem), as
// a *FileError; nil when it cannot. ReadSiteFile checks it.
func TrustedPath(path string) error {
	if pp := hostView.fileProblem(path); pp != nil {
		return untrustedPath(path, pp)
	}
	return nil
}
