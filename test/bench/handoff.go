package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os/exec"
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
	Repeats       int           // repetitions of every scenario, each from a fresh start
	Rate          int           // requests/s to the site being switched
	NeighbourRate int           // requests/s to the neighbour
	Tail          time.Duration // a switch window ends this long after the switch was done
	Gap           time.Duration // steady time between one window's end and the next switch
	Timeout       time.Duration // per request
	DoneTimeout   time.Duration // how long the harness waits for a switch to be done
	Log           func(format string, args ...any)
}

// SwitchRecord is one switch as the operator saw it.
type SwitchRecord struct {
	Command  string  `json:"command"`
	IssuedS  float64 `json:"issued_s"` // seconds since the repetition's load started
	Duration Millis  `json:"duration_ms"`
	// DoneAfter is the time from issuing the command until only processes
	// answered that had not answered before it (doneAt); Incomplete when
	// processes that answered before still did until the next switch (or
	// the end of the load), or no new one answered at all.
	DoneAfter  Millis `json:"done_after_ms,omitempty"`
	Incomplete bool   `json:"incomplete,omitempty"`
	Error      string `json:"error,omitempty"`
	// Output is what a multi-step switch (a script) printed.
	Output string `json:"output,omitempty"`
	// NotCounted: a switch the scenario runs but does not count in its
	// switch times (Scenario.Counted).
	NotCounted bool `json:"not_counted,omitempty"`

	waited time.Time // when the harness stopped waiting for it to be done
}

// Side is the load on one site during a scenario.
type Side struct {
	Site   string `json:"site"`
	URL    string `json:"url"`
	Rate   int    `json:"rate"`
	All    Stats  `json:"all"`
	Steady Stats  `json:"steady"`
	Window Stats  `json:"window"`
	// P99Ratio is p99 inside switch windows / p99 in steady state (of all
	// repetitions' requests together, for a scenario's totals).
	P99Ratio float64 `json:"p99_ratio"`
	// Processes is how many different processes (generations of the app)
	// answered: switches + 1 for a site whose every switch replaced it, 1
	// for a site nobody touched.
	Processes int `json:"answering_processes"`

	results        []Sample // of the plotted repetition only
	steady, window []Sample
	procs          map[string]bool
}

// Repetition is one run of a scenario: the site started afresh, the load,
// the switches.
type Repetition struct {
	N              int            `json:"n"`
	DurationS      float64        `json:"duration_s"`
	Switches       []SwitchRecord `json:"switches"`
	SwitchDuration DurationStats  `json:"switch_duration"`
	DoneAfter      DurationStats  `json:"done_after"`
	Incomplete     int            `json:"incomplete"`
	SwitchErrors   int            `json:"switch_errors"`
	Subject        *Side          `json:"subject"`
	Neighbour      *Side          `json:"neighbour"`
	HostCPUBusy    float64        `json:"host_cpu_busy_percent"`
	LoadAvg        string         `json:"loadavg_at_end,omitempty"`
	// Notes say what happened to the app's unit when it was not running
	// after a switch (the switches of this repetition stopped there).
	Notes []string `json:"notes,omitempty"`
	// Handovers counts the overlapped handovers the launcher logged, and
	// AtCap those that happened at the cap on the quiet wait, not on
	// evidence (issue 16.2).
	Handovers int `json:"handovers,omitempty"`
	AtCap     int `json:"handovers_at_cap,omitempty"`

	loadStart time.Time
	windows   []Window
}

