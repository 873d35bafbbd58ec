package stateservice

import (
	"errors"
	"net"
	"os/user"
	"slices"
	"strconv"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/sitectl/sitectl/internal/site"
)

// Caller is who is on the other end of a connection, as the kernel says
// at connect time: SO_PEERCRED's uid, gid and pid, and SO_PEERGROUPS'
// supplementary groups. Nothing of it comes from the client's request.
type Caller struct {
	UID, GID, PID int
	Groups        []int
}

// inGroup tells whether the caller has gid as its group or one of its
// supplementary groups.
func (c Caller) inGroup(gid int) bool { return c.GID == gid || slices.Contains(c.Groups, gid) }

// ErrNotGranted is why a caller may not deploy a site.
var ErrNotGranted = errors.New("not granted")

// Lookup resolves a grant's name to a uid (user) or a gid (group); ok is
// false for a name the host does not know.
type Lookup func(d site.Deployer) (id int, ok bool)

// Allowed tells whether caller may deploy site s, and is the only place
// that decides it: root may deploy every site; anyone else only a site
// whose file names them in deployers, as user:NAME or through a group of
// theirs as group:NAME. A site without deployers is root's alone. A name
// the host does not know grants nobody.
func Allowed(s *site.Site, c Caller, lookup Lookup) bool {
	if c.UID == 0 {
		return true
	}
	for _, d := range s.Deployers {
		id, ok := lookup(d)
		switch {
		case !ok:
		case d.Kind == site.DeployerUser && id == c.UID:
			return true
		case d.Kind == site.DeployerGroup && c.inGroup(id):
			return true
		}
	}
	return false
}

// remembered is lookup that asks once per name: a listing asks about the
// deployers of every site, mostly the same few names, and SystemLookup
// reads the user and group databases whole for each (at 10,000 sites, a
// deployer's `sitectl list` made root read /etc/passwd 10,000 times).
func remembered(lookup Lookup) Lookup {
	type answer struct {
		id int
		ok bool
	}
	seen := map[site.Deployer]answer{}
	return func(d site.Deployer) (int, bool) {
		if a, ok := seen[d]; ok {
			return a.id, a.ok
		}
		id, ok := lookup(d)
		seen[d] = answer{id, ok}
		return id, ok
	}
}

// SystemLookup resolves names with the host's user and group databases
// (os/user: /etc/passwd and /etc/group, since sitectl is built without
// cgo), and takes numeric ids as they are.
func SystemLookup(d site.Deployer) (int, bool) {
	if id, err := strconv.Atoi(d.Name); err == nil {
		return id, true
	}
	var id string
	if d.Kind == site.DeployerUser {
		u, err := user.Lookup(d.Name)
		if err != nil {
			return 0, false
		}
		id = u.Uid
	} else {
		g, err := user.LookupGroup(d.Name)
		if err != nil {
			return 0, false
		}
		id = g.Gid
	}
	n, err := strconv.Atoi(id)
	return n, err == nil
}

// maxGroups bounds the supplementary groups read of a peer (Linux's
// NGROUPS_MAX is 65536).
const maxGroups = 65536

// PeerCaller reads the kernel's credentials of the peer of a unix socket
// connection.
func PeerCaller(c *net.UnixConn) (Caller, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return Caller{}, err
	}
	var caller Caller
	var opErr error
	err = raw.Control(func(fd uintptr) {
		cred, err := unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
		if err != nil {
			opErr = err
			return
		}
		caller = Caller{UID: int(cred.Uid), GID: int(cred.Gid), PID: int(cred.Pid)}
		caller.Groups, opErr = peerGroups(int(fd))
	})
	if err == nil {
		err = opErr
	}
	return caller, err
}

// peerGroups reads SO_PEERGROUPS, which golang.org/x/sys has no helper
// for: an array of gid_t, its size learnt from ERANGE.
func peerGroups(fd int) ([]int, error) {
	n := 64
	for {
		buf := make([]uint32, n)
		size := uint32(4 * n)
		_, _, errno := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_SOCKET, unix.SO_PEERGROUPS,
			uintptr(unsafe.Pointer(&buf[0])), uintptr(unsafe.Pointer(&size)), 0)
		switch {
		case errno == unix.ERANGE && int(size/4) > n && int(size/4) <= maxGroups:
			n = int(size / 4)
			continue
		case errno != 0:
			return nil, errno
		}
		groups := make([]int, size/4)
		for i := range groups {
			groups[i] = int(buf[i])
		}
		return groups, nil
	}
}
