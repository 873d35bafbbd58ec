package sitecheck

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/sitectl/sitectl/internal/procfs"
	"golang.org/x/sys/unix"
)

// RunAs is the user a start runs the app (and the commands without a
// "+" or "!" prefix) as, for the checks of what that user may run and
// enter.
type RunAs struct {
	// User is User=; Group is Group= ("": the user's own).
	User, Group string
	// Dynamic: systemd makes the user up at each start (DynamicUser=),
	// with a uid and group of their own from its dynamic range, which
	// no file outside that range belongs to; User and Group are not
	// looked up.
	Dynamic bool
	// SupplementaryGroups are SupplementaryGroups=.
	SupplementaryGroups []string
}

// Phrases of the problems of a user's access, for NoAccess.
const (
	cannotRun   = "cannot be run by "
	cannotEnter = "cannot be entered by "
	cannotRead  = "cannot be read by "
)

// NoAccess tells whether a problem Startable found is one of a user's
// access to a program, directory or file (which a chmod fixes, not the
// site file).
func NoAccess(problem string) bool {
	return strings.Contains(problem, cannotRun) || strings.Contains(problem, cannotEnter) || strings.Contains(problem, cannotRead)
}

// systemd's range of dynamic users and groups (DYNAMIC_UID_MIN and
// DYNAMIC_UID_MAX): a file owned by one of them may be the dynamic
// user's own (a RuntimeDirectory=, a StateDirectory=), which cannot be
// told before the start.
const (
	dynamicMin = 61184
	dynamicMax = 65519
)

// dynamicPrivate are the directories under which systemd keeps a
// dynamic user's StateDirectory=, CacheDirectory= and LogsDirectory=
// (mode 0700, root's): the unit's namespace makes them reachable for
// it, the host's modes do not tell.
var dynamicPrivate = []string{"/var/lib/private", "/var/cache/private", "/var/log/private"}

// KernelRefuses tells whether a problem Startable found is one of a
// program the kernel would not run whoever asked (its format, a noexec
// mount): the program file or the mount is to fix, or the site file to
// name another program.
func KernelRefuses(problem string) bool {
	return strings.Contains(problem, formatRefused) || strings.Contains(problem, mountRefused)
}

// identity is who a start runs as: the user's uid, and every group the
// kernel may count it in (Group= or the user's primary group, the groups
// the group file lists it in, SupplementaryGroups=). A group too many
// only grants more, so that a doubt never becomes a refusal.
type identity struct {
	name    string
	dynamic bool // name is not looked up: see RunAs.Dynamic
	uid     uint32
	gids    []uint32
	users   map[uint32]string // uid to name, for messages
	grps    map[uint32]string // gid to name, for messages
}

// identity resolves r from the host's account files, or says that it
// cannot be told surely: no account files (Accounts nil, or NSS reads
// other sources too), a user not in them or given by number, a group
// not in them, or root, whom the kernel lets search and run anything
// with an x bit.
func (h Host) identity(r *RunAs) (*identity, bool) {
	if r == nil || !r.Dynamic && (r.User == "" || numeric(r.User)) || h.Accounts == nil {
		return nil, false
	}
	passwd, group, err := h.Accounts()
	if err != nil {
		return nil, false
	}
	id := &identity{name: r.User, users: map[uint32]string{}, grps: map[uint32]string{}}
	found := false
	if r.Dynamic {
		// No file outside the dynamic range is the user's (denies), nor
		// any group's but SupplementaryGroups'.
		id.dynamic, id.uid, found = true, dynamicMax, true
		r = &RunAs{SupplementaryGroups: r.SupplementaryGroups}
	}
	for _, f := range entries(passwd, 4) {
		uid, err1 := strconv.ParseUint(f[2], 10, 32)
		gid, err2 := strconv.ParseUint(f[3], 10, 32)
		if err1 != nil || err2 != nil {
			continue
		}
		if _, ok := id.users[uint32(uid)]; !ok {
			id.users[uint32(uid)] = f[0]
		}
		if !found && f[0] == r.User {
			found = true
			id.uid = uint32(uid)
			id.gids = append(id.gids, uint32(gid))
		}
	}
	if !found || id.uid == 0 {
		return nil, false
	}
	byName := map[string]uint32{}
	for _, f := range entries(group, 4) {
		gid, err := strconv.ParseUint(f[2], 10, 32)
		if err != nil {
			continue
		}
		if _, ok := byName[f[0]]; !ok {
			byName[f[0]] = uint32(gid)
		}
		if _, ok := id.grps[uint32(gid)]; !ok {
			id.grps[uint32(gid)] = f[0]
		}
		if r.User != "" && slices.Contains(strings.Split(f[3], ","), r.User) {
			id.gids = append(id.gids, uint32(gid))
		}
	}
	for _, g := range append([]string{r.Group}, r.SupplementaryGroups...) {
		switch {
		case g == "":
		case numeric(g):
			n, err := strconv.ParseUint(g, 10, 32)
			if err != nil {
				return nil, false
			}
			id.gids = append(id.gids, uint32(n))
		default:
			gid, ok := byName[g]
			if !ok {
				return nil, false
			}
			id.gids = append(id.gids, gid)
		}
	}
	return id, true
}

