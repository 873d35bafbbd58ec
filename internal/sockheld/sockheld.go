// Package sockheld tells whether systemd (PID 1) still holds a listening
// socket for each of a site's listeners. A socket unit whose configuration
// changed while it ran (its unit file went and came back with a
// daemon-reload) stays "active" with no socket at all ("not functional
// until restarted"): a service started then gets no LISTEN_FDS, and
// gunicorn binds its default 127.0.0.1:8000. Reading /proc is the only way
// to see it; systemd's properties do not show it.
package sockheld

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/sitectl/sitectl/internal/site"
	"github.com/sitectl/sitectl/internal/units"
)

// maxTable bounds what is read of one /proc/1/net table. The tables are
// PID 1's (its network namespace): sitectl's state service, which runs
// deployers' changes, has a network namespace of its own and no /proc/net
// (PrivateNetwork=yes, ProcSubset=pid). A table that is larger is an
// error, not read in part: a listener past the cut would be reported
// missing, and the caller would refuse a switch and advise restarting a
// socket unit that is fine. Any site's app can make /proc/1/net/unix that
// large by opening socketpairs.
const maxTable = 16 << 20

// ErrUnknown is Missing's error when it cannot tell which sockets PID 1
// holds: a table it must read is larger than it reads. Any local user
// can make one that large, so a caller that refused every change on it
// would let anyone stop all changes: it goes on without the check.
var ErrUnknown = errors.New("cannot tell whether systemd holds the site's sockets")

// Missing returns the listeners of s (their address or path) for which PID
// 1 holds no listening socket. proc is the proc mount, "/proc".
//
// Its cost must not grow with the host: with 10,000 sites PID 1 holds
// 10,000 listening sockets. In PID 1's network namespace the kernel is
// asked for the TCP listeners of s's ports alone and for the listening
// unix sockets (sock_diag, diag.go). Elsewhere only the tables of the
// kinds s listens on are read, and only rows of s's ports and paths are parsed
// (the rest are looked at, not split). PID 1's open files are read only
// until every socket found for s is among them.
//
// hint is the path of s's hint file (hint.go; "" for none): which of PID
// 1's open files held s's sockets the last time. It is read first, and
// written anew when they moved.
func Missing(proc string, s *site.Site, hint string) ([]string, error) {
	h, err := ReadHeld(proc, []*site.Site{s}, hint)
	if err != nil {
		return nil, err
	}
	return h.Missing(s), nil
}

// Held is which of the listening sockets on many sites' ports and paths
// PID 1 held when ReadHeld read them: list and status of every site read
// them once for all, where Missing for each site would read PID 1's open
// files as many times.
type Held struct {
	byPort map[int][]uint64
	byPath map[string][]uint64
	held   map[uint64]bool
}

// ReadHeld reads, for the listeners of sites, the sockets listening on
// their ports and paths and which of them PID 1 holds, as Missing does for
// one site; with many ports the kernel lists every TCP listener of the
// host once.
//
// hint is, when one site is read, the path of its hint file, as for
// Missing; "" for none.
func ReadHeld(proc string, sites []*site.Site, hint string) (*Held, error) {
	h, err := ReadListening(proc, sites)
	if err != nil {
		return nil, err
	}
	want := map[uint64]bool{}
	for _, inodes := range h.byPort {
		for _, i := range inodes {
			want[i] = true
		}
	}
	for _, inodes := range h.byPath {
		for _, i := range inodes {
			want[i] = true
		}
	}
	hinted := readHint(hint)
	var fds []int
	if h.held, fds, err = heldInodes(filepath.Join(proc, "1", "fd"), want, hinted); err != nil {
		return nil, err
	}
	writeHint(hint, hinted, fds)
	return h, nil
}

