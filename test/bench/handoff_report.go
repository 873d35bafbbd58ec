package main

import (
	"fmt"
	"strings"
	"time"
)

// handoffMarkdown renders the handoff part of docs/bench/README.md: the
// side-by-side table of every method, one table per app, the neighbour.
func handoffMarkdown(r *Results) string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	c := r.Config
	p("## Handing one site over to a new process\n\n")
	p("Each scenario: the site under %d requests/s, its neighbour (another sitectl site, the Go app) under %d requests/s, ", c.Rate, c.NeighbourRate)
	p("%d switches (fewer where a scenario says so), %s of steady load before the first, after each window and after the last; ", c.Switches, time.Duration(c.GapMS)*time.Millisecond)
	p("%s, each from a fresh start of the site, the repetitions of all scenarios interleaved. ", plural(c.Repeats, "repetition"))
	if c.WSGIImportMS > 0 || c.WSGIRequestCPUMS > 0 {
		p("The WSGI app (`test/apps/wsgi/app.py`) spends %s of CPU importing, so that a cold start shows as it does with a real framework, and %s ms of CPU on every request. ",
			time.Duration(c.WSGIImportMS)*time.Millisecond, formatFloat(c.WSGIRequestCPUMS, 2))
	}
	p("Latencies in ms, of successful requests, as p50 / p99 / max. ")
	p("A switch is *done* once only processes answer that had not answered before it (the Go app's pid, the gunicorn or uWSGI worker's pid). ")
	p("A *switch window* is from the moment the switch command is issued until it returned and the switch was done, plus %s; ", time.Duration(c.TailMS)*time.Millisecond)
	p("a request counts as inside when it overlaps a window, as steady otherwise (see [Definitions](#definitions)). ")
	p("The operator's time is the command's wall time (it includes about %s ms of `nsenter`), and the time until the switch was done: ", ms(r.NsenterOverhead.Median))
	p("a command that returns at once (a signal, a touched file) leaves the operator guessing when the new code serves.\n\n")
	p("The scenarios (each app gets its own site or unit per scenario, on its own port):\n\n")
	for _, id := range c.Scenarios {
		if s, ok := scenarioByID(id); ok {
			only := ""
			if s.Apps != nil {
				only = " (" + strings.Join(s.Apps, ", ") + " only)"
			}
			p("- **%s**%s: %s.\n", s.Title, only, s.Command)
		}
	}
	p("\nThe own-port units are what an operator writes without sitectl: `Type=notify`, `KillMode=mixed`, the same 10 s drain and start limit as sitectl's units, no hardening and no socket unit ")
	p("(webapp `--listen 127.0.0.1:PORT`, gunicorn `--bind 127.0.0.1:PORT` with `ExecReload=/bin/kill -s HUP $MAINPID` as in gunicorn's documentation, uWSGI `--http-socket 127.0.0.1:PORT` with SIGTERM made graceful as in sitectl's uwsgi preset). The sitectl sites are the generated, hardened units; ")
	p("the sites of scenarios 3 and 4 also have a probe (`GET /`), which `sitectl` uses to verify a switch. ")
	p("*Switches done* counts the switches after which only new processes answered; fewer than all (in bold) means a switch changed nothing within %s or before the next one, and its latencies prove nothing.\n\n",
		time.Duration(c.DoneTimeoutMS)*time.Millisecond)

	p("### Side by side\n\n")
	p("Every method on every app, from the same run. The p99 ratio is the median of the repetitions' ratios, each repetition's in brackets.\n\n")
	t := table{head: []string{"app", "method", "whose", "failed", "p99 in windows ÷ steady, median (each repetition)", "operator: command returns after, median / max", "done after, median / max", "switches done"}}
	var notes []string
	for _, h := range r.Handoff {
		if !h.Available {
			t.add(h.App, h.Title, whose(h), "–", "–", h.NotAvailable, "–", "–")
			continue
		}
		failed := failedCell(h.Subject.All)
		for _, rep := range h.Repetitions {
			for _, n := range rep.Notes {
				notes = append(notes, fmt.Sprintf("- %s, %s, repetition %d, %s", h.App, h.Title, rep.N, n))
			}
		}
		t.add(h.App, h.Title+": "+h.Command, whose(h), failed, ratiosCell(subjectRatios(h)),
			secondsPair(h.SwitchDuration), secondsPair(h.DoneAfter), doneCell(h))
	}
	b.WriteString(t.String())
	if o := overloaded(r.Handoff); len(o) > 0 {
		p("\n**Overloaded:** the switched site's steady p99 was above %s ms in %s: the site could not keep up with the load even without a switch (a busy machine, or too much load for it), so these rows say more about the machine than about the method.\n",
			ms(overloadP99), strings.Join(o, ", "))
	}
	if len(notes) > 0 {
		p("\nWhat happened to the units that stopped running (the switches of that repetition stopped there; the failed requests after that are the ones until the load ended):\n\n%s", strings.Join(notes, "\n")+"\n")
	}
	outputs := switchOutputs(r.Handoff)
	if outputs != "" {
		p("\nWhat the multi-step switches printed (first repetition):\n\n%s", outputs)
	}
	p("\n")

	for _, a := range c.Apps {
		app, _ := appByID(a)
		p("### %s\n\n", appTitle(r, app))
		t := table{head: []string{"scenario", "switch command", "requests", "failed", "steady p50 / p99 / max", "in windows p50 / p99 / max", "p99 ratio, each repetition", "switch time median / max", "done after median / max", "switches done"}}
		for _, h := range r.Handoff {
			if h.App != a {
				continue
			}
			if !h.Available {
				t.add(h.Title, "–", "–", "–", "–", "–", "–", h.NotAvailable, "–", "–")
				continue
			}
			s := h.Subject
			sw := ms(h.SwitchDuration.Median) + " / " + ms(h.SwitchDuration.Max)
			if h.SwitchErrors > 0 {
				sw += fmt.Sprintf(" (**%d failed**)", h.SwitchErrors)
			}
			_, each := subjectRatios(h)
			t.add(h.Title, h.Command, fmt.Sprint(s.All.Requests), failedCell(s.All), latCell(s.Steady), latCell(s.Window), ratioList(each),
				sw, msPair(h.DoneAfter), doneCell(h))
		}
		b.WriteString(t.String())
		p("\n![latency over time, %s](handoff-%s.png)\n\n", appTitle(r, app), a)
	}
	p("### The neighbour\n\n")
	p("The neighbour site during each scenario above, split by the *switched* site's windows. One process answering means it was never restarted.\n\n")
	t = table{head: []string{"app switched", "scenario", "requests", "failed", "steady p50 / p99 / max", "in windows p50 / p99 / max", "p99 ratio, all / each repetition", "processes answered", "machine CPU busy"}}
	var busy []string
	for _, h := range r.Handoff {
		if !h.Available || h.Neighbour == nil {
			continue
		}
		n := h.Neighbour
		cpu := fmt.Sprintf("%.0f%%", h.HostCPUBusy)
		if h.HostCPUBusy >= busyWarning {
			cpu = "**" + cpu + "**"
			busy = append(busy, h.App+" / "+h.Title)
		}
		t.add(h.App, h.Title, fmt.Sprint(n.All.Requests), failedCell(n.All), latCell(n.Steady), latCell(n.Window),
			ratioCell(n.P99Ratio)+" / "+ratioList(h.NeighbourP99Ratios), processesCell(n.Processes, 1), cpu)
	}
	b.WriteString(t.String())
	p("\n*Machine CPU busy* is the share of all CPUs' time that was not idle while the scenario's load ran (`/proc/stat`), the mean of the repetitions: the sites, the sandbox's systemd, the load generator and anything else on the machine. ")
	p("Compare the rows: a scenario well above the others had company on the machine.")
	if len(busy) > 0 {
		p(" **At %.0f%% or more something else was competing for the CPUs; the latencies of %s are suspect.**", busyWarning, strings.Join(busy, ", "))
	}
	p("\n\n")
	return b.String()
}

