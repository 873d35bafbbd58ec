package main

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// The scale part's targets, section of README.md and plots.

// scaleTargetSites is the step the scale targets are for.
const scaleTargetSites = 10000

func (r *Results) scaleStep(n int) *ScaleResult {
	for _, s := range r.Scale {
		if s.N == n {
			return s
		}
	}
	return nil
}

// scaleTargets compares the scale results with the targets: those at 1000
// sites of the first release, and those at 10,000 sites of issue 16.
func scaleTargets(r *Results) []Target {
	var ts []Target
	if s := r.scaleStep(1000); s == nil {
		ts = append(ts, Target{What: "1000 sites: `sitectl list --json`", Target: "≤ 300 ms", Status: statusNotMeasured, Measured: "not run"},
			Target{What: "1000 sites: generator", Target: "≤ 500 ms", Status: statusNotMeasured, Measured: "not run"})
	} else {
		ts = append(ts, timingTarget("1000 sites: `sitectl list --json`", 300, s.SitectlList, ""))
		ts = append(ts, timingTarget("1000 sites: generator (writing the units)", 500, s.GeneratorWrite,
			fmt.Sprintf("; --dryrun %s ms", durCell(s.GeneratorDryrun))))
	}
	n := scaleTargetSites
	s := r.scaleStep(n)
	if s == nil {
		for _, w := range []struct{ what, target string }{
			{"repeated `systemctl daemon-reload`", "≤ 10 s"}, {"repeated `systemctl daemon-reload`, sockets not started", "≤ 10 s"}, {"`sitectl list`", "≤ 300 ms"}, {"`sitectl list --json`", "≤ 300 ms"},
			{"generator (writing the units)", "≤ 1000 ms"}, {"`sitectl status SITE`", "≤ 2 × at the smallest step"},
		} {
			ts = append(ts, Target{What: fmt.Sprintf("%d sites: %s", n, w.what), Target: w.target, Status: statusNotMeasured, Measured: "not run"})
		}
		return ts
	}
	listening := timingTarget(fmt.Sprintf("%d sites, sockets listening: repeated `systemctl daemon-reload`", n), 10000, s.DaemonReload,
		fmt.Sprintf("; systemd's CPU %s ms", durCell(s.DaemonReloadCPU)))
	if f := s.FloorListening; f != nil {
		// The comparison's own sitectl reloads, not the ones timed alone.
		listening.Measured += "; again, alternately with the floor: " + reloadText(f.Sitectl, f.SitectlCPU, "systemd's CPU")
		listening = floorTarget(listening, f.Sitectl, f.SitectlCPU, f)
	}
	ts = append(ts, listening)
	ts = append(ts, floorTarget(timingTarget(fmt.Sprintf("%d sites, sockets not started: repeated `systemctl daemon-reload`", n), 10000, s.DaemonReloadIdle,
		fmt.Sprintf("; systemd's CPU %s ms", durCell(s.DaemonReloadIdleCPU))), s.DaemonReloadIdle, s.DaemonReloadIdleCPU, s.Floor))
	ts = append(ts, timingTarget(fmt.Sprintf("%d sites: `sitectl list`", n), 300, s.SitectlListText, ""))
	ts = append(ts, timingTarget(fmt.Sprintf("%d sites: `sitectl list --json`", n), 300, s.SitectlList, ""))
	ts = append(ts, timingTarget(fmt.Sprintf("%d sites, every site with state: `sitectl list --json`", n), 300, s.SitectlListJSONStated, ""))
	ts = append(ts, timingTarget(fmt.Sprintf("%d sites: generator (writing the units)", n), 1000, s.GeneratorWrite,
		fmt.Sprintf("; --dryrun %s ms", durCell(s.GeneratorDryrun))))
	first := r.Scale[0]
	flat := Target{What: fmt.Sprintf("%d sites: `sitectl status SITE` stays flat", n), Target: fmt.Sprintf("≤ 2 × at %d sites", first.N)}
	switch {
	case s.StatusOne.Failed > 0 || first.StatusOne.Failed > 0:
		flat.Status, flat.Measured = statusMissed, "fails: "+s.StatusOne.Error+first.StatusOne.Error
	default:
		flat.Measured = fmt.Sprintf("%s ms (%s ms at %d sites)", ms(s.StatusOne.Median), ms(first.StatusOne.Median), first.N)
		flat.Status = metOrMissed(s.StatusOne.Median.MS() <= 2*first.StatusOne.Median.MS())
	}
	return append(ts, flat)
}

