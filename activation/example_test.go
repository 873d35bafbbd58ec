package activation_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"syscall"
	"time"

	"github.com/sitectl/sitectl/activation"
)

// A service started by a .socket unit takes its listeners by name. Run
// without systemd, as here, it gets an error explaining what is missing.
func ExampleListeners() {
	listeners, err := activation.Listeners()
	if errors.Is(err, activation.ErrNotActivated) {
		fmt.Println("not socket-activated")
		return
	}
	if err != nil {
		log.Fatal(err) // a passed socket is unusable; the error names it
	}
	for name, ls := range listeners {
		for _, l := range ls {
			fmt.Println(name, l.Addr())
		}
	}
	// Output: not socket-activated
}

// Listener fails with an operator-readable error naming the expected socket
// and the FileDescriptorName= values systemd did pass.
func ExampleListener() {
	ls, err := activation.Listener("http")
	if err != nil {
		log.Fatal(err)
	}
	log.Fatal(activation.Serve(context.Background(), &http.Server{}, ls, activation.ServeOptions{}))
}

// ListenersOrBind is the explicit opt-in to bind addresses when the process
// was not socket-activated, for example during local development.
func ExampleListenersOrBind() {
	listeners, err := activation.ListenersOrBind(map[string][]string{
		"http": {"127.0.0.1:0"}, // port 0: any free port
	})
	if err != nil {
		log.Fatal(err)
	}
	for name, ls := range listeners {
		for _, l := range ls {
			fmt.Println(name, l.Addr().Network())
			l.Close()
		}
	}
	// Output: http tcp
}

// Serve sends READY=1 once every listener is served and drains in-flight
// requests on SIGTERM or, as here, when its context is canceled.
func ExampleServe() {
	listeners, err := activation.ListenersOrBind(map[string][]string{"http": {"127.0.0.1:0"}})
	if err != nil {
		log.Fatal(err)
	}
	url := "http://" + listeners["http"][0].Addr().String() + "/"
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "hello")
		}),
		ReadHeaderTimeout: 10 * time.Second,
	}

	ctx, stop := context.WithCancel(context.Background())
	err = activation.Serve(ctx, srv, listeners["http"], activation.ServeOptions{
		DrainTimeout: 5 * time.Second,
		OnReady: func() {
			fmt.Println("ready")
			go func() { // a client, then a stop request
				defer stop()
				resp, err := http.Get(url)
				if err != nil {
					fmt.Println(err)
					return
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				fmt.Println(resp.Status, string(body))
			}()
		},
		OnDrain: func(reason string) { fmt.Println("draining:", reason) },
	})
	fmt.Println("serve returned:", err)
	// Output:
	// ready
	// 200 OK hello
	// draining: context canceled
	// serve returned: <nil>
}

// SwitchKeepAlives installs a signal that turns keep-alive off and on
// again, so that a generation kept warm lets go of its clients' pooled
// connections without stopping; install it before Serve.
func ExampleSwitchKeepAlives() {
	listeners, err := activation.Listener("http")
	if err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{Handler: http.NotFoundHandler(), ReadHeaderTimeout: 10 * time.Second}
	stop, err := activation.SwitchKeepAlives(srv, syscall.SIGUSR2)
	if err != nil {
		log.Fatal(err)
	}
	defer stop()
	if err := activation.Serve(context.Background(), srv, listeners, activation.ServeOptions{}); err != nil {
		log.Fatal(err)
	}
}
