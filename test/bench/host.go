package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/sitectl/sitectl/test/sandbox"
)

// helperPath is where this program installs itself inside a sandbox, to
// time commands there (the timeit subcommand) without nsenter's overhead.
const helperPath = "/usr/local/bin/sitectl-bench"

// host is one booted sandbox with sitectl, the test apps and this program
// installed.
type host struct {
	sb *sandbox.Sandbox
}

// buildBinaries builds what the sandbox runs into a new directory under
// /var/tmp (the sandbox has its own /tmp), like the integration tests do.
func buildBinaries(ctx context.Context, root string) (string, error) {
	dir, err := os.MkdirTemp("/var/tmp", "sitectl-bench-bin-")
	if err != nil {
		return "", err
	}
	for _, pkg := range []string{"./cmd/sitectl", "./cmd/sitectl-generator", "./test/apps/webapp"} {
		args := []string{"build", "-o", filepath.Join(dir, filepath.Base(pkg))}
		if pkg != "./test/apps/webapp" {
			args = append(args, packagedFlags(runtime.GOARCH)...)
		}
		cmd := exec.CommandContext(ctx, "go", append(args, pkg)...)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			os.RemoveAll(dir)
			return "", fmt.Errorf("building %s: %w\n%s", pkg, err, out)
		}
	}
	self, err := os.Executable()
	if err != nil {
		os.RemoveAll(dir)
		return "", err
	}
	data, err := os.ReadFile(self)
	if err != nil {
		os.RemoveAll(dir)
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, "sitectl-bench"), data, 0o755); err != nil {
		os.RemoveAll(dir)
		return "", err
	}
	return dir, nil
}

// packagedFlags are the flags packaging/build gives go build for sitectl's
// binaries on goarch, so that the benchmark times what the packages
// install: without symbols and, where Go links position-independent
// executables without cgo, PIE (which costs every command some 2 ms of
// relocations at its start on this machine).
func packagedFlags(goarch string) []string {
	flags := []string{"-trimpath", "-ldflags", "-s -w"}
	switch goarch {
	case "amd64", "arm64", "ppc64le":
		flags = append(flags, "-buildmode=pie")
	}
	return flags
}

// bootHost boots a sandbox and installs sitectl, its generator, the Go test
// app, the WSGI test app and this program's timing helper.
func bootHost(ctx context.Context, name, bin, root string, log io.Writer) (*host, error) {
	return bootHostWith(ctx, sandbox.Options{Name: name, Log: log}, bin, root)
}

// bootHostWith is bootHost with more sandbox options (a network namespace
// of its own, a seed).
func bootHostWith(ctx context.Context, opts sandbox.Options, bin, root string) (*host, error) {
	bctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	sb, err := sandbox.Boot(bctx, opts)
	if err != nil {
		return nil, err
	}
	h := &host{sb: sb}
	for _, f := range [][2]string{
		{"sitectl", "/usr/bin/sitectl"},
		{"sitectl-generator", "/usr/lib/systemd/system-generators/sitectl-generator"},
		{"webapp", "/usr/local/bin/webapp"},
		{"sitectl-bench", helperPath},
	} {
		if err := sb.CopyFile(ctx, filepath.Join(bin, f[0]), f[1], 0o755); err != nil {
			sb.Close()
			return nil, err
		}
	}
	if err := sb.CopyFile(ctx, filepath.Join(root, "test/apps/wsgi/app.py"), "/srv/wsgi/app.py", 0o644); err != nil {
		sb.Close()
		return nil, err
	}
	return h, nil
}

func (h *host) Close() error { return h.sb.Close() }

// run runs a command inside and returns its combined output.
func (h *host) run(ctx context.Context, argv ...string) (string, error) {
	return h.sb.Run(ctx, argv[0], argv[1:]...)
}

