package maintenance

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// serve runs the server Run would run for cfg on a loopback listener and
// returns its address.
func serve(t *testing.T, cfg Config) string {
	t.Helper()
	h, err := newHandler(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := newServer(h, cfg)
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// mkfifo makes a named pipe at path and, when the test ends, opens it for
// writing once, which releases a reader still blocked in open(2) on it (so
// that a test of code without its fix fails instead of hanging).
func mkfifo(t *testing.T, path string) {
	t.Helper()
	if err := syscall.Mkfifo(path, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if fd, err := syscall.Open(path, syscall.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
			syscall.Close(fd)
		}
	})
}

func TestServerClosesIdleConnections(t *testing.T) {
	const idle = 200 * time.Millisecond
	addr := serve(t, Config{idleTimeout: idle})
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Close {
		t.Fatalf("got %d, close=%v; want the page on a kept-alive connection", resp.StatusCode, resp.Close)
	}
	// The client now stays idle; the server must hang up on it.
	const wait = 5 * time.Second
	conn.SetReadDeadline(time.Now().Add(wait))
	start := time.Now()
	_, err = br.ReadByte()
	if !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("the idle connection was still open after %v (read: %v); the idle timeout is %v", time.Since(start).Round(time.Millisecond), err, idle)
	}
}

func TestServerGivesUpOnClientsThatStopReading(t *testing.T) {
	const write = 200 * time.Millisecond
	static := t.TempDir()
	// Far more than the socket buffers of both ends hold; sparse, so it
	// costs no disk.
	const size = 128 << 20
	f, err := os.Create(filepath.Join(static, "big.bin"))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	f.Close()
	addr := serve(t, Config{StaticDir: static, writeTimeout: write})
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * write) // the client stops reading
	conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("got %d; want the static file", resp.StatusCode)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	if err == nil && n == size {
		t.Fatalf("the server sent all %d bytes to a client that stopped reading for %v; the write timeout is %v", n, 5*write, write)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the server neither sent the file nor hung up: %v", err)
	}
}

func TestServerLimitsHeaderSize(t *testing.T) {
	addr := serve(t, Config{})
	req, err := http.NewRequest("GET", "http://"+addr+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Big", strings.Repeat("a", 2*maxHeaderBytes))
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("a request with %d bytes of headers got %d; want %d", 2*maxHeaderBytes, resp.StatusCode, http.StatusRequestHeaderFieldsTooLarge)
	}
}

func TestStaticFIFOIsNotOpened(t *testing.T) {
	static := t.TempDir()
	h, err := newHandler(Config{Page: []byte("<h1>back soon</h1>"), StaticDir: static})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	mkfifo(t, filepath.Join(static, "pipe.css")) // released before ts.Close
	resp, err := (&http.Client{Timeout: 3 * time.Second}).Get(ts.URL + "/pipe.css")
	if err != nil {
		t.Fatalf("GET of a named pipe in the static directory: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || string(body) != "<h1>back soon</h1>" {
		t.Fatalf("a named pipe got %d %q; want the page with 503", resp.StatusCode, body)
	}
}

func TestLoadPage(t *testing.T) {
	dir := t.TempDir()
	page := filepath.Join(dir, "page.html")
	os.WriteFile(page, []byte("<h1>back soon</h1>"), 0o644)
	if b, err := LoadPage(page); err != nil || string(b) != "<h1>back soon</h1>" {
		t.Errorf("a page: %q, %v", b, err)
	}
	full := filepath.Join(dir, "full.html")
	os.WriteFile(full, make([]byte, maxPageSize), 0o644)
	if b, err := LoadPage(full); err != nil || len(b) != maxPageSize {
		t.Errorf("a page of the largest size: %d bytes, %v", len(b), err)
	}
	if b, err := LoadPage(""); err != nil || string(b) != defaultPage {
		t.Errorf("no page: %q, %v", b, err)
	}
	if _, err := LoadPage(filepath.Join(dir, "missing.html")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a missing page: %v; want one that wraps ErrNotExist", err)
	}
}

func TestLoadPageRefusesLargeFiles(t *testing.T) {
	page := filepath.Join(t.TempDir(), "page.html")
	os.WriteFile(page, make([]byte, maxPageSize+1), 0o644)
	_, err := LoadPage(page)
	if err == nil || !strings.Contains(err.Error(), page) || !strings.Contains(err.Error(), fmt.Sprint(maxPageSize)) {
		t.Fatalf("a page of %d bytes: %v; want an error that names the file and the limit", maxPageSize+1, err)
	}
}

func TestLoadPageRefusesFIFO(t *testing.T) {
	page := filepath.Join(t.TempDir(), "page.html")
	mkfifo(t, page)
	done := make(chan error, 1)
	go func() {
		_, err := LoadPage(page)
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), page) || !strings.Contains(err.Error(), "named pipe") {
			t.Fatalf("a named pipe as the page: %v; want an error that names it", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("LoadPage of a named pipe did not return within 5s")
	}
}
