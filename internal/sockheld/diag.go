package sockheld

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// The kernel's sock_diag netlink interface lists the TCP listeners of one
// port without formatting a line of text for every socket of the host:
// /proc/1/net/tcp of a host with 10,000 listening sites is 1.5 MB that the
// kernel writes on every read (some 40 ms here). It answers for the
// network namespace of the asking socket, so it is used when that is
// PID 1's, or through a socket of the host's namespace that systemd passed
// (UseHostKernel: sitectl's state service has a network namespace of its
// own); elsewhere PID 1's tables are read instead.

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
func diagListeners(src diagSource, ports map[int]bool, out map[int][]uint64) error {
	d, err := openDiag(src)
	if err != nil {
		return err
	}
	defer d.close()
	answer := tcpAnswer(func(port uint16, inode uint64) {
		if ports[int(port)] {
			out[int(port)] = append(out[int(port)], inode)
		}
	})
	ask := func(port uint16) error {
		for _, family := range []uint8{unix.AF_INET, unix.AF_INET6} {
			if err := d.ask(func(seq uint32) []byte { return diagRequest(seq, family, port) }, answer); err != nil {
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

// diagUnixListeners records, by path, the inodes of the unix sockets
// listening on one of paths in this process's network namespace: one
// dump of every listening unix socket with its name. The kernel gives
// each name as its bytes, with their length, where /proc/net/unix prints
// them in a line of text: any process may bind a socket whose name holds
// a newline and a whole row of the table after it, naming another site's
// path (parseUnix, which the state service, in a network namespace of its
// own, still reads; see ReadListening).
func diagUnixListeners(src diagSource, paths map[string]bool, out map[string][]uint64) error {
	d, err := openDiag(src)
	if err != nil {
		return err
	}
	defer d.close()
	answer := func(msg []byte) error {
		path, inode, listening, err := parseUnixDiag(msg)
		if err == nil && listening && paths[path] {
			out[path] = append(out[path], inode)
		}
		return err
	}
	if err := d.ask(unixDiagRequest, answer); err != nil {
		return fmt.Errorf("cannot ask the kernel for the listening unix sockets: %w", err)
	}
	return nil
}

// diagSource says which kernel socket asks: none (read the tables), one of
// this process's own, in its network namespace, or the host's, which
// systemd passed (UseHostKernel).
type diagSource int

const (
	diagNone diagSource = iota
	diagOwn
	diagHost
)

// hostDiag is the sock_diag socket of the host's network namespace that
// systemd passed to a service with a network namespace of its own
// (UseHostKernel), shared by its goroutines one at a time.
var hostDiag struct {
	sync.Mutex
	fd  int
	seq uint32
	set bool
}

// UseHostKernel makes f, a NETLINK_SOCK_DIAG socket systemd created in the
// host's network namespace and passed (sitectl-state.socket's
// ListenNetlink=inet-diag), the socket this process asks which sockets
// listen in PID 1's network namespace when its own is another: sitectl's
// state service has no network of its own, and without it read the text
// of /proc/1/net/unix, in which any process may forge rows. f stays open
// for the life of the process.
func UseHostKernel(f *os.File) error {
	fd := int(f.Fd())
	domain, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_DOMAIN)
	if err != nil {
		return fmt.Errorf("the kernel's socket systemd passed: %w", err)
	}
	proto, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_PROTOCOL)
	if err != nil {
		return fmt.Errorf("the kernel's socket systemd passed: %w", err)
	}
	if domain != unix.AF_NETLINK || proto != unix.NETLINK_SOCK_DIAG {
		return fmt.Errorf("the socket systemd passed is of family %d, protocol %d, not sock_diag (ListenNetlink=inet-diag)", domain, proto)
	}
	tv := unix.NsecToTimeval(diagTimeout.Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return fmt.Errorf("the kernel's socket systemd passed: %w", err)
	}
	hostDiag.Lock()
	defer hostDiag.Unlock()
	// The socket outlives this process: answers to a predecessor's
	// requests may wait in it, numbered from wherever it began.
	hostDiag.fd, hostDiag.seq, hostDiag.set = fd, uint32(time.Now().UnixNano()), true
	return nil
}

// pid1Diag is where the kernel is asked about the sockets of the network
// namespace of PID 1 of proc.
func pid1Diag(proc string) diagSource {
	switch {
	case sameNetns(proc):
		return diagOwn
	case proc == "/proc" && hostKernelSet():
		return diagHost
	}
	return diagNone
}

func hostKernelSet() bool {
	hostDiag.Lock()
	defer hostDiag.Unlock()
	return hostDiag.set
}

// diagConn is a sock_diag netlink socket and its last request's number.
type diagConn struct {
	fd     int
	seq    uint32
	buf    []byte
	shared bool
}

// openDiag opens a conversation with the kernel of src: a socket of its
// own, or the host's, held until close.
func openDiag(src diagSource) (*diagConn, error) {
	switch src {
	case diagHost:
		hostDiag.Lock()
		if !hostDiag.set {
			hostDiag.Unlock()
			return nil, errors.New("no socket of the host's kernel was passed")
		}
		d := &diagConn{fd: hostDiag.fd, seq: hostDiag.seq, buf: make([]byte, 64<<10), shared: true}
		d.drain()
		return d, nil
	case diagNone:
		return nil, errors.New("the kernel of that network namespace cannot be asked")
	}
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		return nil, fmt.Errorf("cannot ask the kernel for listening sockets: %w", err)
	}
	tv := unix.NsecToTimeval(diagTimeout.Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("cannot ask the kernel for listening sockets: %w", err)
	}
	return &diagConn{fd: fd, buf: make([]byte, 64<<10)}, nil
}

// drain reads what waits in a shared socket before a request: the rest of
// an answer whose reader gave up (a timeout, a process that ended).
func (d *diagConn) drain() {
	for range maxDrained {
		if _, _, err := unix.Recvfrom(d.fd, d.buf, unix.MSG_DONTWAIT); err != nil {
			return
		}
	}
}

// maxDrained bounds the datagrams drain reads (64 KiB each).
const maxDrained = 1 << 12

func (d *diagConn) close() {
	if !d.shared {
		unix.Close(d.fd)
		return
	}
	hostDiag.seq = d.seq
	hostDiag.Unlock()
}

// ask sends the request that request makes for the next sequence number
// and reads its answers until their end, calling answer with each.
func (d *diagConn) ask(request func(seq uint32) []byte, answer func(msg []byte) error) error {
	d.seq++
	if err := unix.Sendto(d.fd, request(d.seq), 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return err
	}
	return readDiag(d.fd, d.buf, d.seq, answer)
}

// diagPortsAsked is up to how many ports the kernel is asked for each
// port's listeners: two requests each, against one dump of every listener
// of the host (10,000 sites: 10,000 rows, 2 ms).
const diagPortsAsked = 16

// dumpRequest is a sock_diag dump request of size bytes numbered seq, its
// netlink header written, and the request after the header to fill in.
func dumpRequest(seq uint32, size int) (b, req []byte) {
	b = make([]byte, size)
	ne := binary.NativeEndian
	ne.PutUint32(b[0:], uint32(size))
	ne.PutUint16(b[4:], unix.SOCK_DIAG_BY_FAMILY)
	ne.PutUint16(b[6:], unix.NLM_F_REQUEST|unix.NLM_F_DUMP)
	ne.PutUint32(b[8:], seq)
	return b, b[16:]
}

// diagRequest is a dump request for the TCP sockets of family listening on
// port: struct nlmsghdr and struct inet_diag_req_v2, with the port as the
// source port the kernel compares every listener with; port 0: every
// listener.
func diagRequest(seq uint32, family uint8, port uint16) []byte {
	b, r := dumpRequest(seq, diagReqLen)
	ne := binary.NativeEndian
	r[0], r[1] = family, unix.IPPROTO_TCP
	ne.PutUint32(r[4:], 1<<tcpListenState)
	binary.BigEndian.PutUint16(r[8:], port) // id.idiag_sport
	ne.PutUint32(r[48:], ^uint32(0))        // id.idiag_cookie: none
	ne.PutUint32(r[52:], ^uint32(0))
	return b
}

// readDiag reads the answers to request seq until its end, calling answer
// with each.
func readDiag(fd int, buf []byte, seq uint32, answer func(msg []byte) error) error {
	replies := 0
	for {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			return err
		}
		done, err := parseDiag(buf[:n], seq, func(msg []byte) error {
			replies++
			return answer(msg)
		})
		if err != nil || done {
			return err
		}
		if replies > maxDiagReplies {
			return fmt.Errorf("more than %d listeners", maxDiagReplies)
		}
	}
}

