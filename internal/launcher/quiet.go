package launcher

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sitectl/sitectl/internal/procfs"
)

// A generation that answered its probe may still be starting: gunicorn
// forks its workers one after another, a short random sleep apart, and each
// imports the app after the fork, so the probe is answered by the first
// worker while the others still load. Handing over then puts the rest of
// the start (and the old generation's exit) on the first requests the new
// generation serves. So the launcher hands over once the new generation has
// *settled* as well, on evidence taken from /proc every Interval:
//
//   - no process of the generation started for Samples intervals, which
//     their start times in /proc say at once, and none started or exited
//     between the samples taken since it was ready (a server forking its
//     workers is not done);
//   - in each of those intervals, none of its processes wanted more CPU
//     than a serving process explains: the generation already serves its
//     share of the requests from the shared listening socket, so its
//     workers are compared with the busiest process of the serving
//     generation in the same interval (times Share), and with a floor
//     (Busy) that no serving worker of a lightly loaded site reaches but a
//     worker still importing the app (a whole CPU) always does.
//
// The evidence that nothing started is there when the generation becomes
// ready: gunicorn has forked its workers long before one of them answers
// the probe, after importing the app. Observing it again for Samples
// intervals cost every handover at least three intervals; now one interval
// of CPU evidence suffices when the start times vouch for the rest. Exits
// before the first sample are not seen (a worker that died while the
// generation started is replaced by a new one, whose start time shows).
//
// The old rule, "the whole generation under a tenth of a CPU", could not be
// met by a generation serving its share at 200 req/s, so nearly every
// handover under load waited for the cap. The cap (Max) stays, as a
// failsafe for an app that is busy on its own.

// Quiet tells when a ready generation has finished starting.
type Quiet struct {
	Interval time.Duration // between samples; default 50ms
	Samples  int           // consecutive settled intervals needed; default 3
	// Busy is the CPU time (run and run-queue wait) per interval that a
	// process of the new generation may always use; default half of
	// Interval. A process that wants the CPU all the time is starting.
	Busy time.Duration
	// Share is how much busier than the busiest process of the serving
	// generation a process of the new one may be; default 1.5.
	Share float64
	// Max bounds the wait: a generation that never settles (an app busy
	// on its own) gets the listeners after this long; default 3s.
	Max time.Duration
}

func (q Quiet) withDefaults() Quiet {
	if q.Interval <= 0 {
		q.Interval = 50 * time.Millisecond
	}
	if q.Samples <= 0 {
		q.Samples = 3
	}
	if q.Busy <= 0 {
		q.Busy = q.Interval / 2
	}
	if q.Share <= 0 {
		q.Share = 1.5
	}
	if q.Max <= 0 {
		q.Max = 3 * time.Second
	}
	return q
}

// snapshot is what one sample saw: the busy time so far (see cpuTime) of
// every process of the starting generation and of the serving one.
type snapshot struct {
	At       time.Time // when it was taken; zero: Interval after the one before
	New, Old map[int]time.Duration
	// Calm is how long before At the youngest process of the starting
	// generation started, by the start times /proc gives; 0: unknown, and
	// only the samples count.
	Calm time.Duration
	// Err: the starting generation could not be read.
	Err error
}