// HandoffResult is one scenario for one app, over all its repetitions.
type HandoffResult struct {
	App          string  `json:"app"`
	Scenario     string  `json:"scenario"`
	Title        string  `json:"title"`
	Command      string  `json:"command"`
	Peer         bool    `json:"peer,omitempty"`
	Control      bool    `json:"control,omitempty"`
	Available    bool    `json:"available"`
	NotAvailable string  `json:"not_available,omitempty"`
	DurationS    float64 `json:"duration_s,omitempty"`
	// The totals of all repetitions: the switch command's wall time, the
	// time until it was done (only new processes answered), the switches
	// that never got there, the requests.
	SwitchCount    int           `json:"switch_count"`
	SwitchDuration DurationStats `json:"switch_duration"`
	DoneAfter      DurationStats `json:"done_after"`
	Incomplete     int           `json:"incomplete"`
	SwitchErrors   int           `json:"switch_errors"`
	Subject        *Side         `json:"subject,omitempty"`
	Neighbour      *Side         `json:"neighbour,omitempty"`
	// P99Ratios are the switched site's p99 ratio of every repetition,
	// P99RatioMedian their median; NeighbourP99Ratios the neighbour's.
	P99Ratios          []float64 `json:"p99_ratios,omitempty"`
	P99RatioMedian     float64   `json:"p99_ratio_median,omitempty"`
	NeighbourP99Ratios []float64 `json:"neighbour_p99_ratios,omitempty"`
	// HostCPUBusy is the machine's CPU use during the load (all CPUs,
	// everything on the machine), in percent, the mean of the
	// repetitions'; LoadAvg is /proc/loadavg at the end of the last.
	HostCPUBusy float64 `json:"host_cpu_busy_percent"`
	LoadAvg     string  `json:"loadavg_at_end,omitempty"`
	// Handovers and AtCap are the repetitions' sums.
	Handovers   int           `json:"handovers,omitempty"`
	AtCap       int           `json:"handovers_at_cap,omitempty"`
	Repetitions []*Repetition `json:"repetitions,omitempty"`
}

// freePort finds a TCP port that nothing listens on, below the host's
// ephemeral range (the sandbox shares the host's network namespace).
func freePort() (int, error) { return sandbox.FreePort() }

// planned is one scenario for one app.
type planned struct {
	app  App
	scen Scenario
	in   Install
	url  string
	res  *HandoffResult
}

// runHandoff runs every scenario for every app it applies to in one sandbox,
// one after the other, with the neighbour under load during each; then the
// second repetition of each, and so on, so that drift on the machine hits
// all scenarios alike.
func runHandoff(ctx context.Context, h *host, o HandoffOptions) ([]*HandoffResult, error) {
	plan, nurl, err := installHandoff(ctx, h, o)
	if err != nil {
		return nil, err
	}
	var out []*HandoffResult
	for _, p := range plan {
		out = append(out, p.res)
		if !p.res.Available {
			o.Log("%s / %s: %s", p.app.ID, p.scen.ID, p.res.NotAvailable)
		}
	}
	for rep := 1; rep <= o.Repeats; rep++ {
		for _, p := range plan {
			if !p.res.Available {
				continue
			}
			n := o.Switches
			if p.scen.MaxSwitches > 0 {
				n = min(n, p.scen.MaxSwitches)
			}
			o.Log("%s / %s, repetition %d of %d: %d switches under %d req/s (neighbour %d req/s)", p.app.ID, p.scen.ID, rep, o.Repeats, n, o.Rate, o.NeighbourRate)
			r, err := runRepetition(ctx, h, o, p, n, nurl, rep)
			if err != nil {
				return out, fmt.Errorf("%s / %s, repetition %d: %w", p.app.ID, p.scen.ID, rep, err)
			}
			logRepetition(o.Log, r)
			p.res.Repetitions = append(p.res.Repetitions, r)
		}
	}
	for _, p := range plan {
		if p.res.Available {
			aggregate(p.res, p.app, p.in.Name, p.url, nurl, o)
		}
	}
	return out, nil
}