// ReadListening is ReadHeld without looking at whose the sockets are: its
// Missing are the listeners on whose port or path nothing listens at all,
// in PID 1's network namespace. It does not read PID 1's open files,
// which with 10,000 sites is 10,000 links: list and status of every site
// use it to find sites that refuse visitors on a listener, since there
// neither systemd nor a process of theirs holds a socket. Where something
// listens it may be a running site's own copy of a socket systemd no
// longer holds: only ReadHeld tells that apart.
func ReadListening(proc string, sites []*site.Site) (*Held, error) {
	ports, paths := map[int]bool{}, map[string]bool{}
	for _, s := range sites {
		for _, l := range s.Listeners {
			if l.Kind == site.Unix {
				paths[l.Path] = true
			} else if port, ok := listenerPort(l); ok {
				ports[port] = true
			}
		}
	}
	h := &Held{byPort: map[int][]uint64{}, byPath: map[string][]uint64{}}
	if len(ports) == 0 && len(paths) == 0 {
		return h, nil
	}
	diag := pid1Diag(proc)
	if len(ports) > 0 {
		var err error
		if h.byPort, err = tcpListeners(filepath.Join(proc, "1", "net"), diag, ports); err != nil {
			return nil, err
		}
	}
	if len(paths) > 0 {
		var err error
		if h.byPath, err = unixListeners(filepath.Join(proc, "1", "net", "unix"), diag, paths); err != nil {
			return nil, err
		}
	}
	return h, nil
}

// unixListeners are the inodes of the unix sockets listening on paths, by
// path: from the kernel (sock_diag) when diag says this process's network
// namespace is the one meant, else (or when the kernel cannot say) from
// the table at table, a /proc/PID/net/unix. The table is text in which
// the kernel prints every socket's name as it is, so any process may add
// rows to it (diagUnixListeners); only sitectl's state service, whose
// network namespace is its own, still reads it.
func unixListeners(table string, diag diagSource, paths map[string]bool) (map[string][]uint64, error) {
	byPath := map[string][]uint64{}
	if diag != diagNone && diagUnixListeners(diag, paths, byPath) == nil {
		return byPath, nil
	}
	clear(byPath) // what the kernel said before it failed is read again
	if err := readTable(table, func(f [][]byte) bool { parseUnix(f, paths, byPath); return true }); err != nil {
		return nil, err
	}
	return byPath, nil
}

// Missing returns the listeners of s for which PID 1 held no listening
// socket, as the package's Missing does (after ReadListening: on which
// nothing listened); s must be one of the sites read (another's listeners
// are all missing).
func (h *Held) Missing(s *site.Site) []string {
	var missing []string
	for _, l := range s.Listeners {
		var inodes []uint64
		what := l.Address
		if l.Kind == site.Unix {
			inodes, what = h.byPath[l.Path], l.Path
		} else if port, ok := listenerPort(l); ok {
			inodes = h.byPort[port]
		}
		if h.held == nil && len(inodes) == 0 || h.held != nil && !anyHeld(inodes, h.held) {
			missing = append(missing, what)
		}
	}
	return missing
}

// tcpListeners are the inodes of the TCP sockets listening on ports, by
// port: from the kernel (sock_diag) when diag says this process's network
// namespace is the one meant, else (or when the kernel cannot say) from
// the tables tcp and tcp6 in netDir, a /proc/PID/net.
func tcpListeners(netDir string, diag diagSource, ports map[int]bool) (map[int][]uint64, error) {
	byPort := map[int][]uint64{}
	if diag != diagNone && diagListeners(diag, ports, byPort) == nil {
		return byPort, nil
	}
	clear(byPort) // what the kernel said before it failed is read again
	for _, t := range []string{"tcp", "tcp6"} {
		if err := readTable(filepath.Join(netDir, t), func(f [][]byte) bool { return parseTCP(f, ports, byPort) }); err != nil {
			return nil, err
		}
	}
	return byPort, nil
}

// listenerPort is the port of a TCP listener.
func listenerPort(l site.Listener) (int, bool) {
	_, p, err := net.SplitHostPort(l.Address)
	if err != nil {
		return 0, false
	}
	port, err := strconv.Atoi(p)
	return port, err == nil
}

func anyHeld(inodes []uint64, held map[uint64]bool) bool {
	for _, i := range inodes {
		if held[i] {
			return true
		}
	}
	return false
}

