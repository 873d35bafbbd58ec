//go:build integration

package warm

import (
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Unix sockets have no reuseport group. Two listening socket files and a
// symlink renamed over the public path steer them instead: connect()
// resolves the path once, so every connection reaches one socket or the
// other, never none. This flips every millisecond under four clients that
// connect in a loop and counts failed connections.
func TestUnixSymlinkFlip(t *testing.T) {
	dir := t.TempDir()
	var served [2]atomic.Int64
	for i, n := range []string{"a.sock", "b.sock"} {
		ln, err := net.Listen("unix", filepath.Join(dir, n))
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				served[i].Add(1)
				c.Write([]byte("x"))
				c.Close()
			}
		}()
	}
	public := filepath.Join(dir, "http.sock")
	os.Symlink("a.sock", public)
	var fails, total atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b := make([]byte, 1)
			for {
				select {
				case <-stop:
					return
				default:
				}
				total.Add(1)
				c, err := net.Dial("unix", public)
				if err != nil {
					fails.Add(1)
					t.Error(err)
					continue
				}
				if _, err := c.Read(b); err != nil {
					fails.Add(1)
				}
				c.Close()
			}
		}()
	}
	flips := 0
	var worst time.Duration
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); flips++ {
		target := []string{"b.sock", "a.sock"}[flips%2]
		start := time.Now()
		tmp := public + ".tmp"
		os.Remove(tmp)
		if err := os.Symlink(target, tmp); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, public); err != nil {
			t.Fatal(err)
		}
		worst = max(worst, time.Since(start))
		time.Sleep(time.Millisecond)
	}
	close(stop)
	wg.Wait()
	t.Logf("%d connects during %d flips (symlink+rename, worst %s): %d failed; served a=%d b=%d", total.Load(), flips, worst, fails.Load(), served[0].Load(), served[1].Load())
	if fails.Load() > 0 || served[0].Load() == 0 || served[1].Load() == 0 {
		t.Fatal("the flips lost connections or did not move them")
	}
}
