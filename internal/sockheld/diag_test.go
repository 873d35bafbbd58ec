package sockheld

import (
	"encoding/binary"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// socketInodeOf is the inode of a listener's socket, as /proc/self/fd
// names it.
func socketInodeOf(t *testing.T, l net.Listener) uint64 {
	t.Helper()
	f, err := l.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// The kernel's answer names the listeners of the port asked for, IPv4 and
// IPv6, and neither a connection on that port nor a listener on another;
// /proc/self/net/tcp and tcp6 say the same.
func TestDiagListenersAreTheTablesListeners(t *testing.T) {
	l4, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l4.Close()
	port := l4.Addr().(*net.TCPAddr).Port
	want := []uint64{socketInodeOf(t, l4)}
	if l6, err := net.Listen("tcp6", "[::1]:"+strconv.Itoa(port)); err == nil {
		defer l6.Close()
		want = append(want, socketInodeOf(t, l6))
	}
	other, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	c, err := net.Dial("tcp4", l4.Addr().String()) // a connection on the port is not a listener
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ports := map[int]bool{port: true}
	got := map[int][]uint64{}
	if err := diagListeners(ports, got); err != nil {
		t.Fatal(err)
	}
	slices.Sort(want)
	slices.Sort(got[port])
	if !slices.Equal(got[port], want) || len(got) != 1 {
		t.Errorf("sock_diag: %v, want port %d: %v", got, port, want)
	}
	fromTables := map[int][]uint64{}
	for _, tab := range []string{"tcp", "tcp6"} {
		if err := readTable(filepath.Join("/proc/self/net", tab), func(f [][]byte) bool { return parseTCP(f, ports, fromTables) }); err != nil {
			t.Fatal(err)
		}
	}
	slices.Sort(fromTables[port])
	if !slices.Equal(fromTables[port], got[port]) {
		t.Errorf("sock_diag says %v, /proc/self/net says %v", got[port], fromTables[port])
	}
}

func TestSameNetns(t *testing.T) {
	proc := t.TempDir()
	for _, pid := range []string{"self", "1"} {
		if err := os.MkdirAll(filepath.Join(proc, pid, "ns"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	link := func(pid, target string) {
		p := filepath.Join(proc, pid, "ns", "net")
		os.Remove(p)
		if err := os.Symlink(target, p); err != nil {
			t.Fatal(err)
		}
	}
	if sameNetns(proc) {
		t.Error("no namespace links: same namespace")
	}
	link("self", "net:[4026531840]")
	link("1", "net:[4026531840]")
	if !sameNetns(proc) {
		t.Error("equal links: not the same namespace")
	}
	link("1", "net:[4026532000]")
	if sameNetns(proc) {
		t.Error("different links: same namespace")
	}
}

// nlmsg is one netlink message of type typ and sequence seq.
func nlmsg(typ uint16, seq uint32, payload []byte) []byte {
	b := make([]byte, 16, 16+len(payload)+3)
	binary.NativeEndian.PutUint32(b[0:], uint32(16+len(payload)))
	binary.NativeEndian.PutUint16(b[4:], typ)
	binary.NativeEndian.PutUint32(b[8:], seq)
	b = append(b, payload...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

func diagMsg(state uint8, port uint16, inode uint32) []byte {
	m := make([]byte, diagMsgLen)
	m[0], m[1] = unix.AF_INET, state
	binary.BigEndian.PutUint16(m[4:], port)
	binary.NativeEndian.PutUint32(m[68:], inode)
	return m
}

func TestParseDiag(t *testing.T) {
	var found []uint64
	collect := func(port uint16, i uint64) {
		if port == 80 {
			found = append(found, i)
		}
	}
	b := slices.Concat(
		nlmsg(unix.SOCK_DIAG_BY_FAMILY, 7, diagMsg(tcpListenState, 80, 111)),
		nlmsg(unix.SOCK_DIAG_BY_FAMILY, 6, diagMsg(tcpListenState, 80, 999)), // another request's
		nlmsg(unix.SOCK_DIAG_BY_FAMILY, 7, diagMsg(1, 80, 222)),              // established
		nlmsg(unix.SOCK_DIAG_BY_FAMILY, 7, diagMsg(tcpListenState, 81, 333)), // another port
		nlmsg(unix.SOCK_DIAG_BY_FAMILY, 7, diagMsg(tcpListenState, 80, 444)),
	)
	if done, err := parseDiag(b, 7, collect); done || err != nil || !slices.Equal(found, []uint64{111, 444}) {
		t.Errorf("listeners: done %v, %v, found %v", done, err, found)
	}
	if done, err := parseDiag(nlmsg(unix.NLMSG_DONE, 7, make([]byte, 4)), 7, collect); !done || err != nil {
		t.Errorf("done message: done %v, %v", done, err)
	}
	errno := make([]byte, 4)
	e := -int32(unix.EPERM)
	binary.NativeEndian.PutUint32(errno, uint32(e))
	if _, err := parseDiag(nlmsg(unix.NLMSG_ERROR, 7, errno), 7, collect); !errors.Is(err, unix.EPERM) {
		t.Errorf("error message: %v", err)
	}
	if _, err := parseDiag(nlmsg(unix.SOCK_DIAG_BY_FAMILY, 7, make([]byte, 10)), 7, collect); err == nil {
		t.Error("a short answer was read")
	}
	bad := nlmsg(unix.SOCK_DIAG_BY_FAMILY, 7, diagMsg(tcpListenState, 80, 1))
	binary.NativeEndian.PutUint32(bad, 4096)
	if _, err := parseDiag(bad, 7, collect); err == nil || !strings.Contains(err.Error(), "malformed") {
		t.Errorf("a length past the datagram: %v", err)
	}
}

// With more ports than diagPortsAsked the kernel lists every listener of
// the host at once: the listeners of the ports asked for are the same as
// the tables', and no other port's are recorded.
func TestDiagListenersOfManyPorts(t *testing.T) {
	ports := map[int]bool{}
	want := map[int][]uint64{}
	for range diagPortsAsked + 4 {
		l, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		port := l.Addr().(*net.TCPAddr).Port
		ports[port] = true
		want[port] = []uint64{socketInodeOf(t, l)}
	}
	other, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	got := map[int][]uint64{}
	if err := diagListeners(ports, got); err != nil {
		t.Fatal(err)
	}
	fromTables := map[int][]uint64{}
	for _, tab := range []string{"tcp", "tcp6"} {
		if err := readTable(filepath.Join("/proc/self/net", tab), func(f [][]byte) bool { return parseTCP(f, ports, fromTables) }); err != nil {
			t.Fatal(err)
		}
	}
	for port := range ports {
		slices.Sort(got[port])
		slices.Sort(fromTables[port])
		if !slices.Equal(got[port], want[port]) || !slices.Equal(fromTables[port], want[port]) {
			t.Errorf("port %d: sock_diag %v, tables %v, want %v", port, got[port], fromTables[port], want[port])
		}
	}
	if len(got) != len(ports) {
		t.Errorf("sock_diag recorded %d ports, want the %d asked for", len(got), len(ports))
	}
}
