// Command webapp is a tiny HTTP application for sitectl's integration tests.
// It is built only on package activation: it serves every socket systemd
// passes it, reports readiness with sd_notify and drains in-flight requests
// on SIGTERM, and it can be told to misbehave in the ways the tests need.
//
// Usage:
//
//	webapp [--listen ADDR] [--fail-start] [--spawn-children N]
//
// Flags:
//
//	--listen ADDR        when not socket-activated, bind ADDR (TCP host:port or
//	                     absolute unix socket path) as listener "http" instead of
//	                     failing; activated sockets still win when present
//	--fail-start         exit with status 1 at once (also WEBAPP_FAIL_START=1)
//	--spawn-children N   start N copies of itself in child mode that run until
//	                     SIGTERM; they are deliberately not stopped on exit, so
//	                     tests can check that systemd cleans them up
//	--child              internal: the child mode used by --spawn-children
//
// Environment:
//
//	SITE, SITE_MODE, SITE_GENERATION  reported by / (and X-Site-Mode)
//	WEBAPP_FAIL_START=1               same as --fail-start
//	WEBAPP_START_DELAY=2s             wait this long before serving (cold start)
//	WEBAPP_READY_MODE=notify|none     send READY=1/STOPPING=1 (default) or not
//	WEBAPP_EXPOSE_ENV=A,B             more variables for the "env" object of /
//	WEBAPP_IGNORE_TERM=1              never stop on SIGTERM (for failsafe tests)
//	WEBAPP_EXIT_AFTER_READY=300ms     exit with status WEBAPP_EXIT_STATUS (default 1)
//	                                  this long after it is ready (READY=1 sent): an
//	                                  app that crashes right after its start
//	WEBAPP_SET_MODE=NAME              re-exec itself at once with SITE_MODE=NAME (the
//	                                  process then runs, and says, another mode than
//	                                  the one it was started in, as a wrapper script
//	                                  that sets SITE_MODE would)
//	WEBAPP_KEEPALIVE_SWITCH=1         install activation.SwitchKeepAlives on SIGUSR2
//	WEBAPP_SPAWN_CHILDREN=N           same as --spawn-children N
//	WEBAPP_CHILD_MARKER_DIR=DIR       children write DIR/child-N.cleaned on SIGTERM
//	WEBAPP_CHILD_IGNORE_TERM=N|all    child number N (or every child) ignores SIGTERM
//	WEBAPP_CHILD_DAEMONIZE=N|all      child number N (or every child) daemonizes:
//	                                  it starts a copy of itself in a session of its
//	                                  own and exits, so the copy is reparented
//	SITE_DRAIN_TIMEOUT=30s            drain timeout on SIGTERM (package activation)
//
// Endpoints:
//
//	/             200, JSON {"site","mode","pid","generation","listener","env"}
//	              where env holds every SITE_* and WEBAPP_* variable plus those
//	              named by WEBAPP_EXPOSE_ENV
//	/env?name=V   200 with the value of V, 404 if V is unset
//	/sleep?d=5s   sleeps for d, then 200 (for drain tests)
//	/health       200 "ok"
//	/read?path=P  200 with the first 64 KiB of file P (a path under
//	              $CREDENTIALS_DIRECTORY when P is relative), 403 with the
//	              error when the app may not read it
//	/dial?addr=A  200 "connected" if a TCP connection to A (host:port)
//	              succeeds within 3 s, 502 with the error otherwise
//
// Every response carries X-Site-Mode, X-Site-Generation and X-Pid. Each
// lifecycle event is logged as one line on stderr.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sitectl/sitectl/activation"
)

var logger = log.New(os.Stderr, "webapp: ", 0)

func main() {
	os.Exit(run())
}