// scaleMarkdown renders the scale section of README.md.
func scaleMarkdown(r *Results) string {
	if len(r.Scale) == 0 {
		return ""
	}
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	last := r.Scale[len(r.Scale)-1]
	p("## Many sites\n\n")
	p("Sites are added to one fresh sandbox in steps (%s). Each is the Go app on its own TCP port (%s, in the sandbox's own network namespace), ", joinInts(r.Config.Sites), last.Listen)
	p("socket-activated: its socket listens, no app process runs. Times are medians of %d runs (mode switches: %d each way), ", r.Config.Reps, r.Config.ModeReps)
	p("timed inside the sandbox from fork/exec to exit, output to /dev/null. ")
	p("Why `daemon-reload` used to grow with the square of the number of sites, and what an operator of 10,000 sites should know: [docs/scale.md](../scale.md). ")
	if r.ScaleDurationS > 0 {
		p("The scale part took %s.", (time.Duration(r.ScaleDurationS) * time.Second).String())
	}
	p("\n\n")
	p("### systemd: loading and reloading the units\n\n")
	t := table{head: []string{"sites", "generator, writes units", "generator `--dryrun`", "first `daemon-reload` (loads the new sites)", "repeated `daemon-reload`, sockets not started (systemd's CPU)", "`systemctl start --all 'site-*.socket'`", "repeated `daemon-reload`, sockets listening", "systemd's CPU per repeated reload"}}
	failures := map[string]DurationStats{}
	var order []string
	note := func(n int, what string, d DurationStats) {
		k := fmt.Sprintf("%d sites, %s", n, what)
		failures[k] = d
		order = append(order, k)
	}
	for _, s := range r.Scale {
		t.add(fmt.Sprint(s.N), withCPU(s.GeneratorWrite, s.GeneratorWriteCPU), durCell(s.GeneratorDryrun), ms(s.FirstDaemonReload),
			withCPU(s.DaemonReloadIdle, s.DaemonReloadIdleCPU), ms(s.SocketStart),
			withMax(s.DaemonReload), durCell(s.DaemonReloadCPU))
		note(s.N, "generator", s.GeneratorWrite)
		note(s.N, "generator --dryrun", s.GeneratorDryrun)
		note(s.N, "systemctl daemon-reload, sockets not started", s.DaemonReloadIdle)
		note(s.N, "systemctl daemon-reload, sockets listening", s.DaemonReload)
	}
	b.WriteString(t.String())
	p("\nAll times in ms; in parentheses the CPU time of the command itself (user + system, with the children it waited for). *systemd's CPU* is the user and system time of the sandbox's PID 1 during each reload (`/proc/PID/stat`). CPU times hardly move when the machine is busy with other work; wall times do.\n\n")
	p("### sitectl and systemctl\n\n")
	t = table{head: []string{"sites", "`sitectl list`", "`sitectl list --json`", "both, every site with state", "`systemctl list-units --all 'site-*'` (units)", "`sitectl status SITE`", "`sitectl mode SITE maintenance` / `normal`"}}
	for _, s := range r.Scale {
		t.add(fmt.Sprint(s.N), withCPU(s.SitectlListText, s.SitectlListTextCPU), withCPU(s.SitectlList, s.SitectlListCPU),
			withCPU(s.SitectlListStated, s.SitectlListStatedCPU)+" / "+withCPU(s.SitectlListJSONStated, s.SitectlListJSONStatedCPU),
			fmt.Sprintf("%s, %d units", withCPU(s.SystemctlList, s.SystemctlListCPU), s.ListedUnits),
			withCPU(s.StatusOne, s.StatusOneCPU), fmt.Sprintf("%s / %s (%s)", durCell(s.ModeMaintenance), durCell(s.ModeNormal), s.ModeSite))
		note(s.N, "sitectl list", s.SitectlListText)
		note(s.N, "sitectl list --json", s.SitectlList)
		note(s.N, "sitectl list, every site with state", s.SitectlListStated)
		note(s.N, "sitectl list --json, every site with state", s.SitectlListJSONStated)
		note(s.N, "systemctl list-units", s.SystemctlList)
		note(s.N, "sitectl status "+s.ModeSite, s.StatusOne)
		note(s.N, "sitectl mode "+s.ModeSite+" maintenance", s.ModeMaintenance)
		note(s.N, "sitectl mode "+s.ModeSite+" normal", s.ModeNormal)
	}
	b.WriteString(t.String())
	stated := "the state directory and mode file its first start leaves (written as `sitectl prepare` writes them), as on a host whose sites have all run."
	if r.Scale[0].StatedRestarted {
		stated = "the state directory of a site that has run and was restarted once with sitectl (its mode file as `sitectl prepare` writes it, and its state file with the restart in its history), as on a host whose sites have all run; one untimed list first records them in list's cache, as the first list after any change does."
	}
	p("\nAll times in ms; in parentheses the CPU time of the command itself. The sites have never run, so they have no state; *every site with state* lists them again after giving each %s\n", stated)
	if f := failureNotes(failures, order); f != "" {
		p("\nFailures:\n\n%s", f)
	}
	p("\n![times against the number of sites](scale.png)\n\n")
	b.WriteString(floorMarkdown(r))
	if slices.ContainsFunc(r.Scale, func(s *ScaleResult) bool { return s.Boot != nil }) {
		p("### Boot and poweroff\n\n")
		p("At each step a second sandbox boots with the step's site files, sitectl and its generator in place before systemd starts (`sandbox.Options.Seed`): ")
		p("the generator runs, systemd loads every unit and starts every socket (they are wanted by `sockets.target`). ")
		p("*To running* is from starting the sandbox until `systemctl is-system-running` says running, as the harness saw it (about 0.3 s of it is the sandbox's own setup); ")
		p("*systemd userspace* is systemd's own `FinishTimestamp - UserspaceTimestamp` (what \"Startup finished in\" says), of which *generators* and *loading units* are parts. ")
		p("*Poweroff* is from systemd's poweroff request (SIGRTMIN+4) until its PID 1 is gone: stopping every unit and freeing them.\n\n")
		t = table{head: []string{"sites", "to running (s)", "systemd userspace (s)", "generators (ms)", "loading units (ms)", "sockets listening", "systemd VmRSS after boot", "poweroff (s)"}}
		for _, s := range r.Scale {
			bt := s.Boot
			if bt == nil {
				continue
			}
			off := fmt.Sprintf("%.1f", bt.Poweroff.MS()/1000)
			if bt.PoweroffTimedOut {
				off = "**> " + off + "** (gave up)"
			}
			t.add(fmt.Sprint(s.N), fmt.Sprintf("%.1f", bt.Wall.MS()/1000), fmt.Sprintf("%.1f", bt.Userspace.MS()/1000), ms(bt.Generators), ms(bt.UnitsLoad),
				fmt.Sprint(bt.Listening), kib(bt.PID1RSSKiB), off)
		}
		b.WriteString(t.String())
		p("\n")
		lastSocketTable(&b, r.Scale)
	}
	p("### Memory of idle sites\n\n")
	p("cgroup memory accounting of the sandbox is not available on this host (its cgroup2 has only the hugetlb controller), ")
	p("so the cost of N idle sites is assembled from three parts:\n\n")
	p("- **systemd**: VmRSS of the sandbox's systemd (PID 1) from `/proc/PID/status`, against its value before any site existed (after one daemon-reload with no site). RssAnon, its anonymous part, is shown too: VmRSS also counts shared library pages that were merely touched.\n")
	p("- **kernel sockets** (an estimate): per listening socket, the object sizes of the slab caches it takes (%s, from `/proc/slabinfo`), times the number of sites. ", kernelObjects(r.Scale))
	p("As checks: the growth of `TCP: inuse` in `/proc/net/sockstat` of the sandbox's network namespace and the measured growth of the `TCP` and `sock_inode_cache` slab caches (host-wide, so other users' sockets count too; SLUB's active counts are approximate). Listening sockets have no buffers.\n")
	p("- **unit files**: the generated site units on `/run`'s tmpfs, counted in whole 4 KiB pages (tmpfs keeps each file in its own pages).\n\n")
	p("Not counted: dbus-daemon and journald (they do not grow with idle sites), the page cache of the site files in `/etc`, and what a site costs once its app runs.\n\n")
	t = table{head: []string{"sites", "systemd VmRSS (before → now)", "systemd RssAnon (before → now)", "per site: systemd", "per site: kernel sockets", "per site: unit files on tmpfs", "per site: total", "check: `TCP: inuse` +, slab growth"}}
	for _, s := range r.Scale {
		mm := s.Memory
		t.add(fmt.Sprint(s.N), kib(mm.PID1RSSBaseKiB)+" → "+kib(mm.PID1RSSKiB), kib(mm.PID1AnonBaseKiB)+" → "+kib(mm.PID1AnonKiB),
			fmt.Sprintf("%.1f KiB", mm.PerSitePID1KiB), fmt.Sprintf("%.1f KiB", mm.PerSiteKernelBytes/1024),
			fmt.Sprintf("%.1f KiB (%d files)", mm.PerSiteGeneratedBytes/1024, mm.GeneratedFiles), fmt.Sprintf("%.0f KiB", perSiteTotal(mm)/1024),
			fmt.Sprintf("+%d sockets, %+.0f KiB", mm.TCPInUseDelta, float64(mm.SlabGrowthBytes)/1024))
	}
	b.WriteString(t.String())
	p("\n![memory against the number of sites](scale-memory.png)\n\n")
	return b.String()
}

