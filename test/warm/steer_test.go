//go:build integration

package warm

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sitectl/sitectl/internal/loadgen"
)

// protoUnits writes proto.service (steerproto in sitectl's sandbox),
// proto-ctl.socket for its control socket, and the given member socket
// units (name -> [Socket] lines).
func (b *box) protoUnits(ctlPort int, members map[string]string) {
	b.t.Helper()
	var names []string
	for name, lines := range members {
		b.write("/etc/systemd/system/"+name, "[Unit]\nStartLimitIntervalSec=0\n[Socket]\n"+lines+"\nService=proto.service\n")
		names = append(names, name)
	}
	slices.Sort(names)
	b.write("/etc/systemd/system/proto-ctl.socket", fmt.Sprintf("[Socket]\nListenStream=127.0.0.1:%d\nFileDescriptorName=ctl\nService=proto.service\n", ctlPort))
	all := strings.Join(append(names, "proto-ctl.socket"), " ")
	b.write("/etc/systemd/system/proto.service", fmt.Sprintf(`[Unit]
StartLimitIntervalSec=0
Requires=%[1]s
After=%[1]s
[Service]
Type=notify
NotifyAccess=main
ExecStart=/usr/local/bin/steerproto
Sockets=%[1]s
%[2]s
`, all, hardening(b.t)))
	b.run("systemctl", "daemon-reload")
}

type protoInfo struct {
	Sockets []struct {
		Name string `json:"name"`
		Addr string `json:"addr"`
	} `json:"sockets"`
	Groups []struct {
		Addr    string `json:"Addr"`
		V6Only  bool   `json:"V6Only"`
		Members []int  `json:"Members"`
	} `json:"groups"`
}

func info(t *testing.T, ctl string) protoInfo {
	t.Helper()
	var in protoInfo
	if err := json.Unmarshal([]byte(mustGet(t, ctl+"/info")), &in); err != nil {
		t.Fatal(err)
	}
	return in
}

// member returns which member answered GET url.
func member(t *testing.T, url string) int {
	t.Helper()
	_, _, h := get(t, url)
	n, err := strconv.Atoi(h.Get("X-Member"))
	if err != nil {
		t.Fatalf("GET %s: no X-Member header", url)
	}
	return n
}

// counts tallies which members answered n requests.
func counts(t *testing.T, url string, n int) map[int]int {
	t.Helper()
	c := map[int]int{}
	for range n {
		c[member(t, url)]++
	}
	return c
}

// A socket unit with ReusePort=yes and one address listed twice: systemd
// 252 accepts it, passes both sockets under the unit's name in the order
// listed, and that order is the kernel's group order (Verify's probes).
// Steering sends every new connection to one member; the flip is one
// setsockopt inside sitectl's service sandbox (seccomp @system-service
// without @privileged @resources, no capabilities, DynamicUser). IPv4, IPv6
// and a dual-stack [::] group.
func TestSteerOneSocketUnit(t *testing.T) {
	for _, c := range []struct {
		name, listen string
		extra        string
		urls         []string
	}{
		{"ipv4", "127.0.0.1:%d", "", []string{"http://127.0.0.1:%d/"}},
		{"ipv6", "[::1]:%d", "BindIPv6Only=ipv6-only", []string{"http://[::1]:%d/"}},
		{"dualstack", "[::]:%d", "BindIPv6Only=both", []string{"http://127.0.0.1:%d/", "http://[::1]:%d/"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := newBox(t)
			port, ctlPort := freePort(t), freePort(t)
			addr := fmt.Sprintf(c.listen, port)
			b.protoUnits(ctlPort, map[string]string{"proto.socket": fmt.Sprintf("ListenStream=%s\nListenStream=%s\nReusePort=yes\nFileDescriptorName=http\n%s", addr, addr, c.extra)})
			b.run("systemctl", "start", "proto.socket", "proto-ctl.socket")
			t.Logf("systemctl show proto.socket -p Listen: %s", strings.TrimSpace(b.run("systemctl", "show", "proto.socket", "-p", "Listen")))
			ctl := fmt.Sprintf("http://127.0.0.1:%d", ctlPort)
			waitGet(t, ctl+"/info")
			in := info(t, ctl)
			t.Logf("passed: %+v; groups: %+v", in.Sockets, in.Groups)
			if len(in.Groups) != 1 || len(in.Groups[0].Members) != 2 {
				t.Fatalf("want one group of two members, got %+v", in.Groups)
			}
			for _, i := range in.Groups[0].Members {
				if in.Sockets[i].Name != "http" {
					t.Fatalf("member %d is named %q, want http", i, in.Sockets[i].Name)
				}
			}
			if body := mustGet(t, ctl+"/verify?sel=0"); strings.TrimSpace(body) != "ok" {
				t.Fatalf("verify: %s", body)
			}
			mustGet(t, ctl+"/serve")
			var pending, seen int
			fmt.Sscan(mustGet(t, fmt.Sprintf("%s/handshakes?port=%d", ctl, port)), &pending, &seen)
			t.Logf("/proc/self/net/tcp{,6} in the unit's sandbox (ProcSubset=pid): %d handshakes under way, %d sockets on the port", pending, seen)
			if seen < 2 {
				t.Fatalf("the service sees %d sockets on port %d in /proc/self/net, want its 2 listeners at least", seen, port)
			}
			for _, u := range c.urls {
				url := fmt.Sprintf(u, port)
				for _, k := range []int{0, 1, 0} {
					mustGet(t, fmt.Sprintf("%s/steer?to=%d", ctl, k))
					if got := counts(t, url, 20); got[k] != 20 {
						t.Fatalf("%s steered to member %d: answered by %v", url, k, got)
					}
				}
			}
			measureFlips(t, ctl, fmt.Sprintf(c.urls[0], port), 40)
		})
	}
}

