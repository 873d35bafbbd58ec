package launcher

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// A generation that answered its probe may still be starting: gunicorn
// forks its workers one after another, a short random sleep apart, and each
// imports the app after the fork, so the probe is answered by the first
// worker while the others still load. Handing over then puts the burst of
// the rest of the start (and the old generation's exit) on the first
// requests the new generation serves. So the launcher hands over once the
// new generation is quiet as well: its processes used little CPU in a few
// consecutive sample intervals and their number did not change.

// Quiet tells when a ready generation has finished starting.
type Quiet struct {
	Interval time.Duration // between samples; default 50ms
	Samples  int           // consecutive quiet intervals needed; default 3
	// Busy is the CPU time per interval above which the generation counts
	// as still starting; default a tenth of Interval.
	Busy time.Duration
	// Max bounds the wait: a generation that is never quiet (an app busy
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
		q.Busy = q.Interval / 10
	}
	if q.Max <= 0 {
		q.Max = 3 * time.Second
	}
	return q
}

// quietWatch follows one generation's process tree from sample to sample.
type quietWatch struct {
	q       Quiet
	sampler *treeSampler
	quiet   int // consecutive quiet samples so far
}

func newQuietWatch(q Quiet, root int) *quietWatch {
	return &quietWatch{q: q.withDefaults(), sampler: &treeSampler{proc: procRoot, root: root}}
}

// sample takes one sample and tells whether the generation has now been
// quiet for long enough. An unreadable /proc counts as quiet: the wait is
// an optimisation, never a reason to fail a reload.
func (w *quietWatch) sample() bool {
	used, changed, err := w.sampler.sample()
	switch {
	case err != nil:
		w.quiet = w.q.Samples
	case changed || used > w.q.Busy:
		w.quiet = 0
	default:
		w.quiet++
	}
	return w.quiet >= w.q.Samples
}

// treeSampler measures the CPU time a process and its descendants used
// between two samples, from the kernel's per-thread run time.
type treeSampler struct {
	proc  string
	root  int
	last  map[int]time.Duration // CPU time per process at the last sample
	first bool                  // a sample was taken before
}

// sample returns the CPU time the tree used since the last sample, and
// whether processes came or went. The first sample only sets the baseline
// and reports the tree as changed.
func (s *treeSampler) sample() (used time.Duration, changed bool, err error) {
	pids := s.tree()
	if len(pids) == 0 {
		return 0, false, errors.New("the generation has no processes to watch")
	}
	now := make(map[int]time.Duration, len(pids))
	for _, pid := range pids {
		t, ok := s.cpuTime(pid)
		if !ok {
			continue
		}
		now[pid] = t
		before, seen := s.last[pid]
		if !seen {
			changed = true
		}
		if t > before {
			used += t - before
		}
	}
	if len(now) != len(s.last) {
		changed = true
	}
	if !s.first {
		changed = true
		s.first = true
	}
	s.last = now
	return used, changed, nil
}

// tree lists the root and its descendants through the children files of
// every thread.
func (s *treeSampler) tree() []int {
	var out []int
	queue := []int{s.root}
	seen := map[int]bool{}
	for len(queue) > 0 {
		pid := queue[0]
		queue = queue[1:]
		if seen[pid] {
			continue
		}
		seen[pid] = true
		tids := threads(s.proc, pid)
		if len(tids) == 0 {
			continue // exited meanwhile
		}
		out = append(out, pid)
		for _, tid := range tids {
			data, err := threadFile(s.proc, pid, tid, "children")
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
// generation starting at a low priority on a busy machine waits more than
// it runs, and is not quiet for that.
func (s *treeSampler) cpuTime(pid int) (time.Duration, bool) {
	tids := threads(s.proc, pid)
	if len(tids) == 0 {
		return 0, false
	}
	var total time.Duration
	for _, tid := range tids {
		data, err := threadFile(s.proc, pid, tid, "schedstat")
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
// lowest: what it still has to do (finish its requests, then exit, which
// takes an interpreter a few ms of CPU per process) waits for the generation
// that now serves. Lowering a priority needs no privilege; the generated
// units allow the system call (SystemCallFilter=setpriority). Raising one
// back would need RLIMIT_NICE (LimitNICE=), which systemd cannot grant where
// it lacks CAP_SYS_RESOURCE, so a starting generation keeps nice 0.
const drainPriority = 19

// setTreePriority sets the nice value of every thread of a process and its
// descendants, and returns the first error.
func setTreePriority(root, nice int) error {
	var first error
	s := &treeSampler{proc: procRoot, root: root}
	for _, pid := range s.tree() {
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