// writeFiles writes path → content inside.
func (h *host) writeFiles(ctx context.Context, files map[string]string) error {
	for p, c := range files {
		if err := h.sb.WriteFile(ctx, p, []byte(c), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// checkSiteFiles runs `sitectl check` on the site files of in, written to a
// scratch directory (not the config directory, so no units appear).
func (h *host) checkSiteFiles(ctx context.Context, in Install) (bool, string) {
	var paths []string
	for p, content := range in.Files {
		if !strings.HasPrefix(p, "/etc/sitectl/sites/") {
			continue
		}
		scratch := "/root/sitectl-bench-check/" + filepath.Base(p)
		if err := h.sb.WriteFile(ctx, scratch, []byte(content), 0o644); err != nil {
			return false, err.Error()
		}
		paths = append(paths, scratch)
	}
	if len(paths) == 0 {
		return true, ""
	}
	out, err := h.run(ctx, append([]string{"sitectl", "check"}, paths...)...)
	if err != nil {
		return false, strings.TrimSpace(out)
	}
	return true, ""
}

// pid1Memory reads VmRSS and RssAnon (KiB) of the sandbox's systemd from
// the host's /proc.
func (h *host) pid1Memory() (rss, anon int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", h.sb.PID()))
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		var n int64
		fmt.Sscanf(strings.TrimSpace(v), "%d", &n)
		switch k {
		case "VmRSS":
			rss = n
		case "RssAnon":
			anon = n
		}
	}
	if rss == 0 {
		return 0, 0, fmt.Errorf("no VmRSS in /proc/%d/status", h.sb.PID())
	}
	return rss, anon, nil
}

// TimeSpec asks the helper inside the sandbox to time commands: Runs
// rounds, each running every command once, in order (so that commands are
// interleaved and drift on the machine hits all of them alike).
type TimeSpec struct {
	Runs     int        `json:"runs"`
	Commands []TimedCmd `json:"commands"`
}

// TimedCmd is one command to time. Before runs untimed before each timed
// run (e.g. to empty an output directory). Standard output goes to
// /dev/null.
type TimedCmd struct {
	Argv   []string   `json:"argv"`
	Before [][]string `json:"before,omitempty"`
	Env    []string   `json:"env,omitempty"`
	// Watch, when set, is a URL of a WSGI test app that the helper GETs
	// over and over while each run of the command runs (see watchFirstNew).
	Watch string `json:"watch,omitempty"`
	// KeepStderr keeps each run's standard error (its first
	// maxKeptStderr bytes) in TimeResult.Stderr.
	KeepStderr bool `json:"keep_stderr,omitempty"`
}

// maxKeptStderr bounds what TimeResult.Stderr keeps of one run.
const maxKeptStderr = 64 << 10

// TimeResult holds, per command, the wall time of each run and the error
// of each failed run ("" for a run that succeeded).
type TimeResult struct {
	Nanos  [][]int64  `json:"nanos"`
	Errors [][]string `json:"errors"`
	// CPUNanos is the user + system time of each run's process and of the
	// children it waited for (wait4's rusage): what the command costs
	// itself, whatever else runs on the machine; not what it makes other
	// processes (systemd, dbus-daemon) do.
	CPUNanos [][]int64 `json:"cpu_nanos"`
	// FirstNewNanos, for a command with Watch, is when in each run (from
	// its start) the first answer came from a new master process: the time
	// until a probe first succeeds against the new code; -1: none within
	// 30 s.
	FirstNewNanos [][]int64 `json:"first_new_nanos,omitempty"`
	// Stderr, for a command with KeepStderr, is each run's standard
	// error.
	Stderr [][]string `json:"stderr,omitempty"`
}

// Stats summarises the successful runs of command i and counts the failed
// ones, keeping the first failure's message.
func (r TimeResult) Stats(i int, keepAll bool) DurationStats {
	var ds []time.Duration
	failed, first := 0, ""
	for j, n := range r.Nanos[i] {
		if e := r.Errors[i][j]; e != "" {
			failed++
			if first == "" {
				first = e
			}
			continue
		}
		ds = append(ds, time.Duration(n))
	}
	st := SummarizeDurations(ds, keepAll)
	st.Failed, st.Error = failed, first
	return st
}

// CPUStats summarises the CPU time of the successful runs of command i.
func (r TimeResult) CPUStats(i int) DurationStats {
	var ds []time.Duration
	for j, n := range r.CPUNanos[i] {
		if r.Errors[i][j] == "" {
			ds = append(ds, time.Duration(n))
		}
	}
	return SummarizeDurations(ds, false)
}

// timeit runs the spec inside the sandbox through the helper. Failed runs
// of the timed commands are in the result, not an error.
func (h *host) timeit(ctx context.Context, spec TimeSpec) (TimeResult, error) {
	in, _ := json.Marshal(spec)
	cmd := h.sb.Command(ctx, helperPath, "timeit")
	cmd.Stdin = bytes.NewReader(in)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return TimeResult{}, fmt.Errorf("timing %v: %w: %s", spec.Commands[0].Argv, err, errb.String())
	}
	var r TimeResult
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		return r, fmt.Errorf("timing helper output: %w: %q", err, out.String())
	}
	return r, nil
}

