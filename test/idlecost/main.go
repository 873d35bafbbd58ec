// Command idlecost measures what a CPU-bound process costs a neighbouring
// web app's latency on this machine, at normal priority and under
// SCHED_IDLE: the Go test app serves 100 requests/s while 0, 1 or 2 busy
// loops run beside it, each condition in turn, for several rounds. It is
// the evidence behind start_priority = "idle" (issue 16.3, docs/overlap.md):
//
//	go run ./test/idlecost [-port 18777] [-rounds 3] [-each 12s]
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
	"strconv"
	"syscall"
	"time"

	"github.com/sitectl/sitectl/internal/loadgen"
)

func main() {
	port := flag.Int("port", 18777, "the port the test app listens on (127.0.0.1)")
	rounds := flag.Int("rounds", 3, "rounds over all conditions")
	each := flag.Duration("each", 12*time.Second, "load per condition and round")
	flag.Parse()
	dir, err := os.MkdirTemp("", "idlecost-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "webapp")
	if out, err := exec.Command("go", "build", "-o", bin, "./test/apps/webapp").CombinedOutput(); err != nil {
		log.Fatalf("building the test app (run from the repository): %v\n%s", err, out)
	}
	addr := "127.0.0.1:" + strconv.Itoa(*port)
	app := exec.Command(bin, "--listen", addr)
	app.Env = append(os.Environ(), "WEBAPP_READY_MODE=none")
	if err := app.Start(); err != nil {
		log.Fatal(err)
	}
	defer app.Process.Kill()
	time.Sleep(time.Second)
	conds := []struct {
		name string
		n    int
		idle bool
	}{{"nothing beside it", 0, false}, {"1 loop, SCHED_IDLE", 1, true}, {"2 loops, SCHED_IDLE", 2, true}, {"1 loop, normal", 1, false}, {"2 loops, normal", 2, false}}
	for round := 1; round <= *rounds; round++ {
		for _, c := range conds {
			loops := busyLoops(c.n, c.idle)
			time.Sleep(200 * time.Millisecond)
			rs := loadgen.Run(context.Background(), loadgen.Config{URL: "http://" + addr + "/", Rate: 100, Duration: *each})
			for _, l := range loops {
				syscall.Kill(-l.Process.Pid, syscall.SIGKILL)
				l.Wait()
			}
			fmt.Printf("round %d  %-20s %v\n", round, c.name, loadgen.Summarize(rs))
		}
	}
}

// busyLoops starts n shell busy loops, under SCHED_IDLE when idle.
func busyLoops(n int, idle bool) []*exec.Cmd {
	var cs []*exec.Cmd
	for range n {
		argv := []string{"sh", "-c", "while :; do :; done"}
		if idle {
			argv = append([]string{"chrt", "-i", "0"}, argv...)
		}
		c := exec.Command(argv[0], argv[1:]...)
		c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := c.Start(); err != nil {
			log.Fatal(err)
		}
		cs = append(cs, c)
	}
	return cs
}