// installHandoff writes every scenario's units and site files, with one
// daemon-reload, and starts the neighbour.
func installHandoff(ctx context.Context, h *host, o HandoffOptions) ([]*planned, string, error) {
	var plan []*planned
	files := map[string]string{}
	nport, err := freePort()
	if err != nil {
		return nil, "", err
	}
	files["/etc/sitectl/sites/"+neighbourSite+".toml"] = apps[0].SiteFile(nport, "")
	for _, a := range o.Apps {
		for _, s := range o.Scenarios {
			if !s.runsWith(a.ID) {
				continue
			}
			p := &planned{app: a, scen: s, res: &HandoffResult{App: a.ID, Scenario: s.ID, Title: s.Title, Peer: s.Peer, Control: s.Control, Available: true}}
			port, err := freePort()
			if err != nil {
				return nil, "", err
			}
			p.in, p.url = s.Install(a, port), fmt.Sprintf("http://127.0.0.1:%d/", port)
			if s.Available != nil {
				p.res.Available, p.res.NotAvailable = s.Available(ctx, h, p.in)
			}
			if p.res.Available {
				p.res.Command = commandFor(s, p.in)
				for k, v := range p.in.Files {
					files[k] = v
				}
			}
			plan = append(plan, p)
		}
	}
	if err := h.writeFiles(ctx, files); err != nil {
		return nil, "", err
	}
	if out, err := h.run(ctx, "systemctl", "daemon-reload"); err != nil {
		return nil, "", fmt.Errorf("%w: %s", err, out)
	}
	if out, err := h.run(ctx, "systemctl", "start", "site-"+neighbourSite+".socket"); err != nil {
		return nil, "", fmt.Errorf("%w: %s", err, out)
	}
	nurl := fmt.Sprintf("http://127.0.0.1:%d/", nport)
	if err := waitServing(ctx, nurl, time.Minute); err != nil {
		return nil, "", fmt.Errorf("neighbour: %w", err)
	}
	return plan, nurl, nil
}

func logRepetition(log func(string, ...any), r *Repetition) {
	s, n := r.Subject, r.Neighbour
	log("  subject: %d requests, %d failed %v; p99 steady %.1f ms, in windows %.1f ms (x%.2f); switch median %.0f ms, done after median %.0f ms, %d of %d not done",
		s.All.Requests, s.All.Failed, s.All.ByKind, s.Steady.P99.MS(), s.Window.P99.MS(), s.P99Ratio, r.SwitchDuration.Median.MS(), r.DoneAfter.Median.MS(), r.Incomplete, len(r.Switches))
	log("  neighbour: %d requests, %d failed; p99 steady %.1f ms, in windows %.1f ms (x%.2f); %d processes answered; machine CPU %.0f%% busy",
		n.All.Requests, n.All.Failed, n.Steady.P99.MS(), n.Window.P99.MS(), n.P99Ratio, n.Processes, r.HostCPUBusy)
	for _, note := range r.Notes {
		log("  note: %s", note)
	}
}

// runRepetition puts the site up, starts the load on it and on the
// neighbour, switches it n times and summarises.
func runRepetition(ctx context.Context, h *host, o HandoffOptions, p *planned, n int, nurl string, rep int) (*Repetition, error) {
	in := p.in
	if len(in.Start) > 0 {
		if out, err := h.run(ctx, append([]string{"systemctl", "start"}, in.Start...)...); err != nil {
			return nil, fmt.Errorf("%w: %s", err, out)
		}
	}
	defer func() {
		if len(in.Stop) > 0 {
			h.run(context.WithoutCancel(ctx), append([]string{"systemctl", "stop"}, in.Stop...)...)
		}
	}()
	if err := waitServing(ctx, p.url, time.Minute); err != nil {
		return nil, err
	}
	// Settle after the cold start (gunicorn's workers import the app after
	// READY=1 and after the first one answers).
	sleep(ctx, p.app.Settle)

	r := &Repetition{N: rep}
	tr := newAnswers(p.app.Worker)
	lctx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	var sres, nres []loadgen.Result
	cpu0 := readCPUTimes()
	r.loadStart = time.Now()
	wg.Go(func() {
		sres = loadgen.Run(lctx, loadgen.Config{URL: p.url, Rate: o.Rate, Duration: 24 * time.Hour, Timeout: o.Timeout, OnResult: tr.record})
	})
	wg.Go(func() {
		nres = loadgen.Run(lctx, loadgen.Config{URL: nurl, Rate: o.NeighbourRate, Duration: 24 * time.Hour, Timeout: o.Timeout})
	})
	sleep(ctx, o.Gap)
	for i := 0; i < n && ctx.Err() == nil; i++ {
		// Numbered across repetitions: a site keeps its mode from one to
		// the next, so alternating switches go on alternating.
		if !switchOnce(ctx, h, o, p, r, tr, (rep-1)*n+i) {
			break
		}
		sleep(ctx, o.Gap)
	}
	stop()
	loadEnd := time.Now()
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r.HostCPUBusy, r.LoadAvg = busyPercent(cpu0, readCPUTimes()), loadavg()
	if !p.scen.Peer && !p.scen.Control { // only sitectl's launcher hands over
		r.Handovers, r.AtCap = countHandovers(ctx, h, in.Unit, r.loadStart)
	}
	r.DurationS = time.Since(r.loadStart).Seconds()
	finishRepetition(r, p.app, sres, nres, loadEnd, o.Tail, p.scen)
	r.Subject.Site, r.Subject.URL, r.Subject.Rate = in.Name, p.url, o.Rate
	r.Neighbour.Site, r.Neighbour.URL, r.Neighbour.Rate = neighbourSite, nurl, o.NeighbourRate
	return r, nil
}

