// Command keptheap measures what the requests a load generator keeps do to
// the latencies it measures. It is how test/bench/notes.md found why every
// scenario's p99 grew from one repetition to the next in a full benchmark
// run: the harness kept every request as a loadgen.Result (a heap full of
// pointers) in the process that generates the load.
//
//	go run ./test/keptheap [-kept 400000] [-rate 300] [-run 20s] [-rounds 2]
//
// A small HTTP server runs in a child process (this binary, told to
// serve). In each round, for each variant in turn, a fresh child of this
// binary keeps -kept requests (as loadgen.Results with their headers and
// bodies, as pointer-free samples like test/bench's Sample, or none), then
// sends load at -rate for three runs of -run and prints each run's p99 and
// the garbage collections during it.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"time"

	"github.com/sitectl/sitectl/internal/loadgen"
)

const addr = "127.0.0.1:29871" // below the ephemeral range

// sample is test/bench's Sample: no pointer.
type sample struct {
	start     int64
	latency   time.Duration
	outcome   uint8
	pid, ppid int32
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "-serve" {
		serve()
		return
	}
	if len(os.Args) > 1 && os.Args[1] == "-measure" {
		measure(os.Args[2:])
		return
	}
	kept := flag.Int("kept", 400000, "requests kept before the load is measured")
	rate := flag.Int("rate", 300, "requests per second")
	run := flag.Duration("run", 20*time.Second, "length of each measured run")
	rounds := flag.Int("rounds", 2, "rounds of the three variants, alternating")
	flag.Parse()

	srv := exec.Command(os.Args[0], "-serve")
	srv.Stderr = os.Stderr
	if err := srv.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "keptheap:", err)
		os.Exit(1)
	}
	defer srv.Process.Kill()
	if err := waitListening(); err != nil {
		fmt.Fprintln(os.Stderr, "keptheap:", err)
		os.Exit(1)
	}
	for r := 1; r <= *rounds; r++ {
		for _, v := range []string{"none", "results", "samples"} {
			c := exec.Command(os.Args[0], "-measure", v, strconv.Itoa(*kept), strconv.Itoa(*rate), run.String())
			c.Stdout, c.Stderr = os.Stdout, os.Stderr
			fmt.Printf("round %d, %s:\n", r, v)
			if err := c.Run(); err != nil {
				fmt.Fprintln(os.Stderr, "keptheap:", err)
				os.Exit(1)
			}
		}
	}
}

// serve answers as the test apps do: JSON with the pid and ppid.
func serve() {
	err := http.ListenAndServe(addr, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"site":"keptheap","pid":%d,"ppid":%d,"mode":"normal"}`, os.Getpid(), os.Getppid())
	}))
	fmt.Fprintln(os.Stderr, "keptheap: serve:", err)
	os.Exit(1)
}

func waitListening() error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			return c.Close()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the server does not listen on %s: %w", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// measure is one variant in a process of its own: keep, then time.
func measure(args []string) {
	variant := args[0]
	kept, _ := strconv.Atoi(args[1])
	rate, _ := strconv.Atoi(args[2])
	run, _ := time.ParseDuration(args[3])
	url := "http://" + addr + "/"

	var results [][]loadgen.Result
	var samples [][]sample
	if variant != "none" {
		// Real answers, copied until kept of them are held.
		batch := loadgen.Run(context.Background(), loadgen.Config{URL: url, Rate: 1000, Duration: 5 * time.Second})
		for n := 0; n < kept; n += len(batch) {
			if variant == "samples" {
				s := make([]sample, len(batch))
				for i, r := range batch {
					var a struct{ PID, PPID int32 }
					json.Unmarshal([]byte(r.Body), &a)
					s[i] = sample{start: r.Start.UnixNano(), latency: r.Latency, pid: a.PID, ppid: a.PPID}
					if r.Outcome != loadgen.OK {
						s[i].outcome = 1
					}
				}
				samples = append(samples, s)
				continue
			}
			c := make([]loadgen.Result, len(batch))
			for i, r := range batch {
				h := http.Header{}
				for k, v := range r.Header {
					h[k] = append([]string(nil), v...)
				}
				r.Header, r.Body = h, string([]byte(r.Body))
				c[i] = r
			}
			results = append(results, c)
		}
	}
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	fmt.Printf("  heap %d MB\n", ms.HeapAlloc>>20)
	for i := 0; i < 3; i++ {
		var m0, m1 runtime.MemStats
		runtime.ReadMemStats(&m0)
		rs := loadgen.Run(context.Background(), loadgen.Config{URL: url, Rate: rate, Duration: run})
		runtime.ReadMemStats(&m1)
		fmt.Printf("  %s; %d collections\n", loadgen.Summarize(rs), m1.NumGC-m0.NumGC)
	}
	runtime.KeepAlive(results)
	runtime.KeepAlive(samples)
}
