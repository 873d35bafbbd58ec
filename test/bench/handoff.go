package main

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sitectl/sitectl/internal/loadgen"
	"github.com/sitectl/sitectl/test/sandbox"
)

// neighbourSite is the other sitectl site (Go app) under its own load
// during every scenario.
const neighbourSite = "neighbour"

// HandoffOptions configure the handoff benchmark.
type HandoffOptions struct {
	Apps          []App
	Scenarios     []Scenario
	Switches      int
	Rate          int           // requests/s to the site being switched
	NeighbourRate int           // requests/s to the neighbour
	Tail          time.Duration // a switch window ends this long after the command returned
	Gap           time.Duration // steady time between one window's end and the next switch
	Timeout       time.Duration // per request
	Log           func(format string, args ...any)
}

// SwitchRecord is one switch as the operator saw it.
type SwitchRecord struct {
	Command  string  `json:"command"`
	IssuedS  float64 `json:"issued_s"` // seconds since the load started
	Duration Millis  `json:"duration_ms"`
	Error    string  `json:"error,omitempty"`
}

// Side is the load on one site during a scenario.
type Side struct {
	Site   string `json:"site"`
	URL    string `json:"url"`
	Rate   int    `json:"rate"`
	All    Stats  `json:"all"`
	Steady Stats  `json:"steady"`
	Window Stats  `json:"window"`
	// P99Ratio is p99 inside switch windows / p99 in steady state.
	P99Ratio float64 `json:"p99_ratio"`
	// Processes is how many different processes (generations of the app)
	// answered: switches + 1 for a site whose every switch replaced it, 1
	// for a site nobody touched.
	Processes int `json:"answering_processes"`

	results []loadgen.Result
}

// HandoffResult is one scenario for one app.
type HandoffResult struct {
	App            string         `json:"app"`
	Scenario       string         `json:"scenario"`
	Title          string         `json:"title"`
	Command        string         `json:"command"`
	Available      bool           `json:"available"`
	NotAvailable   string         `json:"not_available,omitempty"`
	DurationS      float64        `json:"duration_s,omitempty"`
	Switches       []SwitchRecord `json:"switches,omitempty"`
	SwitchDuration DurationStats  `json:"switch_duration"`
	SwitchErrors   int            `json:"switch_errors"`
	Subject        *Side          `json:"subject,omitempty"`
	Neighbour      *Side          `json:"neighbour,omitempty"`
	// HostCPUBusy is the machine's CPU use during the load (all CPUs,
	// everything on the machine), in percent; LoadAvg is /proc/loadavg
	// at the end of the scenario.
	HostCPUBusy float64 `json:"host_cpu_busy_percent"`
	LoadAvg     string  `json:"loadavg_at_end,omitempty"`

	loadStart time.Time
	windows   []Window
}

// freePort finds a TCP port that nothing listens on, below the host's
// ephemeral range (the sandbox shares the host's network namespace).
func freePort() (int, error) { return sandbox.FreePort() }

// runHandoff runs every scenario for every app in one sandbox, one after the
// other, with the neighbour under load during each.
func runHandoff(ctx context.Context, h *host, o HandoffOptions) ([]*HandoffResult, error) {
	// Everything is installed up front, with one daemon-reload.
	type planned struct {
		app  App
		scen Scenario
		in   Install
		port int
		res  *HandoffResult
	}
	var plan []*planned
	files := map[string]string{}
	nport, err := freePort()
	if err != nil {
		return nil, err
	}
	files["/etc/sitectl/sites/"+neighbourSite+".toml"] = apps[0].SiteFile(nport, "")
	for _, a := range o.Apps {
		for _, s := range o.Scenarios {
			p := &planned{app: a, scen: s, res: &HandoffResult{App: a.ID, Scenario: s.ID, Title: s.Title, Available: true}}
			if p.port, err = freePort(); err != nil {
				return nil, err
			}
			p.in = s.Install(a, p.port)
			if s.Available != nil {
				p.res.Available, p.res.NotAvailable = s.Available(ctx, h, p.in)
			}
			if p.res.Available {
				p.res.Command = commandFor(s, p.in.Name)
				for k, v := range p.in.Files {
					files[k] = v
				}
			}
			plan = append(plan, p)
		}
	}
	if err := h.writeFiles(ctx, files); err != nil {
		return nil, err
	}
	if out, err := h.run(ctx, "systemctl", "daemon-reload"); err != nil {
		return nil, fmt.Errorf("%w: %s", err, out)
	}
	if out, err := h.run(ctx, "systemctl", "start", "site-"+neighbourSite+".socket"); err != nil {
		return nil, fmt.Errorf("%w: %s", err, out)
	}
	nurl := fmt.Sprintf("http://127.0.0.1:%d/", nport)
	if err := waitServing(ctx, nurl, time.Minute); err != nil {
		return nil, fmt.Errorf("neighbour: %w", err)
	}

	var out []*HandoffResult
	for _, p := range plan {
		out = append(out, p.res)
		if !p.res.Available {
			o.Log("%s / %s: %s", p.app.ID, p.scen.ID, p.res.NotAvailable)
			continue
		}
		o.Log("%s / %s: %d switches under %d req/s (neighbour %d req/s)", p.app.ID, p.scen.ID, o.Switches, o.Rate, o.NeighbourRate)
		url := fmt.Sprintf("http://127.0.0.1:%d/", p.port)
		if err := runScenario(ctx, h, o, p.app, p.scen, p.in, url, nurl, p.res); err != nil {
			return out, fmt.Errorf("%s / %s: %w", p.app.ID, p.scen.ID, err)
		}
		r := p.res
		o.Log("  subject: %d requests, %d failed %v; p99 steady %.1f ms, in windows %.1f ms; switch median %.0f ms; %d processes answered",
			r.Subject.All.Requests, r.Subject.All.Failed, r.Subject.All.ByKind, r.Subject.Steady.P99.MS(), r.Subject.Window.P99.MS(), r.SwitchDuration.Median.MS(), r.Subject.Processes)
		o.Log("  neighbour: %d requests, %d failed; p99 steady %.1f ms, in windows %.1f ms (x%.2f); %d processes answered; machine CPU %.0f%% busy",
			r.Neighbour.All.Requests, r.Neighbour.All.Failed, r.Neighbour.Steady.P99.MS(), r.Neighbour.Window.P99.MS(), r.Neighbour.P99Ratio, r.Neighbour.Processes, r.HostCPUBusy)
	}
	return out, nil
}

