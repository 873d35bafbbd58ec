// Command schedwake tells, from a scheduler trace, how long an app's
// processes waited from being woken until they ran, by what ran on the CPU
// before them: another generation of the same app (older: draining, newer:
// starting), the same generation, or another program. It is how
// test/bench/notes.md found what delays the serving workers during an
// overlapped reload.
//
// Record while the benchmark runs, then read the trace:
//
//	perf sched record -a -o sched.data -- sleep 50
//	perf script -i sched.data -F cpu,time,event,trace | go run ./test/schedwake -comm gunicorn
//
// The trace needs sched_waking, sched_switch and sched_process_fork, which
// `perf sched record` records. Recorded with call stacks (perf record -g -e
// sched:sched_switch -e sched:sched_waking -e sched:sched_process_fork),
// it also tells how a preempted process was made to give up its CPU: by
// the waker's reschedule interrupt, at the next timer tick, or when its
// system call or page fault returned. A generation is an app process whose parent
// is not one (the launcher's child that exec'd the app) with every app
// process below it; generations are ordered by when they were forked.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

func main() {
	comm := flag.String("comm", "gunicorn", "the app's process name (comm) in the trace")
	slow := flag.Duration("slow", 1500*time.Microsecond, "a wait longer than this counts as delayed")
	young := flag.Duration("young", 0, "split the newer generations into those started less than this before the wakeup and the rest (0: no split)")
	flag.Parse()
	evs, err := parse(os.Stdin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "schedwake:", err)
		os.Exit(1)
	}
	rows := classify(evs, *comm, *slow, *young)
	if len(rows) == 0 {
		fmt.Fprintf(os.Stderr, "schedwake: no wakeup of a %q process in the trace (does it have sched_waking and sched_switch?)\n", *comm)
		os.Exit(1)
	}
	report(os.Stdout, rows, *slow)
}

// event is one line of `perf script -F cpu,time,event,trace`.
type event struct {
	at   time.Duration
	kind string            // sched_waking, sched_switch, sched_process_fork, ...
	f    map[string]string // the trace's key=value fields
	// stack is the event's call stack, innermost first, when recorded.
	stack []string
}

// maxLine bounds one line of the trace.
const maxLine = 4096

// parse reads the events of a perf script output; lines of other shapes
// are skipped.
func parse(r io.Reader) ([]event, error) {
	var evs []event
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, maxLine), maxLine)
	for sc.Scan() {
		l := sc.Text()
		if ev, ok := parseLine(l); ok {
			evs = append(evs, ev)
			continue
		}
		// A stack frame: "\tffffffff8225a101 do_syscall_64".
		if f := strings.Fields(l); len(evs) > 0 && len(f) >= 2 && (strings.HasPrefix(l, "\t") || strings.HasPrefix(l, " ")) {
			last := &evs[len(evs)-1]
			last.stack = append(last.stack, f[1])
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading the trace: %w", err)
	}
	return evs, nil
}

// parseLine parses "[001] 11816.373680: sched:sched_waking: comm=x pid=1 ...".
func parseLine(l string) (event, bool) {
	f := strings.Fields(l)
	if len(f) < 4 || !strings.HasPrefix(f[0], "[") {
		return event{}, false
	}
	secs, err := strconv.ParseFloat(strings.TrimSuffix(f[1], ":"), 64)
	if err != nil {
		return event{}, false
	}
	kind := strings.TrimSuffix(strings.TrimPrefix(f[2], "sched:"), ":")
	ev := event{at: time.Duration(secs * float64(time.Second)), kind: kind, f: map[string]string{}}
	for _, kv := range f[3:] {
		if k, v, ok := strings.Cut(kv, "="); ok {
			ev.f[k] = v
		}
	}
	return ev, true
}

// row is what one kind of predecessor cost the app's wakeups.
type row struct {
	what    string
	wakeups int
	delays  []time.Duration // the waits longer than slow, sorted
}

