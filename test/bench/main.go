// Command bench is sitectl's benchmark harness. It checks sitectl's claim,
// "change one site and nobody notices, on a host with many sites", on a real
// systemd booted in throwaway namespaces (package test/sandbox), and writes
// results.json, README.md and PNG plots into docs/bench/. It needs root, and
// gnuplot (Debian: gnuplot-nox) for the plots; it installs what is missing.
//
//	go run ./test/bench                                      # the full run (handoff about 40 minutes)
//	go run ./test/bench -quick -switches 3 -out /var/tmp/bench   # a quick look, about 10 minutes
//	go run ./test/bench -render     # README.md again from results.json
//	go run ./test/bench -apps gunicorn,uwsgi -scenarios own-port,gunicorn-hup,gunicorn-usr2,uwsgi-touch,uwsgi-chain \
//	    -sites '' -cli-runs 0 -out /var/tmp/peers               # only the servers' own reloads
//
// What it measures:
//
//   - Handoff: one site under fixed-rate load (no keep-alive) is switched
//     -switches times in each scenario of the scenario table (scenarios.go),
//     -repeats times from a fresh start, for the Go test app and for Debian's
//     gunicorn and uWSGI running a WSGI app that takes a second to import: a
//     plain unit binding its own port, sitectl's socket-held units restarted
//     with systemctl, sitectl mode switches, the overlapped handoff (reload
//     and mode switch) when the sitectl under test has it, and what operators
//     use instead (gunicorn's HUP and USR2, uWSGI's touch-reload and chain
//     reload). A switch is done when only new processes answer; the
//     operator's wait for that is measured beside the visitors' numbers. A
//     neighbour site is under its own load all along.
//   - Scale: 1000, 3000, 10,000 idle socket-activated sites: generator,
//     first and repeated daemon-reload (wall and systemd's CPU), sitectl
//     list against systemctl list-units, one site's status and mode switch,
//     the memory they cost, and a boot and poweroff with all of them.
//   - CLI overhead: sitectl restart against systemctl restart.
//
// docs/bench/README.md says precisely what every number means.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sitectl/sitectl/test/sandbox"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "timeit" {
		// The timing helper, run inside a sandbox.
		os.Exit(timeitMain(os.Stdin, os.Stdout))
	}
	os.Exit(run(os.Args[1:]))
}

// options are the command line.
type options struct {
	quick         bool
	switches      int
	repeats       int
	rate          int
	neighbourRate int
	tail, gap     time.Duration
	timeout       time.Duration
	doneTimeout   time.Duration
	wsgiImport    time.Duration
	wsgiCPU       time.Duration
	apps          string
	scenarios     string
	sites         string
	boot          bool
	floor         bool
	reps          int
	modeReps      int
	cliRuns       int
	out           string
	keepData      bool
	render        bool
}

