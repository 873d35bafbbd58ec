package reuseport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestPendingHandshakesReadsProcNet(t *testing.T) {
	dir := t.TempDir()
	tcp := `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0
   1: 0100007F:1F90 0100007F:B994 03 00000000:00000000 01:00000062 00000000     0        0 0 0 0
   2: 0100007F:1F90 0100007F:B996 01 00000000:00000000 00:00000000 00000000     0        0 2 1 0
   3: 0100007F:1F91 0100007F:B998 03 00000000:00000000 01:00000062 00000000     0        0 0 0 0
`
	tcp6 := `  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000001000000:1F90 00000000000000000000000001000000:C001 03 00000000:00000000 01:00000062 00000000     0        0 0 0 0
`
	os.WriteFile(filepath.Join(dir, "tcp"), []byte(tcp), 0o644)
	os.WriteFile(filepath.Join(dir, "tcp6"), []byte(tcp6), 0o644)
	old := procNet
	procNet = dir
	defer func() { procNet = old }()
	hs, err := PendingHandshakes(8080)
	if err != nil {
		t.Fatal(err)
	}
	want := Handshakes{
		"0100007F:1F90 0100007F:B994": true,
		"00000000000000000000000001000000:1F90 00000000000000000000000001000000:C001": true,
	}
	if fmt.Sprint(hs) != fmt.Sprint(want) {
		t.Fatalf("got %v, want %v", hs, want)
	}
	os.Remove(filepath.Join(dir, "tcp6"))
	if hs, err := PendingHandshakes(8080); err != nil || len(hs) != 1 {
		t.Fatalf("without IPv6: %v %v", hs, err)
	}
	os.Remove(filepath.Join(dir, "tcp"))
	if _, err := PendingHandshakes(8080); err == nil {
		t.Fatal("no error without /proc/net/tcp")
	}
}

