package main

import (
	"context"
	"fmt"
	"time"
)

// cliSite is the site the CLI overhead is measured on: the Go app with a
// probe, as in scenario 3, and settle_time = "1ms", so that what is
// measured is sitectl's own cost. cliSettledSite is the same site with the
// default settle_time: what watching a new process settle adds (issue 11).
const (
	cliSite         = "cli"
	cliSettledSite  = "cli-settled"
	cliGunicornSite = "cli-gunicorn"
	// cliGunicornFullSite is cliGunicornSite with fast_exit = false: its
	// old processes end with Python's teardown, which the stop waits for.
	cliGunicornFullSite = "cli-gunicorn-full"
)

// CLIOverhead compares `sitectl restart SITE` with `systemctl restart
// site-SITE.service` on the same unit, run alternately inside the sandbox.
type CLIOverhead struct {
	Site      string        `json:"site"`
	Runs      int           `json:"runs"`
	Sitectl   DurationStats `json:"sitectl_restart"`
	Systemctl DurationStats `json:"systemctl_restart"`
	// Settled is sitectl restart of cliSettledSite, with the default
	// settle_time.
	Settled     DurationStats `json:"sitectl_restart_settled"`
	SettledSite string        `json:"settled_site"`
	// Ratio is median(sitectl) / median(systemctl).
	Ratio float64 `json:"ratio"`
	// Traced are more runs of sitectl restart Site with SITECTL_TRACE=1,
	// each after a systemctl restart.
	Traced *TracedRestarts `json:"traced,omitempty"`

	// GunicornSite is a gunicorn site whose workers import the app for
	// GunicornImportMS of CPU, restarted with sitectl while a prober asks
	// it over and over which master serves: Gunicorn is sitectl's wall
	// time, FirstAnswer when the new workers first answered (the earliest
	// a probe can succeed), Lag the difference in each run (sitectl's wall
	// time minus the first answer), NoAnswer the runs without one.
	GunicornSite     string        `json:"gunicorn_site,omitempty"`
	GunicornImportMS int64         `json:"gunicorn_import_ms,omitempty"`
	Gunicorn         DurationStats `json:"sitectl_restart_gunicorn"`
	FirstAnswer      DurationStats `json:"gunicorn_first_answer"`
	Lag              DurationStats `json:"gunicorn_lag"`
	NoAnswer         int           `json:"gunicorn_no_answer,omitempty"`
	// GunicornFull is the same for cliGunicornFullSite (fast_exit =
	// false), timed alternately with GunicornSite.
	GunicornFullSite string        `json:"gunicorn_full_site,omitempty"`
	GunicornFull     DurationStats `json:"sitectl_restart_gunicorn_full"`
	FirstAnswerFull  DurationStats `json:"gunicorn_full_first_answer"`
	LagFull          DurationStats `json:"gunicorn_full_lag"`
	NoAnswerFull     int           `json:"gunicorn_full_no_answer,omitempty"`
}

