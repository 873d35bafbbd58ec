// Command go-read-only is a Go app that honours sitectl's modes, built on
// package activation. sitectl tells an app its mode through the environment
// only: SITE_MODE holds the mode's name. In read-only mode this app refuses
// writes with 503 and keeps serving reads; it serves the sockets systemd
// passes, reports readiness, and drains on SIGTERM.
//
// For local development, without systemd: go-read-only --listen 127.0.0.1:8080
package main

import (
	"context"
	"encoding/json"
	"flag"
	"log"
	"net"
	"net/http"
	"os"

	"github.com/sitectl/sitectl/activation"
)

func main() {
	listen := flag.String("listen", "", "bind this address when not started by systemd")
	flag.Parse()

	mode := os.Getenv("SITE_MODE")
	readOnly := mode == "read-only"
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if readOnly && r.Method != http.MethodGet && r.Method != http.MethodHead && r.Method != http.MethodOptions {
			w.Header().Set("Retry-After", "60")
			http.Error(w, "This site is read-only for a moment; please try again shortly.", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]string{"mode": mode, "method": r.Method})
	})

	// The sockets systemd passes; binding an address is an explicit opt-in.
	listeners, err := activation.Listeners()
	if *listen != "" {
		listeners, err = activation.ListenersOrBind(map[string][]string{"http": {*listen}})
	}
	if err != nil {
		log.Fatal(err)
	}
	var all []net.Listener
	for _, ls := range listeners {
		all = append(all, ls...)
	}
	srv := &http.Server{Handler: mux}
	if err := activation.Serve(context.Background(), srv, all, activation.ServeOptions{}); err != nil {
		log.Fatal(err)
	}
}
