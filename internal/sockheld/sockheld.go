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
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/sitectl/sitectl/internal/site"
)

// maxTable bounds what is read of one /proc/1/net table. The tables are
// PID 1's (its network namespace): sitectl's state service, which runs
// deployers' changes, has a network namespace of its own and no /proc/net
// (PrivateNetwork=yes, ProcSubset=pid).
const maxTable = 16 << 20

// Missing returns the listeners of s (their address or path) for which PID
// 1 holds no listening socket. proc is the proc mount, "/proc".
func Missing(proc string, s *site.Site) ([]string, error) {
	held, err := heldInodes(filepath.Join(proc, "1", "fd"))
	if err != nil {
		return nil, err
	}
	tcp := map[int][]uint64{}
	for _, t := range []string{"tcp", "tcp6"} {
		if err := readTable(filepath.Join(proc, "1", "net", t), func(f []string) bool { return parseTCP(f, tcp) }); err != nil {
			return nil, err
		}
	}
	unix := map[string][]uint64{}
	if err := readTable(filepath.Join(proc, "1", "net", "unix"), func(f []string) bool { parseUnix(f, unix); return true }); err != nil {
		return nil, err
	}
	var missing []string
	for _, l := range s.Listeners {
		var inodes []uint64
		what := l.Address
		if l.Kind == site.Unix {
			inodes, what = unix[l.Path], l.Path
		} else if _, p, err := net.SplitHostPort(l.Address); err == nil {
			port, _ := strconv.Atoi(p)
			inodes = tcp[port]
		}
		if !anyHeld(inodes, held) {
			missing = append(missing, what)
		}
	}
	return missing, nil
}

func anyHeld(inodes []uint64, held map[uint64]bool) bool {
	for _, i := range inodes {
		if held[i] {
			return true
		}
	}
	return false
}

// heldInodes are the inodes of the sockets among the open files in dir.
func heldInodes(dir string) (map[uint64]bool, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("cannot read systemd's open files: %w", err)
	}
	held := map[uint64]bool{}
	for _, e := range entries {
		target, err := os.Readlink(filepath.Join(dir, e.Name()))
		if err != nil || !strings.HasPrefix(target, "socket:[") {
			continue
		}
		if n, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(target, "socket:["), "]"), 10, 64); err == nil {
			held[n] = true
		}
	}
	return held, nil
}

// readTable calls row with the fields of each line of a /proc/net table
// after its header, until row returns false.
func readTable(path string, row func([]string) bool) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("cannot read %s: %w", path, err)
	}
	defer f.Close()
	if err := scanTable(io.LimitReader(f, maxTable), row); err != nil {
		return fmt.Errorf("cannot read %s: %w", path, err)
	}
	return nil
}

// scanTable is readTable's loop.
func scanTable(r io.Reader, row func([]string) bool) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<16)
	for first := true; sc.Scan(); first = false {
		if !first && !row(strings.Fields(sc.Text())) {
			return nil
		}
	}
	return sc.Err()
}

// tcpListen is the state of a listening socket in /proc/net/tcp.
const tcpListen = "0A"

// parseTCP records the inode of a listening TCP socket by its port:
// "sl local_address rem_address st ... uid timeout inode". It returns false
// at the first row of another state: the kernel lists every listening
// socket first (its listening hash, then the established one), so the rest
// of the table, every connection of a busy host (0.2-0.3 s for 36,000 of
// them), holds no listener.
func parseTCP(f []string, out map[int][]uint64) bool {
	if len(f) < 10 {
		return true
	}
	if f[3] != tcpListen {
		return false
	}
	i := strings.LastIndexByte(f[1], ':')
	if i < 0 {
		return true
	}
	port, err1 := strconv.ParseUint(f[1][i+1:], 16, 16)
	inode, err2 := strconv.ParseUint(f[9], 10, 64)
	if err1 == nil && err2 == nil {
		out[int(port)] = append(out[int(port)], inode)
	}
	return true
}

// unixListening is the flag of a listening unix socket in /proc/net/unix.
const unixListening = 0x10000

// parseUnix records the inode of a listening unix socket by its path:
// "Num RefCount Protocol Flags Type St Inode Path".
func parseUnix(f []string, out map[string][]uint64) {
	if len(f) < 8 {
		return
	}
	flags, err1 := strconv.ParseUint(f[3], 16, 32)
	inode, err2 := strconv.ParseUint(f[6], 10, 64)
	if err1 == nil && err2 == nil && flags&unixListening != 0 {
		out[f[7]] = append(out[f[7]], inode)
	}
}