// appTitle is the app's title with the load this run gave it.
func appTitle(r *Results, app App) string {
	c := r.Config
	return app.withLoad(AppLoad{ImportCPU: time.Duration(c.WSGIImportMS) * time.Millisecond,
		RequestCPU: time.Duration(c.WSGIRequestCPUMS * float64(time.Millisecond))}).Title
}

func whose(h *HandoffResult) string {
	switch {
	case h.Control:
		return "nobody: the floor"
	case h.Peer:
		return "operator's own"
	}
	return "sitectl"
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// subjectRatios are the switched site's ratio of every repetition, or of
// the whole run in a results.json from before repetitions.
func subjectRatios(h *HandoffResult) (median float64, each []float64) {
	if len(h.P99Ratios) == 0 && h.Subject != nil {
		return h.Subject.P99Ratio, []float64{h.Subject.P99Ratio}
	}
	return h.P99RatioMedian, h.P99Ratios
}

// ratioList is every repetition's ratio, "1.10, 1.14, 2.31".
func ratioList(vs []float64) string {
	if len(vs) == 0 {
		return "–"
	}
	var parts []string
	for _, v := range vs {
		parts = append(parts, ratioCell(v))
	}
	return strings.Join(parts, ", ")
}

// ratiosCell is the median and, for more than one repetition, each
// repetition's ratio: "1.14 (1.10, 1.14, 2.31)".
func ratiosCell(median float64, vs []float64) string {
	if len(vs) <= 1 {
		return ratioCell(median)
	}
	return ratioCell(median) + " (" + ratioList(vs) + ")"
}

// seconds formats a duration for the operator's columns.
func seconds(m Millis) string {
	v := m.MS() / 1000
	if v < 10 {
		return fmt.Sprintf("%.2f s", v)
	}
	return fmt.Sprintf("%.1f s", v)
}

func secondsPair(d DurationStats) string {
	if d.Runs == 0 {
		return "–"
	}
	return seconds(d.Median) + " / " + seconds(d.Max)
}

func msPair(d DurationStats) string {
	if d.Runs == 0 {
		return "–"
	}
	return ms(d.Median) + " / " + ms(d.Max)
}

// doneCell is how many switches were done, in bold when not all.
func doneCell(h *HandoffResult) string {
	if h.SwitchCount == 0 || h.Control {
		return "–" // results.json from before switches were counted, or nothing to be done
	}
	done := h.SwitchCount - h.Incomplete
	if h.Incomplete > 0 {
		return fmt.Sprintf("**%d of %d**", done, h.SwitchCount)
	}
	return fmt.Sprintf("%d of %d", done, h.SwitchCount)
}

// switchOutputs lists what multi-step switches printed in their first
// repetition.
func switchOutputs(rs []*HandoffResult) string {
	var b strings.Builder
	for _, h := range rs {
		if !h.Available || len(h.Repetitions) == 0 {
			continue
		}
		for i, sw := range h.Repetitions[0].Switches {
			if sw.Output != "" {
				fmt.Fprintf(&b, "- %s, %s, switch %d: %s\n", h.App, h.Title, i+1, strings.Join(strings.Fields(sw.Output), " "))
			}
		}
	}
	return b.String()
}

// overloadP99 is the steady p99 above which a site could not keep up with
// its load: no method's numbers mean much then.
const overloadP99 = Millis(250 * time.Millisecond)

// overloaded lists the scenarios whose switched site was overloaded in
// steady state.
func overloaded(rs []*HandoffResult) []string {
	var out []string
	for _, h := range rs {
		if h.Available && h.Subject != nil && h.Subject.Steady.P99 > overloadP99 {
			out = append(out, fmt.Sprintf("%s / %s (%s ms)", h.App, h.Title, ms(h.Subject.Steady.P99)))
		}
	}
	return out
}
