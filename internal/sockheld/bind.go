package sockheld

import (
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/sitectl/sitectl/internal/site"
)

// Unbindable returns, for the TCP listeners of s among lost (listeners
// systemd must open again: Missing found no socket for them), why systemd
// could not bind them now: another process listens there. The usual one
// is a site that moved away from the address and whose running process
// still has its own copy of the socket until it restarts (two sites that
// swapped ports); or a program of the host's own. A restart of s's socket
// unit would then fail after its service was stopped, and so would the
// rollback. Sockets held by the processes in own (the site's own service,
// which the restart stops first) do not count. proc is the proc mount.
//
// The address is bound as systemd binds it (SO_REUSEADDR; SO_REUSEPORT
// when the socket unit asks for it; dual-stack [::]) and closed without
// listening. An address systemd could not bind for another reason (not
// an address of this host) is returned too. Unix listeners are not
// looked at: systemd removes a stale socket file and binds afresh. In
// another network namespace than PID 1's (sitectl's state service) a
// bind says nothing of PID 1's addresses: nothing is returned.
func Unbindable(proc string, s *site.Site, lost []string, own []int) ([]string, error) {
	if !sameNetns(proc) {
		return nil, nil
	}
	return unbindable(proc, s, lost, own)
}

// unbindable is Unbindable in this process's network namespace.
func unbindable(proc string, s *site.Site, lost []string, own []int) ([]string, error) {
	var out []string
	for _, l := range s.Listeners {
		if l.Kind != site.TCP || !slices.Contains(lost, l.Address) {
			continue
		}
		err := tryBind(l.Address, s.KeepPrevious > 0)
		if err == nil {
			continue
		}
		if !errors.Is(err, unix.EADDRINUSE) {
			out = append(out, fmt.Sprintf("%s: %v", l.Address, err))
			continue
		}
		port, _ := listenerPort(l)
		byPort, err := tcpListeners(filepath.Join(proc, "self", "net"), diagOwn, map[int]bool{port: true})
		if err != nil {
			return nil, err
		}
		if len(byPort[port]) == 0 || !ownAll(proc, own, byPort[port]) {
			out = append(out, fmt.Sprintf("%s: another process listens there", l.Address))
		}
	}
	return out, nil
}

// ownAll tells whether each of inodes is a socket that one of the
// processes pids has open. A process that went away, or whose files
// cannot be read, has none.
func ownAll(proc string, pids []int, inodes []uint64) bool {
	want := map[uint64]bool{}
	for _, i := range inodes {
		want[i] = true
	}
	for _, pid := range pids {
		held, _, err := heldInodes(filepath.Join(proc, strconv.Itoa(pid), "fd"), want, nil)
		if err != nil {
			continue
		}
		for i := range held {
			delete(want, i)
		}
		if len(want) == 0 {
			return true
		}
	}
	return len(want) == 0
}

// tryBind binds a TCP socket to address as systemd's socket unit would,
// and closes it.
func tryBind(address string, reusePort bool) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return err
	}
	family, sa := unix.AF_INET, unix.Sockaddr(nil)
	if ap.Addr().Is4() {
		sa = &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}
	} else {
		family = unix.AF_INET6
		sa6 := &unix.SockaddrInet6{Port: int(ap.Port()), Addr: ap.Addr().As16()}
		sa = sa6
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
		return err
	}
	if reusePort {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); err != nil {
			return err
		}
	}
	if family == unix.AF_INET6 && ap.Addr().IsUnspecified() {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 0); err != nil {
			return err
		}
	}
	return unix.Bind(fd, sa)
}