// who names the user in a problem: user "shop", or the dynamic one.
func (id *identity) who() string {
	if id.dynamic {
		return "the site's dynamic user (DynamicUser=yes)"
	}
	return fmt.Sprintf("user %q", id.name)
}

// entries are the lines of a passwd or group file split at ":", those
// with at least n fields.
func entries(data []byte, n int) [][]string {
	var out [][]string
	for line := range bytes.SplitSeq(data, []byte("\n")) {
		if f := strings.Split(string(line), ":"); len(f) >= n && f[0] != "" && !strings.HasPrefix(f[0], "#") {
			out = append(out, f)
		}
	}
	return out
}

// blocked says why id surely cannot use path p with its x bit (run it as
// a program, or enter it as a directory): a directory on its way that it
// may not search, or p itself, as "DIR is mode 0700 owned by root:root",
// or "" when it can or that cannot be told.
func (h Host) blocked(id *identity, p string) string {
	return h.denied(id, p, 0o1)
}

// unreadable is blocked for reading p (its r bit): a maintenance page,
// or a static directory the server opens.
func (h Host) unreadable(id *identity, p string) string {
	return h.denied(id, p, 0o4)
}

// denied says why id surely cannot reach p, searching every directory on
// its way, and use p itself as want says (0o1: its x bit, 0o4: its r
// bit), or "".
//
// Symlinks: the kernel searches each directory it looks a name up in.
// For each leading part of p (/srv, /srv/shop, ... p) resolved with its
// symlinks, that directory or file and every directory above it are
// searched on the way, whatever the links in between: those are the
// ones checked. The directories a link's target names on the way to
// where it ends are not all among them, which misses a refusal, never
// makes one up.
func (h Host) denied(id *identity, p string, want fs.FileMode) string {
	if id == nil || h.ModeDecides == nil || h.EvalSymlinks == nil || !strings.HasPrefix(p, "/") {
		return ""
	}
	p = filepath.Clean(p)
	seen := map[string]bool{}
	var parts []string
	for dir := p; dir != "/"; dir = filepath.Dir(dir) {
		parts = append(parts, dir)
	}
	parts = append(parts, "/")
	slices.Reverse(parts)
	for _, part := range parts {
		real := part
		if part != "/" {
			r, err := h.EvalSymlinks(part)
			if err != nil {
				return ""
			}
			real = r
		}
		if id.dynamic && slices.ContainsFunc(dynamicPrivate, func(d string) bool { return real == d || strings.HasPrefix(real, d+"/") }) {
			return ""
		}
		for _, d := range lineage(real) {
			bit := fs.FileMode(0o1)
			if part == p && d == real {
				bit = want
			}
			if seen[d] && bit == 0o1 {
				continue
			}
			seen[d] = true
			if why := h.denies(id, d, bit); why != "" {
				return why
			}
		}
	}
	return ""
}

// lineage is "/" and each directory down to p, p included.
func lineage(p string) []string {
	out := []string{p}
	for p != "/" && p != "." {
		p = filepath.Dir(p)
		out = append(out, p)
	}
	slices.Reverse(out)
	return out
}

// denies says why id surely may not use d as bit says (0o1: search a
// directory or run a file, 0o4: read it), by the bit for the user, its
// group or others, or "": it may, or a failed stat, an ACL, a filesystem
// that decides for itself or (for a dynamic user) an owner in the
// dynamic range leaves it unknown.
func (h Host) denies(id *identity, d string, bit fs.FileMode) string {
	fi, err := h.Stat(d)
	if err != nil {
		return ""
	}
	uid, gid, ok := owner(fi)
	if !ok {
		return ""
	}
	if id.dynamic && (inDynamicRange(uid) || inDynamicRange(gid)) {
		return ""
	}
	perm := fi.Mode().Perm()
	switch {
	case !id.dynamic && uid == id.uid:
		bit <<= 6
	case slices.Contains(id.gids, gid):
		bit <<= 3
	}
	if perm&bit != 0 {
		return ""
	}
	if decides, err := h.ModeDecides(d); err != nil || !decides {
		return ""
	}
	return fmt.Sprintf("%s is mode %04o owned by %s:%s", d, perm, nameOf(id.users, uid), nameOf(id.grps, gid))
}