// parseDiag reads the netlink messages of one datagram, calling answer
// with the body of each answer: done at the end of the dump. Messages of
// other requests are skipped.
func parseDiag(b []byte, seq uint32, answer func(msg []byte) error) (done bool, err error) {
	ne := binary.NativeEndian
	for len(b) >= 16 {
		l := int(ne.Uint32(b[0:]))
		typ, mseq := ne.Uint16(b[4:]), ne.Uint32(b[8:])
		if l < 16 || l > len(b) {
			return false, errors.New("a malformed netlink message")
		}
		msg := b[16:l]
		b = b[min(nlAlign(l), len(b)):]
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
			if err := answer(msg); err != nil {
				return false, err
			}
		}
	}
	return false, nil
}

// nlAlign rounds a netlink length up to its alignment.
func nlAlign(l int) int { return (l + nlmsgAlignTo - 1) &^ (nlmsgAlignTo - 1) }

// tcpAnswer reads an answer to diagRequest (struct inet_diag_msg), calling
// found with the port and inode of a listener.
func tcpAnswer(found func(port uint16, inode uint64)) func(msg []byte) error {
	return func(msg []byte) error {
		if len(msg) < diagMsgLen {
			return errors.New("a short answer")
		}
		if msg[1] == tcpListenState {
			found(binary.BigEndian.Uint16(msg[4:]), uint64(binary.NativeEndian.Uint32(msg[68:])))
		}
		return nil
	}
}

