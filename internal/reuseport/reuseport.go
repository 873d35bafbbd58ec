// Package reuseport steers the new connections of a TCP address among the
// listening sockets that share it with SO_REUSEPORT, so that one of them
// gets every new connection and the others get none, and the choice can be
// flipped at once. It is the building block of a warm standby: two
// generations of an app, each accepting on its own socket of the group, and
// only the selected one receives visitors.
//
// The kernel keeps the sockets that share an address with SO_REUSEPORT (and
// the same owner) in a group, an array in the order they began to listen. A
// closed member leaves the array, and the last member takes its place.
// A classic BPF program attached to the group (SO_ATTACH_REUSEPORT_CBPF)
// picks the member for each new connection: its return value is the index
// into that array; a value outside it lets the kernel pick by hash, as with
// no program. The program belongs to the group, not to a socket: it is
// attached through any member, stays while any member lives, and is
// replaced atomically by the next one attached. Attaching needs no
// privilege, and the system call (setsockopt) passes systemd's
// @system-service filter.
//
// Only plain TCP sockets can be members: the kernel refuses a reuseport
// program on an MPTCP socket (EOPNOTSUPP), which is what Go's net.Listen
// opens by default since Go 1.24. systemd's sockets are plain TCP.
//
// A systemd socket unit with ReusePort=yes and one address listed twice
// (ListenStream=) creates such a group: it opens, binds and listens the
// sockets in the order listed, and passes them in that order, so the
// position of a socket among the service's file descriptors is its index in
// the group. [Verify] checks this with probe connections.
//
// Connections already in a member's accept queue, and handshakes under way
// to it, stay with that member when the program changes: they are served
// by whoever accepts from it. [Quiesce] waits until a member that no longer
// gets new connections has none left, so that its server can stop without
// stranding a visitor.
package reuseport

import (
	"errors"
	"fmt"
	"net/netip"
	"syscall"

	"golang.org/x/sys/unix"
)

// ErrNotMember is matched by the errors for a socket that is not a
// listening TCP socket with SO_REUSEPORT.
var ErrNotMember = errors.New("not a listening TCP socket with SO_REUSEPORT")

// Steer attaches to the group of member a program that gives every new
// connection to the group's member at index. It replaces the group's
// program in one step: connections whose handshake began before stay where
// they are.
func Steer(member syscall.Conn, index int) error {
	if index < 0 || index >= 1<<16 {
		return fmt.Errorf("cannot steer to member %d: out of range", index)
	}
	if err := attach(member, steerProgram(uint32(index))); err != nil {
		return fmt.Errorf("cannot steer new connections to member %d: %w", index, err)
	}
	return nil
}

// membarrierCmdGlobal is MEMBARRIER_CMD_GLOBAL: it returns once every CPU
// has passed through a quiescent state (synchronize_rcu).
const membarrierCmdGlobal = 1

// Settle returns once every packet that the kernel was handling when
// Settle was called has been handled. After [Steer], it means that no SYN
// is still being given to a member by the group's previous program, and
// that the handshakes such SYNs began are all listed by
// [PendingHandshakes]: the kernel picks the member and records the
// handshake within one RCU read-side section, and the program is replaced
// under RCU. It usually takes a few milliseconds. It fails on kernels
// booted with nohz_full, where the call is not available.
func Settle() error {
	_, _, errno := unix.Syscall(unix.SYS_MEMBARRIER, membarrierCmdGlobal, 0, 0)
	if errno != 0 {
		return fmt.Errorf("cannot wait for the kernel to finish with the previous program: membarrier: %w", errno)
	}
	return nil
}

// Detach removes the group's program: the kernel spreads new connections
// by hash again.
func Detach(member syscall.Conn) error {
	err := control(member, func(fd int) error {
		return unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_DETACH_REUSEPORT_BPF, 0)
	})
	if err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("cannot detach the steering program: %w", err)
	}
	return nil
}

func attach(member syscall.Conn, prog []unix.SockFilter) error {
	return control(member, func(fd int) error {
		fp := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
		return unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_REUSEPORT_CBPF, &fp)
	})
}

// Waiting tells whether a connection waits in the accept queue of a
// listening socket (TCP or unix).
func Waiting(ln syscall.Conn) (bool, error) {
	var ready bool
	err := control(ln, func(fd int) error {
		var err error
		ready, err = readable(fd, 0)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("cannot look at the accept queue: %w", err)
	}
	return ready, nil
}

// readable polls fd for a waiting connection for up to timeoutMs.
func readable(fd, timeoutMs int) (bool, error) {
	pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(pfd, timeoutMs)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return false, err
		}
		return n > 0 && pfd[0].Revents&unix.POLLIN != 0, nil
	}
}

// A Group is a set of listeners that share one TCP address with
// SO_REUSEPORT.
type Group struct {
	Addr netip.AddrPort // the address they listen on
	// V6Only is IPV6_V6ONLY of an IPv6 group: without it, an unspecified
	// address ([::]) takes IPv4 connections too.
	V6Only bool
	// Members are the indexes of the group's listeners in the slice given
	// to [Groups], in that order.
	Members []int
}

// Groups finds the groups among listeners: listening TCP sockets with
// SO_REUSEPORT that share an address. Other listeners (unix sockets, a TCP
// address with one socket) belong to no group.
func Groups(listeners []syscall.Conn) ([]Group, error) {
	type key struct {
		addr   netip.AddrPort
		v6only bool
	}
	var groups []Group
	at := map[key]int{}
	for i, ln := range listeners {
		info, err := inspect(ln)
		if err != nil {
			return nil, fmt.Errorf("listener %d: %w", i, err)
		}
		if !info.member {
			continue
		}
		k := key{info.addr, info.v6only}
		j, ok := at[k]
		if !ok {
			j = len(groups)
			at[k] = j
			groups = append(groups, Group{Addr: info.addr, V6Only: info.v6only})
		}
		groups[j].Members = append(groups[j].Members, i)
	}
	kept := groups[:0]
	for _, g := range groups {
		if len(g.Members) > 1 {
			kept = append(kept, g)
		}
	}
	return kept, nil
}

// sockInfo is what Groups needs to know of a socket.
type sockInfo struct {
	member bool // a listening TCP socket with SO_REUSEPORT
	addr   netip.AddrPort
	v6only bool
}

func inspect(ln syscall.Conn) (sockInfo, error) {
	var info sockInfo
	err := control(ln, func(fd int) error {
		domain, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_DOMAIN)
		if err != nil {
			return err
		}
		if domain != unix.AF_INET && domain != unix.AF_INET6 {
			return nil
		}
		proto, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_PROTOCOL)
		if err != nil || proto != unix.IPPROTO_TCP {
			return err
		}
		listening, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ACCEPTCONN)
		if err != nil {
			return err
		}
		reuse, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEPORT)
		if err != nil {
			return err
		}
		sa, err := unix.Getsockname(fd)
		if err != nil {
			return err
		}
		info.addr = addrPort(sa)
		if domain == unix.AF_INET6 {
			v, err := unix.GetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY)
			if err != nil {
				return err
			}
			info.v6only = v == 1
		}
		info.member = listening == 1 && reuse == 1
		return nil
	})
	return info, err
}

func addrPort(sa unix.Sockaddr) netip.AddrPort {
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(sa.Port))
	case *unix.SockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr), uint16(sa.Port))
	}
	return netip.AddrPort{}
}

// control runs f with the file descriptor of c.
func control(c syscall.Conn, f func(fd int) error) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) { ferr = f(int(fd)) }); err != nil {
		return err
	}
	return ferr
}