// measureFlips flips n times between the members and logs how long each
// took from the control request to the first answer from the newly
// selected member. No answer may come from the old member once the
// control request returned.
func measureFlips(t *testing.T, ctl, url string, n int) {
	t.Helper()
	var flips, setsockopt, settle []time.Duration
	for i := range n {
		k := (i + 1) % 2
		start := time.Now()
		var us, settleUs int
		if _, err := fmt.Sscan(mustGet(t, fmt.Sprintf("%s/steer?to=%d", ctl, k)), &us, &settleUs); err != nil {
			t.Fatal(err)
		}
		if got := member(t, url); got != k {
			t.Fatalf("flip %d: steered to %d, the next connection went to %d", i, k, got)
		}
		flips = append(flips, time.Since(start))
		setsockopt = append(setsockopt, time.Duration(us)*time.Microsecond)
		settle = append(settle, time.Duration(settleUs)*time.Microsecond)
	}
	t.Logf("flip, control request to first answer by the other member, %d flips: %s", n, summary(flips))
	t.Logf("flip, setsockopt inside the service: %s", summary(setsockopt))
	t.Logf("then reuseport.Settle (membarrier) inside the service: %s", summary(settle))
}

func summary(ds []time.Duration) string {
	s := slices.Clone(ds)
	slices.Sort(s)
	q := func(p float64) time.Duration { return s[int(p*float64(len(s)-1))] }
	return fmt.Sprintf("min %s, p50 %s, p90 %s, max %s", s[0], q(0.5), q(0.9), s[len(s)-1])
}

// The program belongs to the kernel's group, so it outlives a restart of
// the service (the launcher) while the socket unit stays; a socket unit
// restarted creates a new group, without a program, in the order listed
// again.
func TestSteerAcrossRestarts(t *testing.T) {
	b := newBox(t)
	port, ctlPort := freePort(t), freePort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	b.protoUnits(ctlPort, map[string]string{"proto.socket": fmt.Sprintf("ListenStream=%s\nListenStream=%s\nReusePort=yes\nFileDescriptorName=http\n", addr, addr)})
	b.run("systemctl", "start", "proto.socket", "proto-ctl.socket")
	ctl := fmt.Sprintf("http://127.0.0.1:%d", ctlPort)
	url := "http://" + addr + "/"
	waitGet(t, ctl+"/info")
	mustGet(t, ctl+"/verify?sel=1")
	mustGet(t, ctl+"/serve")
	if got := counts(t, url, 20); got[1] != 20 {
		t.Fatalf("steered to 1: %v", got)
	}

	b.run("systemctl", "restart", "proto.service")
	waitGet(t, ctl+"/info")
	mustGet(t, ctl+"/serve")
	got := counts(t, url, 40)
	t.Logf("after systemctl restart proto.service, no new program attached: %v", got)
	if got[1] != 40 {
		t.Fatalf("the group's program did not survive the service's restart: %v", got)
	}

	for i := range 5 {
		b.run("systemctl", "stop", "proto.service", "proto.socket")
		b.run("systemctl", "start", "proto.socket")
		waitGet(t, ctl+"/info")
		mustGet(t, ctl+"/serve")
		got := counts(t, url, 40)
		t.Logf("socket unit re-created (%d): no program, hash: %v", i, got)
		if got[0] == 0 || got[1] == 0 {
			t.Fatalf("a fresh group still steers: %v", got)
		}
		b.run("systemctl", "restart", "proto.service")
		waitGet(t, ctl+"/info")
		if body := mustGet(t, ctl+"/verify?sel=0"); strings.TrimSpace(body) != "ok" {
			t.Fatalf("re-created group %d: %s", i, body)
		}
	}
}