// deferAccept makes a listener keep a handshake under way (SYN_RECV)
// until the client sends data: the kernel drops the bare final ACK. It
// holds a connection between "steered here" and "queued here" for as long
// as the test needs.
func deferAccept(t *testing.T, ln *net.TCPListener) {
	t.Helper()
	err := control(ln, func(fd int) error {
		return unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_DEFER_ACCEPT, 30)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// notReturned fails the test if Quiesce has already returned.
func notReturned(t *testing.T, ch <-chan error) {
	t.Helper()
	select {
	case err := <-ch:
		t.Fatalf("Quiesce returned while a connection could still reach the member: %v", err)
	default:
	}
}

// Quiesce returns only once the handshake begun before the flip has
// completed and its connection has been taken off the old member's queue.
func TestQuiesceWaitsForHandshakesAndQueue(t *testing.T) {
	lns := group(t, "tcp4", "127.0.0.1", 2)
	deferAccept(t, lns[1])
	p := port(lns[0])
	Steer(lns[0], 1)
	c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", p)) // the client is connected; the server waits for data
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	Steer(lns[0], 0)
	if err := Settle(); err != nil {
		t.Fatal(err)
	}
	before, err := PendingHandshakes(uint16(p))
	if err != nil {
		t.Fatal(err)
	}
	if len(before) != 1 {
		t.Fatalf("handshakes under way: %v, want the one held by TCP_DEFER_ACCEPT", before)
	}
	done := make(chan error, 1)
	go func() { done <- Quiesce(context.Background(), lns[1], uint16(p), before) }()

	time.Sleep(50 * time.Millisecond) // time for Quiesce to go wrong, if it would
	notReturned(t, done)
	c.Write([]byte("GET / HTTP/1.0\r\n\r\n")) // completes the handshake: the connection joins member 1's queue
	if got := distribution(t, lns, 1); got[1] != 1 {
		t.Fatalf("queues: %v", got)
	}
	time.Sleep(50 * time.Millisecond)
	notReturned(t, done)
	lns[1].SetDeadline(time.Now().Add(5 * time.Second))
	s, err := lns[1].Accept()
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestQuiesceEndsWithTheContext(t *testing.T) {
	lns := group(t, "tcp4", "127.0.0.1", 2)
	Steer(lns[0], 1)
	dialN(t, "127.0.0.1", port(lns[0]), 1)
	distribution(t, lns, 1)
	Steer(lns[0], 0)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := Quiesce(ctx, lns[1], uint16(port(lns[0])), nil)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("a queued connection nobody takes: %v, want the context's error", err)
	}
}

// server accepts from one member and answers every connection, until
// stopped; then it accepts no more, like a generation told to drain.
type server struct {
	ln      *net.TCPListener
	served  atomic.Int64
	stop    chan struct{}
	stopped chan struct{}
}

func serve(ln *net.TCPListener) *server {
	s := &server{ln: ln, stop: make(chan struct{}), stopped: make(chan struct{})}
	go func() {
		defer close(s.stopped)
		for {
			select {
			case <-s.stop:
				return
			default:
			}
			ln.SetDeadline(time.Now().Add(10 * time.Millisecond))
			c, err := ln.Accept()
			if err != nil {
				continue
			}
			s.served.Add(1)
			go func() {
				defer c.Close()
				b := make([]byte, 1)
				if _, err := c.Read(b); err == nil {
					c.Write(b)
				}
			}()
		}
	}()
	return s
}

func (s *server) halt() {
	close(s.stop)
	<-s.stopped
}

// The rollback under load: two generations, each accepting from its own
// member; the group is flipped to the other one, the old one keeps
// accepting until Quiesce says nothing can reach it anymore, then stops
// accepting for good (a drain), and a new one starts on that member before
// the next flip. Clients that connect all the time lose no connection:
// each gets its byte echoed. Without Quiesce, a connection whose handshake
// was under way to the old member at the flip joins its queue after the
// old server stopped accepting, and waits there forever.
func TestFlipUnderLoadLosesNothing(t *testing.T) {
	for _, f := range families {
		t.Run(f.name, func(t *testing.T) {
			t.Parallel()
			lns := group(t, f.network, f.host, 2)
			// Handshakes take a while, as over a real network: each
			// stays under way until the client's first byte, which it
			// sends up to 20ms after connecting, or 500ms for one
			// connection in ten.
			deferAccept(t, lns[0])
			deferAccept(t, lns[1])
			Steer(lns[0], 0)
			servers := []*server{serve(lns[0]), nil}
			var ok, failed atomic.Int64
			stop := make(chan struct{})
			var wg sync.WaitGroup
			for i := range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					addr := net.JoinHostPort(f.dial[i%len(f.dial)], fmt.Sprint(port(lns[0])))
					for {
						select {
						case <-stop:
							return
						default:
						}
						wait := time.Duration(rand.IntN(20)) * time.Millisecond
						if rand.IntN(10) == 0 {
							wait = 500 * time.Millisecond // a slow client
						}
						if err := echo(addr, wait); err != nil {
							failed.Add(1)
							t.Errorf("connection lost: %v", err)
							continue
						}
						ok.Add(1)
						time.Sleep(time.Millisecond)
					}
				}()
			}
			const flips = 10
			var slowest time.Duration
			for n := range flips {
				from, to := n%2, (n+1)%2
				servers[to] = serve(lns[to]) // the generation that takes over
				if err := Steer(lns[0], to); err != nil {
					t.Fatal(err)
				}
				if err := Settle(); err != nil {
					t.Fatal(err)
				}
				before, err := PendingHandshakes(uint16(port(lns[0])))
				if err != nil {
					t.Fatal(err)
				}
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				qs := time.Now()
				err = Quiesce(ctx, lns[from], uint16(port(lns[0])), before)
				cancel()
				slowest = max(slowest, time.Since(qs))
				if err != nil {
					t.Fatal(err)
				}
				servers[from].halt() // the old generation drains: it accepts no more
			}
			close(stop)
			wg.Wait()
			servers[flips%2].halt()
			t.Logf("%d connections over %d flips, %d lost; slowest Quiesce %s", ok.Load(), flips, failed.Load(), slowest)
			for i, ln := range lns {
				if w, _ := Waiting(ln); w {
					t.Errorf("member %d has a connection nobody will take", i)
				}
			}
			if ok.Load() == 0 {
				t.Fatal("no connection was made")
			}
		})
	}
}

// echo connects, waits, sends a byte and reads it back, within 10s: a
// connection stranded in a queue nobody accepts from times out.
func echo(addr string, wait time.Duration) error {
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	time.Sleep(wait)
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte{'x'}); err != nil {
		return err
	}
	b := make([]byte, 1)
	if _, err := io.ReadFull(c, b); err != nil {
		return err
	}
	return nil
}
