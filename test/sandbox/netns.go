package sandbox

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// NetNS gives a sandbox a network namespace of its own instead of the host's
// (Options.NetNS), for tests that need several hosts with addresses of their
// own: ssh into each, a listener on the same port in each, traffic between
// the test and one host only.
//
// Boot then starts the sandbox with `unshare --net` and, as soon as its
// PID 1 exists (before systemd runs), creates a veth pair from the host
// side: one end stays in the host's namespace as HostInterface() with
// HostAddr, the other is created directly inside the sandbox's namespace as
// eth0 with Addr; lo is brought up inside. Both addresses are given in CIDR
// notation and must lie in the same network, e.g. 10.213.1.1/30 (host) and
// 10.213.1.2/30 (sandbox). Nothing else is set up: no default route, no
// forwarding, no NAT. The test reaches the sandbox at Addr, the sandbox
// reaches the host end's address and nothing beyond it.
//
// Commands (Command, Run, ...) then run in the sandbox's network namespace
// too (nsenter -n), so 127.0.0.1 inside is the sandbox's own loopback.
//
// Cleanup: the veth pair belongs to the namespace and is destroyed with it
// when the sandbox's last process is gone (so also after a crash, once
// ReapStale killed what was left). Close deletes the host end explicitly as
// well, which removes the pair at once.
type NetNS struct {
	// HostAddr is the address of the host's end, e.g. "10.213.1.1/30".
	HostAddr string
	// Addr is the address of eth0 inside the sandbox, e.g. "10.213.1.2/30".
	Addr string
}

// netnsLock serializes the address check and the veth creation of
// sandboxes booted at the same time, by this process or by others.
// (Not named like a sandbox's work dir, which ReapStale looks at.)
const netnsLock = workBase + "/sitectl-netns.lock"

// parse checks the two prefixes.
func (n *NetNS) parse() (host, inside netip.Prefix, err error) {
	host, err = netip.ParsePrefix(n.HostAddr)
	if err != nil {
		return host, inside, fmt.Errorf("NetNS.HostAddr: %w", err)
	}
	inside, err = netip.ParsePrefix(n.Addr)
	if err != nil {
		return host, inside, fmt.Errorf("NetNS.Addr: %w", err)
	}
	if host.Bits() != inside.Bits() || host.Masked() != inside.Masked() {
		return host, inside, fmt.Errorf("NetNS: %s and %s are not in the same network", host, inside)
	}
	if host.Addr() == inside.Addr() {
		return host, inside, fmt.Errorf("NetNS: the host and the sandbox both have %s", host.Addr())
	}
	return host, inside, nil
}

// hostPrefixInUse returns the host interface that already has an address
// in p's network, if any.
func hostPrefixInUse(p netip.Prefix) (string, bool) {
	ifs, err := net.Interfaces()
	if err != nil {
		return "", false
	}
	for _, i := range ifs {
		addrs, err := i.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			ipn, ok := a.(*net.IPNet)
			if !ok {
				continue
			}
			ones, _ := ipn.Mask.Size()
			ap, ok := netip.AddrFromSlice(ipn.IP)
			if !ok {
				continue
			}
			other := netip.PrefixFrom(ap.Unmap(), ones)
			if other.Overlaps(p) {
				return i.Name, true
			}
		}
	}
	return "", false
}

// HostPrefixInUse reports whether an interface of the host (this network
// namespace) already has an address that overlaps prefix, such as
// "10.213.1.0/30": tests use it to pick free networks for NetNS.
func HostPrefixInUse(prefix string) (bool, error) {
	p, err := netip.ParsePrefix(prefix)
	if err != nil {
		return false, err
	}
	_, used := hostPrefixInUse(p.Masked())
	return used, nil
}

func ipCmd(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// setupNet creates and configures the veth pair of a sandbox whose PID 1
// (s.pid) runs in a new network namespace.
func (s *Sandbox) setupNet() error {
	host, inside, err := s.netns.parse()
	if err != nil {
		return err
	}
	lock, err := os.OpenFile(netnsLock, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("opening %s: %w", netnsLock, err)
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		return fmt.Errorf("locking %s: %w", netnsLock, err)
	}
	defer unix.Flock(int(lock.Fd()), unix.LOCK_UN)
	if name, used := hostPrefixInUse(host.Masked()); used {
		return fmt.Errorf("NetNS: the host's interface %s already has an address in %s", name, host.Masked())
	}
	pid := strconv.Itoa(s.pid)
	if err := ipCmd("link", "add", s.hostIf, "type", "veth", "peer", "name", "eth0", "netns", pid); err != nil {
		return err
	}
	s.createdLink = true
	steps := [][]string{
		{"addr", "add", host.String(), "dev", s.hostIf},
		{"link", "set", s.hostIf, "up"},
	}
	for _, a := range steps {
		if err := ipCmd(a...); err != nil {
			return err
		}
	}
	// Inside: only the network namespace is entered; the host's ip binary
	// configures it.
	for _, a := range [][]string{
		{"link", "set", "lo", "up"},
		{"addr", "add", inside.String(), "dev", "eth0"},
		{"link", "set", "eth0", "up"},
	} {
		args := append([]string{"-t", pid, "-n", "ip"}, a...)
		if out, err := exec.Command(s.nsenter, args...).CombinedOutput(); err != nil {
			return fmt.Errorf("nsenter %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
		}
	}
	s.addr = inside.Addr()
	s.logf("sandbox %s: own network namespace, %s on host interface %s, %s on eth0 inside", s.name, host, s.hostIf, inside)
	return nil
}

// removeLink deletes the host end of the veth pair if it still exists.
func (s *Sandbox) removeLink() error {
	if !s.createdLink {
		return nil
	}
	if _, err := os.Stat(filepath.Join("/sys/class/net", s.hostIf)); err != nil {
		return nil // went with the namespace
	}
	if err := ipCmd("link", "del", s.hostIf); err != nil {
		if _, serr := os.Stat(filepath.Join("/sys/class/net", s.hostIf)); serr != nil {
			return nil // went meanwhile
		}
		return err
	}
	return nil
}

// Addr returns the sandbox's own address (Options.NetNS.Addr without the
// prefix length), or the zero Addr when it shares the host's network.
func (s *Sandbox) Addr() netip.Addr { return s.addr }

// HostInterface returns the name of the host's end of the veth pair, or ""
// when the sandbox shares the host's network.
func (s *Sandbox) HostInterface() string {
	if s.netns == nil {
		return ""
	}
	return s.hostIf
}