// Two socket units on one address with different FileDescriptorName=:
// systemd accepts them, but the order it passes them in follows its own
// bookkeeping, and the group's order follows which unit listened first.
// This logs both, to show why one unit with the address listed twice is
// the layout to use.
func TestSteerTwoSocketUnits(t *testing.T) {
	b := newBox(t)
	port, ctlPort := freePort(t), freePort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	b.protoUnits(ctlPort, map[string]string{
		"proto-a.socket": fmt.Sprintf("ListenStream=%s\nReusePort=yes\nFileDescriptorName=a\n", addr),
		"proto-b.socket": fmt.Sprintf("ListenStream=%s\nReusePort=yes\nFileDescriptorName=b\n", addr),
	})
	ctl := fmt.Sprintf("http://127.0.0.1:%d", ctlPort)
	for i, start := range [][]string{{"proto-a.socket", "proto-b.socket"}, {"proto-b.socket", "proto-a.socket"}, {"proto-a.socket"}, {"proto-b.socket"}} {
		b.run("systemctl", "stop", "proto.service", "proto-a.socket", "proto-b.socket")
		for _, u := range start {
			b.run("systemctl", "start", u)
		}
		b.run("systemctl", "start", "proto-ctl.socket", "proto.service")
		waitGet(t, ctl+"/info")
		in := info(t, ctl)
		var order []string
		for _, s := range in.Sockets {
			order = append(order, s.Name)
		}
		_, verify, _ := get(t, ctl+"/verify?sel=0")
		t.Logf("start %d (%v, then the service): fds passed as %v; fd order is the group order: %s", i, start, order, strings.TrimSpace(verify))
		if len(in.Groups) != 1 || len(in.Groups[0].Members) != 2 {
			t.Fatalf("want one group of two members, got %+v", in.Groups)
		}
	}
}

// Flipping back and forth every 50 ms under load fails no request: both
// members keep accepting, and a flip moves no connection already made.
func TestSteerFlipsUnderLoad(t *testing.T) {
	b := newBox(t)
	port, ctlPort := freePort(t), freePort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	b.protoUnits(ctlPort, map[string]string{"proto.socket": fmt.Sprintf("ListenStream=%s\nListenStream=%s\nReusePort=yes\nFileDescriptorName=http\n", addr, addr)})
	b.run("systemctl", "start", "proto.socket", "proto-ctl.socket")
	ctl := fmt.Sprintf("http://127.0.0.1:%d", ctlPort)
	waitGet(t, ctl+"/info")
	mustGet(t, ctl+"/verify?sel=0")
	mustGet(t, ctl+"/serve")

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan []loadgen.Result)
	go func() {
		done <- loadgen.Run(ctx, loadgen.Config{URL: "http://" + addr + "/", Rate: 300, Duration: 6 * time.Second})
	}()
	flips := 0
	for end := time.Now().Add(6 * time.Second); time.Now().Before(end); flips++ {
		mustGet(t, fmt.Sprintf("%s/steer?to=%d", ctl, flips%2))
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	results := <-done
	by := map[string]int{}
	failed := 0
	for _, r := range results {
		if r.Outcome != loadgen.OK {
			failed++
			t.Errorf("request at %s: %s %s", r.Start.Format("15:04:05.000"), r.Outcome, r.Detail)
			continue
		}
		by[r.Header.Get("X-Member")]++
	}
	t.Logf("%d requests during %d flips: %d failed; answered by member: %v", len(results), flips, failed, by)
	if by["0"] == 0 || by["1"] == 0 {
		t.Fatalf("the flips did not move new connections: %v", by)
	}
}

// Unix-socket listeners have no reuseport group. The way to steer them is
// two socket files and an atomic rename of a symlink over the public path
// (measured in internal/reuseport's tests). This checks what systemd 252
// makes of it: Symlinks= is refused with two unix sockets in one unit, so
// the public path cannot be systemd's; the two sockets are passed in the
// order listed.
func TestUnixSocketUnit(t *testing.T) {
	b := newBox(t)
	ctlPort := freePort(t)
	b.protoUnits(ctlPort, map[string]string{"proto.socket": "ListenStream=/run/proto/a.sock\nListenStream=/run/proto/b.sock\nFileDescriptorName=http\nSymlinks=/run/proto/http.sock\n"})
	_, err := b.sb.Run(b.ctx, "systemctl", "start", "proto.socket")
	t.Logf("Symlinks= with two unix sockets: %s", strings.TrimSpace(b.run("journalctl", "-u", "proto.socket", "--no-pager", "-o", "cat")))
	if err == nil {
		t.Fatal("systemd accepted Symlinks= with two unix sockets")
	}
	b.protoUnits(ctlPort, map[string]string{"proto.socket": "ListenStream=/run/proto/b.sock\nListenStream=/run/proto/a.sock\nFileDescriptorName=http\n"})
	b.run("systemctl", "start", "proto.socket", "proto-ctl.socket")
	ctl := fmt.Sprintf("http://127.0.0.1:%d", ctlPort)
	waitGet(t, ctl+"/info")
	in := info(t, ctl)
	var http []string
	for _, s := range in.Sockets {
		if s.Name == "http" {
			http = append(http, s.Addr)
		}
	}
	t.Logf("two unix sockets passed as %v", http)
	if !slices.Equal(http, []string{"/run/proto/b.sock", "/run/proto/a.sock"}) {
		t.Fatalf("unix sockets not passed in the order listed: %v", http)
	}
}
