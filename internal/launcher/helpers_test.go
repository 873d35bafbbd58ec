package launcher

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sitectl/sitectl/activation"
	"golang.org/x/sys/unix"
)

// The helper processes of the tests: this test binary, run again with
// LAUNCHER_TEST_HELPER set, before any test runs.
func TestMain(m *testing.M) {
	switch os.Getenv("LAUNCHER_TEST_HELPER") {
	case "master":
		helperMaster()
	case "generation":
		helperGeneration()
	case "worker":
		helperWorker()
	case "control":
		helperControl()
	case "guard-launcher":
		helperGuardLauncher()
	case "guard-app":
		helperGuardApp()
	case "yield":
		helperYield()
	}
	os.Exit(m.Run())
}

// helperGeneration is a generation, started by the launcher as
// "SHIM launch SITE -- ARGV": it plays the shim (setListenPID) and the app.
// GEN_START says how it behaves (comma-separated):
//
//	die           exit 3 at once
//	silent        never say READY=1
//	wait-file:P   say READY=1 only once file P exists
//	ignore-term   ignore SIGTERM
//	worker        start a worker process (which ignores SIGTERM with the
//	              generation)
//	daemon        start a process that leaves the generation's session and
//	              is reparented (a classic daemon)
//	die-late      exit 3 once its helpers (worker, daemon) are started,
//	              before READY=1
//	drain:D       on SIGTERM, go on for D before exiting 0, and append a
//	              line to GEN_REPORT/terms-N for each SIGTERM meanwhile
//	keepalive     announce a keep-alive switch on SIGUSR2, as
//	              activation.SwitchKeepAlives does, and write each state
//	              to GEN_REPORT/keepalive-N
//
// It writes what it got to GEN_REPORT/gen-N (N its generation), and serves
// 200 on the probe socket when it has one, with a line in
// GEN_REPORT/probes-N for each of the launcher's probes.
func helperGeneration() {
	setListenPID()
	if err := idleStartInShim(); err != nil { // as Exec does
		fmt.Fprintln(os.Stderr, err)
		os.Exit(4)
	}
	policy, slice, nice := "?", "?", "?"
	if attr, err := unix.SchedGetAttr(0, 0); err == nil {
		policy, slice, nice = strconv.Itoa(int(attr.Policy)), strconv.FormatUint(attr.Runtime, 10), strconv.Itoa(int(attr.Nice))
	}
	autogroup := "none"
	if nice, ok, err := autogroupNice("/proc", os.Getpid()); err != nil {
		autogroup = "?"
	} else if ok {
		autogroup = strconv.Itoa(nice)
	}
	behave := map[string]string{}
	for _, b := range strings.Split(os.Getenv("GEN_START"), ",") {
		k, v, _ := strings.Cut(b, ":")
		behave[k] = v
	}
	if _, ok := behave["die"]; ok {
		os.Exit(3)
	}
	term := make(chan os.Signal, 1)
	if _, ok := behave["ignore-term"]; ok {
		signal.Ignore(syscall.SIGTERM)
	} else {
		signal.Notify(term, syscall.SIGTERM)
	}
	var helpers []string
	for _, kind := range []string{"worker", "daemon"} {
		if _, ok := behave[kind]; ok {
			helpers = append(helpers, strconv.Itoa(startHelper(kind, behave)))
		}
	}
	if _, ok := behave["die-late"]; ok {
		os.WriteFile(filepath.Join(os.Getenv("GEN_REPORT"), "gen-"+os.Getenv("SITE_GENERATION")),
			[]byte(fmt.Sprintf("pid=%d helpers=%s\n", os.Getpid(), strings.Join(helpers, ","))), 0o644)
		os.Exit(3)
	}
	report := fmt.Sprintf("pid=%d listen_pid=%s listen_fds=%s names=%s generation=%s mode=%s helpers=%s policy=%s slice=%s nice=%s autogroup=%s\n", os.Getpid(),
		os.Getenv("LISTEN_PID"), os.Getenv("LISTEN_FDS"), os.Getenv("LISTEN_FDNAMES"), os.Getenv("SITE_GENERATION"), os.Getenv("SITE_MODE"), strings.Join(helpers, ","), policy, slice, nice, autogroup)
	os.WriteFile(filepath.Join(os.Getenv("GEN_REPORT"), "gen-"+os.Getenv("SITE_GENERATION")), []byte(report), 0o644)
	for i, name := range strings.Split(os.Getenv("LISTEN_FDNAMES"), ":") {
		if name == "sitectl-probe" {
			ln, err := net.FileListener(os.NewFile(uintptr(3+i), name))
			if err == nil {
				// Each of the launcher's probes leaves a line in
				// probes-N, for a test to wait on.
				probes := filepath.Join(os.Getenv("GEN_REPORT"), "probes-"+os.Getenv("SITE_GENERATION"))
				go http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if r.UserAgent() == "sitectl-probe" {
						if f, err := os.OpenFile(probes, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644); err == nil {
							f.WriteString("probe\n")
							f.Close()
						}
					}
				}))
			}
		}
	}
	if file, ok := behave["wait-file"]; ok {
		for _, err := os.Stat(file); err != nil; _, err = os.Stat(file) {
			time.Sleep(10 * time.Millisecond)
		}
	}
	if _, ok := behave["keepalive"]; ok {
		helperKeepAlive()
	}
	if _, ok := behave["silent"]; !ok {
		activation.Notify("READY=1")
	}
	<-term
	if d, ok := behave["drain"]; ok {
		terms := filepath.Join(os.Getenv("GEN_REPORT"), "terms-"+os.Getenv("SITE_GENERATION"))
		record := func() {
			f, _ := os.OpenFile(terms, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
			f.WriteString("SIGTERM\n")
			f.Close()
		}
		record()
		wait, _ := time.ParseDuration(d)
		end := time.After(wait)
		for {
			select {
			case <-term:
				record()
				continue
			case <-end:
			}
			break
		}
	}
	os.Exit(0)
}

