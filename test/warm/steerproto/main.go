// Command steerproto is the prototype of "steer, don't freeze" (issue 15,
// docs/warm-rollback.md), run as a service of a real systemd by the tests
// in test/warm. It takes every socket systemd passes. The ones named "ctl"
// answer control requests; every other one is a member of a reuseport
// group, served by its own HTTP server once /serve is asked for, answering
// which member took the connection.
//
// Control (GET on a "ctl" socket):
//
//	/info              the passed sockets (name, address) and the groups found
//	/verify?sel=N      reuseport.Verify of each group, N selected
//	/steer?to=N        steer each group to member N, then reuseport.Settle;
//	                   answers the microseconds each took
//	/serve             start serving every member
//	/handshakes?port=P the handshakes under way to port P, and the sockets on
//	                   it that /proc/self/net/tcp{,6} shows at all
//
// A member answers GET / with "member N pid P" and an X-Member header.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/sitectl/sitectl/activation"
	"github.com/sitectl/sitectl/internal/reuseport"
)

type proto struct {
	files  []*os.File
	names  []string
	groups []reuseport.Group
	serve  sync.Once
}

func main() {
	names := strings.Split(os.Getenv("LISTEN_FDNAMES"), ":")
	p := &proto{files: activation.Files(true), names: names}
	if len(p.files) == 0 {
		log.Fatal("steerproto: no sockets passed")
	}
	conns := make([]syscall.Conn, len(p.files))
	for i, f := range p.files {
		conns[i] = f
	}
	groups, err := reuseport.Groups(conns)
	if err != nil {
		log.Fatal(err)
	}
	p.groups = groups
	mux := http.NewServeMux()
	mux.HandleFunc("/info", p.info)
	mux.HandleFunc("/verify", p.verify)
	mux.HandleFunc("/steer", p.steer)
	mux.HandleFunc("/serve", p.startServing)
	mux.HandleFunc("/handshakes", handshakes)
	for i, f := range p.files {
		if i < len(names) && names[i] == "ctl" {
			ln, err := net.FileListener(f)
			if err != nil {
				log.Fatal(err)
			}
			go http.Serve(ln, mux)
		}
	}
	activation.Ready()
	select {}
}

func (p *proto) info(w http.ResponseWriter, r *http.Request) {
	type sock struct {
		Name string `json:"name"`
		Addr string `json:"addr"`
	}
	var out struct {
		Sockets []sock            `json:"sockets"`
		Groups  []reuseport.Group `json:"groups"`
	}
	for i, f := range p.files {
		addr := "?"
		if ln, err := net.FileListener(f); err == nil {
			addr = ln.Addr().String()
			ln.Close() // a duplicate of the passed descriptor
		}
		out.Sockets = append(out.Sockets, sock{p.name(i), addr})
	}
	out.Groups = p.groups
	json.NewEncoder(w).Encode(out)
}

func (p *proto) name(i int) string {
	if i < len(p.names) {
		return p.names[i]
	}
	return ""
}

func (p *proto) members(g reuseport.Group) []syscall.Conn {
	var m []syscall.Conn
	for _, i := range g.Members {
		m = append(m, p.files[i])
	}
	return m
}

func (p *proto) verify(w http.ResponseWriter, r *http.Request) {
	sel, _ := strconv.Atoi(r.FormValue("sel"))
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	for _, g := range p.groups {
		if err := reuseport.Verify(ctx, p.members(g), sel); err != nil {
			http.Error(w, err.Error(), http.StatusConflict)
			return
		}
	}
	fmt.Fprintln(w, "ok")
}

func (p *proto) steer(w http.ResponseWriter, r *http.Request) {
	to, _ := strconv.Atoi(r.FormValue("to"))
	start := time.Now()
	for _, g := range p.groups {
		if err := reuseport.Steer(p.files[g.Members[0]], to); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
	}
	steered := time.Since(start)
	if err := reuseport.Settle(); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	fmt.Fprintf(w, "%d %d\n", steered.Microseconds(), (time.Since(start) - steered).Microseconds())
}

func (p *proto) startServing(w http.ResponseWriter, r *http.Request) {
	p.serve.Do(func() {
		pid := os.Getpid()
		for _, g := range p.groups {
			for n, i := range g.Members {
				ln, err := net.FileListener(p.files[i])
				if err != nil {
					log.Fatal(err)
				}
				h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					w.Header().Set("X-Member", strconv.Itoa(n))
					fmt.Fprintf(w, "member %d pid %d\n", n, pid)
				})
				go http.Serve(ln, h)
			}
		}
	})
	fmt.Fprintln(w, "ok")
}

func handshakes(w http.ResponseWriter, r *http.Request) {
	port, _ := strconv.Atoi(r.FormValue("port"))
	hs, err := reuseport.PendingHandshakes(uint16(port))
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	// The sockets on the port that /proc shows this process at all (the
	// listeners at least), to tell "none under way" from "nothing visible".
	data, err := os.ReadFile("/proc/self/net/tcp")
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	data6, _ := os.ReadFile("/proc/self/net/tcp6")
	seen := strings.Count(string(data)+string(data6), fmt.Sprintf(":%04X ", port))
	fmt.Fprintf(w, "%d %d\n", len(hs), seen)
}