func parseFlags(args []string) (options, *flag.FlagSet, error) {
	var o options
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.BoolVar(&o.quick, "quick", false, "a quick run: fewer repetitions (handoff 1, scale 3, mode switches 2, CLI 10) and 1s steady gaps, unless set explicitly")
	fs.IntVar(&o.switches, "switches", 8, "switches per scenario and repetition (a scenario may do fewer: uWSGI's chain reload 5)")
	fs.IntVar(&o.repeats, "repeats", 3, "repetitions of every handoff scenario, each from a fresh start of the site")
	fs.IntVar(&o.rate, "rate", 200, "requests per second to the site being switched")
	fs.IntVar(&o.neighbourRate, "neighbour-rate", 100, "requests per second to the neighbour site")
	fs.DurationVar(&o.tail, "tail", time.Second, "a switch window ends this long after the switch was done (its command returned and only new processes answer)")
	fs.DurationVar(&o.doneTimeout, "done-timeout", 30*time.Second, "how long to wait after a switch command returned until only new processes answer")
	fs.DurationVar(&o.wsgiImport, "wsgi-import", time.Second, "CPU time the WSGI test app spends importing (a cold start; 0: none)")
	fs.DurationVar(&o.wsgiCPU, "wsgi-cpu", 2*time.Millisecond, "CPU time the WSGI test app spends on every request (0: none; 5ms at 200 req/s keeps a 2-core machine 75% busy before anything else runs)")
	fs.DurationVar(&o.gap, "gap", 1500*time.Millisecond, "steady load between one switch window and the next switch")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Second, "request timeout")
	fs.StringVar(&o.apps, "apps", "go,gunicorn,uwsgi", "apps to run the handoff scenarios with (comma-separated; empty: no handoff benchmark)")
	fs.StringVar(&o.scenarios, "scenarios", strings.Join(scenarioIDs(), ","), "handoff scenarios (comma-separated; empty: none); a server's own reload runs only with that server")
	fs.StringVar(&o.sites, "sites", "1000,3000,10000", "site counts of the scale benchmark (comma-separated, ascending; empty: none)")
	fs.BoolVar(&o.boot, "scale-boot", true, "at each scale step, also boot a sandbox with the sites in place and time the boot and the poweroff")
	fs.BoolVar(&o.floor, "scale-floor", true, "at each scale step, time the repeated daemon-reload alternately with two more sandboxes, the same units without sitectl and plain socket and service pairs (systemd's floor): before the step's sockets start, and again with every socket listening")
	fs.IntVar(&o.reps, "reps", 10, "runs of each scale timing")
	fs.IntVar(&o.modeReps, "mode-reps", 5, "mode switches to maintenance and back at each scale step")
	fs.IntVar(&o.cliRuns, "cli-runs", 30, "runs of each restart command for the CLI overhead (0: skip)")
	fs.StringVar(&o.out, "out", "", "output directory (default: docs/bench of the repository)")
	fs.BoolVar(&o.render, "render", false, "measure nothing: render README.md again from results.json in the output directory (after editing test/bench/notes.md or the report code)")
	fs.BoolVar(&o.keepData, "keep-data", false, "keep the per-request data files (seconds, latency in ms, pid and ppid that answered) and gnuplot scripts (their directory is printed)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: go run ./test/bench [flags]   (as root)\n\nRuns sitectl's benchmarks on a throwaway systemd and writes results.json,\nREADME.md and plots into docs/bench/.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return o, fs, err
	}
	if fs.NArg() > 0 {
		return o, fs, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if o.quick {
		if !set["reps"] {
			o.reps = 3
		}
		if !set["repeats"] {
			o.repeats = 1
		}
		if !set["mode-reps"] {
			o.modeReps = 2
		}
		if !set["cli-runs"] {
			o.cliRuns = 10
		}
		if !set["gap"] {
			o.gap = time.Second
		}
	}
	if o.switches < 1 || o.repeats < 1 || o.rate < 1 || o.neighbourRate < 1 || o.reps < 1 || o.modeReps < 1 || o.cliRuns < 0 {
		return o, fs, errors.New("-switches, -repeats, -rate, -neighbour-rate, -reps and -mode-reps must be at least 1")
	}
	if o.wsgiImport < 0 || o.wsgiCPU < 0 || o.doneTimeout <= 0 {
		return o, fs, errors.New("-wsgi-import and -wsgi-cpu must not be negative, -done-timeout must be positive")
	}
	return o, fs, nil
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// maxScaleSites is how many sites fit on the ports from scaleBasePort.
const maxScaleSites = 65535 - scaleBasePort + 1

func parseSites(s string) ([]int, error) {
	var ns []int
	for _, f := range splitList(s) {
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 || n > maxScaleSites {
			return nil, fmt.Errorf("-sites: %q is not a number of sites from 1 to %d", f, maxScaleSites)
		}
		ns = append(ns, n)
	}
	if !slices.IsSorted(ns) || len(slices.Compact(slices.Clone(ns))) != len(ns) {
		return nil, fmt.Errorf("-sites must be ascending without repeats: %v", ns)
	}
	return ns, nil
}

// checkPairs refuses a selection of apps and scenarios in which no scenario
// runs with any app (a server's own reload with another server).
func checkPairs(apps []App, scens []Scenario) error {
	if len(apps) == 0 || len(scens) == 0 {
		return nil
	}
	for _, a := range apps {
		for _, s := range scens {
			if s.runsWith(a.ID) {
				return nil
			}
		}
	}
	return errors.New("-scenarios: none of the scenarios runs with the apps of -apps (a server's own reload runs only with that server)")
}

// repoRoot finds the module root above the working directory.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.Contains(string(b), "module github.com/sitectl/sitectl\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("run it from inside the sitectl repository (no go.mod of github.com/sitectl/sitectl above the working directory)")
		}
		dir = parent
	}
}