// switchOnce runs switch i (counted over all repetitions), waits until it
// is done (or gives up) and the tail has passed, and checks that the app's
// unit still runs. It returns false when the unit does not run: the
// remaining switches make no sense.
func switchOnce(ctx context.Context, h *host, o HandoffOptions, p *planned, r *Repetition, tr *answers, i int) bool {
	argv := p.scen.Switch(p.in, i)
	before := tr.serving(p.scen.Recent)
	issued := time.Now()
	out, err := h.run(ctx, argv...)
	returned := time.Now()
	rec := SwitchRecord{
		Command:    strings.Join(argv, " "),
		IssuedS:    issued.Sub(r.loadStart).Seconds(),
		Duration:   Millis(returned.Sub(issued)),
		NotCounted: p.scen.Counted != nil && !p.scen.Counted(i),
	}
	if p.scen.Shown != nil {
		rec.Command = p.scen.Shown(p.in)
		rec.Output = limitText(strings.TrimSpace(out), 600)
	}
	if err != nil {
		rec.Error = switchError(p.scen, err, out)
		r.SwitchErrors++
		o.Log("  switch %d failed: %s", len(r.Switches)+1, rec.Error)
	}
	// The switch is done when only new processes answer. systemd is asked
	// about the unit only when the answers do not show that (a unit that
	// stopped will not get done: no need to wait for it): a systemctl run
	// costs CPU, its own and PID 1's, that would land in the window whose
	// latency is measured, or in the steady load after it (40 ms of CPU
	// right after every command, measured with perf on 6 December). The
	// control switches nothing: there is nothing to wait for or ask.
	done, note := p.scen.Control, ""
	rec.waited = time.Now()
	if !done {
		rec.waited, done = tr.waitDone(ctx, before, issued, o.Tail, returned.Add(min(o.DoneTimeout, askUnitAfter)))
		if !done {
			if note = unitDown(ctx, h, p.in.Unit, issued); note == "" {
				rec.waited, done = tr.waitDone(ctx, before, issued, o.Tail, returned.Add(o.DoneTimeout))
			}
		}
	}
	end := later(returned.Add(o.Tail), rec.waited)
	if !done {
		end = later(end, rec.waited.Add(o.Tail))
	}
	r.Switches = append(r.Switches, rec)
	sleep(ctx, time.Until(end))
	if note == "" && !p.scen.Control && (!done || !tr.tracks()) {
		note = unitDown(ctx, h, p.in.Unit, issued)
	}
	if note != "" {
		r.Notes = append(r.Notes, fmt.Sprintf("after switch %d: %s", len(r.Switches), note))
		return false
	}
	if err != nil && p.scen.StopOnError {
		r.Notes = append(r.Notes, fmt.Sprintf("switch %d failed, so the repetition switched no more: %s", len(r.Switches), limitText(rec.Error, 300)))
		return false
	}
	return true
}

// countHandovers counts the overlapped handovers that unit's launcher
// logged since since, and those of them at the cap on the quiet wait
// (internal/launcher: "generation N takes over ..."). A unit without
// overlapped handovers has none.
func countHandovers(ctx context.Context, h *host, unit string, since time.Time) (all, atCap int) {
	out, _ := h.run(ctx, "journalctl", "--no-pager", "-o", "cat", "-u", unit, fmt.Sprintf("--since=@%d", since.Unix()))
	return parseHandovers(out)
}