// startHelper starts a worker (a child), or a daemon: a child that starts
// a grandchild in a session of its own and exits, so the grandchild is
// reparented. It returns the pid of the process that stays.
func startHelper(kind string, behave map[string]string) int {
	env := append(os.Environ(), "LAUNCHER_TEST_HELPER=worker")
	if _, ok := behave["ignore-term"]; ok {
		env = append(env, "WORKER_IGNORE_TERM=1")
	}
	if kind == "daemon" {
		env = append(env, "WORKER_DAEMONIZE=1")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = env
	out, _ := cmd.StdoutPipe()
	cmd.Start()
	var pid int
	fmt.Fscan(out, &pid)
	if kind == "daemon" {
		cmd.Wait()
	}
	return pid
}

// helperWorker prints the pid of the process that stays, then waits.
func helperWorker() {
	if os.Getenv("WORKER_DAEMONIZE") == "1" {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "WORKER_DAEMONIZE=0")
		cmd.Stdout = os.Stdout
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		cmd.Start()
		os.Exit(0) // the daemon prints its own pid
	}
	if os.Getenv("WORKER_IGNORE_TERM") == "1" {
		signal.Ignore(syscall.SIGTERM)
	}
	fmt.Println(os.Getpid())
	os.Stdout.Close()
	for {
		time.Sleep(time.Hour)
	}
}

// helperKeepAlive plays activation.SwitchKeepAlives's side of the switch.
func helperKeepAlive() {
	report := filepath.Join(os.Getenv("GEN_REPORT"), "keepalive-"+os.Getenv("SITE_GENERATION"))
	os.WriteFile(report, []byte("1"), 0o644)
	usr2 := make(chan os.Signal, 1)
	signal.Notify(usr2, syscall.SIGUSR2)
	activation.Notify(fmt.Sprintf("%s=%d\n%s=1", activation.KeepAliveSignalField, int(syscall.SIGUSR2), activation.KeepAliveField))
	go func() {
		on := true
		for range usr2 {
			on = !on
			state := "0"
			if on {
				state = "1"
			}
			os.WriteFile(report, []byte(state), 0o644)
			activation.Notify(activation.KeepAliveField + "=" + state)
		}
	}()
}
