package site

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// fsView is what sockDirProblem reads of the host: lstat and readlink,
// os's in production, a map in tests.
type fsView struct {
	lstat    func(string) (unix.Stat_t, error)
	readlink func(string) (string, error)
	// acl reads a path's own access ACL (nil: none has one).
	acl func(string) ([]byte, error)
	// euid may own the directories too, as root does: a user's own
	// check of their files (as for the site file itself, trusted).
	euid uint32
}

var hostView = fsView{
	euid: uint32(os.Geteuid()),
	lstat: func(p string) (unix.Stat_t, error) {
		var st unix.Stat_t
		err := unix.Lstat(p, &st)
		return st, err
	},
	readlink: os.Readlink,
	acl:      pathACL,
}

// memo is v with its answers kept, for one load of many files: the
// directories on the way to 10,000 site files linked elsewhere, and to
// their credentials, are mostly the same few, and each is looked at once
// (a load is over long before anyone could usefully change them).
func (v fsView) memo() fsView {
	type stat struct {
		st  unix.Stat_t
		err error
	}
	type text struct {
		s   string
		err error
	}
	type data struct {
		b   []byte
		err error
	}
	var stats, links, acls sync.Map
	m := fsView{euid: v.euid,
		lstat: func(p string) (unix.Stat_t, error) {
			if r, ok := stats.Load(p); ok {
				return r.(stat).st, r.(stat).err
			}
			st, err := v.lstat(p)
			stats.Store(p, stat{st, err})
			return st, err
		},
		readlink: func(p string) (string, error) {
			if r, ok := links.Load(p); ok {
				return r.(text).s, r.(text).err
			}
			s, err := v.readlink(p)
			links.Store(p, text{s, err})
			return s, err
		},
	}
	if v.acl != nil {
		m.acl = func(p string) ([]byte, error) {
			if r, ok := acls.Load(p); ok {
				return r.(data).b, r.(data).err
			}
			b, err := v.acl(p)
			acls.Store(p, data{b, err})
			return b, err
		}
	}
	return m
}

// sockDirProblem says why a user other than root could make systemd, which
// binds a unix listener's socket as root, reach another path than p: a directory on the way to it that such a user
// owns or may change could be replaced with a symlink to another site's
// socket directory; systemd would then bind over that site's socket when
// this one starts (it unlinks a path in use and binds again), taking its
// visitors.
// A world-writable sticky directory (/tmp) on the way counts only where
// what is below it is missing (anyone may create it) or not root's, and
// never as the socket's own directory (anyone may take the socket's name
// first). A directory that does not exist is created by systemd, as root,
// in a directory that must then be root's alone. Symlinks are followed
// (each one in a directory the walk has found safe is root's choice).
// "" when there is no such directory, or the path cannot be looked at.
func sockDirProblem(v fsView, p string) string {
	return v.walk(components(filepath.Dir(filepath.Clean(p))), 0)
}

// components are the names of absolute path p's components.
func components(p string) []string {
	if p = strings.Trim(filepath.Clean(p), "/"); p == "" {
		return nil
	}
	return strings.Split(p, "/")
}

// walk is sockDirProblem of the directory /dirs..., links symlinks into
// the walk.
func (v fsView) walk(dirs []string, links int) string {
	cur := "/"
	st, err := v.lstat(cur)
	if err != nil {
		return ""
	}
	why, sticky := v.check(cur, st)
	if why != "" {
		return "directory " + cur + " " + why
	}
	for i, name := range dirs {
		next := filepath.Join(cur, name)
		st, err := v.lstat(next)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			if sticky {
				return fmt.Sprintf("directory %s does not exist and anyone may create it in %s", next, cur)
			}
			return ""
		case err != nil:
			return ""
		}
		if sticky && st.Uid != 0 && st.Uid != v.euid {
			return fmt.Sprintf("%s is owned by uid %d, not root, in %s, where its owner may replace it", next, st.Uid, cur)
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFLNK:
			target, err := v.readlink(next)
			if err != nil || links >= 40 {
				return ""
			}
			if !filepath.IsAbs(target) {
				target = filepath.Join(cur, target)
			}
			// The target from the root, then what follows the link.
			return v.walk(append(components(target), dirs[i+1:]...), links+1)
		case unix.S_IFDIR:
		default:
			return "" // not a directory: binding fails, whoever asks
		}
		if why, sticky = v.check(next, st); why != "" {
			return "directory " + next + " " + why
		}
		cur = next
	}
	if sticky {
		return fmt.Sprintf("directory %s may be changed by users other than root (it is sticky, but anyone may take the socket's name in it first)", cur)
	}
	return ""
}

