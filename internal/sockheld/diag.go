package sockheld

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// The kernel's sock_diag netlink interface lists the TCP listeners of one
// port without formatting a line of text for every socket of the host:
// /proc/1/net/tcp of a host with 10,000 listening sites is 1.5 MB that the
// kernel writes on every read (some 40 ms here). It answers for the
// network namespace of the asking socket, so it is used only when that is
// PID 1's; sitectl's state service, which has a network namespace of its
// own, reads PID 1's tables instead.

// sameNetns tells whether this process is in the network namespace of PID
// 1 of proc. Whatever cannot be read says no.
func sameNetns(proc string) bool {
	self, err := os.Readlink(filepath.Join(proc, "self", "ns", "net"))
	if err != nil {
		return false
	}
	init, err := os.Readlink(filepath.Join(proc, "1", "ns", "net"))
	return err == nil && self == init
}

// Wire format of sock_diag (linux/sock_diag.h, linux/inet_diag.h).
const (
	tcpListenState = 10 // TCP_LISTEN
	diagReqLen     = 16 + 56
	diagMsgLen     = 72 // struct inet_diag_msg
	nlmsgAlignTo   = 4
	// maxDiagReplies bounds the listeners read for one request: one
	// port's, or every listener of a family.
	maxDiagReplies = 1 << 18
	diagTimeout    = 5 * time.Second
)

// diagListeners records, by port, the inodes of the TCP sockets (IPv4 and
// IPv6) listening on one of ports in this process's network namespace.
// For a few ports the kernel is asked for each port's listeners; for more
// (list and status of every site) for all listeners at once, one dump per
// family, whose rows of other ports are skipped.
func diagListeners(ports map[int]bool, out map[int][]uint64) error {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		return fmt.Errorf("cannot ask the kernel for listening sockets: %w", err)
	}
	defer unix.Close(fd)
	tv := unix.NsecToTimeval(diagTimeout.Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return fmt.Errorf("cannot ask the kernel for listening sockets: %w", err)
	}
	seq := uint32(0)
	buf := make([]byte, 64<<10)
	found := func(port uint16, inode uint64) {
		if ports[int(port)] {
			out[int(port)] = append(out[int(port)], inode)
		}
	}
	ask := func(port uint16) error {
		for _, family := range []uint8{unix.AF_INET, unix.AF_INET6} {
			seq++
			if err := unix.Sendto(fd, diagRequest(seq, family, port), 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
				return fmt.Errorf("cannot ask the kernel for listening sockets: %w", err)
			}
			if err := readDiag(fd, buf, seq, found); err != nil {
				if port == 0 {
					return fmt.Errorf("cannot ask the kernel for the listening sockets: %w", err)
				}
				return fmt.Errorf("cannot ask the kernel for the sockets listening on port %d: %w", port, err)
			}
		}
		return nil
	}
	if len(ports) > diagPortsAsked {
		return ask(0)
	}
	for port := range ports {
		if err := ask(uint16(port)); err != nil {
			return err
		}
	}
	return nil
}

// diagPortsAsked is up to how many ports the kernel is asked for each
// port's listeners: two requests each, against one dump of every listener
// of the host (10,000 sites: 10,000 rows, 2 ms).
const diagPortsAsked = 16

// diagRequest is a dump request for the TCP sockets of family listening on
// port: struct nlmsghdr and struct inet_diag_req_v2, with the port as the
// source port the kernel compares every listener with; port 0: every
// listener.
func diagRequest(seq uint32, family uint8, port uint16) []byte {
	b := make([]byte, diagReqLen)
	ne := binary.NativeEndian
	ne.PutUint32(b[0:], diagReqLen)
	ne.PutUint16(b[4:], unix.SOCK_DIAG_BY_FAMILY)
	ne.PutUint16(b[6:], unix.NLM_F_REQUEST|unix.NLM_F_DUMP)
	ne.PutUint32(b[8:], seq)
	r := b[16:]
	r[0], r[1] = family, unix.IPPROTO_TCP
	ne.PutUint32(r[4:], 1<<tcpListenState)
	binary.BigEndian.PutUint16(r[8:], port) // id.idiag_sport
	ne.PutUint32(r[48:], ^uint32(0))        // id.idiag_cookie: none
	ne.PutUint32(r[52:], ^uint32(0))
	return b
}

// readDiag reads the answers to request seq until its end, calling found
// with the port and inode of each listener.
func readDiag(fd int, buf []byte, seq uint32, found func(port uint16, inode uint64)) error {
	replies := 0
	for {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			return err
		}
		done, err := parseDiag(buf[:n], seq, func(port uint16, inode uint64) {
			replies++
			found(port, inode)
		})
		if err != nil || done {
			return err
		}
		if replies > maxDiagReplies {
			return fmt.Errorf("more than %d listeners", maxDiagReplies)
		}
	}
}

// parseDiag reads the netlink messages of one datagram, calling found with
// the port and inode of each listener: done at the end of the dump.
// Messages of other requests are skipped.
func parseDiag(b []byte, seq uint32, found func(port uint16, inode uint64)) (done bool, err error) {
	ne := binary.NativeEndian
	for len(b) >= 16 {
		l := int(ne.Uint32(b[0:]))
		typ, mseq := ne.Uint16(b[4:]), ne.Uint32(b[8:])
		if l < 16 || l > len(b) {
			return false, errors.New("a malformed netlink message")
		}
		msg := b[16:l]
		b = b[min((l+nlmsgAlignTo-1)&^(nlmsgAlignTo-1), len(b)):]
		if mseq != seq {
			continue
		}
		switch typ {
		case unix.NLMSG_DONE:
			return true, nil
		case unix.NLMSG_ERROR:
			if len(msg) >= 4 {
				if errno := int32(ne.Uint32(msg)); errno != 0 {
					return false, unix.Errno(-errno)
				}
			}
			return true, nil
		case unix.SOCK_DIAG_BY_FAMILY:
			if len(msg) < diagMsgLen {
				return false, errors.New("a short answer")
			}
			if msg[1] == tcpListenState {
				found(binary.BigEndian.Uint16(msg[4:]), uint64(ne.Uint32(msg[68:])))
			}
		}
	}
	return false, nil
}