// settled decides from the last snapshots (oldest first) whether the
// starting generation has finished starting, and says why in words for
// the journal. It is a pure function: the launcher's wait and the tests
// feed it snapshots.
func settled(q Quiet, snaps []snapshot) (bool, string) {
	q = q.withDefaults()
	if n := len(snaps); n > 0 && snaps[n-1].Err != nil {
		// The wait is an optimisation, never a reason to fail a reload.
		return true, fmt.Sprintf("its processes cannot be watched (%v)", snaps[n-1].Err)
	}
	if len(snaps) < 2 {
		return false, "not sampled long enough yet"
	}
	if len(snaps) > q.Samples+1 {
		snaps = snaps[len(snaps)-q.Samples-1:]
	}
	var busiest, limit, span time.Duration
	pid := 0
	for i := len(snaps) - 1; i > 0; i-- { // the latest evidence first
		if !samePIDs(snaps[i-1].New, snaps[i].New) {
			return false, fmt.Sprintf("its processes were still starting or exiting (%d now)", len(snaps[i].New))
		}
		p, used := busiestOf(snaps[i-1].New, snaps[i].New)
		_, old := busiestOf(snaps[i-1].Old, snaps[i].Old)
		took := elapsed(q, snaps[i-1], snaps[i])
		lim := max(q.Busy*took/q.Interval, time.Duration(q.Share*float64(old)))
		if used > lim {
			return false, fmt.Sprintf("pid %d was still busy (%s of CPU in %s; the limit was %s)", p, ms(used), ms(took), ms(lim))
		}
		if used > busiest {
			busiest, pid = used, p
		}
		span += took
		limit = max(limit, lim)
	}
	last := snaps[len(snaps)-1]
	unchanged := ms(span).String()
	if len(snaps) < q.Samples+1 {
		// Fewer intervals sampled than the rule asks for: the start
		// times must vouch for the rest.
		need := time.Duration(q.Samples) * q.Interval
		if last.Calm < need {
			if last.Calm == 0 {
				return false, "not sampled long enough yet"
			}
			return false, fmt.Sprintf("its newest process started %s ago", ms(last.Calm))
		}
		unchanged = fmt.Sprintf("%s (by their start times; %s sampled)", ms(last.Calm), ms(span))
	}
	return true, fmt.Sprintf("its %d processes were unchanged for %s and none was busier than its share of the requests explains (busiest: pid %d, %s of CPU in an interval; limit %s)",
		len(last.New), unchanged, pid, ms(busiest), ms(limit))
}

// elapsed is the time between two snapshots: on a busy machine the
// launcher's ticks come late, and a longer interval allows more CPU.
func elapsed(q Quiet, a, b snapshot) time.Duration {
	if a.At.IsZero() || b.At.IsZero() || !b.At.After(a.At) {
		return q.Interval
	}
	return b.At.Sub(a.At)
}

// ms rounds a duration for the journal.
func ms(d time.Duration) time.Duration { return d.Round(100 * time.Microsecond) }

func samePIDs(a, b map[int]time.Duration) bool {
	if len(a) != len(b) {
		return false
	}
	for pid := range a {
		if _, ok := b[pid]; !ok {
			return false
		}
	}
	return true
}

// busiestOf returns the process that used the most busy time between two
// snapshots, among those in both.
func busiestOf(before, now map[int]time.Duration) (pid int, used time.Duration) {
	for p, t := range now {
		if b, ok := before[p]; ok && t-b > used {
			pid, used = p, t-b
		}
	}
	return pid, used
}

// quietWatch follows the starting generation and the serving one from
// sample to sample, keeping the snapshots settled needs.
type quietWatch struct {
	q          Quiet
	proc       string
	root, peer int // the starting generation's main pid, the serving one's (0: none)
	snaps      []snapshot
}

func newQuietWatch(q Quiet, root, peer int) *quietWatch {
	return &quietWatch{q: q.withDefaults(), proc: procRoot, root: root, peer: peer}
}

// sample takes one snapshot and tells whether the generation has settled,
// and why.
func (w *quietWatch) sample() (bool, string) {
	s := snapshot{At: time.Now()}
	s.New, s.Err = treeTimes(w.proc, w.root)
	if s.Err == nil {
		s.Calm = youngest(w.proc, s.New)
	}
	if w.peer > 0 {
		s.Old, _ = treeTimes(w.proc, w.peer) // a serving generation gone explains nothing
	}
	w.snaps = append(w.snaps, s)
	if len(w.snaps) > w.q.Samples+1 {
		w.snaps = w.snaps[1:]
	}
	return settled(w.q, w.snaps)
}