// withCPU is a median wall time with the command's CPU time.
func withCPU(wall, cpu DurationStats) string {
	if cpu.Runs == 0 || wall.Failed > 0 {
		return durCell(wall)
	}
	return fmt.Sprintf("%s (%s)", durCell(wall), ms(cpu.Median))
}

// perSiteTotal is the memory of one idle site in bytes.
func perSiteTotal(m Memory) float64 {
	return m.PerSitePID1KiB*1024 + m.PerSiteKernelBytes + m.PerSiteGeneratedBytes
}

// scaleSeries are the columns of the scale plot.
var scaleSeries = []struct {
	title string
	color string
	get   func(*ScaleResult) DurationStats
}{
	{"sitectl-generator (writes units)", "#9467bd", func(r *ScaleResult) DurationStats { return r.GeneratorWrite }},
	{"first daemon-reload (loads the new sites)", "#bcbd22", func(r *ScaleResult) DurationStats { return one(r.FirstDaemonReload) }},
	{"repeated daemon-reload, sockets not started", "#17becf", func(r *ScaleResult) DurationStats { return r.DaemonReloadIdle }},
	{"repeated daemon-reload", "#7f7f7f", func(r *ScaleResult) DurationStats { return r.DaemonReload }},
	{"systemd's CPU per repeated daemon-reload", "#c7c7c7", func(r *ScaleResult) DurationStats { return r.DaemonReloadCPU }},
	{"sitectl list", "#d62728", func(r *ScaleResult) DurationStats { return r.SitectlListText }},
	{"sitectl list --json", "#ff9896", func(r *ScaleResult) DurationStats { return r.SitectlList }},
	{"systemctl list-units --all 'site-*'", "#e377c2", func(r *ScaleResult) DurationStats { return r.SystemctlList }},
	{"sitectl status SITE", "#17becf", func(r *ScaleResult) DurationStats { return r.StatusOne }},
	{"sitectl mode SITE maintenance", "#1f77b4", func(r *ScaleResult) DurationStats { return r.ModeMaintenance }},
	{"boot with all sites, to running", "#2ca02c", func(r *ScaleResult) DurationStats {
		if r.Boot == nil {
			return DurationStats{}
		}
		return one(r.Boot.Wall)
	}},
	{"poweroff", "#98df8a", func(r *ScaleResult) DurationStats {
		if r.Boot == nil || r.Boot.PoweroffTimedOut {
			return DurationStats{}
		}
		return one(r.Boot.Poweroff)
	}},
}