// parseHandovers counts the launcher's handover lines in a journal.
func parseHandovers(journal string) (all, atCap int) {
	for _, l := range strings.Split(journal, "\n") {
		if !strings.Contains(l, "generation ") || !strings.Contains(l, " takes over ") {
			continue
		}
		all++
		if strings.Contains(l, " takes over at the cap of ") {
			atCap++
		}
	}
	return all, atCap
}

// unitDown returns "" when unit runs (or is on its way up), and otherwise
// what systemd says about it and what it logged since the switch was
// issued.
func unitDown(ctx context.Context, h *host, unit string, since time.Time) string {
	state, err := h.run(ctx, "systemctl", "show", "-p", "ActiveState", "--value", unit)
	state = strings.TrimSpace(state)
	if err == nil && state != "inactive" && state != "failed" && state != "deactivating" {
		return ""
	}
	show, _ := h.run(ctx, "systemctl", "show", "-p", "ActiveState", "-p", "SubState", "-p", "Result", unit)
	journal, _ := h.run(ctx, "journalctl", "--no-pager", "-o", "cat", "_PID=1", "UNIT="+unit, fmt.Sprintf("--since=@%d", since.Unix()))
	lines := strings.Split(strings.TrimSpace(journal), "\n")
	if len(lines) > 8 {
		lines = lines[len(lines)-8:]
	}
	return fmt.Sprintf("%s is not running (%s); systemd logged: %s", unit,
		strings.Join(strings.Fields(show), ", "), strings.Join(lines, " / "))
}

// switchError words a failed switch command: a script's exit status and
// output (its text is in the scenario's description), or the whole error.
func switchError(s Scenario, err error, out string) string {
	var exit *exec.ExitError
	if s.Shown != nil && errors.As(err, &exit) {
		msg := exit.Error()
		if exit.ExitCode() == 124 {
			msg += " (timed out)"
		}
		return strings.TrimSpace(msg + ": " + strings.Join(strings.Fields(out), " "))
	}
	return strings.TrimSpace(err.Error() + ": " + out)
}

// later returns the later of a and b.
// askUnitAfter is how long after a switch command returned the benchmark
// waits for the answers to show the switch done before it asks systemd
// whether the unit still runs.
const askUnitAfter = 5 * time.Second

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func limitText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// finishRepetition works out when each switch of scenario s was done, the
// switch windows and the statistics of both sites. The control's windows
// end a tail after its command returned: it switches nothing.
func finishRepetition(r *Repetition, app App, sres, nres []loadgen.Result, loadEnd time.Time, tail time.Duration, s Scenario) {
	ids := make([]string, len(sres))
	for i, x := range sres {
		if x.Outcome == loadgen.OK && app.Worker != nil {
			ids[i] = app.Worker(x.Header, x.Body)
		}
	}
	var durs, dones []time.Duration
	for i := range r.Switches {
		sw := &r.Switches[i]
		issued := r.loadStart.Add(time.Duration(sw.IssuedS * float64(time.Second)))
		returned := issued.Add(time.Duration(sw.Duration))
		until := loadEnd
		if i+1 < len(r.Switches) {
			until = r.loadStart.Add(time.Duration(r.Switches[i+1].IssuedS * float64(time.Second)))
		}
		end := returned
		var since time.Time // every process that answered before counts as old
		if s.Recent > 0 {
			since = issued.Add(-s.Recent)
		}
		switch at, ok := doneAt(sres, ids, since, issued, until); {
		case s.Control:
			// Nothing to be done: the window is the command and the tail.
		case ok:
			sw.DoneAfter = Millis(at.Sub(issued))
			if !sw.NotCounted {
				dones = append(dones, at.Sub(issued))
			}
			end = later(end, at)
		default:
			sw.Incomplete = true
			r.Incomplete++
			end = later(end, sw.waited)
		}
		r.windows = append(r.windows, Window{Start: issued, End: end.Add(tail)})
		if !sw.NotCounted {
			durs = append(durs, time.Duration(sw.Duration))
		}
	}
	r.SwitchDuration = SummarizeDurations(durs, false)
	r.DoneAfter = SummarizeDurations(dones, false)
	r.Subject = side(sres, r.windows, app.Process)
	r.Neighbour = side(nres, r.windows, apps[0].Process)
}

