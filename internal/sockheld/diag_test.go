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
	if err := diagListeners(diagOwn, ports, got); err != nil {
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
	collect := tcpAnswer(func(port uint16, i uint64) {
		if port == 80 {
			found = append(found, i)
		}
	})
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
	if err := diagListeners(diagOwn, ports, got); err != nil {
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

// unixDiagMsg is an answer to unixDiagRequest: a socket in state, with
// inode, named name (as the kernel gives it, NUL and all; nil: no name
// attribute).
func unixDiagMsg(state uint8, inode uint32, name []byte) []byte {
	m := make([]byte, unixDiagMsgLen)
	m[0], m[1], m[2] = unix.AF_UNIX, unix.SOCK_STREAM, state
	binary.NativeEndian.PutUint32(m[4:], inode)
	attr := func(typ uint16, data []byte) {
		a := make([]byte, 4, 4+len(data)+3)
		binary.NativeEndian.PutUint16(a[0:], uint16(4+len(data)))
		binary.NativeEndian.PutUint16(a[2:], typ)
		a = append(a, data...)
		for len(a)%4 != 0 {
			a = append(a, 0)
		}
		m = append(m, a...)
	}
	attr(7, []byte{1, 2, 3, 4, 5}) // an attribute not asked for, as a newer kernel might add
	if name != nil {
		attr(unixDiagName, name)
	}
	return m
}

func TestParseUnixDiag(t *testing.T) {
	for _, c := range []struct {
		msg       []byte
		path      string
		inode     uint64
		listening bool
	}{
		{unixDiagMsg(tcpListenState, 41, []byte("/run/karl/app.sock\x00")), "/run/karl/app.sock", 41, true},
		{unixDiagMsg(tcpListenState, 42, []byte("/run/karl/app.sock")), "/run/karl/app.sock", 42, true},
		{unixDiagMsg(1, 43, []byte("/run/karl/app.sock\x00")), "/run/karl/app.sock", 43, false},
		// An abstract name is no path, whatever it holds.
		{unixDiagMsg(tcpListenState, 44, []byte("\x00x\n0000000000000000: 00000002 00000000 00010000 0001 01 4242 /run/karl/app.sock")), "", 44, true},
		{unixDiagMsg(tcpListenState, 45, nil), "", 45, true},
	} {
		path, inode, listening, err := parseUnixDiag(c.msg)
		if err != nil || path != c.path || inode != c.inode || listening != c.listening {
			t.Errorf("inode %d: %q %d %v %v; want %q %d %v", c.inode, path, inode, listening, err, c.path, c.inode, c.listening)
		}
	}
	if _, _, _, err := parseUnixDiag(make([]byte, 10)); err == nil {
		t.Error("a short answer was read")
	}
	bad := unixDiagMsg(tcpListenState, 46, []byte("/run/x\x00"))
	binary.NativeEndian.PutUint16(bad[unixDiagMsgLen:], 200)
	if _, _, _, err := parseUnixDiag(bad); err == nil {
		t.Error("an attribute longer than the answer was read")
	}
}

// On this host's kernel, in this process's network namespace: a unix
// socket listening on a path is found by its path and inode; one bound
// there but not listening is not; and a process that binds an abstract
// socket whose name holds a newline and a whole forged row of
// /proc/net/unix naming another path (any site's app can) makes nothing
// listen there. The table, read where the kernel cannot be asked,
// believes the row: that is why it is read only there.
func TestUnixListenersFromTheKernel(t *testing.T) {
	dir := t.TempDir()
	listening, bound := filepath.Join(dir, "listening.sock"), filepath.Join(dir, "bound.sock")
	// Nothing is bound there; short, so that the forged row fits in a
	// socket's name (107 bytes).
	victim := "/run/x/" + strconv.Itoa(os.Getpid())
	sock := func(name string, listen bool) uint64 {
		fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { unix.Close(fd) })
		if err := unix.Bind(fd, &unix.SockaddrUnix{Name: name}); err != nil {
			t.Fatal(err)
		}
		if listen {
			if err := unix.Listen(fd, 1); err != nil {
				t.Fatal(err)
			}
		}
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			t.Fatal(err)
		}
		return st.Ino
	}
	ino := sock(listening, true)
	sock(bound, false)
	sock("\x00"+strconv.Itoa(os.Getpid())+"\n0000000000000000: 00000002 00000000 00010000 0001 01 4242 "+victim, true)

	paths := map[string]bool{listening: true, bound: true, victim: true}
	got := map[string][]uint64{}
	if err := diagUnixListeners(diagOwn, paths, got); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || !slices.Equal(got[listening], []uint64{ino}) {
		t.Errorf("the kernel's listeners: %v; want only %s: [%d]", got, listening, ino)
	}
	fromKernel, err := unixListeners("/proc/self/net/unix", diagOwn, paths)
	if err != nil || len(fromKernel[victim]) != 0 {
		t.Errorf("unixListeners in PID 1's namespace: %v, %v", fromKernel, err)
	}
	fromTable, err := unixListeners("/proc/self/net/unix", diagNone, paths)
	if err != nil || !slices.Equal(fromTable[victim], []uint64{4242}) || !slices.Equal(fromTable[listening], []uint64{ino}) {
		t.Errorf("the table (the forged row believed, as the state service still does): %v, %v", fromTable, err)
	}
}

// A service with a network namespace of its own asks the host's kernel
// through the sock_diag socket systemd passed it: UseHostKernel takes
// only such a socket, and then the kernel is asked through it (here a
// socket of this process's namespace stands in for the host's), also
// after an answer left unread in it, as by a predecessor that gave up.
func TestHostKernel(t *testing.T) {
	t.Cleanup(func() {
		hostDiag.Lock()
		hostDiag.set = false
		hostDiag.Unlock()
	})
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fd), "unix")
	defer f.Close()
	if err := UseHostKernel(f); err == nil || hostKernelSet() {
		t.Errorf("a unix socket was taken for the kernel's: %v", err)
	}
	if _, err := openDiag(diagHost); err == nil {
		t.Error("the host's kernel was asked without its socket")
	}

	nl, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		t.Fatal(err)
	}
	kernel := os.NewFile(uintptr(nl), "sock_diag")
	defer kernel.Close()
	if err := UseHostKernel(kernel); err != nil || !hostKernelSet() {
		t.Fatalf("a sock_diag socket: %v", err)
	}
	if got := pid1Diag("/proc"); got != diagOwn && got != diagHost {
		t.Errorf("PID 1's namespace with the host's kernel socket: %v", got)
	}
	if got := pid1Diag(t.TempDir()); got != diagNone {
		t.Errorf("another proc: %v", got)
	}

	path := filepath.Join(t.TempDir(), "l.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	// An answer nobody read waits in the shared socket.
	if err := unix.Sendto(nl, unixDiagRequest(1), 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		got := map[string][]uint64{}
		if err := diagUnixListeners(diagHost, map[string]bool{path: true}, got); err != nil || len(got[path]) != 1 {
			t.Errorf("through the host's kernel socket: %v, %v", got, err)
		}
	}
}