func runCLIOverhead(ctx context.Context, h *host, runs int, wsgiImport time.Duration, log func(string, ...any)) (*CLIOverhead, error) {
	files := map[string]string{}
	var ports []int
	gunicorn := apps[1].withLoad(AppLoad{ImportCPU: wsgiImport})
	for _, site := range []struct {
		name, extra string
		app         App
	}{{cliSite, "settle_time = \"1ms\"\n" + modeExtra, apps[0]}, {cliSettledSite, modeExtra, apps[0]}, {cliGunicornSite, modeExtra, gunicorn}, {cliGunicornFullSite, "fast_exit = false\n" + modeExtra, gunicorn}} {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		files["/etc/sitectl/sites/"+site.name+".toml"] = site.app.Site(port, site.extra)
		ports = append(ports, port)
	}
	if err := h.writeFiles(ctx, files); err != nil {
		return nil, err
	}
	for _, argv := range [][]string{{"systemctl", "daemon-reload"}, {"systemctl", "start", "site-" + cliSite + ".socket", "site-" + cliSettledSite + ".socket", "site-" + cliGunicornSite + ".socket", "site-" + cliGunicornFullSite + ".socket"}} {
		if out, err := h.run(ctx, argv...); err != nil {
			return nil, fmt.Errorf("%w: %s", err, out)
		}
	}
	for _, port := range ports {
		if err := waitServing(ctx, fmt.Sprintf("http://127.0.0.1:%d/", port), time.Minute); err != nil {
			return nil, err
		}
	}
	log("CLI overhead: %d × sitectl restart %s, systemctl restart site-%s.service and sitectl restart %s, alternating", runs, cliSite, cliSite, cliSettledSite)
	// One untimed round first: the first sitectl run creates the site's state.
	spec := func(n int) TimeSpec {
		return TimeSpec{Runs: n, Commands: []TimedCmd{
			{Argv: []string{"sitectl", "restart", cliSite}},
			{Argv: []string{"systemctl", "restart", "site-" + cliSite + ".service"}},
			{Argv: []string{"sitectl", "restart", cliSettledSite}},
		}}
	}
	if _, err := h.timeit(ctx, spec(1)); err != nil {
		return nil, err
	}
	tr, err := h.timeit(ctx, spec(runs))
	if err != nil {
		return nil, err
	}
	c := &CLIOverhead{Site: cliSite, Runs: runs,
		Sitectl: tr.Stats(0, true), Systemctl: tr.Stats(1, true), Settled: tr.Stats(2, true), SettledSite: cliSettledSite}
	c.Ratio = Ratio(c.Sitectl.Median, c.Systemctl.Median)
	log("  sitectl restart median %.1f ms, systemctl restart median %.1f ms: ratio %.2f; with the default settle_time %.1f ms",
		c.Sitectl.Median.MS(), c.Systemctl.Median.MS(), c.Ratio, c.Settled.Median.MS())
	traced := max(runs/3, 5)
	log("CLI overhead: %d × SITECTL_TRACE=1 sitectl restart %s, each after systemctl restart", traced, cliSite)
	if c.Traced, err = traceRestarts(ctx, h, cliSite, traced); err != nil {
		return nil, err
	}
	log("  traced: median %.1f ms, of which %.1f ms before sitectl's first step and after its last", c.Traced.Wall.Median.MS(), c.Traced.Outside.Median.MS())

	gruns := max(runs/3, 3)
	log("CLI overhead: %d × sitectl restart %s and %s (gunicorn importing for %s, fast_exit and not), alternating, against the new workers' first answer", gruns, cliGunicornSite, cliGunicornFullSite, wsgiImport)
	g := TimeSpec{Runs: gruns, Commands: []TimedCmd{
		{Argv: []string{"sitectl", "restart", cliGunicornSite}, Watch: fmt.Sprintf("http://127.0.0.1:%d/", ports[2])},
		{Argv: []string{"sitectl", "restart", cliGunicornFullSite}, Watch: fmt.Sprintf("http://127.0.0.1:%d/", ports[3])},
	}}
	if _, err := h.timeit(ctx, TimeSpec{Runs: 1, Commands: g.Commands}); err != nil {
		return nil, err
	}
	gr, err := h.timeit(ctx, g)
	if err != nil {
		return nil, err
	}
	c.GunicornSite, c.GunicornImportMS, c.Gunicorn = cliGunicornSite, wsgiImport.Milliseconds(), gr.Stats(0, true)
	c.FirstAnswer, c.Lag, c.NoAnswer = firstAnswerStats(gr, 0)
	c.GunicornFullSite, c.GunicornFull = cliGunicornFullSite, gr.Stats(1, true)
	c.FirstAnswerFull, c.LagFull, c.NoAnswerFull = firstAnswerStats(gr, 1)
	log("  sitectl restart median %.1f ms; the new workers' first answer median %.1f ms; sitectl's lag median %.1f ms, max %.1f ms",
		c.Gunicorn.Median.MS(), c.FirstAnswer.Median.MS(), c.Lag.Median.MS(), c.Lag.Max.MS())
	log("  with fast_exit = false: sitectl restart median %.1f ms; first answer median %.1f ms",
		c.GunicornFull.Median.MS(), c.FirstAnswerFull.Median.MS())
	return c, nil
}

// firstAnswerStats summarises, over the successful runs of command i of
// r, the first answer of the new code and sitectl's lag behind it, and
// counts the runs without a first answer.
func firstAnswerStats(r TimeResult, i int) (first, lag DurationStats, none int) {
	var fs, ls []time.Duration
	for j, n := range r.Nanos[i] {
		if r.Errors[i][j] != "" || j >= len(r.FirstNewNanos[i]) {
			continue
		}
		f := r.FirstNewNanos[i][j]
		if f < 0 {
			none++
			continue
		}
		fs = append(fs, time.Duration(f))
		ls = append(ls, time.Duration(n-f))
	}
	return SummarizeDurations(fs, true), SummarizeDurations(ls, true), none
}