// runScenario puts the site up, starts the load on it and on the neighbour,
// switches it o.Switches times and summarises.
func runScenario(ctx context.Context, h *host, o HandoffOptions, app App, s Scenario, in Install, url, nurl string, res *HandoffResult) error {
	if len(in.Start) > 0 {
		if out, err := h.run(ctx, append([]string{"systemctl", "start"}, in.Start...)...); err != nil {
			return fmt.Errorf("%w: %s", err, out)
		}
	}
	defer func() {
		if len(in.Stop) > 0 {
			h.run(context.WithoutCancel(ctx), append([]string{"systemctl", "stop"}, in.Stop...)...)
		}
	}()
	if err := waitServing(ctx, url, time.Minute); err != nil {
		return err
	}
	// Settle after the cold start (gunicorn's workers import the app after
	// READY=1).
	time.Sleep(time.Second)

	lctx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	var sres, nres []loadgen.Result
	cpu0 := readCPUTimes()
	res.loadStart = time.Now()
	wg.Go(func() {
		sres = loadgen.Run(lctx, loadgen.Config{URL: url, Rate: o.Rate, Duration: 24 * time.Hour, Timeout: o.Timeout})
	})
	wg.Go(func() {
		nres = loadgen.Run(lctx, loadgen.Config{URL: nurl, Rate: o.NeighbourRate, Duration: 24 * time.Hour, Timeout: o.Timeout})
	})
	sleep(ctx, o.Gap)
	var durs []time.Duration
	for i := 0; i < o.Switches && ctx.Err() == nil; i++ {
		argv := s.Switch(in.Name, i)
		issued := time.Now()
		out, err := h.run(ctx, argv...)
		returned := time.Now()
		rec := SwitchRecord{
			Command:  strings.Join(argv, " "),
			IssuedS:  issued.Sub(res.loadStart).Seconds(),
			Duration: Millis(returned.Sub(issued)),
		}
		if err != nil {
			rec.Error = strings.TrimSpace(err.Error() + ": " + out)
			res.SwitchErrors++
			o.Log("  switch %d failed: %s", i+1, rec.Error)
		}
		res.Switches = append(res.Switches, rec)
		res.windows = append(res.windows, Window{Start: issued, End: returned.Add(o.Tail)})
		durs = append(durs, returned.Sub(issued))
		sleep(ctx, o.Tail+o.Gap)
	}
	stop()
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	res.HostCPUBusy, res.LoadAvg = busyPercent(cpu0, readCPUTimes()), loadavg()
	res.DurationS = time.Since(res.loadStart).Seconds()
	res.SwitchDuration = SummarizeDurations(durs, false)
	res.Subject = side(in.Name, url, o.Rate, sres, res.windows, app.Process)
	res.Neighbour = side(neighbourSite, nurl, o.NeighbourRate, nres, res.windows, apps[0].Process)
	return nil
}

func side(site, url string, rate int, rs []loadgen.Result, ws []Window, process func(http.Header, string) string) *Side {
	steady, window := Split(rs, ws)
	s := &Side{Site: site, URL: url, Rate: rate, All: Summarize(rs), Steady: Summarize(steady), Window: Summarize(window), results: rs}
	s.P99Ratio = Ratio(s.Window.P99, s.Steady.P99)
	s.Processes = countProcesses(rs, process)
	return s
}

// countProcesses counts the distinct processes that answered successful
// requests.
func countProcesses(rs []loadgen.Result, process func(http.Header, string) string) int {
	seen := map[string]bool{}
	for _, r := range rs {
		if r.Outcome != loadgen.OK {
			continue
		}
		if id := process(r.Header, r.Body); id != "" {
			seen[id] = true
		}
	}
	return len(seen)
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// worstNeighbour returns the handoff results that ran, sorted by the
// neighbour's p99 ratio, worst first.
func worstNeighbour(rs []*HandoffResult) []*HandoffResult {
	var ran []*HandoffResult
	for _, r := range rs {
		if r.Available && r.Neighbour != nil {
			ran = append(ran, r)
		}
	}
	slices.SortStableFunc(ran, func(a, b *HandoffResult) int {
		switch {
		case a.Neighbour.P99Ratio > b.Neighbour.P99Ratio:
			return -1
		case a.Neighbour.P99Ratio < b.Neighbour.P99Ratio:
			return 1
		}
		return 0
	})
	return ran
}