func run() int {
	listen := flag.String("listen", "", "bind `ADDR` (host:port or absolute unix path) as listener \"http\" when not socket-activated")
	failStart := flag.Bool("fail-start", false, "exit with status 1 at once (also WEBAPP_FAIL_START=1)")
	spawn := flag.Int("spawn-children", 0, "start `N` child processes that run until SIGTERM and are not stopped on exit")
	childMode := flag.Bool("child", false, "internal: run as a child started by --spawn-children")
	flag.Parse()
	if flag.NArg() > 0 {
		logger.Printf("unexpected arguments %q", flag.Args())
		return 2
	}
	if *childMode {
		return runChild()
	}
	if v := os.Getenv("WEBAPP_SPAWN_CHILDREN"); v != "" && *spawn == 0 {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			logger.Printf("WEBAPP_SPAWN_CHILDREN=%q is not a number of children", v)
			return 2
		}
		*spawn = n
	}

	pid := os.Getpid()
	logger.Printf("started pid=%d site=%q mode=%q generation=%q", pid,
		os.Getenv("SITE"), os.Getenv("SITE_MODE"), os.Getenv("SITE_GENERATION"))

	if m, ok := os.LookupEnv("WEBAPP_SET_MODE"); ok && os.Getenv("SITE_MODE") != m {
		return setMode(m)
	}
	if *failStart || os.Getenv("WEBAPP_FAIL_START") == "1" {
		logger.Printf("failing at start as requested (--fail-start or WEBAPP_FAIL_START=1)")
		return 1
	}
	opts := activation.ServeOptions{}
	if os.Getenv("WEBAPP_IGNORE_TERM") == "1" {
		// For failsafe tests: an app that never stops on SIGTERM, so that
		// only systemd's SIGKILL at TimeoutStopSec ends it.
		signal.Ignore(syscall.SIGTERM)
		opts.Signals = []os.Signal{syscall.SIGINT}
		logger.Printf("ignoring SIGTERM (WEBAPP_IGNORE_TERM=1)")
	}
	switch mode := os.Getenv("WEBAPP_READY_MODE"); mode {
	case "", "notify":
	case "none":
		opts.NoNotify = true
	default:
		logger.Printf("WEBAPP_READY_MODE=%q is not valid: want notify or none", mode)
		return 2
	}
	var startDelay time.Duration
	if v := os.Getenv("WEBAPP_START_DELAY"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			logger.Printf("WEBAPP_START_DELAY=%q is not valid: want a Go duration such as 2s", v)
			return 2
		}
		startDelay = d
	}

	activated := os.Getenv("LISTEN_PID") == strconv.Itoa(pid) && os.Getenv("LISTEN_FDS") != ""
	var listeners map[string][]net.Listener
	var err error
	if *listen != "" {
		listeners, err = activation.ListenersOrBind(map[string][]string{"http": {*listen}})
	} else {
		listeners, err = activation.Listeners()
		if errors.Is(err, activation.ErrNotActivated) {
			err = fmt.Errorf("%w; webapp binds an address itself with --listen ADDR", err)
		}
	}
	if err != nil {
		logger.Print(err)
		return 1
	}
	all, desc := flatten(listeners)
	source := "bound by webapp"
	if activated {
		source = "from systemd"
	}
	logger.Printf("listeners %s: %s", source, desc)

	// Children are started after the listeners are taken, so they inherit
	// neither the sockets nor the LISTEN_* variables.
	for i := 0; i < *spawn; i++ {
		if err := spawnChild(i); err != nil {
			logger.Printf("cannot start child process: %v", err)
			return 1
		}
	}

	if startDelay > 0 {
		logger.Printf("start delay %s before serving", startDelay)
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
		select {
		case <-time.After(startDelay):
			stop()
		case <-ctx.Done():
			stop()
			logger.Printf("exited: stopped during the start delay")
			return 0
		}
	}

	srv := &http.Server{
		Handler:           newHandler(pid),
		ReadHeaderTimeout: 10 * time.Second,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			if nc, ok := c.(*namedConn); ok {
				return context.WithValue(ctx, listenerNameKey{}, nc.name)
			}
			return ctx
		},
	}
	exitAfterReady, exitStatus, err := crashSettings()
	if err != nil {
		logger.Print(err)
		return 2
	}
	opts.OnReady = func() {
		if exitAfterReady > 0 {
			time.AfterFunc(exitAfterReady, func() {
				logger.Printf("exiting with status %d %s after it was ready, as asked (WEBAPP_EXIT_AFTER_READY)", exitStatus, exitAfterReady)
				os.Exit(exitStatus)
			})
		}
		switch {
		case opts.NoNotify:
			logger.Printf("ready (not notifying systemd: WEBAPP_READY_MODE=none)")
		case os.Getenv("NOTIFY_SOCKET") != "":
			logger.Printf("ready (READY=1 sent to systemd)")
		default:
			logger.Printf("ready (NOTIFY_SOCKET not set, nobody to notify)")
		}
	}
	opts.OnDrain = func(reason string) {
		logger.Printf("draining: %s", reason)
	}
	if os.Getenv("WEBAPP_KEEPALIVE_SWITCH") == "1" {
		if _, err := activation.SwitchKeepAlives(srv, syscall.SIGUSR2); err != nil {
			logger.Printf("cannot install the keep-alive switch: %v", err)
			return 2
		}
	}
	err = activation.Serve(context.Background(), srv, all, opts)
	switch {
	case err == nil:
		logger.Printf("exited")
	case errors.Is(err, activation.ErrDrainTimeout):
		logger.Printf("exited: %v", err)
	default:
		logger.Printf("exited with error: %v", err)
		return 1
	}
	return 0
}