// heldInodes are those of the inodes in want that are sockets among the
// open files in dir, with the numbers of the files that are (in the
// order found). The files numbered in hint are read first; only if they
// are not all of want is the rest read, in order, until all are found.
// It opens dir even when want is empty, so that a /proc it may not read
// is an error, not sockets missing.
func heldInodes(dir string, want map[uint64]bool, hint []int) (map[uint64]bool, []int, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("cannot read systemd's open files: %w", err)
	}
	defer f.Close()
	held := map[uint64]bool{}
	var fds []int
	buf := make([]byte, 64)
	var name []byte
	look := func(fd int, n string) {
		if n == "" {
			name = strconv.AppendInt(name[:0], int64(fd), 10)
			n = string(name)
		}
		if inode, ok := heldSocket(int(f.Fd()), n, buf); ok && want[inode] && !held[inode] {
			held[inode] = true
			fds = append(fds, fd)
		}
	}
	for _, fd := range hint {
		if len(held) == len(want) {
			return held, fds, nil
		}
		look(fd, "")
	}
	if len(held) == len(want) {
		return held, fds, nil
	}
	// Not all where the hint said: read them all, as if it said nothing.
	clear(held)
	fds = fds[:0]
	for len(held) < len(want) {
		names, err := f.Readdirnames(256)
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, nil, fmt.Errorf("cannot read systemd's open files: %w", err)
		}
		for _, n := range names {
			if fd, err := strconv.Atoi(n); err == nil {
				look(fd, n)
			}
		}
	}
	return held, fds, nil
}

// readLink reads a link relative to a directory; a variable for tests,
// which count the links read.
var readLink = unix.Readlinkat

// heldSocket is the inode of the socket that the open file name in the
// directory dirfd (a /proc/PID/fd) is, if it is one.
func heldSocket(dirfd int, name string, buf []byte) (uint64, bool) {
	n, err := readLink(dirfd, name, buf)
	if err != nil {
		return 0, false // closed meanwhile, or not a number there
	}
	return socketInode(buf[:n])
}

// socketInode reads the inode of an open file's link "socket:[N]".
func socketInode(target []byte) (uint64, bool) {
	const prefix, suffix = "socket:[", "]"
	if !bytes.HasPrefix(target, []byte(prefix)) || !bytes.HasSuffix(target, []byte(suffix)) {
		return 0, false
	}
	return parseUint(target[len(prefix):len(target)-len(suffix)], 10)
}

// readTable calls row with the fields of each line of a /proc/net table
// after its header, until row returns false. A table larger than maxTable
// is an error unless row stopped before its end: what was not read may
// hold the site's listeners.
func readTable(path string, row func([][]byte) bool) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("cannot read %s: %w", path, err)
	}
	defer f.Close()
	// One byte more than maxTable tells a table of maxTable bytes from a
	// larger one.
	lr := &io.LimitedReader{R: f, N: maxTable + 1}
	stopped := false
	err = scanTable(lr, func(fields [][]byte) bool {
		stopped = !row(fields)
		return !stopped
	})
	if err != nil {
		return fmt.Errorf("cannot read %s: %w", path, err)
	}
	if !stopped && lr.N == 0 {
		return fmt.Errorf("%s is larger than %d bytes: %w", path, maxTable, ErrUnknown)
	}
	return nil
}

// scanTable is readTable's loop. The fields passed to row are valid only
// during the call; the first tableFields of a row are split.
func scanTable(r io.Reader, row func([][]byte) bool) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<16)
	var buf [tableFields][]byte
	for first := true; sc.Scan(); first = false {
		if !first && !row(splitFields(sc.Bytes(), buf[:0])) {
			return nil
		}
	}
	return sc.Err()
}

// tableFields is how many fields of a table row are split: the inode is
// the 10th of a TCP row, the path the 8th of a unix one.
const tableFields = 10

