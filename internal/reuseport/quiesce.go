package reuseport

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// A handshake under way is a request socket (SYN_RECV): the kernel chose
// its listener when the SYN arrived, and the connection joins that
// listener's accept queue once the client's ACK (or first data) comes, an
// RTT later or, after losses, seconds later. /proc/net/tcp lists them with
// the listener's local address and port, but not which member of a group
// they belong to. Reading it costs time in proportion to all the TCP
// sockets of the network namespace (about 0.2s for 36,000 on the test
// machine); sock_diag over netlink would filter in the kernel, but the
// site units do not allow AF_NETLINK.

// Handshakes is a set of TCP handshakes under way, each named by its local
// and remote endpoint as /proc/net/tcp writes them.
type Handshakes map[string]bool

// procNet is where the kernel lists the sockets of the caller's network
// namespace; a variable for tests.
var procNet = "/proc/self/net"

// maxProcLines bounds how much of /proc/net/tcp is read: more sockets than
// that on one host is an error, not a reason to read on.
const maxProcLines = 4 << 20

// PendingHandshakes lists the TCP handshakes under way to a local port,
// IPv4 and IPv6, whatever the local address (a wildcard listener's are
// listed with the address the client connected to).
func PendingHandshakes(port uint16) (Handshakes, error) {
	hs := Handshakes{}
	suffix := fmt.Sprintf(":%04X", port)
	for _, name := range []string{"tcp", "tcp6"} {
		err := scanProcNet(filepath.Join(procNet, name), func(local, remote, state string) {
			if state == "03" && strings.HasSuffix(local, suffix) {
				hs[local+" "+remote] = true
			}
		})
		if err != nil {
			return nil, fmt.Errorf("cannot list the handshakes under way: %w", err)
		}
	}
	return hs, nil
}

// scanProcNet calls f with the local address, remote address and state of
// every line of a /proc/net/tcp file.
func scanProcNet(path string, f func(local, remote, state string)) error {
	file, err := os.Open(path)
	if os.IsNotExist(err) && strings.HasSuffix(path, "6") {
		return nil // no IPv6 in this kernel
	}
	if err != nil {
		return err
	}
	defer file.Close()
	sc := bufio.NewScanner(io.LimitReader(file, 1<<30))
	sc.Buffer(make([]byte, 0, 4096), 4096)
	for n := 0; sc.Scan(); n++ {
		if n > maxProcLines {
			return fmt.Errorf("%s: more than %d sockets", path, maxProcLines)
		}
		fields := strings.Fields(sc.Text())
		if n == 0 || len(fields) < 4 {
			continue // the header
		}
		f(fields[1], fields[2], fields[3])
	}
	return sc.Err()
}

// QuiesceInterval is how often [Quiesce] looks again.
const QuiesceInterval = 5 * time.Millisecond

// Quiesce waits until a member that no longer gets new connections (the
// group is steered elsewhere) can get none anymore and has none waiting:
// every handshake of before (listed after [Steer] and [Settle]) has
// ended, and the member's accept queue was seen empty after that, twice,
// an interval apart. The member's server must keep accepting meanwhile;
// after Quiesce it may stop without stranding a visitor. Quiesce returns
// ctx's error if that does not happen in time.
//
// The rollback of a warm standby is, per group:
//
//	Steer(member, back)    // the flip: new connections go to the warm one
//	Settle()
//	hs := PendingHandshakes(port)
//	Quiesce(ctx, old, port, hs)
//	// then tell the generation on old to drain
func Quiesce(ctx context.Context, member syscall.Conn, port uint16, before Handshakes) error {
	open := Handshakes{}
	for h := range before {
		open[h] = true
	}
	clean := 0
	for {
		n, err := stillOpen(port, open)
		if err != nil {
			return err
		}
		if n == 0 {
			waiting, err := Waiting(member)
			if err != nil {
				return err
			}
			if waiting {
				clean = 0
			} else if clean++; clean >= 2 {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("connections still reach the listener on port %d: %w", port, context.Cause(ctx))
		case <-time.After(QuiesceInterval):
		}
	}
}

// stillOpen counts the handshakes of open that are still under way, and
// removes the others from it.
func stillOpen(port uint16, open Handshakes) (int, error) {
	if len(open) == 0 {
		return 0, nil
	}
	now, err := PendingHandshakes(port)
	if err != nil {
		return 0, err
	}
	for h := range open {
		if !now[h] {
			delete(open, h)
		}
	}
	return len(open), nil
}