// one is a single measurement as DurationStats; zero is none.
func one(m Millis) DurationStats {
	if m == 0 {
		return DurationStats{}
	}
	return DurationStats{Runs: 1, Median: m, Min: m, Max: m}
}

// scaleData is the data file of the scale plot: the number of sites, then
// one median per series in ms, NaN where every run failed or nothing ran.
func scaleData(rs []*ScaleResult) string {
	var b strings.Builder
	b.WriteString("# sites")
	for _, s := range scaleSeries {
		b.WriteString(" | " + s.title)
	}
	b.WriteString(" (ms)\n")
	for _, r := range rs {
		fmt.Fprintf(&b, "%d", r.N)
		for _, s := range scaleSeries {
			if d := s.get(r); d.Runs == 0 || d.Failed > 0 {
				b.WriteString(" NaN")
			} else {
				fmt.Fprintf(&b, " %.3f", d.Median.MS())
			}
		}
		b.WriteString("\n")
	}
	return b.String()
}

// sitesRange is the x range of the scale plots: a little room on both sides.
func sitesRange(rs []*ScaleResult) (lo, hi float64) {
	return float64(rs[0].N) / 1.5, float64(rs[len(rs)-1].N) * 1.5
}

// scalePlotScript renders the gnuplot script of the scale plot.
func scalePlotScript(rs []*ScaleResult, data, output string) string {
	var b strings.Builder
	lo, hi := sitesRange(rs)
	fmt.Fprintf(&b, `set terminal pngcairo noenhanced size 1200,700 font "DejaVu Sans,10"
set output %s
set title "Time of operations against the number of sites (medians; idle socket-activated sites)"
set logscale xy
set format y "%%g"
set xlabel "sites"
set ylabel "milliseconds"
set grid lc rgb "#dddddd"
set key outside right top Left reverse
set xrange [%g:%g]
set yrange [1:%g]
`, gnuplotQuote(output), lo, hi, yCeil(rs))
	var tics []string
	for _, r := range rs {
		tics = append(tics, fmt.Sprint(r.N))
	}
	fmt.Fprintf(&b, "set xtics (%s)\n", strings.Join(tics, ", "))
	var series []string
	for i, s := range scaleSeries {
		title := s.title
		var failedAt []string
		for _, r := range rs {
			if s.get(r).Failed > 0 {
				failedAt = append(failedAt, fmt.Sprint(r.N))
			}
		}
		if len(failedAt) > 0 {
			title += " (failed at " + strings.Join(failedAt, ", ") + " sites)"
		}
		series = append(series, fmt.Sprintf("%s using 1:%d with linespoints pt 7 lw 2 lc rgb %q title %s", gnuplotQuote(data), i+2, s.color, gnuplotQuote(title)))
	}
	series = append(series, "10000 with lines dt 2 lc rgb \"#7f7f7f\" title 'target at 10,000 sites: repeated daemon-reload 10 s'",
		"1000 with lines dt 3 lc rgb \"#9467bd\" title 'target at 10,000 sites: generator 1 s'",
		"300 with lines dt 2 lc rgb \"#d62728\" title 'target at 10,000 sites: sitectl list 300 ms'")
	b.WriteString("plot " + strings.Join(series, ", \\\n     ") + "\n")
	return b.String()
}