// timeitMain is the helper's side: read a TimeSpec on stdin, write a
// TimeResult on stdout. It measures from just before fork/exec to the
// command's exit, as a shell's `time` would.
func timeitMain(stdin io.Reader, stdout io.Writer) int {
	var spec TimeSpec
	if err := json.NewDecoder(stdin).Decode(&spec); err != nil {
		fmt.Fprintln(os.Stderr, "timeit:", err)
		return 2
	}
	res := TimeResult{Nanos: make([][]int64, len(spec.Commands)), Errors: make([][]string, len(spec.Commands)), CPUNanos: make([][]int64, len(spec.Commands)),
		FirstNewNanos: make([][]int64, len(spec.Commands)), Stderr: make([][]string, len(spec.Commands))}
	for run := 0; run < spec.Runs; run++ {
		for i, c := range spec.Commands {
			for _, b := range c.Before {
				if out, err := exec.Command(b[0], b[1:]...).CombinedOutput(); err != nil {
					fmt.Fprintf(os.Stderr, "timeit: %s: %v: %s\n", strings.Join(b, " "), err, out)
					return 1
				}
			}
			cmd := exec.Command(c.Argv[0], c.Argv[1:]...)
			cmd.Env = append(os.Environ(), c.Env...)
			var errb bytes.Buffer
			cmd.Stderr = &errb // stdout: nil is /dev/null
			var firstNew func() time.Duration
			var watch func(time.Time) func() time.Duration
			if c.Watch != "" {
				watch = watchFirstNew(c.Watch)
			}
			start := time.Now()
			if watch != nil {
				firstNew = watch(start)
			}
			err := cmd.Run()
			d := time.Since(start)
			if firstNew != nil {
				res.FirstNewNanos[i] = append(res.FirstNewNanos[i], int64(firstNew()))
			}
			msg := ""
			if err != nil {
				msg = fmt.Sprintf("%s: %v: %s", strings.Join(c.Argv, " "), err, strings.TrimSpace(errb.String()))
			}
			res.Nanos[i] = append(res.Nanos[i], d.Nanoseconds())
			var cpu time.Duration
			if ps := cmd.ProcessState; ps != nil {
				cpu = ps.UserTime() + ps.SystemTime()
			}
			res.CPUNanos[i] = append(res.CPUNanos[i], cpu.Nanoseconds())
			res.Errors[i] = append(res.Errors[i], msg)
			if c.KeepStderr {
				res.Stderr[i] = append(res.Stderr[i], string(errb.Bytes()[:min(errb.Len(), maxKeptStderr)]))
			}
		}
	}
	if err := json.NewEncoder(stdout).Encode(res); err != nil {
		return 1
	}
	return 0
}

// watchFirstNew asks url which master process serves it (the WSGI test
// app's "ppid"). The function it returns GETs url one request after
// another (2 ms apart, a new connection each, as a probe would) from start
// on, and returns a function that waits for and returns when, from start,
// the first answer came from another master; -1 when none came within
// 30 s. A request sent while the site restarts waits in the socket systemd
// holds and is answered by the new workers: its answer is the first moment
// a probe could succeed.
func watchFirstNew(url string) func(start time.Time) func() time.Duration {
	c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	master := func() string {
		resp, err := c.Get(url)
		if err != nil {
			return ""
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
		if resp.StatusCode != http.StatusOK {
			return ""
		}
		return masterPID(nil, string(body))
	}
	before := master()
	return func(start time.Time) func() time.Duration {
		done := make(chan time.Duration, 1)
		go func() {
			for time.Since(start) < 30*time.Second {
				if m := master(); m != "" && m != before {
					done <- time.Since(start)
					return
				}
				time.Sleep(2 * time.Millisecond)
			}
			done <- -1
		}()
		return func() time.Duration { return <-done }
	}
}

// waitServing polls url until it answers 200, for up to timeout.
func waitServing(ctx context.Context, url string, timeout time.Duration) error {
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := c.Do(req)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		last = err
		if ctx.Err() != nil {
			return ctx.Err()
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("%s did not serve within %s: %w", url, timeout, errors.Join(last))
}
