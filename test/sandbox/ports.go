package sandbox

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
)

// Ports for sites inside sandboxes that share the host's network. The
// kernel hands out ephemeral ports (ip_local_port_range, 32768-60999 on
// Debian) to every outgoing connection on the host, and a client without
// keep-alive can hold thousands of them at once in TIME_WAIT. A port asked
// of the kernel with ":0" comes from that same range, so on a busy host it is
// taken by someone's outgoing connection between the test choosing it and
// systemd binding it ("Failed to receive listening socket"). FreePort picks
// below the ephemeral range instead, where no outgoing connection lands.

// lowestPort bounds the range FreePort picks from: above the well-known
// and commonly configured service ports.
const lowestPort = 20000

var handedOut = struct {
	sync.Mutex
	m map[int]bool
}{m: map[int]bool{}}

// EphemeralRange is the host's ip_local_port_range.
func EphemeralRange() (lo, hi int, err error) {
	data, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0, 0, err
	}
	f := strings.Fields(string(data))
	if len(f) != 2 {
		return 0, 0, fmt.Errorf("ip_local_port_range %q is not two numbers", data)
	}
	if lo, err = strconv.Atoi(f[0]); err == nil {
		hi, err = strconv.Atoi(f[1])
	}
	return lo, hi, err
}

// FreePort returns a TCP port below the host's ephemeral range that nothing
// listens on right now (on any address) and that this process has not handed
// out before. Ports are picked at random, so test processes running side by
// side rarely try the same one.
func FreePort() (int, error) {
	lo, _, err := EphemeralRange()
	if err != nil {
		return 0, err
	}
	if lo <= lowestPort+1000 {
		return 0, fmt.Errorf("the ephemeral port range starts at %d, too low to pick ports below it", lo)
	}
	handedOut.Lock()
	defer handedOut.Unlock()
	for range 1000 {
		p := lowestPort + rand.IntN(lo-lowestPort)
		if handedOut.m[p] {
			continue
		}
		l, err := net.Listen("tcp", ":"+strconv.Itoa(p))
		if err != nil {
			continue
		}
		l.Close()
		handedOut.m[p] = true
		return p, nil
	}
	return 0, fmt.Errorf("no free TCP port between %d and %d after 1000 tries", lowestPort, lo)
}