// youngest is the age of the youngest of pids (the keys of times); 0 when
// the age of one cannot be read (it exited meanwhile: the next sample sees
// the change).
func youngest(proc string, times map[int]time.Duration) time.Duration {
	var least time.Duration
	for pid := range times {
		age, err := procfs.AgeIn(proc, pid)
		if err != nil || age <= 0 {
			return 0
		}
		if least == 0 || age < least {
			least = age
		}
	}
	return least
}

// treeTimes returns the busy time so far of a process and each of its
// descendants.
func treeTimes(proc string, root int) (map[int]time.Duration, error) {
	pids := tree(proc, root)
	if len(pids) == 0 {
		return nil, errors.New("the generation has no processes to watch")
	}
	times := make(map[int]time.Duration, len(pids))
	for _, pid := range pids {
		if t, ok := cpuTime(proc, pid); ok {
			times[pid] = t
		}
	}
	return times, nil
}

// tree lists the root and its descendants through the children files of
// every thread.
func tree(proc string, root int) []int {
	var out []int
	queue := []int{root}
	seen := map[int]bool{}
	for len(queue) > 0 {
		pid := queue[0]
		queue = queue[1:]
		if seen[pid] {
			continue
		}
		seen[pid] = true
		tids := threads(proc, pid)
		if len(tids) == 0 {
			continue // exited meanwhile
		}
		out = append(out, pid)
		for _, tid := range tids {
			data, err := threadFile(proc, pid, tid, "children")
			if err != nil {
				continue
			}
			for _, f := range strings.Fields(data) {
				if child, err := strconv.Atoi(f); err == nil {
					queue = append(queue, child)
				}
			}
		}
	}
	return out
}

// cpuTime is the time all threads of pid ran on a CPU or waited for one
// (the first two fields of each thread's schedstat, in nanoseconds): a
// process that wants the CPU is busy, whether or not a busy machine gives
// it one.
func cpuTime(proc string, pid int) (time.Duration, bool) {
	tids := threads(proc, pid)
	if len(tids) == 0 {
		return 0, false
	}
	var total time.Duration
	for _, tid := range tids {
		data, err := threadFile(proc, pid, tid, "schedstat")
		if err != nil {
			continue
		}
		if ns, ok := busyTimeOf(data); ok {
			total += ns
		}
	}
	return total, true
}

// busyTimeOf parses a schedstat line, "RUN_NS WAIT_NS SLICES", and returns
// the time run plus the time waited.
func busyTimeOf(schedstat string) (time.Duration, bool) {
	f := strings.Fields(schedstat)
	if len(f) < 2 {
		return 0, false
	}
	var total time.Duration
	for _, v := range f[:2] {
		ns, err := strconv.ParseInt(v, 10, 64)
		if err != nil || ns < 0 {
			return 0, false
		}
		total += time.Duration(ns)
	}
	return total, true
}

// drainPriority is the nice value a generation told to drain gets, the
// lowest: what it still has to do (finish its requests, then exit) waits for
// the generation that now serves. An exit is not cheap: a gunicorn worker
// of the test app spends 0.15–0.3 s of CPU ending its interpreter, mostly
// in page faults, and a page fault runs to its end whatever the priority
// (docs/bench, the notes on gunicorn's overlapped p99). Lowering a priority needs no privilege; the generated
// units allow the system call (SystemCallFilter=setpriority). Raising one
// back would need RLIMIT_NICE (LimitNICE=), which systemd cannot grant where
// it lacks CAP_SYS_RESOURCE, so a starting generation keeps nice 0.
const drainPriority = 19

// setTreePriority sets the nice value of every thread of a process and its
// descendants, and returns the first error.
func setTreePriority(root, nice int) error {
	var first error
	for _, pid := range tree(procRoot, root) {
		for _, t := range threads(procRoot, pid) {
			tid, err := strconv.Atoi(t)
			if err != nil {
				continue
			}
			if err := unix.Setpriority(unix.PRIO_PROCESS, tid, nice); err != nil && first == nil && !errors.Is(err, unix.ESRCH) {
				first = fmt.Errorf("cannot set the priority of pid %d to nice %d: %w", tid, nice, err)
			}
		}
	}
	return first
}
