package reuseport

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// families are the kinds of group tested: IPv4, IPv6, and a dual-stack
// [::] group that IPv4 clients reach too.
var families = []struct {
	name, network, host string
	dial                []string // hosts clients connect to
}{
	{"ipv4", "tcp4", "127.0.0.1", []string{"127.0.0.1"}},
	{"ipv6", "tcp6", "::1", []string{"::1"}},
	{"dualstack", "tcp", "::", []string{"127.0.0.1", "::1"}},
}

func reusePort(_, _ string, c syscall.RawConn) error {
	var err error
	c.Control(func(fd uintptr) { err = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1) })
	return err
}

// group opens n listening sockets with SO_REUSEPORT on one address, in
// order; the kernel's group has them in that order.
func group(t *testing.T, network, host string, n int) []*net.TCPListener {
	t.Helper()
	// Plain TCP, as systemd creates: Go listens with MPTCP by default,
	// and the kernel refuses a reuseport program on an MPTCP socket.
	lc := net.ListenConfig{Control: reusePort}
	lc.SetMultipathTCP(false)
	var lns []*net.TCPListener
	addr := net.JoinHostPort(host, "0")
	for range n {
		ln, err := lc.Listen(context.Background(), network, addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		lns = append(lns, ln.(*net.TCPListener))
		addr = net.JoinHostPort(host, fmt.Sprint(ln.Addr().(*net.TCPAddr).Port))
	}
	return lns
}

func port(ln *net.TCPListener) int { return ln.Addr().(*net.TCPAddr).Port }

func conns(lns []*net.TCPListener) []syscall.Conn {
	var c []syscall.Conn
	for _, ln := range lns {
		c = append(c, ln)
	}
	return c
}

// queued is the length of a listener's accept queue (TCP_INFO).
func queued(t *testing.T, ln *net.TCPListener) int {
	t.Helper()
	var n int
	err := control(ln, func(fd int) error {
		ti, err := unix.GetsockoptTCPInfo(fd, unix.IPPROTO_TCP, unix.TCP_INFO)
		if err == nil {
			n = int(ti.Unacked) // a listener's accept queue
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// dialN makes n connections to host:port and keeps them open until the
// test ends.
func dialN(t *testing.T, host string, p, n int) {
	t.Helper()
	for range n {
		c, err := net.Dial("tcp", net.JoinHostPort(host, fmt.Sprint(p)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
	}
}

// distribution waits until total connections are queued on the members
// (the server side of a loopback handshake may finish just after the
// client's), then returns how many each has.
func distribution(t *testing.T, lns []*net.TCPListener, total int) []int {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var got []int
		sum := 0
		for _, ln := range lns {
			n := queued(t, ln)
			got = append(got, n)
			sum += n
		}
		if sum >= total || time.Now().After(deadline) {
			return got
		}
		time.Sleep(time.Millisecond)
	}
}

func TestGroupsFindMembersInOrder(t *testing.T) {
	a := group(t, "tcp4", "127.0.0.1", 3)
	single := group(t, "tcp4", "127.0.0.1", 1)
	plain, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	u, err := net.Listen("unix", filepath.Join(t.TempDir(), "s.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	v6 := group(t, "tcp6", "::1", 2)

	in := []syscall.Conn{a[0], u.(*net.UnixListener), single[0], a[1], v6[0], plain.(*net.TCPListener), a[2], v6[1]}
	gs, err := Groups(in)
	if err != nil {
		t.Fatal(err)
	}
	if len(gs) != 2 {
		t.Fatalf("want 2 groups, got %+v", gs)
	}
	if got := fmt.Sprint(gs[0].Addr, gs[0].Members); got != fmt.Sprintf("127.0.0.1:%d [0 3 6]", port(a[0])) {
		t.Errorf("first group: %s", got)
	}
	if got := fmt.Sprint(gs[1].Addr, gs[1].Members, gs[1].V6Only); got != fmt.Sprintf("[::1]:%d [4 7] true", port(v6[0])) {
		t.Errorf("second group: %s", got)
	}
}

// Steering sends every new connection to one member, whichever member the
// program was attached through, for IPv4, IPv6 and dual-stack groups.
func TestSteerSendsEveryNewConnectionToOneMember(t *testing.T) {
	for _, f := range families {
		t.Run(f.name, func(t *testing.T) {
			lns := group(t, f.network, f.host, 3)
			total := 0
			for i := range lns {
				before := distribution(t, lns, total)
				if err := Steer(lns[(i+1)%3], i); err != nil {
					t.Fatal(err)
				}
				for _, h := range f.dial {
					dialN(t, h, port(lns[0]), 10)
					total += 10
				}
				after := distribution(t, lns, total)
				for j := range lns {
					want := 0
					if j == i {
						want = 10 * len(f.dial)
					}
					if after[j]-before[j] != want {
						t.Fatalf("steered to %d: member %d got %d connections, want %d (%v -> %v)", i, j, after[j]-before[j], want, before, after)
					}
				}
			}
		})
	}
}

// Without a program, or with an index beyond the group, the kernel spreads
// new connections by hash.
func TestDetachAndOutOfRangeSpreadByHash(t *testing.T) {
	lns := group(t, "tcp4", "127.0.0.1", 2)
	if err := Steer(lns[0], 5); err != nil {
		t.Fatal(err)
	}
	dialN(t, "127.0.0.1", port(lns[0]), 40)
	before := distribution(t, lns, 40)
	if before[0] == 0 || before[1] == 0 {
		t.Fatalf("index 5 of 2: %v, want both members used", before)
	}
	if err := Steer(lns[0], 1); err != nil {
		t.Fatal(err)
	}
	if err := Detach(lns[1]); err != nil {
		t.Fatal(err)
	}
	if err := Detach(lns[1]); err != nil {
		t.Fatalf("detaching twice: %v", err)
	}
	dialN(t, "127.0.0.1", port(lns[0]), 40)
	// 40 connections all on one member by chance: 1 in 2^39.
	if after := distribution(t, lns, 80); after[0] == before[0] || after[1] == before[1] {
		t.Fatalf("after detaching: %v -> %v, want both members used", before, after)
	}
	if err := Steer(lns[0], -1); err == nil {
		t.Fatal("no error for index -1")
	}
}

// The kernel's rule the package relies on: a closed member leaves the
// group and the last member takes its index.
func TestClosedMemberIsReplacedByTheLast(t *testing.T) {
	lns := group(t, "tcp4", "127.0.0.1", 3)
	lns[0].Close()
	if err := Steer(lns[1], 0); err != nil {
		t.Fatal(err)
	}
	dialN(t, "127.0.0.1", port(lns[1]), 10)
	if got := distribution(t, lns[1:], 10); got[1] != 10 {
		t.Fatalf("index 0 after closing member 0: %v, want all on the last member", got)
	}
}

// A flip moves no connection already queued: it stays with its member and
// is served by whoever accepts from it.
func TestQueuedConnectionsStayWithTheirMember(t *testing.T) {
	lns := group(t, "tcp4", "127.0.0.1", 2)
	Steer(lns[0], 0)
	dialN(t, "127.0.0.1", port(lns[0]), 5)
	distribution(t, lns, 5)
	Steer(lns[0], 1)
	dialN(t, "127.0.0.1", port(lns[0]), 3)
	if got := distribution(t, lns, 8); got[0] != 5 || got[1] != 3 {
		t.Fatalf("queues after the flip: %v, want [5 3]", got)
	}
	for range 5 {
		lns[0].SetDeadline(time.Now().Add(5 * time.Second))
		c, err := lns[0].Accept()
		if err != nil {
			t.Fatalf("a connection queued before the flip: %v", err)
		}
		c.Close()
	}
}

func TestVerify(t *testing.T) {
	for _, f := range families {
		t.Run(f.name, func(t *testing.T) {
			lns := group(t, f.network, f.host, 3)
			if err := Verify(context.Background(), conns(lns), 1); err != nil {
				t.Fatal(err)
			}
			for i, ln := range lns {
				if w, err := Waiting(ln); err != nil || w {
					t.Fatalf("member %d has a connection left after Verify (%v)", i, err)
				}
			}
			dialN(t, f.dial[0], port(lns[0]), 4)
			if got := distribution(t, lns, 4); got[1] != 4 {
				t.Fatalf("Verify left the group steered elsewhere: %v", got)
			}
		})
	}
}

func TestVerifyFindsWrongOrder(t *testing.T) {
	lns := group(t, "tcp4", "127.0.0.1", 2)
	err := Verify(context.Background(), []syscall.Conn{lns[1], lns[0]}, 0)
	if !errors.Is(err, ErrLayout) {
		t.Fatalf("members swapped: %v, want ErrLayout", err)
	}
}

func TestVerifyRefusesQueuedMember(t *testing.T) {
	lns := group(t, "tcp4", "127.0.0.1", 2)
	Steer(lns[0], 1)
	dialN(t, "127.0.0.1", port(lns[0]), 1)
	distribution(t, lns, 1)
	err := Verify(context.Background(), conns(lns), 0)
	if !errors.Is(err, ErrQueued) {
		t.Fatalf("a member with a queued connection: %v, want ErrQueued", err)
	}
	if got := queued(t, lns[1]); got != 1 {
		t.Fatalf("Verify took the visitor's connection: queue %d", got)
	}
}

func TestVerifyRejectsMixedAddresses(t *testing.T) {
	a := group(t, "tcp4", "127.0.0.1", 1)
	b := group(t, "tcp4", "127.0.0.1", 1)
	if err := Verify(context.Background(), conns(append(a, b...)), 0); err == nil {
		t.Fatal("no error for listeners on two addresses")
	}
	plain, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if err := Verify(context.Background(), []syscall.Conn{plain.(*net.TCPListener)}, 0); !errors.Is(err, ErrNotMember) {
		t.Fatalf("a socket without SO_REUSEPORT: %v", err)
	}
}

func TestWaitingOnUnixListener(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if w, err := Waiting(ln.(*net.UnixListener)); err != nil || w {
		t.Fatalf("empty queue: %v %v", w, err)
	}
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if w, err := Waiting(ln.(*net.UnixListener)); err != nil || !w {
		t.Fatalf("one connection queued: %v %v", w, err)
	}
}

func TestMain(m *testing.M) {
	if _, err := os.Stat("/proc/self/net/tcp"); err != nil {
		fmt.Fprintln(os.Stderr, "reuseport tests need /proc/self/net/tcp:", err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

func TestSettle(t *testing.T) {
	start := time.Now()
	if err := Settle(); err != nil {
		t.Fatal(err)
	}
	t.Logf("Settle took %s", time.Since(start))
}

// What the kernel does with the queue of a member that is closed: with
// net.ipv4.tcp_migrate_req = 0 (the default) every queued connection is
// reset; with 1 they move to another member. sitectl never closes a member
// while the site runs (systemd holds them all); this is why it must not.
func TestClosingAMemberWithQueuedConnections(t *testing.T) {
	v, err := os.ReadFile("/proc/sys/net/ipv4/tcp_migrate_req")
	if err != nil {
		t.Fatal(err)
	}
	migrate := string(v) == "1\n"
	lns := group(t, "tcp4", "127.0.0.1", 2)
	Steer(lns[0], 1)
	var clients []net.Conn
	for range 5 {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port(lns[0])))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.Write([]byte("GET / HTTP/1.0\r\n\r\n"))
		clients = append(clients, c)
	}
	distribution(t, lns, 5)
	lns[1].Close()
	reset := 0
	for _, c := range clients {
		c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		if _, err := c.Read(make([]byte, 1)); errors.Is(err, unix.ECONNRESET) {
			reset++
		}
	}
	moved := queued(t, lns[0])
	t.Logf("tcp_migrate_req=%t: of 5 queued connections, %d reset, %d moved to the other member", migrate, reset, moved)
	if migrate && moved != 5 || !migrate && reset != 5 {
		t.Fatalf("tcp_migrate_req=%t: %d reset, %d moved", migrate, reset, moved)
	}
}
