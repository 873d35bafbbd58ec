package activation

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"syscall"
	"testing"
	"time"
)

// Once Serve drains, the keep-alive switch cannot turn keep-alive back on:
// a response finished during the drain must tell its client that the
// connection closes, or the client sends its next request on a connection
// the drain closes under it.
func TestSwitchKeepAlivesCannotReopenADrain(t *testing.T) {
	notify := notifySocket(t)
	inHandler := make(chan struct{})
	release := make(chan struct{})
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/block" {
			inHandler <- struct{}{}
			<-release
		}
		io.WriteString(w, "ok")
	})}
	stop, err := SwitchKeepAlives(srv, syscall.SIGUSR2)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	readNotify(t, notify, 5*time.Second) // the announcement
	syscall.Kill(syscall.Getpid(), syscall.SIGUSR2)
	if got := readNotify(t, notify, 5*time.Second); got != KeepAliveField+"=0" {
		t.Fatalf("after the first signal: %q", got)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	drained := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- Serve(ctx, srv, []net.Listener{ln}, ServeOptions{
			NoNotify: true, Signals: []os.Signal{}, DrainTimeout: 10 * time.Second,
			OnDrain: func(string) { close(drained) },
		})
	}()
	busy := dialRaw(t, ln.Addr().String())
	busy.send(t, "/block")
	<-inHandler
	cancel()
	<-drained // keep-alive went off before OnDrain was called
	syscall.Kill(syscall.Getpid(), syscall.SIGUSR2)
	got := readNotify(t, notify, 5*time.Second)
	close(release)
	if !busy.response(t) {
		t.Errorf("a response finished during the drain did not say the connection closes")
	}
	if got != KeepAliveField+"=0" {
		t.Errorf("the switch during the drain reported %q, want %s=0: keep-alive stays off", got, KeepAliveField)
	}
	if err := <-done; err != nil {
		t.Errorf("Serve: %v", err)
	}
}