// check says why directory dir (its lstat st) is not root's alone (what
// follows its name in a sentence: "is owned by uid 1000, not root"), or
// whether it is a sticky directory others may write.
func (v fsView) check(dir string, st unix.Stat_t) (why string, sticky bool) {
	perm := st.Mode & 0o7777
	if st.Uid != 0 && st.Uid != v.euid {
		return fmt.Sprintf("is owned by uid %d, not root", st.Uid), false
	}
	others := perm&0o002 != 0 || perm&0o020 != 0 && st.Gid != 0
	if !others && v.acl != nil {
		who, err := aclWriterOf(perm, st.Gid, func() ([]byte, error) { return v.acl(dir) })
		if err != nil {
			return fmt.Sprintf("may be changed by users other than root: %v", err), false
		}
		if who != "" {
			if perm&unix.S_ISVTX != 0 {
				return "", true
			}
			return fmt.Sprintf("may be changed by %s through its access ACL (mode %04o)", who, perm), false
		}
	}
	if others {
		if perm&unix.S_ISVTX != 0 {
			return "", true
		}
		return fmt.Sprintf("may be changed by users other than root (mode %04o)", perm), false
	}
	return "", false
}

// sockDirErrors are the mistakes of s's unix listeners whose directories a
// user other than root may replace (sockDirProblem), and of its
// credentials whose paths such a user may redirect (credentialDirErrors).
func sockDirErrors(v fsView, s *Site) Errors {
	return append(listenerDirErrors(v, s), credentialDirErrors(v, s)...)
}

// listenerDirErrors are the mistakes of s's unix listeners in directories
// a user other than root may replace (sockDirProblem), or at a path where
// something else than a socket is (occupiedPath).
func listenerDirErrors(v fsView, s *Site) Errors {
	var errs Errors
	for _, l := range s.Listeners {
		if l.Kind != Unix {
			continue
		}
		if what := occupiedPath(v, l.Path); what != "" {
			errs = append(errs, &Error{File: s.File, Line: l.Line, Col: l.Col, Msg: fmt.Sprintf(
				"listener %s: %s, not a socket: systemd, which binds the socket as root, deletes whatever is at its path "+
					"when the bind finds it taken, and would delete it; put the socket where nothing is, "+
					"such as /run/%s/ (systemd creates it)", printable(l.Path), what, s.Name)})
		}
		if why := sockDirProblem(v, l.Path); why != "" {
			errs = append(errs, &Error{File: s.File, Line: l.Line, Col: l.Col, Msg: fmt.Sprintf(
				"listener %s: %s: that user could put a symlink in its place, and systemd, which binds the socket as root, "+
					"would then take over another site's socket; put the socket in a directory only root may change, "+
					"such as /run/%s/ (systemd creates it)", printablePath(l.Path), why, s.Name)})
		}
	}
	return errs
}

// occupiedPath says what is at unix listener path p that is not a socket
// ("/etc/passwd is a regular file"), "" when nothing is there, a socket
// is (this site's, bound by systemd, or one left behind), or p cannot be
// looked at. A symlink counts: systemd would delete the link.
func occupiedPath(v fsView, p string) string {
	st, err := v.lstat(p)
	if err != nil {
		return ""
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFSOCK:
		return ""
	case unix.S_IFREG:
		return printable(p) + " is a regular file"
	case unix.S_IFDIR:
		return printable(p) + " is a directory"
	case unix.S_IFLNK:
		return printable(p) + " is a symlink"
	}
	return printable(p) + " is a device, FIFO or other special file"
}

// credentialDirErrors are the mistakes of s's credentials whose paths go
// through a directory a user other than root may change (fileProblem):
// systemd reads a credential as root at each start (LoadCredential=),
// following symlinks, so that user (the site's own, whose app writes its
// directories, or a deployer) could put a symlink to any file of root's
// in its place, another site's credential or /etc/shadow, and the app
// would be handed it. Paths that are not absolute are not files.
func credentialDirErrors(v fsView, s *Site) Errors {
	var errs Errors
	for _, c := range s.Credentials {
		if !filepath.IsAbs(c.Path) {
			continue
		}
		if pp := v.fileProblem(c.Path); pp != nil {
			errs = append(errs, &Error{File: s.File, Line: c.Line, Col: c.Col, Msg: fmt.Sprintf(
				"credentials.%s: %s on the way to %s %s: that user could put a symlink to any file in its place, and systemd, "+
					"which reads the credential as root, would hand that file to the app; keep credentials where only root may change "+
					"the way to them, such as /etc/credstore/%s/, or make %s root's and not writable by others",
				c.Name, printablePath(pp.dir), printablePath(c.Path), pp.why, s.Name, printablePath(pp.dir))})
		}
	}
	return errs
}

// SocketDirMistakes are the mistakes of site s's unix listeners whose
// directories a user other than root may replace, and of its credentials
// whose paths such a user may redirect, as the loader finds them
// (LoadDir, LoadFiles): for a site read on its own with Parse. nil: none.
func SocketDirMistakes(s *Site) error {
	if errs := sockDirErrors(hostView, s); len(errs) > 0 {
		return errs
	}
	return nil
}
