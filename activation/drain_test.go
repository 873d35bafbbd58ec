package activation

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"testing"
	"time"
)

// A connection accepted just before the stop, whose request arrives just
// after it, is answered. net/http's Shutdown drops such a request unanswered;
// under socket activation it is the request that arrived with SIGTERM, and it
// was seen failing in restarts on a real systemd.
func TestRequestAfterStopOnAcceptedConnectionIsAnswered(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan struct{}, 1)
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("answered")) }),
		ConnState: func(c net.Conn, st http.ConnState) {
			if st == http.StateNew {
				accepted <- struct{}{}
			}
		},
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Serve(ctx, srv, []net.Listener{ln}, ServeOptions{NoNotify: true, Signals: []os.Signal{}, DrainTimeout: 5 * time.Second})
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	<-accepted // the server has accepted the connection, no request yet
	cancel()   // the stop begins
	time.Sleep(50 * time.Millisecond)
	if _, err := c.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
		t.Fatalf("writing the request: %v", err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("the request sent after the stop began got no answer: %v", err)
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, int64(len("answered"))))
	if resp.StatusCode != 200 || string(body) != "answered" {
		t.Errorf("status %d, body %q; want 200 answered", resp.StatusCode, body)
	}
	// No keep-alive while stopping: the server closes after the answer.
	if _, err := br.ReadByte(); err != io.EOF {
		t.Errorf("after the answer the connection is not closed: %v", err)
	}
	if err := <-done; err != nil {
		t.Fatalf("Serve: %v", err)
	}
}

// Idle keep-alive connections do not hold the drain up.
func TestIdleConnectionsDoNotDelayTheStop(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Serve(ctx, srv, []net.Listener{ln}, ServeOptions{NoNotify: true, Signals: []os.Signal{}, DrainTimeout: 10 * time.Second})
	}()
	client := &http.Client{}
	resp, err := client.Get("http://" + ln.Addr().String() + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close() // the connection stays open, idle
	start := time.Now()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("stopping with an idle connection took %s", d)
	}
}
