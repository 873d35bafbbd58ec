package site

import (
	"encoding/binary"
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// A POSIX access ACL can let users write a file or directory whose mode
// bits say only root may: `setfacl -m u:dana:rwx /srv/alpha` leaves it
// root:root, mode 0775, where the group's bits are the ACL's mask and
// nobody of group root is dana. The checks that a site file, or a
// directory on the way to a unix listener, is root's alone therefore read
// the ACL as well, when the mode bits leave it room: a mask without write
// lets no entry of the ACL write.

// aclXattr is where the kernel keeps a file's access ACL (linux/xattr.h),
// in the format of linux/posix_acl_xattr.h.
const aclXattr = "system.posix_acl_access"

// The tags and the write bit of an ACL entry (linux/posix_acl.h).
const (
	aclVersion  = 2
	aclUser     = 0x02
	aclGroupObj = 0x04
	aclGroup    = 0x08
	aclMask     = 0x10
	aclWrite    = 0x02
	aclEntryLen = 8
	// maxACL bounds the ACL read: 8 KiB is over a thousand entries,
	// more than ext4 or XFS store for one file.
	maxACL = 8 << 10
)

// aclWriter says who other than root the access ACL acl (its xattr's
// bytes) lets write a file of group gid: "user 1000", "group 27", or ""
// for nobody. A named entry writes when it and the mask both allow it; the
// entries of root (uid and gid 0) and of the owning group when that is
// root's are root's own. An ACL it cannot read is an error: the caller
// then cannot tell, and refuses.
func aclWriter(acl []byte, gid uint32) (string, error) {
	if len(acl) < 4 || binary.LittleEndian.Uint32(acl) != aclVersion || (len(acl)-4)%aclEntryLen != 0 {
		return "", errors.New("its access ACL is not in a format sitectl reads")
	}
	entries := acl[4:]
	mask := uint16(0o7)
	for e := entries; len(e) > 0; e = e[aclEntryLen:] {
		if binary.LittleEndian.Uint16(e) == aclMask {
			mask = binary.LittleEndian.Uint16(e[2:])
		}
	}
	for e := entries; len(e) > 0; e = e[aclEntryLen:] {
		tag, perm, id := binary.LittleEndian.Uint16(e), binary.LittleEndian.Uint16(e[2:]), binary.LittleEndian.Uint32(e[4:])
		if perm&mask&aclWrite == 0 {
			continue
		}
		switch {
		case tag == aclUser && id != 0:
			return fmt.Sprintf("user %d", id), nil
		case tag == aclGroup && id != 0:
			return fmt.Sprintf("group %d", id), nil
		case tag == aclGroupObj && gid != 0:
			return fmt.Sprintf("group %d", gid), nil
		}
	}
	return "", nil
}

// mayHaveACLWriter tells whether the mode bits (perm) of a file of group
// gid leave an ACL room to let someone but root write it: its group bits
// (the ACL's mask, when it has one) allow writing and the group is root's.
// Otherwise the mode bits already say it, or nobody can.
func mayHaveACLWriter(perm, gid uint32) bool {
	return perm&0o020 != 0 && gid == 0
}

// readACL reads an access ACL with get (fgetxattr or lgetxattr into the
// buffer): nil when the file has none or its file system keeps none.
func readACL(get func([]byte) (int, error)) ([]byte, error) {
	buf := make([]byte, maxACL)
	for {
		n, err := get(buf)
		switch {
		case err == unix.EINTR:
			continue
		case errors.Is(err, unix.ENODATA), errors.Is(err, unix.EOPNOTSUPP):
			return nil, nil
		case errors.Is(err, unix.ERANGE):
			return nil, fmt.Errorf("its access ACL is larger than %d bytes", maxACL)
		case err != nil:
			return nil, fmt.Errorf("cannot read its access ACL: %w", err)
		}
		return buf[:n], nil
	}
}

// fileACL reads the access ACL of the file open as fd.
func fileACL(fd int) ([]byte, error) {
	return readACL(func(b []byte) (int, error) { return unix.Fgetxattr(fd, aclXattr, b) })
}

// pathACL reads the access ACL of path itself, not of a symlink's target.
func pathACL(path string) ([]byte, error) {
	return readACL(func(b []byte) (int, error) { return unix.Lgetxattr(path, aclXattr, b) })
}

// aclWriterOf is aclWriter of the ACL that read returns, for a file whose
// mode bits leave an ACL room (mayHaveACLWriter); "" without asking
// otherwise.
func aclWriterOf(perm, gid uint32, read func() ([]byte, error)) (string, error) {
	if !mayHaveACLWriter(perm, gid) || read == nil {
		return "", nil
	}
	acl, err := read()
	if err != nil || acl == nil {
		return "", err
	}
	return aclWriter(acl, gid)
}
