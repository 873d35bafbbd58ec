package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// The plots are drawn by gnuplot (Debian's gnuplot-nox) from a generated
// script and data files in a work directory.

// minPlotLatency is the floor of the logarithmic latency axis: refused
// connections fail within microseconds.
const minPlotLatency = 0.05 // ms

// Panel is one scenario's part of a latency-over-time plot.
type Panel struct {
	Title     string
	Message   string // shown instead of data (scenario not available)
	Windows   [][2]float64
	Issued    []float64
	SubjectOK string // data file names (empty: no such points)
	Failed    string
	Neighbour string
	XMax      float64
}

// LatencyPlot is one PNG: one panel per scenario.
type LatencyPlot struct {
	Output string
	Title  string
	YMax   float64 // ms
	Panels []Panel
}

// gnuplotQuote quotes s as a gnuplot single-quoted string: gnuplot runs
// `backquoted` text as a shell command everywhere but in single quotes.
func gnuplotQuote(s string) string {
	return "'" + strings.NewReplacer("'", "''", "\n", " ").Replace(s) + "'"
}

// Script renders the gnuplot script of the plot.
func (p LatencyPlot) Script() string {
	var b strings.Builder
	height := 70 + 260*len(p.Panels)
	fmt.Fprintf(&b, "set terminal pngcairo noenhanced size 1400,%d font \"DejaVu Sans,10\"\n", height)
	fmt.Fprintf(&b, "set output %s\n", gnuplotQuote(p.Output))
	fmt.Fprintf(&b, "set multiplot layout %d,1 title %s font \",12\"\n", len(p.Panels), gnuplotQuote(p.Title))
	fmt.Fprintf(&b, "set logscale y\nset yrange [%g:%g]\nset format y \"%%g\"\n", minPlotLatency, p.YMax)
	b.WriteString("set ylabel \"latency (ms)\"\nset xlabel \"seconds since the load started\"\n")
	b.WriteString("set grid ytics lc rgb \"#dddddd\"\nset key outside right top\nset lmargin 10\nset rmargin 30\n")
	for _, pn := range p.Panels {
		fmt.Fprintf(&b, "set title %s\n", gnuplotQuote(pn.Title))
		xmax := pn.XMax
		if xmax <= 0 {
			xmax = 1
		}
		fmt.Fprintf(&b, "set xrange [0:%g]\n", xmax)
		if pn.Message != "" {
			fmt.Fprintf(&b, "set label 1 %s at graph 0.5, graph 0.5 center font \",14\"\n", gnuplotQuote(pn.Message))
			b.WriteString("unset border\nunset tics\nunset xlabel\nunset ylabel\nunset grid\n")
			b.WriteString("plot 1/0 notitle\nunset label 1\n")
			b.WriteString("set border\nset tics\nset grid ytics\nset ylabel \"latency (ms)\"\nset xlabel \"seconds since the load started\"\n")
			continue
		}
		for i, w := range pn.Windows {
			fmt.Fprintf(&b, "set object %d rect from %.3f, graph 0 to %.3f, graph 1 behind fc rgb \"#fde2b8\" fs solid 1.0 noborder\n", i+1, w[0], w[1])
		}
		for i, x := range pn.Issued {
			fmt.Fprintf(&b, "set arrow %d from %.3f, graph 0 to %.3f, graph 1 nohead lc rgb \"#d62728\" dt 2 lw 1\n", i+1, x, x)
		}
		var series []string
		if pn.Neighbour != "" {
			series = append(series, fmt.Sprintf("%s using 1:2 with points pt 7 ps 0.15 lc rgb \"#aaaaaa\" title \"neighbour site\"", gnuplotQuote(pn.Neighbour)))
		}
		if pn.SubjectOK != "" {
			series = append(series, fmt.Sprintf("%s using 1:2 with points pt 7 ps 0.25 lc rgb \"#1f77b4\" title \"switched site: ok\"", gnuplotQuote(pn.SubjectOK)))
		}
		if pn.Failed != "" {
			series = append(series, fmt.Sprintf("%s using 1:2 with points pt 2 ps 0.6 lc rgb \"#d62728\" title \"switched site: failed\"", gnuplotQuote(pn.Failed)))
		}
		// A dummy series keys the switch windows.
		series = append(series, "1/0 with boxes fs solid 1.0 fc rgb \"#fde2b8\" title \"switch window\"")
		b.WriteString("plot " + strings.Join(series, ", \\\n     ") + "\n")
		b.WriteString("unset object\nunset arrow\n")
	}
	b.WriteString("unset multiplot\n")
	return b.String()
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten.
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	e := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if v <= m*e {
			return m * e
		}
	}
	return 10 * e
}

