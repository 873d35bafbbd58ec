// Command worker-cleanup is the situation operators describe: an app that
// spawns long-lived worker processes from requests, each holding a persisted
// resource (here a lock file) that must be released when the site stops.
// It is built only on package activation:
//
//   - POST /jobs?name=N starts a worker (this program, "worker" mode) as an
//     activation.Children child. The worker creates $JOBS_DIR/N.lock and
//     keeps it until SIGTERM, then removes it and appends "released N" to
//     $JOBS_DIR/released.log.
//   - GET / lists the locks held.
//   - On SIGTERM, activation.Serve drains in-flight requests, then stops the
//     workers: SIGTERM, their grace (WORKER_GRACE, default 5s), SIGKILL.
//   - If the app itself crashes, its workers stay in the unit's cgroup, where
//     `sitectl cleanup` (ExecStopPost=) sends them SIGTERM, and the site's
//     cleanup hook (release-stale-locks) removes locks whose worker is gone.
//
// See README.md beside this file for the site file.
package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/sitectl/sitectl/activation"
)

var jobName = regexp.MustCompile(`^[a-z0-9-]{1,40}$`)

func main() {
	log.SetFlags(0)
	dir := os.Getenv("JOBS_DIR")
	if dir == "" {
		log.Fatal("JOBS_DIR is not set: say where workers keep their lock files")
	}
	if len(os.Args) == 3 && os.Args[1] == "worker" {
		os.Exit(worker(dir, os.Args[2]))
	}
	os.Exit(app(dir))
}

func app(dir string) int {
	grace, err := time.ParseDuration(envOr("WORKER_GRACE", "5s"))
	if err != nil {
		log.Printf("WORKER_GRACE: %v", err)
		return 2
	}
	workers := &activation.Children{Grace: grace}
	self, err := os.Executable()
	if err != nil {
		log.Print(err)
		return 1
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /jobs", func(w http.ResponseWriter, r *http.Request) {
		name := r.URL.Query().Get("name")
		if !jobName.MatchString(name) {
			http.Error(w, "name must be 1-40 of a-z, 0-9 and -", http.StatusBadRequest)
			return
		}
		cmd := exec.Command(self, "worker", name)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := workers.Start(cmd, func(err error) { log.Printf("worker %s exited: %v", name, err) }); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		log.Printf("started worker %s (pid %d)", name, cmd.Process.Pid)
		fmt.Fprintf(w, "started %s\n", name)
	})
	mux.HandleFunc("GET /", func(w http.ResponseWriter, r *http.Request) {
		locks, _ := filepath.Glob(filepath.Join(dir, "*.lock"))
		sort.Strings(locks)
		for _, l := range locks {
			fmt.Fprintln(w, filepath.Base(l))
		}
	})
	mux.HandleFunc("GET /sleep", func(w http.ResponseWriter, r *http.Request) {
		d, _ := time.ParseDuration(r.URL.Query().Get("d"))
		time.Sleep(d)
		fmt.Fprintf(w, "slept %s\n", d)
	})

	byName, err := activation.Listeners()
	if err != nil {
		log.Print(err)
		return 1
	}
	var ls []net.Listener
	for _, l := range byName {
		ls = append(ls, l...)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	err = activation.Serve(context.Background(), srv, ls, activation.ServeOptions{Children: workers})
	if err != nil && !errors.Is(err, activation.ErrDrainTimeout) {
		log.Print(err)
		return 1
	}
	log.Print("stopped; workers released their locks")
	return 0
}

// worker holds a lock file until SIGTERM, then releases it.
func worker(dir, name string) int {
	lock := filepath.Join(dir, name+".lock")
	f, err := os.OpenFile(lock, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if errors.Is(err, fs.ErrExist) {
		log.Printf("worker %s: %s is held by another worker", name, lock)
		return 1
	}
	if err != nil {
		log.Printf("worker %s: %v", name, err)
		return 1
	}
	fmt.Fprintf(f, "%d\n", os.Getpid())
	f.Close()
	log.Printf("worker %s (pid %d) holds %s", name, os.Getpid(), lock)

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	if err := os.Remove(lock); err != nil {
		log.Printf("worker %s: releasing %s: %v", name, lock, err)
		return 1
	}
	logf, err := os.OpenFile(filepath.Join(dir, "released.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err == nil {
		fmt.Fprintf(logf, "released %s\n", name)
		logf.Close()
	}
	log.Printf("worker %s released %s", name, lock)
	return 0
}

func envOr(k, def string) string {
	if v := strings.TrimSpace(os.Getenv(k)); v != "" {
		return v
	}
	return def
}