// crashSettings reads WEBAPP_EXIT_AFTER_READY and WEBAPP_EXIT_STATUS.
func crashSettings() (time.Duration, int, error) {
	v := os.Getenv("WEBAPP_EXIT_AFTER_READY")
	if v == "" {
		return 0, 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, 0, fmt.Errorf("WEBAPP_EXIT_AFTER_READY=%q is not valid: want a Go duration such as 300ms", v)
	}
	status := 1
	if v := os.Getenv("WEBAPP_EXIT_STATUS"); v != "" {
		if status, err = strconv.Atoi(v); err != nil || status < 0 || status > 255 {
			return 0, 0, fmt.Errorf("WEBAPP_EXIT_STATUS=%q is not an exit status", v)
		}
	}
	return d, status, nil
}

// setMode re-execs this program, in the same process (so the pid, its
// sockets and LISTEN_PID stay valid), with SITE_MODE=mode.
func setMode(mode string) int {
	exe, err := os.Executable()
	if err != nil {
		logger.Print(err)
		return 1
	}
	var env []string
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); k != "SITE_MODE" {
			env = append(env, kv)
		}
	}
	logger.Printf("re-executing with SITE_MODE=%s instead of %q (WEBAPP_SET_MODE)", mode, os.Getenv("SITE_MODE"))
	err = syscall.Exec(exe, os.Args, append(env, "SITE_MODE="+mode))
	logger.Printf("cannot re-execute: %v", err)
	return 1
}

// flatten wraps every listener so connections remember its name, and
// describes them for the log, sorted by name.
func flatten(m map[string][]net.Listener) ([]net.Listener, string) {
	names := make([]string, 0, len(m))
	for name := range m {
		names = append(names, name)
	}
	sort.Strings(names)
	var all []net.Listener
	var desc []string
	for _, name := range names {
		for _, l := range m[name] {
			all = append(all, &namedListener{Listener: l, name: name})
			desc = append(desc, fmt.Sprintf("%s=%s:%s", name, l.Addr().Network(), l.Addr()))
		}
	}
	return all, strings.Join(desc, " ")
}

type listenerNameKey struct{}

type namedListener struct {
	net.Listener
	name string
}

func (l *namedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &namedConn{Conn: c, name: l.name}, nil
}

type namedConn struct {
	net.Conn
	name string
}

// CloseWrite keeps net/http's half-close on shutdown working through the
// wrapper.
func (c *namedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

type rootResponse struct {
	Site       string            `json:"site"`
	Mode       string            `json:"mode"`
	PID        int               `json:"pid"`
	Generation string            `json:"generation"`
	Listener   string            `json:"listener"`
	Env        map[string]string `json:"env"`
}

func newHandler(pid int) http.Handler {
	pidText := strconv.Itoa(pid)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		name, _ := r.Context().Value(listenerNameKey{}).(string)
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(rootResponse{
			Site:       os.Getenv("SITE"),
			Mode:       os.Getenv("SITE_MODE"),
			PID:        pid,
			Generation: os.Getenv("SITE_GENERATION"),
			Listener:   name,
			Env:        selectedEnv(),
		})
	})
	mux.HandleFunc("GET /env", func(w http.ResponseWriter, r *http.Request) {
		name := r.FormValue("name")
		if name == "" {
			http.Error(w, "missing ?name=VARIABLE", http.StatusBadRequest)
			return
		}
		v, ok := os.LookupEnv(name)
		if !ok {
			http.Error(w, name+" is not set", http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, v)
	})
	mux.HandleFunc("GET /sleep", func(w http.ResponseWriter, r *http.Request) {
		d, err := time.ParseDuration(r.FormValue("d"))
		if err != nil || d < 0 {
			http.Error(w, "want ?d=DURATION such as 5s", http.StatusBadRequest)
			return
		}
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
			fmt.Fprintf(w, "slept %s\n", d)
		case <-r.Context().Done(): // client gone or connection force-closed
		}
	})
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /read", func(w http.ResponseWriter, r *http.Request) {
		p := r.FormValue("path")
		if p != "" && !filepath.IsAbs(p) {
			p = filepath.Join(os.Getenv("CREDENTIALS_DIRECTORY"), p)
		}
		f, err := os.Open(p)
		if err == nil {
			defer f.Close()
			var data []byte
			if data, err = io.ReadAll(io.LimitReader(f, 64<<10)); err == nil {
				w.Write(data)
				return
			}
		}
		http.Error(w, err.Error(), http.StatusForbidden)
	})
	mux.HandleFunc("GET /dial", func(w http.ResponseWriter, r *http.Request) {
		c, err := net.DialTimeout("tcp", r.FormValue("addr"), 3*time.Second)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		c.Close()
		io.WriteString(w, "connected\n")
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Site-Mode", os.Getenv("SITE_MODE"))
		h.Set("X-Site-Generation", os.Getenv("SITE_GENERATION"))
		h.Set("X-Pid", pidText)
		mux.ServeHTTP(w, r)
	})
}