// classify pairs each wakeup of an app thread with the switch that ran it
// and sorts the waits by what the CPU switched away from. young > 0 splits
// the newer generations by their age at the switch.
func classify(evs []event, comm string, slow, young time.Duration) []row {
	l := lineageOf(evs, comm)
	woken := map[string]time.Duration{}
	byWhat := map[string]*row{}
	for _, ev := range evs {
		switch ev.kind {
		case "sched_waking":
			if ev.f["comm"] == comm {
				woken[ev.f["pid"]] = ev.at
			}
		case "sched_switch":
			next := ev.f["next_pid"]
			at, ok := woken[next]
			if ev.f["next_comm"] != comm || !ok {
				continue
			}
			delete(woken, next)
			what := predecessor(ev, comm, l, young)
			r := byWhat[what]
			if r == nil {
				r = &row{what: what}
				byWhat[what] = r
			}
			r.wakeups++
			if d := ev.at - at; d > slow {
				r.delays = append(r.delays, d)
			}
		}
	}
	var rows []row
	for _, r := range byWhat {
		slices.Sort(r.delays)
		rows = append(rows, *r)
	}
	slices.SortFunc(rows, func(a, b row) int {
		if c := len(b.delays) - len(a.delays); c != 0 {
			return c
		}
		return strings.Compare(a.what, b.what)
	})
	return rows
}

// lineage is who forked whom, and when, among the trace's processes.
type lineage struct {
	parent map[string]string
	born   map[string]time.Duration
	app    map[string]bool // ran under the app's name
}

func lineageOf(evs []event, comm string) lineage {
	l := lineage{parent: map[string]string{}, born: map[string]time.Duration{}, app: map[string]bool{}}
	for _, ev := range evs {
		switch ev.kind {
		case "sched_process_fork":
			l.parent[ev.f["child_pid"]] = ev.f["pid"]
			l.born[ev.f["child_pid"]] = ev.at
		case "sched_switch":
			if ev.f["prev_comm"] == comm {
				l.app[ev.f["prev_pid"]] = true
			}
			if ev.f["next_comm"] == comm {
				l.app[ev.f["next_pid"]] = true
			}
		}
	}
	return l
}

// generation is the app process at the top of pid's line of app processes.
func (l lineage) generation(pid string) string {
	for i := 0; i < 64 && l.app[l.parent[pid]]; i++ {
		pid = l.parent[pid]
	}
	return pid
}

// relation words generation g of a process that ran before a woken one of
// generation w, at time at; young > 0 splits the newer generations by age.
func (l lineage) relation(g, w string, at, young time.Duration) string {
	bg, okg := l.born[g]
	bw, okw := l.born[w]
	switch {
	case g == w:
		return "same generation"
	case okg && okw && bg < bw, !okg && okw: // forked before, or before the trace
		return "older generation"
	case young <= 0:
		return "newer generation"
	case okg && at-bg < young:
		return fmt.Sprintf("newer generation younger than %v", young)
	default:
		return fmt.Sprintf("newer generation %v or older", young)
	}
}

// predecessor words what the CPU ran before the woken app thread: its
// generation relative to the woken one's, or its name, and whether it was
// preempted (still runnable) or gave the CPU up.
func predecessor(ev event, comm string, l lineage, young time.Duration) string {
	prev, woke := ev.f["prev_pid"], ev.f["next_pid"]
	how := "gave the CPU up"
	if strings.HasPrefix(ev.f["prev_state"], "R") {
		how = "preempted" + preemptedBy(ev.stack)
	}
	if ev.f["prev_comm"] != comm || !l.app[prev] {
		return fmt.Sprintf("%s, %s", ev.f["prev_comm"], how)
	}
	rel := l.relation(l.generation(prev), l.generation(woke), ev.at, young)
	return fmt.Sprintf("%s, %s (prio %s), %s", comm, rel, ev.f["prev_prio"], how)
}

// preemptedBy reads from a switch's stack what made the running process
// give up its CPU: the interrupt or the kernel entry it was leaving.
func preemptedBy(stack []string) string {
	for _, fn := range stack {
		switch {
		case strings.Contains(fn, "reschedule_ipi"):
			return " by a reschedule interrupt"
		case strings.Contains(fn, "apic_timer_interrupt"):
			return " at a timer tick"
		case strings.Contains(fn, "exc_page_fault"):
			return " after a page fault"
		case strings.HasPrefix(fn, "do_syscall_64"):
			return " at the end of a system call"
		}
	}
	return ""
}

func report(w io.Writer, rows []row, slow time.Duration) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "ran before the woken app thread\twakeups\twaited > %v\tshare\tmedian of those\tmax\n", slow)
	var quick, all int
	for _, r := range rows {
		all += r.wakeups
		n := len(r.delays)
		if n == 0 {
			quick += r.wakeups
			continue
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%.1f %%\t%s\t%s\n", r.what, r.wakeups, n, 100*float64(n)/float64(r.wakeups), ms(r.delays[n/2]), ms(r.delays[n-1]))
	}
	fmt.Fprintf(tw, "(anything else)\t%d\t0\t\t\t\n", quick)
	fmt.Fprintf(tw, "all\t%d\t\t\t\t\n", all)
	tw.Flush()
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond)) }