// splitFields appends up to cap(dst) blank-separated fields of line to dst,
// without copying.
func splitFields(line []byte, dst [][]byte) [][]byte {
	for len(dst) < cap(dst) {
		i := 0
		for i < len(line) && (line[i] == ' ' || line[i] == '\t') {
			i++
		}
		if i == len(line) {
			break
		}
		j := i
		for j < len(line) && line[j] != ' ' && line[j] != '\t' {
			j++
		}
		dst = append(dst, line[i:j])
		line = line[j:]
	}
	return dst
}

// parseUint parses an unsigned number in base 10 or 16 without allocating.
func parseUint(b []byte, base uint64) (uint64, bool) {
	if len(b) == 0 || len(b) > 20 {
		return 0, false
	}
	var n uint64
	for _, c := range b {
		var d uint64
		switch {
		case c >= '0' && c <= '9':
			d = uint64(c - '0')
		case base == 16 && c >= 'a' && c <= 'f':
			d = uint64(c-'a') + 10
		case base == 16 && c >= 'A' && c <= 'F':
			d = uint64(c-'A') + 10
		default:
			return 0, false
		}
		if n > (^uint64(0)-d)/base {
			return 0, false
		}
		n = n*base + d
	}
	return n, true
}

// tcpListen is the state of a listening socket in /proc/net/tcp.
const tcpListen = "0A"

// parseTCP records the inode of a listening TCP socket on one of ports by
// its port: "sl local_address rem_address st ... uid timeout inode". It
// returns false at the first row of another state: the kernel lists every
// listening socket first (its listening hash, then the established one),
// so the rest of the table, every connection of a busy host (0.2-0.3 s for
// 36,000 of them), holds no listener.
func parseTCP(f [][]byte, ports map[int]bool, out map[int][]uint64) bool {
	if len(f) < 10 {
		return true
	}
	if string(f[3]) != tcpListen {
		return false
	}
	i := bytes.LastIndexByte(f[1], ':')
	if i < 0 {
		return true
	}
	port, ok := parseUint(f[1][i+1:], 16)
	if !ok || port > 0xffff || !ports[int(port)] {
		return true
	}
	if inode, ok := parseUint(f[9], 10); ok {
		out[int(port)] = append(out[int(port)], inode)
	}
	return true
}

// unixListening is the flag of a listening unix socket in /proc/net/unix.
const unixListening = 0x10000

// parseUnix records the inode of a listening unix socket on one of paths
// by its path: "Num RefCount Protocol Flags Type St Inode Path".
func parseUnix(f [][]byte, paths map[string]bool, out map[string][]uint64) {
	if len(f) < 8 || !paths[string(f[7])] {
		return
	}
	flags, ok1 := parseUint(f[3], 16)
	inode, ok2 := parseUint(f[6], 10)
	if ok1 && ok2 && flags&unixListening != 0 {
		out[string(f[7])] = append(out[string(f[7])], inode)
	}
}

// Lost words, for site s whose socket unit is active, that systemd holds
// no socket for the listeners missing (Missing), and what opens them
// again, with systemd's units as the site file says (flow refuses to
// reopen sockets from units older than the file, with its own words).
func Lost(s *site.Site, missing []string) (what, fix string) {
	// The socket units that should hold them: a named listener has one
	// of its own.
	var holders []string
	for _, l := range s.Listeners {
		if slices.Contains(missing, l.Address) && l.Kind != site.Unix || slices.Contains(missing, l.Path) && l.Kind == site.Unix {
			if u := units.SocketNameOf(s, l); !slices.Contains(holders, u) {
				holders = append(holders, u)
			}
		}
	}
	if len(holders) == 0 {
		holders = []string{units.MainSocketName(s.Name)}
	}
	is := "is"
	if len(holders) > 1 {
		is = "are"
	}
	what = fmt.Sprintf("systemd holds no socket for %s although %s %s active (its listeners changed while it ran)",
		strings.Join(missing, ", "), strings.Join(holders, " and "), is)
	return what, "run `sitectl restart " + s.Name + "`, which restarts " + strings.Join(holders, " and ") + " with the service and checks that the site serves (connections to it are refused for that moment)"
}