func inDynamicRange(id uint32) bool { return id >= dynamicMin && id <= dynamicMax }

func nameOf(names map[uint32]string, id uint32) string {
	if n, ok := names[id]; ok {
		return n
	}
	return strconv.FormatUint(uint64(id), 10)
}

// owner is the uid and gid of what fi describes, when its stat has them.
func owner(fi fs.FileInfo) (uid, gid uint32, ok bool) {
	switch st := fi.Sys().(type) {
	case *syscall.Stat_t:
		return st.Uid, st.Gid, true
	case *unix.Stat_t:
		return st.Uid, st.Gid, true
	}
	return 0, 0, false
}

// readAccounts reads /etc/passwd and /etc/group, if they are all NSS
// reads for users, groups and their members: files, and systemd's
// records when there are no userdb records (whose memberships initgroups
// would add).
func readAccounts() (passwd, group []byte, err error) {
	conf, err := procfs.ReadBounded("/etc/nsswitch.conf", accountsLimit)
	if err != nil {
		return nil, nil, err
	}
	if !localSources(conf, "passwd") || !localSources(conf, "group") {
		return nil, nil, errUnsure
	}
	if hasLine(conf, "initgroups") && !localSources(conf, "initgroups") {
		return nil, nil, errUnsure
	}
	for _, dir := range []string{"/etc/userdb", "/run/userdb", "/run/host/userdb", "/usr/lib/userdb", "/usr/local/lib/userdb"} {
		if ents, err := os.ReadDir(dir); len(ents) > 0 || err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, nil, errUnsure
		}
	}
	if passwd, err = procfs.ReadBounded("/etc/passwd", accountsLimit); err != nil {
		return nil, nil, err
	}
	if group, err = procfs.ReadBounded("/etc/group", accountsLimit); err != nil {
		return nil, nil, err
	}
	return passwd, group, nil
}

// hasLine tells whether nsswitch.conf has a line for db.
func hasLine(conf []byte, db string) bool {
	for line := range bytes.SplitSeq(conf, []byte("\n")) {
		line, _, _ = bytes.Cut(line, []byte("#"))
		if key, _, ok := bytes.Cut(line, []byte(":")); ok && string(bytes.TrimSpace(key)) == db {
			return true
		}
	}
	return false
}

// modeFilesystems are the filesystems whose permissions the kernel checks
// from the owner, group and mode (and a POSIX ACL): not NFS, CIFS or
// FUSE, whose servers decide for themselves.
var modeFilesystems = []int64{unix.EXT4_SUPER_MAGIC, unix.XFS_SUPER_MAGIC, unix.BTRFS_SUPER_MAGIC, unix.TMPFS_MAGIC,
	unix.OVERLAYFS_SUPER_MAGIC, unix.F2FS_SUPER_MAGIC, unix.RAMFS_MAGIC, unix.SQUASHFS_MAGIC}

// modeDecides tells whether p's owner, group and mode alone decide who
// may use it: it is on one of modeFilesystems, without a POSIX ACL. p
// has its symlinks resolved, and is looked at only so (a link put in its
// way meanwhile is an error).
func modeDecides(p string) (bool, error) {
	fd, err := unix.Openat2(unix.AT_FDCWD, p, &unix.OpenHow{Flags: unix.O_PATH | unix.O_CLOEXEC, Resolve: unix.RESOLVE_NO_SYMLINKS})
	if err != nil {
		return false, &fs.PathError{Op: "open", Path: p, Err: err}
	}
	defer unix.Close(fd)
	var sfs unix.Statfs_t
	if err := unix.Fstatfs(fd, &sfs); err != nil {
		return false, &fs.PathError{Op: "statfs", Path: p, Err: err}
	}
	if !slices.Contains(modeFilesystems, int64(sfs.Type)) {
		return false, nil
	}
	_, err = unix.Getxattr(fmt.Sprintf("/proc/self/fd/%d", fd), "system.posix_acl_access", nil)
	switch {
	case err == nil: // it has one
		return false, nil
	case errors.Is(err, unix.ENODATA), errors.Is(err, unix.EOPNOTSUPP):
		return true, nil
	}
	return false, &fs.PathError{Op: "getxattr", Path: p, Err: err}
}