// selectedEnv returns the SITE_* and WEBAPP_* variables and those named in
// WEBAPP_EXPOSE_ENV.
func selectedEnv() map[string]string {
	env := make(map[string]string)
	extra := strings.FieldsFunc(os.Getenv("WEBAPP_EXPOSE_ENV"), func(r rune) bool { return r == ',' || r == ' ' })
	for _, kv := range os.Environ() {
		k, v, _ := strings.Cut(kv, "=")
		if k == "SITE" || strings.HasPrefix(k, "SITE_") || strings.HasPrefix(k, "WEBAPP_") {
			env[k] = v
		}
	}
	for _, k := range extra {
		if v, ok := os.LookupEnv(k); ok {
			env[k] = v
		}
	}
	return env
}

// spawnChild starts a copy of this program in child mode, number i. It is
// not stopped when the parent exits.
func spawnChild(i int) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	cmd := exec.Command(exe, "--child")
	for _, kv := range os.Environ() {
		switch k, _, _ := strings.Cut(kv, "="); k {
		case "NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID":
			continue
		}
		cmd.Env = append(cmd.Env, kv)
	}
	cmd.Env = append(cmd.Env, "WEBAPP_CHILD_INDEX="+strconv.Itoa(i))
	cmd.Stdout = os.Stderr
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return err
	}
	logger.Printf("spawned child pid=%d", cmd.Process.Pid)
	go func() {
		err := cmd.Wait()
		logger.Printf("child pid=%d exited: %v", cmd.Process.Pid, cmdResult(err))
	}()
	return nil
}

func cmdResult(err error) string {
	if err == nil {
		return "status 0"
	}
	return err.Error()
}

// runChild is the child mode: wait for SIGTERM or SIGINT, then exit. With
// WEBAPP_CHILD_MARKER_DIR it first writes child-<index>.cleaned there, as a
// child releasing a resource would; the child whose index is
// WEBAPP_CHILD_IGNORE_TERM ignores SIGTERM altogether and only dies by
// SIGKILL.
func runChild() int {
	logger.SetPrefix("webapp child: ")
	index := os.Getenv("WEBAPP_CHILD_INDEX")
	logger.Printf("started pid=%d parent=%d index=%s", os.Getpid(), os.Getppid(), index)
	if v := os.Getenv("WEBAPP_CHILD_DAEMONIZE"); (v == index || v == "all") && os.Getenv("WEBAPP_DAEMON") == "" {
		return daemonize()
	}
	if v := os.Getenv("WEBAPP_CHILD_IGNORE_TERM"); v == index || v == "all" {
		signal.Ignore(syscall.SIGTERM, syscall.SIGINT)
		logger.Printf("pid=%d ignores SIGTERM", os.Getpid())
		for {
			time.Sleep(time.Hour) // (a bare select{} would trip Go's deadlock detector)
		}
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	s := <-sig
	if dir := os.Getenv("WEBAPP_CHILD_MARKER_DIR"); dir != "" {
		marker := filepath.Join(dir, "child-"+index+".cleaned")
		if err := os.WriteFile(marker, []byte(s.String()+"\n"), 0o644); err != nil {
			logger.Printf("pid=%d cannot write its marker: %v", os.Getpid(), err)
			return 1
		}
		logger.Printf("pid=%d released its resource: wrote %s", os.Getpid(), marker)
	}
	logger.Printf("pid=%d exiting on %s", os.Getpid(), s)
	return 0
}

// daemonize starts a copy of this child in a session of its own and exits,
// as a classic daemon does: the copy is reparented and belongs to neither
// the process tree nor the session of the app that started it.
func daemonize() int {
	exe, err := os.Executable()
	if err != nil {
		logger.Print(err)
		return 1
	}
	cmd := exec.Command(exe, "--child")
	cmd.Env = append(os.Environ(), "WEBAPP_DAEMON=1")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		logger.Printf("cannot daemonize: %v", err)
		return 1
	}
	logger.Printf("pid=%d daemonized as pid=%d", os.Getpid(), cmd.Process.Pid)
	return 0
}