// Wire format of sock_diag for unix sockets (linux/unix_diag.h).
const (
	unixDiagReqLen = 16 + 24 // struct nlmsghdr, struct unix_diag_req
	unixDiagMsgLen = 16      // struct unix_diag_msg
	udiagShowName  = 0x01    // UDIAG_SHOW_NAME
	unixDiagName   = 0       // UNIX_DIAG_NAME
)

// unixDiagRequest is a dump request for every listening unix socket of
// the network namespace, with its name.
func unixDiagRequest(seq uint32) []byte {
	b, r := dumpRequest(seq, unixDiagReqLen)
	ne := binary.NativeEndian
	r[0] = unix.AF_UNIX
	ne.PutUint32(r[4:], 1<<tcpListenState) // udiag_states: unix sockets listen as TCP_LISTEN
	ne.PutUint32(r[12:], udiagShowName)
	return b
}

// parseUnixDiag reads one answer to unixDiagRequest: the socket's path
// ("" for an abstract or unnamed one), inode, and whether it listens. The
// kernel gives the path with its terminating NUL.
func parseUnixDiag(msg []byte) (path string, inode uint64, listening bool, err error) {
	ne := binary.NativeEndian
	if len(msg) < unixDiagMsgLen {
		return "", 0, false, errors.New("a short answer")
	}
	inode, listening = uint64(ne.Uint32(msg[4:])), msg[2] == tcpListenState
	for a := msg[unixDiagMsgLen:]; len(a) >= 4; {
		l, typ := int(ne.Uint16(a[0:])), ne.Uint16(a[2:])
		if l < 4 || l > len(a) {
			return "", 0, false, errors.New("a malformed attribute")
		}
		if typ == unixDiagName {
			name := a[4:l]
			if len(name) > 0 && name[0] != 0 {
				if i := bytes.IndexByte(name, 0); i >= 0 {
					name = name[:i]
				}
				path = string(name)
			}
		}
		a = a[min(nlAlign(l), len(a)):]
	}
	return path, inode, listening, nil
}
