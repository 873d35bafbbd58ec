// Command idlecost measures what a CPU-bound process costs a neighbouring
// web app's latency on this machine, at normal priority, under SCHED_IDLE
// and under SCHED_BATCH at nice 19 with a short slice: a test app (the WSGI one spending 2 ms of CPU on each
// request, or the Go one) serves 100 requests/s while nothing or 2 busy
// loops run beside it, each condition in turn, for several rounds. The app
// and the loops are each a session of their own, as a site's service and
// a generation starting beside it are. It is the evidence behind
// start_priority = "idle" (issue 16.3, docs/overlap.md):
//
//	go run ./test/idlecost [-port 18777] [-rounds 3] [-each 12s] [-request-cpu 2ms]
//
// Run it as root or not, on an otherwise idle machine.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sitectl/sitectl/internal/loadgen"
)

// envBatch asks this program to put itself under SCHED_BATCH at nice 19
// with a 0.1 ms slice and exec its arguments.
const envBatch = "IDLECOST_BATCH"

func main() {
	if os.Getenv(envBatch) == "1" {
		os.Unsetenv(envBatch)
		runBatch(os.Args[1:])
	}
	port := flag.Int("port", 18777, "the port the test app listens on (127.0.0.1)")
	rounds := flag.Int("rounds", 3, "rounds over all conditions")
	each := flag.Duration("each", 12*time.Second, "load per condition and round")
	requestCPU := flag.Duration("request-cpu", 2*time.Millisecond, "CPU time each request costs: >0 serves the WSGI test app (test/apps/wsgi) with Python's wsgiref, 0 the Go test app")
	flag.Parse()
	addr := "127.0.0.1:" + strconv.Itoa(*port)
	app, cleanup := startApp(addr, *requestCPU)
	defer cleanup()
	// A session of its own, as a service's app has.
	app.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := app.Start(); err != nil {
		log.Fatal(err)
	}
	defer app.Process.Kill()
	time.Sleep(time.Second)
	// A generation is a session of its own (the launcher starts it with
	// setsid), and a session is a scheduling group of its own where the
	// kernel's autogroups are in use (tasks outside a cpu cgroup, as on
	// this project's hosts): its policy counts only inside its group.
	// An idle start outside a cpu cgroup (internal/launcher: idleOutsideCgroup)
	// is the last but one.
	conds := []struct {
		name   string
		n      int
		sched  string // how the loops run: "" normal, "idle", "batch"
		nice19 bool   // their autogroup at nice 19
	}{
		{"nothing beside it", 0, "", false},
		{"2 loops, SCHED_IDLE", 2, "idle", false},
		{"2 loops, SCHED_IDLE, autogroup at nice 19", 2, "idle", true},
		{"2 loops, SCHED_BATCH nice 19 0.1ms slice, autogroup 19", 2, "batch", true},
		{"2 loops, normal", 2, "", false},
	}
	if _, err := os.Stat("/proc/self/autogroup"); err != nil {
		log.Fatalf("this kernel has no autogroups (CONFIG_SCHED_AUTOGROUP): %v", err)
	}
	for round := 1; round <= *rounds; round++ {
		for _, c := range conds {
			loops := busyLoops(c.n, c.sched, c.nice19)
			time.Sleep(200 * time.Millisecond)
			rs := loadgen.Run(context.Background(), loadgen.Config{URL: "http://" + addr + "/", Rate: 100, Duration: *each})
			for _, l := range loops {
				syscall.Kill(-l.Process.Pid, syscall.SIGKILL)
				l.Wait()
			}
			fmt.Printf("round %d  %-56s %v\n", round, c.name, loadgen.Summarize(rs))
		}
	}
}

// startApp is the command of the app under load: the WSGI test app
// spending requestCPU on each request in one Python process, or with 0
// the Go test app.
func startApp(addr string, requestCPU time.Duration) (*exec.Cmd, func()) {
	if requestCPU > 0 {
		host, port, _ := strings.Cut(addr, ":")
		app := exec.Command("python3", "-c", `import sys, wsgiref.simple_server as s, app
class Quiet(s.WSGIRequestHandler):
    def log_message(self, *a): pass
s.make_server(sys.argv[1], int(sys.argv[2]), app.application, handler_class=Quiet).serve_forever()`, host, port)
		app.Dir = "test/apps/wsgi"
		app.Env = append(os.Environ(), fmt.Sprintf("WSGI_REQUEST_CPU_MS=%g", float64(requestCPU)/float64(time.Millisecond)))
		return app, func() { app.Process.Kill() }
	}
	dir, err := os.MkdirTemp("", "idlecost-")
	if err != nil {
		log.Fatal(err)
	}
	bin := filepath.Join(dir, "webapp")
	if out, err := exec.Command("go", "build", "-o", bin, "./test/apps/webapp").CombinedOutput(); err != nil {
		log.Fatalf("building the test app (run from the repository): %v\n%s", err, out)
	}
	app := exec.Command(bin, "--listen", addr)
	app.Env = append(os.Environ(), "WEBAPP_READY_MODE=none")
	return app, func() { app.Process.Kill(); os.RemoveAll(dir) }
}

// busyLoops starts n shell busy loops in a session of their own, as a
// generation starts: under SCHED_IDLE with sched "idle", under SCHED_BATCH
// at nice 19 with a 0.1 ms slice with "batch" (this program, re-run with
// envBatch, sets that and runs the loop), in an autogroup at nice 19 with
// nice19.
func busyLoops(n int, sched string, nice19 bool) []*exec.Cmd {
	if n == 0 {
		return nil
	}
	loop := "while :; do :; done"
	switch sched {
	case "idle":
		loop = "chrt -i 0 sh -c '" + loop + "'"
	case "batch":
		self, err := os.Executable()
		if err != nil {
			log.Fatal(err)
		}
		loop = envBatch + "=1 " + self + " sh -c '" + loop + "'"
	}
	script := ""
	if nice19 {
		script = "until echo 19 2>/dev/null >/proc/self/autogroup; do sleep 0.02; done; "
	}
	for range n {
		script += loop + " & "
	}
	c := exec.Command("sh", "-c", script+"wait")
	c.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := c.Start(); err != nil {
		log.Fatal(err)
	}
	return []*exec.Cmd{c}
}

// runBatch puts this process under SCHED_BATCH at nice 19 with a 0.1 ms
// slice, as an idle start outside a cpu cgroup does, and execs argv.
func runBatch(argv []string) {
	runtime.LockOSThread()
	attr := &unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_BATCH, Nice: 19, Runtime: uint64(100 * time.Microsecond)}
	if err := unix.SchedSetAttr(0, attr, 0); err != nil {
		log.Fatalf("sched_setattr: %v", err)
	}
	prog, err := exec.LookPath(argv[0])
	if err != nil {
		log.Fatal(err)
	}
	log.Fatal(syscall.Exec(prog, argv, os.Environ()))
}