// yCeil is the top of the scale plot's y axis: a power of ten above the
// largest value.
func yCeil(rs []*ScaleResult) float64 {
	top := 10000.0
	for _, r := range rs {
		for _, s := range scaleSeries {
			if d := s.get(r); d.Runs > 0 {
				top = max(top, d.Median.MS())
			}
		}
	}
	return math.Pow(10, math.Ceil(math.Log10(top*1.5)))
}

// scaleMemoryData is the data file of the memory plot: sites, systemd's
// VmRSS in MiB, the memory of one site in KiB (systemd, kernel, unit files,
// total).
func scaleMemoryData(rs []*ScaleResult) string {
	var b strings.Builder
	b.WriteString("# sites | systemd VmRSS (MiB) | per site: systemd, kernel sockets, unit files, total (KiB)\n")
	for _, r := range rs {
		m := r.Memory
		fmt.Fprintf(&b, "%d %.1f %.2f %.2f %.2f %.2f\n", r.N, float64(m.PID1RSSKiB)/1024, m.PerSitePID1KiB, m.PerSiteKernelBytes/1024,
			m.PerSiteGeneratedBytes/1024, perSiteTotal(m)/1024)
	}
	return b.String()
}

// scaleMemoryPlotScript renders the gnuplot script of the memory plot.
func scaleMemoryPlotScript(rs []*ScaleResult, data, output string) string {
	lo, hi := sitesRange(rs)
	var tics []string
	for _, r := range rs {
		tics = append(tics, fmt.Sprint(r.N))
	}
	d := gnuplotQuote(data)
	return fmt.Sprintf(`set terminal pngcairo noenhanced size 1200,500 font "DejaVu Sans,10"
set output %s
set multiplot layout 1,2 title "Memory of idle socket-activated sites"
set logscale x
set xrange [%g:%g]
set xtics (%s)
set xlabel "sites"
set grid lc rgb "#dddddd"
set key inside left top
set ylabel "MiB"
set yrange [0:*]
set title "systemd (PID 1) VmRSS"
plot %s using 1:2 with linespoints pt 7 lw 2 lc rgb "#7f7f7f" title 'systemd VmRSS'
set ylabel "KiB per site"
set key inside right bottom
set title "per site"
plot %s using 1:6 with linespoints pt 7 lw 2 lc rgb "#000000" title 'total', \
     %s using 1:3 with linespoints pt 7 lw 2 lc rgb "#7f7f7f" title 'systemd', \
     %s using 1:4 with linespoints pt 7 lw 2 lc rgb "#1f77b4" title 'kernel sockets', \
     %s using 1:5 with linespoints pt 7 lw 2 lc rgb "#2ca02c" title 'unit files on tmpfs'
unset multiplot
`, gnuplotQuote(output), lo, hi, strings.Join(tics, ", "), d, d, d, d, d)
}

