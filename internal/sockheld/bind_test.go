package sockheld

import (
	"net"
	"os"
	"strings"
	"testing"

	"github.com/sitectl/sitectl/internal/site"
)

// A lost listener that another process listens on cannot be bound by
// systemd: it is named. One the site's own processes hold (the restart
// stops them first) and a free one are not. (unbindable: Unbindable in
// this process's network namespace, which need not be PID 1's here.)
func TestUnbindable(t *testing.T) {
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	free, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	freeAddr := free.Addr().String()
	free.Close()
	heldAddr := held.Addr().String()
	s := &site.Site{Name: "shop", Listeners: []site.Listener{
		{Kind: site.TCP, Address: heldAddr}, {Kind: site.TCP, Address: freeAddr}, {Kind: site.Unix, Path: "/run/shop.sock"},
	}}
	lost := []string{heldAddr, freeAddr, "/run/shop.sock"}

	busy, err := unbindable("/proc", s, lost, nil)
	if err != nil || len(busy) != 1 || !strings.HasPrefix(busy[0], heldAddr+": another process listens there") {
		t.Errorf("held by another process: %q, %v", busy, err)
	}
	if busy, err := unbindable("/proc", s, lost, []int{os.Getpid()}); err != nil || len(busy) != 0 {
		t.Errorf("held by the site's own process: %q, %v", busy, err)
	}
	if busy, err := unbindable("/proc", s, []string{freeAddr}, nil); err != nil || len(busy) != 0 {
		t.Errorf("a free address: %q, %v", busy, err)
	}
	// Not an address of this host.
	s.Listeners = append(s.Listeners, site.Listener{Kind: site.TCP, Address: "192.0.2.1:8080"})
	if busy, err := unbindable("/proc", s, []string{"192.0.2.1:8080"}, nil); err != nil || len(busy) != 1 || !strings.Contains(busy[0], "192.0.2.1:8080: ") {
		t.Errorf("an address not on this host: %q, %v", busy, err)
	}
}
