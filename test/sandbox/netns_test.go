//go:build integration

package sandbox

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// freeNet returns a NetNS on the first 10.213.N.0/30 (N from first) that
// no host interface uses.
func freeNet(t *testing.T, first int) *NetNS {
	t.Helper()
	for n := first; n < 255; n++ {
		used, err := HostPrefixInUse(fmt.Sprintf("10.213.%d.0/30", n))
		if err != nil {
			t.Fatal(err)
		}
		if !used {
			return &NetNS{HostAddr: fmt.Sprintf("10.213.%d.1/30", n), Addr: fmt.Sprintf("10.213.%d.2/30", n)}
		}
	}
	t.Fatal("no free 10.213.N.0/30 network on the host")
	return nil
}

// TestNetNS: a sandbox with a network namespace of its own is reachable
// at its address only, its commands run in that namespace, and Close takes
// the veth pair away.
func TestNetNS(t *testing.T) {
	nn := freeNet(t, 200)
	ctx := testCtx(t)
	s, err := Boot(ctx, Options{Name: "netns", Log: tLogWriter{t}, NetNS: nn})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	hostIf := s.HostInterface()
	if _, err := os.Stat(filepath.Join("/sys/class/net", hostIf)); err != nil {
		t.Fatalf("host end of the veth pair: %v", err)
	}
	if got := s.Addr().String(); got+"/30" != nn.Addr {
		t.Errorf("Addr() = %s, want the address of %s", got, nn.Addr)
	}
	if got := run(t, s, "systemctl", "is-system-running"); got != "running" {
		t.Fatalf("is-system-running = %q, want running", got)
	}
	own, _ := os.Readlink("/proc/self/ns/net")
	if inner, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", s.PID())); inner == own {
		t.Fatalf("the sandbox's systemd is in the host's network namespace %s", own)
	}
	if got := run(t, s, "readlink", "/proc/self/ns/net"); got == own {
		t.Errorf("commands run in the host's network namespace %s", own)
	}
	addrs := run(t, s, "ip", "-4", "-o", "addr", "show")
	for _, want := range []string{"inet 127.0.0.1/8", "inet " + nn.Addr} {
		if !strings.Contains(addrs, want) {
			t.Errorf("inside, ip addr does not show %q:\n%s", want, addrs)
		}
	}

	// A listener inside on all addresses, reached from the host at the
	// sandbox's address.
	if _, err := s.Run(ctx, "systemd-run", "--unit=listener", "--", "/usr/bin/python3", "-m", "http.server",
		"--bind", "0.0.0.0", "--directory", "/etc", "8099"); err != nil {
		t.Fatal(err)
	}
	addr := net.JoinHostPort(s.Addr().String(), "8099")
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the listener inside is not reachable at %s from the host: %v", addr, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// ... and not on the host's loopback.
	if c, err := net.DialTimeout("tcp", "127.0.0.1:8099", time.Second); err == nil {
		c.Close()
		t.Errorf("the sandbox's listener is reachable at the host's 127.0.0.1:8099")
	}
	if out := run(t, s, "python3", "-c", "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:8099/hostname').status)"); out != "200" {
		t.Errorf("inside, 127.0.0.1:8099 answered %q", out)
	}

	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join("/sys/class/net", hostIf)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("after Close the host interface %s still exists (%v)", hostIf, err)
	}
	if used, _ := HostPrefixInUse(nn.HostAddr); used {
		t.Errorf("after Close the host still has an address in %s", nn.HostAddr)
	}
	assertNoLeftovers(t, "netns")
}

// A NetNS whose addresses are not one network, or whose network the host
// already uses, is refused and leaves nothing behind.
func TestNetNSRefused(t *testing.T) {
	ctx := testCtx(t)
	if _, err := Boot(ctx, Options{Name: "netns-bad", NetNS: &NetNS{HostAddr: "10.213.250.1/30", Addr: "10.213.251.2/30"}}); err == nil || !strings.Contains(err.Error(), "same network") {
		t.Errorf("Boot with addresses in two networks: %v", err)
	}
	nn := freeNet(t, 210)
	first := New(t, Options{Name: "netns-first", NetNS: nn})
	_, err := Boot(ctx, Options{Name: "netns-dup", Log: tLogWriter{t}, NetNS: nn})
	if err == nil || !strings.Contains(err.Error(), "already has an address") {
		t.Errorf("Boot on a network the host already uses: %v", err)
	}
	assertNoLeftovers(t, "netns-dup")
	if got := run(t, first, "systemctl", "is-system-running"); got != "running" {
		t.Errorf("the first sandbox is %q after the refused one", got)
	}
}