// drawScalePlots draws scale.png and scale-memory.png.
func drawScalePlots(ctx context.Context, rs []*ScaleResult, outDir, dataDir string) ([]string, error) {
	if len(rs) == 0 {
		return nil, nil
	}
	var files []string
	for _, pl := range []struct {
		name, data string
		script     func(rs []*ScaleResult, data, output string) string
	}{
		{"scale", scaleData(rs), scalePlotScript},
		{"scale-memory", scaleMemoryData(rs), scaleMemoryPlotScript},
	} {
		data := filepath.Join(dataDir, pl.name+".dat")
		if err := os.WriteFile(data, []byte(pl.data), 0o644); err != nil {
			return files, err
		}
		if err := gnuplot(ctx, pl.script(rs, data, filepath.Join(outDir, pl.name+".png")), filepath.Join(dataDir, pl.name+".gp")); err != nil {
			return files, err
		}
		files = append(files, pl.name+".png")
	}
	return files, nil
}

// withMax is a timing's cell with its maximum, when it ran at all.
func withMax(d DurationStats) string {
	if d.Runs == 0 {
		return durCell(d)
	}
	return durCell(d) + " (max " + ms(d.Max) + ")"
}

// lastSocketTable reports, for the boots that timed it, `sitectl status
// SITE` with every socket listening (LastSocketStatus).
func lastSocketTable(b *strings.Builder, steps []*ScaleResult) {
	t := table{head: []string{"sites", "site", "its socket: PID 1's file", "`sitectl status SITE` with the hint (ms)", "without (ms)"}}
	for _, s := range steps {
		if s.Boot == nil || s.Boot.LastSocket == nil {
			continue
		}
		l := s.Boot.LastSocket
		t.add(fmt.Sprint(s.N), l.Site, fmt.Sprintf("%d of %d", l.FD, l.OpenFiles),
			durCell(l.Hinted)+" ("+ms(l.Hinted.Max)+")", durCell(l.Unhinted)+" ("+ms(l.Unhinted.Max)+")")
	}
	if len(t.rows) == 0 {
		return
	}
	fmt.Fprintf(b, "On the booted host, every socket listening: `sitectl status SITE` of the site whose socket is the last of systemd's open files, "+
		"after one `sitectl restart` gave it its state, %d times each, alternating: with the hint of where systemd holds the site's socket, "+
		"and with the hint removed before each run (untimed), so that status reads PID 1's open files until it finds the socket, as every status and change did before the hint (docs/scale.md). "+
		"Median, and in parentheses the slowest run.\n\n", lastSocketRuns)
	b.WriteString(t.String())
	b.WriteString("\n")
}

