package reuseport

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// ErrLayout is matched by the error of [Verify] when a member is not at its
// position in the kernel's group.
var ErrLayout = errors.New("the listeners are not in the kernel's order of the group")

// ErrQueued is matched by the error of [Verify] when a member it must probe
// already has connections waiting: visitors queued there before any
// program steered them.
var ErrQueued = errors.New("connections wait on a listener that gets no new ones")

// probeWait bounds how long a probe connection may take to show up in the
// queue it was steered to; on loopback it takes microseconds.
const probeWait = 2 * time.Second

// Verify checks that members, which must share one address, are the
// kernel's group in this order: for each member other than selected, it
// steers one probe connection of its own (told apart by its source port) to
// that index and checks that it arrives in that member's accept queue, then
// accepts and closes it. Meanwhile every other new connection goes to
// members[selected], and the group is left steered there.
//
// Nothing may accept from the probed members while Verify runs: it is meant
// for a launcher that has not yet started a server on them. A probed member
// with connections already waiting makes Verify fail with [ErrQueued]; a
// probe that does not arrive, with [ErrLayout]. A member whose position is
// wrong may then have received connections meant for members[selected],
// and Verify may have taken one of them for its probe and closed it: the
// order is wrong only if something closed or shut down a member since
// systemd created them, and the site is then broken anyway.
func Verify(ctx context.Context, members []syscall.Conn, selected int) error {
	if selected < 0 || selected >= len(members) {
		return fmt.Errorf("cannot verify the group: no member %d among %d", selected, len(members))
	}
	target, err := probeTarget(members)
	if err != nil {
		return err
	}
	if err := Steer(members[selected], selected); err != nil {
		return err
	}
	for i, m := range members {
		if i == selected {
			continue
		}
		if w, err := Waiting(m); err != nil {
			return err
		} else if w {
			return fmt.Errorf("cannot verify member %d of the group on %s: %w", i, target, ErrQueued)
		}
		err := probe(ctx, target, members[selected], m, i, selected)
		if err != nil {
			Steer(members[selected], selected)
			return fmt.Errorf("member %d of the group on %s: %w", i, target, err)
		}
	}
	return Steer(members[selected], selected)
}

// probeTarget is the address a probe connects to: the members' address,
// or the loopback address of its family when it is unspecified.
func probeTarget(members []syscall.Conn) (netip.AddrPort, error) {
	var addr netip.AddrPort
	for i, m := range members {
		info, err := inspect(m)
		if err != nil {
			return addr, fmt.Errorf("cannot inspect member %d: %w", i, err)
		}
		if !info.member {
			return addr, fmt.Errorf("member %d: %w", i, ErrNotMember)
		}
		if i > 0 && info.addr != addr {
			return addr, fmt.Errorf("member %d listens on %s, member 0 on %s", i, info.addr, addr)
		}
		addr = info.addr
	}
	ip := addr.Addr()
	switch {
	case ip == netip.IPv4Unspecified():
		ip = netip.AddrFrom4([4]byte{127, 0, 0, 1})
	case ip == netip.IPv6Unspecified():
		ip = netip.IPv6Loopback()
	}
	return netip.AddrPortFrom(ip, addr.Port()), nil
}

// probe steers one connection from a fresh source port to index i, waits
// for it in member's queue, and takes it off.
func probe(ctx context.Context, target netip.AddrPort, steerVia, member syscall.Conn, i, selected int) error {
	client, port, err := probeSocket(target)
	if err != nil {
		return err
	}
	defer unix.Close(client)
	if err := attach(steerVia, probeProgram(port, uint32(i), uint32(selected))); err != nil {
		return fmt.Errorf("cannot attach the probe program: %w", err)
	}
	deadline := time.Now().Add(probeWait)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if err := connectBy(client, target, deadline); err != nil {
		return fmt.Errorf("cannot connect the probe: %w", err)
	}
	local, err := unix.Getsockname(client)
	if err != nil {
		return err
	}
	var arrived bool
	err = control(member, func(fd int) error {
		ms := max(time.Until(deadline).Milliseconds(), 1)
		if arrived, err = readable(fd, int(ms)); err != nil || !arrived {
			return err
		}
		return takeProbe(fd, addrPort(local))
	})
	if err != nil {
		return err
	}
	if !arrived {
		return fmt.Errorf("a probe steered to index %d did not arrive: %w", i, ErrLayout)
	}
	return nil
}

// probeSocket opens a non-blocking TCP socket bound to an ephemeral port
// of the target's family and returns it with that port.
func probeSocket(target netip.AddrPort) (int, uint16, error) {
	family, any := unix.AF_INET6, unix.Sockaddr(&unix.SockaddrInet6{})
	if target.Addr().Is4() {
		family, any = unix.AF_INET, &unix.SockaddrInet4{}
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, 0, fmt.Errorf("cannot open a probe socket: %w", err)
	}
	if err := unix.Bind(fd, any); err != nil {
		unix.Close(fd)
		return -1, 0, fmt.Errorf("cannot bind a probe socket: %w", err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		unix.Close(fd)
		return -1, 0, err
	}
	return fd, addrPort(sa).Port(), nil
}

// connectBy connects a non-blocking socket, waiting until deadline.
func connectBy(fd int, target netip.AddrPort, deadline time.Time) error {
	var sa unix.Sockaddr
	if target.Addr().Is4() {
		sa = &unix.SockaddrInet4{Addr: target.Addr().As4(), Port: int(target.Port())}
	} else {
		sa = &unix.SockaddrInet6{Addr: target.Addr().As16(), Port: int(target.Port())}
	}
	err := unix.Connect(fd, sa)
	if err == nil {
		return nil
	}
	if !errors.Is(err, unix.EINPROGRESS) {
		return err
	}
	pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
	for {
		ms := time.Until(deadline).Milliseconds()
		if ms <= 0 {
			return errors.New("timed out")
		}
		n, err := unix.Poll(pfd, int(ms))
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return err
		}
		if n > 0 {
			break
		}
	}
	if soErr, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR); err != nil {
		return err
	} else if soErr != 0 {
		return unix.Errno(soErr)
	}
	return nil
}

// takeProbe accepts the waiting connection from listener fd and closes it,
// after checking that it is the probe (from local). A receive timeout
// bounds the accept, should another process have taken the connection
// first; the listener's own timeout is put back.
func takeProbe(fd int, local netip.AddrPort) error {
	old, err := unix.GetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO)
	if err != nil {
		return err
	}
	tv := unix.NsecToTimeval(probeWait.Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return err
	}
	defer unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, old)
	for {
		conn, peer, err := unix.Accept4(fd, unix.SOCK_CLOEXEC)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return fmt.Errorf("cannot take the probe off the queue: %w", err)
		}
		unix.Close(conn)
		if got := addrPort(peer); unmap(got) != unmap(local) {
			return fmt.Errorf("took a connection from %s off the queue, not the probe from %s", got, local)
		}
		return nil
	}
}

func unmap(a netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(a.Addr().Unmap(), a.Port())
}
