package site

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

type aclEntry struct {
	tag, perm uint16
	id        uint32
}

// encodeACL is the xattr system.posix_acl_access of entries.
func encodeACL(entries ...aclEntry) []byte {
	b := binary.LittleEndian.AppendUint32(nil, aclVersion)
	for _, e := range entries {
		b = binary.LittleEndian.AppendUint16(b, e.tag)
		b = binary.LittleEndian.AppendUint16(b, e.perm)
		b = binary.LittleEndian.AppendUint32(b, e.id)
	}
	return b
}

const (
	aclUserObj = 0x01
	aclOther   = 0x20
	noID       = ^uint32(0)
)

// aclOf is an ACL user::rwx group::GROUP mask::MASK other::r-x with the
// named entries between.
func aclOf(group, mask uint16, named ...aclEntry) []byte {
	e := append([]aclEntry{{aclUserObj, 7, noID}}, named...)
	e = append(e, aclEntry{aclGroupObj, group, noID})
	if mask != 0xffff {
		e = append(e, aclEntry{aclMask, mask, noID})
	}
	return encodeACL(append(e, aclEntry{aclOther, 5, noID})...)
}

func TestACLWriter(t *testing.T) {
	for _, c := range []struct {
		name string
		acl  []byte
		gid  uint32
		want string
	}{
		{"a named user with write", aclOf(5, 7, aclEntry{aclUser, 7, 1000}), 0, "user 1000"},
		{"a named group with write", aclOf(5, 7, aclEntry{aclGroup, 6, 27}), 0, "group 27"},
		{"the mask takes write away", aclOf(5, 5, aclEntry{aclUser, 7, 1000}), 0, ""},
		{"a named user who only reads", aclOf(5, 7, aclEntry{aclUser, 5, 1000}), 0, ""},
		{"root named", aclOf(5, 7, aclEntry{aclUser, 7, 0}, aclEntry{aclGroup, 7, 0}), 0, ""},
		{"root's group writes", aclOf(7, 7), 0, ""},
		{"another owning group writes", aclOf(7, 7), 50, "group 50"},
		{"no mask, no named entries", aclOf(5, 0xffff), 0, ""},
	} {
		got, err := aclWriter(c.acl, c.gid)
		if err != nil || got != c.want {
			t.Errorf("%s: %q, %v; want %q", c.name, got, err, c.want)
		}
	}
	for _, bad := range [][]byte{nil, {2, 0, 0}, {1, 0, 0, 0}, append(aclOf(7, 7), 1)} {
		if _, err := aclWriter(bad, 0); err == nil {
			t.Errorf("ACL % x read without an error", bad)
		}
	}
}

// A site file root owns, mode 0664 of group root, that a user may write
// through its ACL (setfacl -m u:1000:rw) is not root's alone; one whose
// ACL cannot be read is not either. Without write in the group's bits no
// ACL is read: a mask without write lets no entry write.
func TestSiteFileWritableThroughAnACL(t *testing.T) {
	st := unix.Stat_t{Uid: 0, Gid: 0, Mode: unix.S_IFREG | 0o664}
	named := func() ([]byte, error) { return aclOf(4, 6, aclEntry{aclUser, 6, 1000}), nil }
	if err := trusted("/etc/sitectl/sites/karl.toml", &st, named); err == nil || !strings.Contains(err.Error(), "may be changed by user 1000 through its access ACL") {
		t.Errorf("a file user 1000 may write through its ACL: %v", err)
	}
	broken := func() ([]byte, error) { return nil, errors.New("cannot read its access ACL: EIO") }
	if err := trusted("/etc/sitectl/sites/karl.toml", &st, broken); err == nil || !strings.Contains(err.Error(), "EIO") {
		t.Errorf("a file whose ACL cannot be read: %v", err)
	}
	asked := false
	st.Mode = unix.S_IFREG | 0o644
	if err := trusted("/etc/sitectl/sites/karl.toml", &st, func() ([]byte, error) { asked = true; return named() }); err != nil || asked {
		t.Errorf("mode 0644: %v, ACL read %v", err, asked)
	}
}

// setACL gives path the access ACL acl, or skips the test where the file
// system keeps none.
func setACL(t *testing.T, path string, acl []byte) {
	t.Helper()
	if err := unix.Setxattr(path, aclXattr, acl, 0); err != nil {
		t.Skipf("no POSIX ACLs on %s: %v", path, err)
	}
}

// On the real file system: a site file and a directory on the way to a
// unix listener that root owns, but that uid 12345 may write through an
// ACL as setfacl sets it, are refused; without the ACL they are fine.
func TestACLOnTheFileSystem(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the files must be root's")
	}
	root := t.TempDir()
	if err := os.Chmod(root, 0o755); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(root, "karl.toml")
	if err := os.WriteFile(p, []byte(validSite), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadSiteFile(p); err != nil {
		t.Fatalf("a site file without an ACL: %v", err)
	}
	dana := aclOf(4, 6, aclEntry{aclUser, 6, 12345})
	setACL(t, p, dana)
	if _, err := ReadSiteFile(p); err == nil || !strings.Contains(err.Error(), "user 12345 through its access ACL") {
		t.Errorf("a site file uid 12345 may write through its ACL: %v", err)
	}
	res, err := LoadDir(root, nil)
	if err != nil || len(res.Sites) != 0 || len(res.Errors) != 1 || !strings.Contains(res.Errors[0].Error(), "setfacl -b") {
		t.Errorf("LoadDir: %v, sites %v, errors %v", err, res.Sites, res.Errors)
	}

	srv := filepath.Join(root, "srv", "alpha")
	if err := os.MkdirAll(filepath.Join(srv, "run"), 0o755); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(srv, "run", "app.sock")
	if why := sockDirProblem(hostView, sock); why != "" {
		t.Fatalf("socket directories root's alone: %s", why)
	}
	setACL(t, srv, aclOf(5, 7, aclEntry{aclUser, 7, 12345}))
	if why := sockDirProblem(hostView, sock); !strings.Contains(why, "directory "+srv+" may be changed by user 12345 through its access ACL") {
		t.Errorf("a socket directory under %s, which uid 12345 may change through its ACL: %q", srv, why)
	}
	// The same ACL with the sticky bit: others may take the name first.
	if err := os.Chmod(srv, 0o1775); err != nil {
		t.Fatal(err)
	}
	setACL(t, srv, aclOf(5, 7, aclEntry{aclUser, 7, 12345}))
	if why := sockDirProblem(hostView, sock); why == "" {
		t.Errorf("a sticky socket directory uid 12345 may write through its ACL: nothing found")
	}
}
