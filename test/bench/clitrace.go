package main

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/sitectl/sitectl/internal/trace"
)

// TracedStep is one step of `SITECTL_TRACE=1 sitectl restart`, over the
// traced runs: its own time (since the step before) in each run.
type TracedStep struct {
	Step string        `json:"step"`
	Time DurationStats `json:"time"`
}

// stepLine is one line of SITECTL_TRACE: the time since sitectl began,
// the time since the step before, and the step.
var stepLine = regexp.MustCompile(`^ *([0-9.]+) ms +\+([0-9.]+) ms  (.*)$`)

// varying are the numbers of a step that differ from run to run: pids and
// times.
var varying = regexp.MustCompile(`\bpid [0-9]+|\bPID [0-9]+|after [0-9.]+s\b|for [0-9.]+m?s\b`)

// parseTrace reads the steps of one traced run from its standard error:
// each step's name, its numbers that vary between runs taken out, and its
// own time. Lines that are not steps are left out.
func parseTrace(stderr []byte) (names []string, own []time.Duration, err error) {
	for _, line := range strings.Split(string(stderr), "\n") {
		rest, ok := strings.CutPrefix(line, trace.Prefix)
		if !ok {
			continue
		}
		m := stepLine.FindStringSubmatch(rest)
		if m == nil {
			return nil, nil, fmt.Errorf("a trace line not as sitectl writes it: %q", line)
		}
		since, perr := strconv.ParseFloat(m[2], 64)
		if perr != nil {
			return nil, nil, fmt.Errorf("a trace line not as sitectl writes it: %q: %w", line, perr)
		}
		names = append(names, varying.ReplaceAllStringFunc(m[3], func(s string) string {
			f := strings.Fields(s)
			return f[0] + " …"
		}))
		own = append(own, time.Duration(since*float64(time.Millisecond)))
	}
	if len(names) == 0 {
		return nil, nil, fmt.Errorf("no trace lines in %q", stderr)
	}
	return names, own, nil
}

// summarizeSteps gives each step of the runs its times, in the order of
// the first run; a step missing from some run is summarised over the runs
// that have it.
func summarizeSteps(runs [][]string, own [][]time.Duration) []TracedStep {
	if len(runs) == 0 {
		return nil
	}
	times := map[string][]time.Duration{}
	var order []string
	for i, names := range runs {
		for j, n := range names {
			if _, ok := times[n]; !ok {
				order = append(order, n)
			}
			times[n] = append(times[n], own[i][j])
		}
	}
	steps := make([]TracedStep, 0, len(order))
	for _, n := range order {
		steps = append(steps, TracedStep{Step: n, Time: SummarizeDurations(times[n], false)})
	}
	return steps
}

// TracedRestarts are the runs of `SITECTL_TRACE=1 sitectl restart`.
type TracedRestarts struct {
	Runs  int          `json:"runs"`
	Steps []TracedStep `json:"steps"`
	// Wall is the traced runs' wall time, timed as the untraced ones;
	// Outside is, run by run, the wall time minus the time of the last
	// step: the exec, the Go runtime's start before sitectl's packages,
	// and the exit.
	Wall    DurationStats `json:"wall"`
	Outside DurationStats `json:"outside"`
}

// traceRestarts times `SITECTL_TRACE=1 sitectl restart site` n times,
// each after a `systemctl restart` of the same unit as in the timed runs,
// and summarises the steps.
func traceRestarts(ctx context.Context, h *host, site string, n int) (*TracedRestarts, error) {
	r, err := h.timeit(ctx, TimeSpec{Runs: n, Commands: []TimedCmd{
		{Argv: []string{"systemctl", "restart", "site-" + site + ".service"}},
		{Argv: []string{"sitectl", "restart", site}, Env: []string{trace.Env + "=1"}, KeepStderr: true},
	}})
	if err != nil {
		return nil, err
	}
	return tracedFrom(r, 1)
}

// tracedFrom summarises the traced runs of command i of r.
func tracedFrom(r TimeResult, i int) (*TracedRestarts, error) {
	var runs [][]string
	var own [][]time.Duration
	var wall, outside []time.Duration
	for j, stderr := range r.Stderr[i] {
		if e := r.Errors[i][j]; e != "" {
			return nil, fmt.Errorf("a traced run failed: %s", e)
		}
		names, times, err := parseTrace([]byte(stderr))
		if err != nil {
			return nil, err
		}
		var last time.Duration
		for _, t := range times {
			last += t
		}
		runs, own = append(runs, names), append(own, times)
		d := time.Duration(r.Nanos[i][j])
		wall, outside = append(wall, d), append(outside, d-last)
	}
	return &TracedRestarts{Runs: len(runs), Steps: summarizeSteps(runs, own), Wall: SummarizeDurations(wall, false), Outside: SummarizeDurations(outside, false)}, nil
}

// stepsMarkdown is the table of where sitectl restart's time goes.
func stepsMarkdown(c *CLIOverhead) string {
	tr := c.Traced
	if tr == nil || len(tr.Steps) == 0 {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Where the time of `sitectl restart %s` goes: %d more runs with `SITECTL_TRACE=1` (sitectl(1)), each after a `systemctl restart` of the same unit, timed as the runs above (median %s ms). Each step's own time, from the step before; the first from when sitectl's Go packages begin to initialise; the last row is the rest of each run's wall time: the exec, the Go runtime's own start and the exit. systemd's job is what `systemctl restart` waits for too; the rest is sitectl's own. A number that varies from run to run (a pid, a time) is shown as ….\n\n", c.Site, tr.Runs, ms(tr.Wall.Median))
	t := table{head: []string{"step (ends when)", "median (ms)", "min (ms)", "max (ms)"}}
	for _, s := range tr.Steps {
		t.add(s.Step, ms(s.Time.Median), ms(s.Time.Min), ms(s.Time.Max))
	}
	t.add("(exec, the Go runtime's start, exit)", ms(tr.Outside.Median), ms(tr.Outside.Min), ms(tr.Outside.Max))
	b.WriteString(t.String())
	b.WriteString("\n")
	return b.String()
}