// floorMargin is how far above the same units without sitectl systemd's
// CPU for sitectl's reload may be and still count as systemd's floor: the
// spread of alternate reloads on a quiet machine.
const floorMargin = 1.05

// reloadText words repeated reloads for a target's measured text: their
// median and systemd's CPU (cpuWord names it), or how many failed.
func reloadText(wall, cpu DurationStats, cpuWord string) string {
	if wall.Failed > 0 {
		return durCell(wall)
	}
	return fmt.Sprintf("%s ms (%s %s ms)", durCell(wall), cpuWord, durCell(cpu))
}

// floorRatio is systemd's CPU for sitectl's reloads (cpu) over that for
// the same units without sitectl in f (medians), and false when either has
// no successful reload.
func floorRatio(cpu DurationStats, f *FloorResult) (float64, bool) {
	if f == nil || cpu.Runs == 0 || f.SameCPU.Runs == 0 || f.SameCPU.Median <= 0 {
		return 0, false
	}
	return cpu.Median.MS() / f.SameCPU.Median.MS(), true
}

// floorTarget adds systemd's floor to the target t of a repeated reload
// whose sitectl side is wall and cpu, timed alternately with f: issue 16
// accepts a reload above 10 s when it is systemd's own cost, shown by a
// comparison. A missed target whose reload costs systemd no more than the
// same units without sitectl (within floorMargin) is at systemd's floor;
// the plain pairs say what the units' directives cost. A reload that
// failed every time is at systemd's floor only when the same units
// without sitectl and the plain pairs, with as many sockets listening,
// failed every time too: then what stops it is systemd's, not sitectl's.
func floorTarget(t Target, wall, cpu DurationStats, f *FloorResult) Target {
	if f == nil {
		return t
	}
	t.Target += ", or systemd's floor for the same units"
	t.Measured += fmt.Sprintf("; timed alternately with it: the same units without sitectl %s, plain socket and service pairs %s",
		reloadText(f.Same, f.SameCPU, "systemd's CPU"), reloadText(f.Plain, f.PlainCPU, "CPU"))
	allFailed := func(d DurationStats) bool { return d.Failed > 0 && d.Runs == 0 }
	if t.Status == statusMissed && allFailed(wall) && allFailed(f.Same) && allFailed(f.Plain) {
		t.Measured += fmt.Sprintf("; without sitectl the same: %s", f.Plain.Error)
		t.Status = statusFloor
		return t
	}
	r, ok := floorRatio(cpu, f)
	if !ok {
		return t
	}
	t.Measured += fmt.Sprintf("; systemd's CPU for sitectl's sites ÷ for the same units %.2f", r)
	if t.Status == statusMissed && wall.Failed == 0 && f.Same.Failed == 0 && r <= floorMargin {
		t.Status = statusFloor
	}
	return t
}