// shellQuote quotes an argument for the command line shown in README.md.
func shellQuote(s string) string {
	if s != "" && !strings.ContainsAny(s, " \t\n\"'\\$`;&|<>(){}*?[]#~!") {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s bench: %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func run(args []string) int {
	o, _, err := parseFlags(args)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench: error:", err)
		return 2
	}
	if err := runBench(o, args); err != nil {
		fmt.Fprintln(os.Stderr, "bench: error:", err)
		if cerr := sandbox.CloseAll(); cerr != nil {
			fmt.Fprintln(os.Stderr, "bench: closing sandboxes:", cerr)
		}
		return 1
	}
	return 0
}

// render writes README.md again from results.json.
func render(o options) error {
	outDir := o.out
	if outDir == "" {
		root, err := repoRoot()
		if err != nil {
			return err
		}
		outDir = filepath.Join(root, "docs", "bench")
	}
	b, err := os.ReadFile(filepath.Join(outDir, "results.json"))
	if err != nil {
		return err
	}
	var res Results
	if err := json.Unmarshal(b, &res); err != nil {
		return fmt.Errorf("%s: %w", filepath.Join(outDir, "results.json"), err)
	}
	// The targets are a function of the numbers: judged again, with the
	// report code of this checkout.
	res.Targets = evaluateTargets(&res)
	return os.WriteFile(filepath.Join(outDir, "README.md"), []byte(Markdown(&res)), 0o644)
}

func runBench(o options, args []string) (err error) {
	if o.render {
		return render(o)
	}
	if os.Geteuid() != 0 {
		return errors.New("the benchmark boots systemd in new namespaces and needs root")
	}
	var selApps []App
	for _, id := range splitList(o.apps) {
		a, ok := appByID(id)
		if !ok {
			return fmt.Errorf("-apps: no app %q (have %s)", id, appIDs())
		}
		selApps = append(selApps, a.withLoad(AppLoad{ImportCPU: o.wsgiImport, RequestCPU: o.wsgiCPU}))
	}
	var selScen []Scenario
	for _, id := range splitList(o.scenarios) {
		s, ok := scenarioByID(id)
		if !ok {
			return fmt.Errorf("-scenarios: no scenario %q (have %s)", id, strings.Join(scenarioIDs(), ", "))
		}
		selScen = append(selScen, s)
	}
	if err := checkPairs(selApps, selScen); err != nil {
		return err
	}
	sites, err := parseSites(o.sites)
	if err != nil {
		return err
	}
	if err := ensurePackages(); err != nil {
		return err
	}
	root, err := repoRoot()
	if err != nil {
		return err
	}
	outDir := o.out
	if outDir == "" {
		outDir = filepath.Join(root, "docs", "bench")
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return err
	}

	sandbox.HandleSignals()
	// Whatever happens below, no sandbox outlives this function.
	defer func() {
		if p := recover(); p != nil {
			sandbox.CloseAll()
			panic(p)
		}
	}()
	defer sandbox.CloseAll()
	if err := sandbox.ReapStale(os.Stderr); err != nil {
		logf("reaping sandboxes left by an earlier run: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Hour)
	defer cancel()

	start := time.Now()
	quoted := []string{"go", "run", "./test/bench"}
	for _, a := range args {
		quoted = append(quoted, shellQuote(a))
	}
	res := &Results{
		Command: strings.Join(quoted, " "),
		Quick:   o.quick,
		Started: start,
		Machine: describeMachine(ctx),
		Config: Config{
			Switches: o.switches, Repeats: o.repeats, Rate: o.rate, NeighbourRate: o.neighbourRate,
			TailMS: o.tail.Milliseconds(), GapMS: o.gap.Milliseconds(), TimeoutMS: o.timeout.Milliseconds(),
			DoneTimeoutMS: o.doneTimeout.Milliseconds(), WSGIImportMS: o.wsgiImport.Milliseconds(), WSGIRequestCPUMS: float64(o.wsgiCPU) / float64(time.Millisecond),
			Sites: sites, ScaleBoot: o.boot, ScaleFloor: o.floor, Reps: o.reps, ModeReps: o.modeReps, CLIRuns: o.cliRuns,
		},
	}
	for _, a := range selApps {
		res.Config.Apps = append(res.Config.Apps, a.ID)
	}
	for _, s := range selScen {
		res.Config.Scenarios = append(res.Config.Scenarios, s.ID)
	}

	logf("building sitectl, sitectl-generator and the Go test app")
	bin, err := buildBinaries(ctx, root)
	if err != nil {
		return err
	}
	defer os.RemoveAll(bin)
	work, err := os.MkdirTemp("/var/tmp", "sitectl-bench-data-")
	if err != nil {
		return err
	}
	if o.keepData {
		defer logf("data files and gnuplot scripts kept in %s", work)
	} else {
		defer os.RemoveAll(work)
	}
	bootLog := logWriter{}

	if (len(selApps) > 0 && len(selScen) > 0) || o.cliRuns > 0 {
		logf("booting the handoff sandbox")
		h, err := bootHost(ctx, "bench-handoff", bin, root, bootLog)
		if err != nil {
			return err
		}
		defer h.Close()
		if res.NsenterOverhead, err = nsenterOverhead(ctx, h); err != nil {
			return err
		}
		if len(selApps) > 0 && len(selScen) > 0 {
			res.Handoff, err = runHandoff(ctx, h, HandoffOptions{
				Apps: selApps, Scenarios: selScen, Switches: o.switches, Repeats: o.repeats, Rate: o.rate, NeighbourRate: o.neighbourRate,
				Tail: o.tail, Gap: o.gap, Timeout: o.timeout, DoneTimeout: o.doneTimeout, Log: logf,
			})
			if err != nil {
				return err
			}
		}
		if o.cliRuns > 0 {
			if res.CLI, err = runCLIOverhead(ctx, h, o.cliRuns, o.wsgiImport, logf); err != nil {
				return err
			}
		}
		if err := h.Close(); err != nil {
			return err
		}
	}
	if len(sites) > 0 {
		logf("booting the scale sandbox")
		scaleStart := time.Now()
		res.Scale, err = runScale(ctx, ScaleOptions{Sites: sites, Reps: o.reps, ModeReps: o.modeReps, Boot: o.boot, Floor: o.floor, BootLog: bootLog, Bin: bin, Root: root, Log: logf}, work, bootLog)
		res.ScaleDurationS = time.Since(scaleStart).Seconds()
		if err != nil {
			return err
		}
	}

	res.Machine.LoadAtEnd = loadavg()
	res.Targets = evaluateTargets(res)
	logf("drawing plots")
	if res.Plots, err = drawPlots(ctx, res, selApps, outDir, work); err != nil {
		return err
	}
	res.DurationS = time.Since(start).Seconds()
	js, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(outDir, "results.json"), append(js, '\n'), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(outDir, "README.md"), []byte(Markdown(res)), 0o644); err != nil {
		return err
	}
	for _, t := range res.Targets {
		logf("target %-9s %s: %s (target %s)", t.Status, t.What, t.Measured, t.Target)
	}
	logf("wrote results.json, README.md and %s into %s after %s", strings.Join(res.Plots, ", "), outDir, time.Since(start).Round(time.Second))
	return nil
}

// nsenterOverhead times `true` run the way switch commands are run.
func nsenterOverhead(ctx context.Context, h *host) (DurationStats, error) {
	var ds []time.Duration
	for i := 0; i < 20; i++ {
		t0 := time.Now()
		if _, err := h.run(ctx, "true"); err != nil {
			return DurationStats{}, err
		}
		ds = append(ds, time.Since(t0))
	}
	return SummarizeDurations(ds, false), nil
}

// logWriter prints the sandbox's progress lines like the harness's own.
type logWriter struct{}

func (logWriter) Write(p []byte) (int, error) {
	logf("%s", strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// neededPackages are the Debian packages the benchmark runs, with a file
// that tells whether each is installed.
var neededPackages = []struct{ file, pkg, why string }{
	{"/usr/bin/gnuplot", "gnuplot-nox", "it draws the plots"},
	{"/usr/bin/gunicorn", "gunicorn", "a server under test"},
	{"/usr/bin/uwsgi", "uwsgi", "a server under test"},
	{"/usr/lib/uwsgi/plugins/python3_plugin.so", "uwsgi-plugin-python3", "uWSGI's Python plugin"},
}

// ensurePackages installs the Debian packages the benchmark needs when they
// are missing, so that it is one command on a fresh machine (as root).
func ensurePackages() error {
	var missing []string
	for _, p := range neededPackages {
		if _, err := os.Stat(p.file); err != nil {
			logf("%s is missing; installing Debian's %s (%s)", p.file, p.pkg, p.why)
			missing = append(missing, p.pkg)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	for _, args := range [][]string{{"update", "-qq"}, append([]string{"install", "-y", "-qq", "--no-install-recommends"}, missing...)} {
		cmd := exec.Command("apt-get", args...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("apt-get %s failed: %w\n%s", args[0], err, out)
		}
	}
	for _, p := range neededPackages {
		if _, err := os.Stat(p.file); err != nil {
			return fmt.Errorf("%s is still missing after installing %s", p.file, p.pkg)
		}
	}
	return nil
}