// doneAt returns when a switch issued at issued was done: when only
// processes answered that had not answered before it (since since: a warm
// rollback goes back to a process that answered before the deploy). That is the end of
// the first answer by such a new process after the last answer (ending
// before until) by an old one. ok is false when no new process answered
// after the last old answer (the switch was not done by until). ids names
// the process that answered each of rs ("" for none).
func doneAt(rs []loadgen.Result, ids []string, since, issued, until time.Time) (at time.Time, ok bool) {
	old := map[string]bool{}
	for i, r := range rs {
		if end := r.Start.Add(r.Latency); ids[i] != "" && end.Before(issued) && !end.Before(since) {
			old[ids[i]] = true
		}
	}
	var lastOld time.Time
	for i, r := range rs {
		end := r.Start.Add(r.Latency)
		if ids[i] != "" && old[ids[i]] && !end.Before(issued) && end.Before(until) && end.After(lastOld) {
			lastOld = end
		}
	}
	for i, r := range rs {
		end := r.Start.Add(r.Latency)
		if ids[i] == "" || old[ids[i]] || end.Before(issued) || !end.Before(until) || !end.After(lastOld) {
			continue
		}
		if !ok || end.Before(at) {
			at, ok = end, true
		}
	}
	return at, ok
}

// side summarises one site's requests of a repetition. It keeps them as
// Samples, for the scenario's totals and the plot.
func side(rs []loadgen.Result, ws []Window, process func(http.Header, string) string) *Side {
	all := Samples(rs)
	steady, window := Split(all, ws)
	s := &Side{All: Summarize(all), Steady: Summarize(steady), Window: Summarize(window), results: all}
	s.P99Ratio = Ratio(s.Window.P99, s.Steady.P99)
	s.procs = processes(rs, process)
	s.Processes = len(s.procs)
	s.steady, s.window = steady, window
	return s
}

// aggregate sums the repetitions of a scenario up into its totals, and
// keeps the first repetition's requests for the plot.
func aggregate(res *HandoffResult, app App, name, url, nurl string, o HandoffOptions) {
	var durs, dones []time.Duration
	var subj, neigh []*Side
	var cpu float64
	for _, r := range res.Repetitions {
		for _, sw := range r.Switches {
			if sw.NotCounted {
				continue
			}
			durs = append(durs, time.Duration(sw.Duration))
			if !sw.Incomplete && !res.Control {
				dones = append(dones, time.Duration(sw.DoneAfter))
			}
		}
		res.SwitchCount += len(r.Switches)
		res.Handovers += r.Handovers
		res.AtCap += r.AtCap
		res.Incomplete += r.Incomplete
		res.SwitchErrors += r.SwitchErrors
		res.DurationS += r.DurationS
		res.P99Ratios = append(res.P99Ratios, r.Subject.P99Ratio)
		res.NeighbourP99Ratios = append(res.NeighbourP99Ratios, r.Neighbour.P99Ratio)
		subj, neigh = append(subj, r.Subject), append(neigh, r.Neighbour)
		cpu += r.HostCPUBusy
		res.LoadAvg = r.LoadAvg
	}
	if len(res.Repetitions) == 0 {
		return
	}
	res.HostCPUBusy = cpu / float64(len(res.Repetitions))
	res.SwitchDuration = SummarizeDurations(durs, false)
	res.DoneAfter = SummarizeDurations(dones, false)
	res.P99RatioMedian = medianFloat(res.P99Ratios)
	res.Subject = pooled(subj, name, url, o.Rate)
	res.Neighbour = pooled(neigh, neighbourSite, nurl, o.NeighbourRate)
	for i, r := range res.Repetitions {
		if i > 0 {
			r.Subject.results, r.Neighbour.results = nil, nil
		}
	}
}