// floorMarkdown is the table of systemd's floor, or "" when no step has one.
func floorMarkdown(r *Results) string {
	var t table
	listening := false // any step with the reload of every socket listening
	t.head = []string{"sites", "sockets listening", "sitectl's sites (systemd's CPU)", "the same units without sitectl (systemd's CPU)", "plain socket and service pairs (systemd's CPU)", "systemd's CPU: sitectl ÷ the same units", "the same units ÷ plain pairs"}
	for _, s := range r.Scale {
		for _, f := range []*FloorResult{s.Floor, s.FloorListening} {
			if f == nil {
				continue
			}
			wall, cpu := f.Sitectl, f.SitectlCPU
			if f == s.Floor {
				wall, cpu = s.DaemonReloadIdle, s.DaemonReloadIdleCPU // runs before 7 December 2026 kept them only there
			}
			ratio := "–"
			if v, ok := floorRatio(cpu, f); ok {
				ratio = fmt.Sprintf("%.2f", v)
			}
			plain := "–"
			if f.SameCPU.Runs > 0 && f.PlainCPU.Runs > 0 && f.PlainCPU.Median > 0 {
				plain = fmt.Sprintf("%.2f", f.SameCPU.Median.MS()/f.PlainCPU.Median.MS())
			}
			t.add(fmt.Sprint(s.N), fmt.Sprint(f.Listening), withCPU(wall, cpu), withCPU(f.Same, f.SameCPU), withCPU(f.Plain, f.PlainCPU), ratio, plain)
		}
		listening = listening || s.FloorListening != nil
	}
	if len(t.rows) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("### systemd's floor: the same reload without sitectl\n\n")
	b.WriteString("At each step, before the new sites' sockets start, the repeated `daemon-reload` of the sandbox above is timed alternately with two more sandboxes (reload 1 of each, then reload 2 of each, and so on), each holding as many units, with the sockets of the sites of the steps before listening in all three (a unit that runs costs a reload more than one that never started)")
	if listening {
		b.WriteString("; at the end of the step the same again with every site's socket listening in all three, in two sandboxes booted for it")
	}
	b.WriteString(": ")
	b.WriteString("*the same units without sitectl* are the files sitectl's generator wrote for the step's sites, byte for byte, which a generator of a sandbox with no site file copies into place at every reload (`cp -a`), so that systemd also removes them at every reload, as it removes a generator's output; ")
	b.WriteString("*plain pairs* are those units with the same names, slices and listeners, each socket reduced to `Description=`, `ListenStream=` and `Slice=`, each service to `Description=`, `ExecStart=/bin/true` and `Slice=`, copied into place in the same way. ")
	b.WriteString("The first says what systemd spends on sitectl's units when sitectl plays no part in the reload (the wall times differ by what sitectl's generator takes beyond a copy); the second what any two units per site cost, so that the ratio between them is the price of what sitectl's units say (the hardening that keeps `systemd-analyze security` at or below 1.5, the drain and cleanup commands): [docs/scale.md](../scale.md).\n\n")
	b.WriteString(t.String())
	b.WriteString("\nAll times in ms, medians; in parentheses systemd's CPU (`/proc/PID/stat` of the sandbox's PID 1) during each reload, which the machine's other work hardly moves. A reload that *fails* is one systemd did not carry out although `systemctl daemon-reload` exited 0 (its generator directory did not change): when it fails without sitectl too, what stops it is systemd's, for example too few open files for PID 1 to duplicate every listening socket (docs/scale.md, *A reload that did not happen*).\n\n")
	return b.String()
}