// writePoints writes "seconds latency_ms pid ppid" lines of the samples
// that pass keep (pid and ppid of the process that answered, "-" when the
// answer does not say: with -keep-data they show which generation served
// the slow requests of a switch); it returns "" when there are none.
func writePoints(path string, t0 time.Time, rs []Sample, keep func(Sample) bool) (string, error) {
	var b bytes.Buffer
	for _, r := range rs {
		if !keep(r) {
			continue
		}
		ms := max(float64(r.Latency)/float64(time.Millisecond), minPlotLatency)
		fmt.Fprintf(&b, "%.4f %.3f %s\n", r.StartTime().Sub(t0).Seconds(), ms, r.answeredBy())
	}
	if b.Len() == 0 {
		return "", nil
	}
	return path, os.WriteFile(path, b.Bytes(), 0o644)
}

// latencyPlot builds the plot of one app's scenarios, writing its data
// files into dataDir.
func latencyPlot(app App, rs []*HandoffResult, dataDir, output string) (LatencyPlot, error) {
	p := LatencyPlot{Output: output, YMax: 10,
		Title: app.Title + ": latency of every request over time; shaded: switch windows, dashed red: switch issued"}
	for _, r := range rs {
		if r.App != app.ID {
			continue
		}
		if !r.Available {
			p.Panels = append(p.Panels, Panel{Title: r.Title, Message: r.NotAvailable})
			continue
		}
		if len(r.Repetitions) == 0 {
			continue
		}
		// The first repetition.
		rep := r.Repetitions[0]
		pn := Panel{Title: fmt.Sprintf("%s: %s — repetition 1 of %d: %d switches, %d of %d requests failed, p99 steady %.0f ms / in windows %.0f ms",
			r.Title, strings.ReplaceAll(r.Command, "`", ""), len(r.Repetitions), len(rep.Switches), rep.Subject.All.Failed, rep.Subject.All.Requests, rep.Subject.Steady.P99.MS(), rep.Subject.Window.P99.MS()),
			XMax: rep.DurationS}
		for i, w := range rep.windows {
			pn.Windows = append(pn.Windows, [2]float64{w.Start.Sub(rep.loadStart).Seconds(), w.End.Sub(rep.loadStart).Seconds()})
			pn.Issued = append(pn.Issued, rep.Switches[i].IssuedS)
		}
		base := filepath.Join(dataDir, app.ID+"-"+r.Scenario)
		var err error
		if pn.SubjectOK, err = writePoints(base+"-ok.dat", rep.loadStart, rep.Subject.results, Sample.OK); err != nil {
			return p, err
		}
		if pn.Failed, err = writePoints(base+"-failed.dat", rep.loadStart, rep.Subject.results, func(x Sample) bool { return !x.OK() }); err != nil {
			return p, err
		}
		if pn.Neighbour, err = writePoints(base+"-neighbour.dat", rep.loadStart, rep.Neighbour.results, func(Sample) bool { return true }); err != nil {
			return p, err
		}
		for _, s := range []*Side{rep.Subject, rep.Neighbour} {
			for _, x := range s.results {
				p.YMax = max(p.YMax, float64(x.Latency)/float64(time.Millisecond))
			}
		}
		p.Panels = append(p.Panels, pn)
	}
	p.YMax = niceCeil(p.YMax * 1.2)
	return p, nil
}

// gnuplot runs a script.
func gnuplot(ctx context.Context, script, scriptPath string) error {
	if err := os.WriteFile(scriptPath, []byte(script), 0o644); err != nil {
		return err
	}
	out, err := exec.CommandContext(ctx, "gnuplot", scriptPath).CombinedOutput()
	if err != nil {
		return fmt.Errorf("gnuplot %s: %w\n%s", scriptPath, err, out)
	}
	return nil
}

// drawPlots draws every plot into outDir and returns the file names.
func drawPlots(ctx context.Context, r *Results, apps []App, outDir, dataDir string) ([]string, error) {
	var files []string
	for _, a := range apps {
		name := "handoff-" + a.ID + ".png"
		p, err := latencyPlot(a, r.Handoff, dataDir, filepath.Join(outDir, name))
		if err != nil {
			return files, err
		}
		if len(p.Panels) == 0 {
			continue
		}
		if err := gnuplot(ctx, p.Script(), filepath.Join(dataDir, "handoff-"+a.ID+".gp")); err != nil {
			return files, err
		}
		files = append(files, name)
	}
	scale, err := drawScalePlots(ctx, r.Scale, outDir, dataDir)
	return append(files, scale...), err
}

// answerer is the pid and ppid in a test app's JSON answer; 0, 0 when
// the answer is not one.
func answerer(body string) (pid, ppid int32) {
	var a struct{ PID, PPID int32 }
	if json.Unmarshal([]byte(body), &a) != nil || a.PID == 0 {
		return 0, 0
	}
	return a.PID, a.PPID
}

// answeredBy is "pid ppid" of the process that answered, "- -" when its
// answer did not say.
func (s Sample) answeredBy() string {
	if s.PID == 0 {
		return "- -"
	}
	return fmt.Sprintf("%d %d", s.PID, s.PPID)
}