// pooled is one side of all repetitions together; its results are the
// first repetition's, for the plot.
func pooled(sides []*Side, site, url string, rate int) *Side {
	var steady, window []Sample
	procs := map[string]bool{}
	for _, s := range sides {
		steady, window = append(steady, s.steady...), append(window, s.window...)
		for p := range s.procs {
			procs[p] = true
		}
	}
	all := append(slices.Clone(steady), window...)
	p := &Side{Site: site, URL: url, Rate: rate, All: Summarize(all), Steady: Summarize(steady), Window: Summarize(window),
		Processes: len(procs), results: sides[0].results}
	p.P99Ratio = Ratio(p.Window.P99, p.Steady.P99)
	return p
}

// medianFloat is the median of vs (the mean of the middle two for an even
// count); 0 for none.
func medianFloat(vs []float64) float64 {
	if len(vs) == 0 {
		return 0
	}
	s := slices.Clone(vs)
	slices.Sort(s)
	if n := len(s); n%2 == 1 {
		return s[n/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// processes is the set of processes that answered successful requests.
func processes(rs []loadgen.Result, process func(http.Header, string) string) map[string]bool {
	seen := map[string]bool{}
	for _, r := range rs {
		if r.Outcome != loadgen.OK {
			continue
		}
		if id := process(r.Header, r.Body); id != "" {
			seen[id] = true
		}
	}
	return seen
}

// countProcesses counts the distinct processes that answered successful
// requests.
func countProcesses(rs []loadgen.Result, process func(http.Header, string) string) int {
	return len(processes(rs, process))
}

// answers watches, while the load runs, which processes answer.
type answers struct {
	id   func(http.Header, string) string
	mu   sync.Mutex
	last map[string]time.Time // when each process's latest answer ended
}

func newAnswers(id func(http.Header, string) string) *answers {
	return &answers{id: id, last: map[string]time.Time{}}
}

// record is the load generator's OnResult.
func (a *answers) record(r loadgen.Result) {
	if r.Outcome != loadgen.OK || a.id == nil {
		return
	}
	id := a.id(r.Header, r.Body)
	if id == "" {
		return
	}
	end := r.Start.Add(r.Latency)
	a.mu.Lock()
	defer a.mu.Unlock()
	if end.After(a.last[id]) {
		a.last[id] = end
	}
}

// serving returns the processes that answered within recent, or (recent
// 0) that answered so far.
func (a *answers) serving(recent time.Duration) map[string]bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	since := time.Now().Add(-recent)
	s := map[string]bool{}
	for id, t := range a.last {
		if recent == 0 || !t.Before(since) {
			s[id] = true
		}
	}
	return s
}

// state returns when the latest answer of a process in old ended (not
// before since), and whether another process answered after that.
func (a *answers) state(old map[string]bool, since time.Time) (lastOld time.Time, newAfter bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	lastOld = since
	for id, t := range a.last {
		if old[id] && t.After(lastOld) {
			lastOld = t
		}
	}
	for id, t := range a.last {
		if !old[id] && t.After(lastOld) {
			newAfter = true
		}
	}
	return lastOld, newAfter
}

// tracks says whether the answers say which process answered, so that
// waitDone can tell a switch done.
func (a *answers) tracks() bool { return a.id != nil }

// waitDone waits until only processes not in old have answered for settle
// (the switch is done: doneAt computes the exact instant afterwards), or
// until deadline. It returns when it stopped waiting and whether the switch
// looked done. Without an id function it does not wait.
func (a *answers) waitDone(ctx context.Context, old map[string]bool, issued time.Time, settle time.Duration, deadline time.Time) (time.Time, bool) {
	if a.id == nil {
		return time.Now(), true
	}
	for {
		lastOld, newAfter := a.state(old, issued)
		now := time.Now()
		if newAfter && now.Sub(lastOld) >= settle {
			return now, true
		}
		if now.After(deadline) || ctx.Err() != nil {
			return now, false
		}
		sleep(ctx, 20*time.Millisecond)
	}
}

func sleep(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
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
