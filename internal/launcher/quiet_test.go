package launcher

import (
	"errors"
	"maps"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// fakeProc is a /proc with just the files the sampler reads.
type fakeProc struct {
	t   *testing.T
	dir string
}

// set writes process pid with one thread per run time and the given
// children (listed on its first thread).
func (p fakeProc) set(pid int, children []int, runNS ...int64) {
	p.t.Helper()
	taskDir := filepath.Join(p.dir, strconv.Itoa(pid), "task")
	os.RemoveAll(taskDir)
	for i, ns := range runNS {
		tid := filepath.Join(taskDir, strconv.Itoa(pid*100+i))
		if err := os.MkdirAll(tid, 0o755); err != nil {
			p.t.Fatal(err)
		}
		kids := ""
		if i == 0 {
			var f []string
			for _, c := range children {
				f = append(f, strconv.Itoa(c))
			}
			kids = strings.Join(f, " ")
		}
		write(p.t, filepath.Join(tid, "children"), kids)
		write(p.t, filepath.Join(tid, "schedstat"), strconv.FormatInt(ns, 10)+" 0 1\n")
	}
}

// started writes the stat file of pid, saying it started at ticks (clock
// ticks since boot).
func (p fakeProc) started(pid int, ticks int64) {
	p.t.Helper()
	fields := append([]string{strconv.Itoa(pid), "(a (b))", "S"}, strings.Fields(strings.Repeat("0 ", 18))...)
	write(p.t, filepath.Join(p.dir, strconv.Itoa(pid), "stat"), strings.Join(append(fields, strconv.FormatInt(ticks, 10), "0 0"), " ")+"\n")
}

func (p fakeProc) remove(pid int) { os.RemoveAll(filepath.Join(p.dir, strconv.Itoa(pid))) }

func write(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestTreeTimesSumsThreadsPerProcess(t *testing.T) {
	p := fakeProc{t, t.TempDir()}
	p.set(10, []int{11, 12}, 1_000_000)
	p.set(11, nil, 5_000_000, 2_000_000) // two threads
	p.set(12, []int{13}, 0)
	p.set(13, nil, 4_000_000)
	p.set(99, nil, 50_000_000) // not in the tree
	got, err := treeTimes(p.dir, 10)
	want := map[int]time.Duration{10: time.Millisecond, 11: 7 * time.Millisecond, 12: 0, 13: 4 * time.Millisecond}
	if err != nil || !maps.Equal(got, want) {
		t.Fatalf("treeTimes = %v, %v; want %v", got, err, want)
	}
	p.remove(10)
	if _, err := treeTimes(p.dir, 10); err == nil {
		t.Fatal("a vanished tree gave no error")
	}
}

// snaps builds snapshots from per-interval busy times: each row is one
// interval, new and old map pid to the busy time it used in it.
func snaps(rows ...[2]map[int]time.Duration) []snapshot {
	out := []snapshot{{New: map[int]time.Duration{}, Old: map[int]time.Duration{}}}
	for i, r := range rows {
		prev := out[i]
		s := snapshot{New: map[int]time.Duration{}, Old: map[int]time.Duration{}}
		for pid, d := range r[0] {
			s.New[pid] = prev.New[pid] + d
		}
		for pid, d := range r[1] {
			s.Old[pid] = prev.Old[pid] + d
		}
		out = append(out, s)
	}
	return out[1:] // the first row only sets the pids
}

type busy = map[int]time.Duration

func TestSettled(t *testing.T) {
	ms := time.Millisecond
	q := Quiet{Interval: 50 * ms, Samples: 2}
	// A gunicorn master (1) with two workers (2, 3), beside a serving
	// generation (master 11, workers 12, 13).
	oldServing := busy{11: 0, 12: 12 * ms, 13: 14 * ms}
	oldIdle := busy{11: 0, 12: 0, 13: 0}
	for _, c := range []struct {
		name string
		rows [][2]map[int]time.Duration
		want bool
		why  string
	}{
		{"too few samples", [][2]map[int]time.Duration{{busy{1: 0}, oldIdle}, {busy{1: 0}, oldIdle}}, false, "not sampled long enough"},
		{"idle on both sides", [][2]map[int]time.Duration{
			{busy{1: 0, 2: 0, 3: 0}, oldIdle}, {busy{1: 0, 2: 1 * ms, 3: 0}, oldIdle}, {busy{1: 0, 2: 0, 3: 2 * ms}, oldIdle},
		}, true, "its 3 processes were unchanged for 100ms"},
		// Under load the new generation serves its share: as busy as the
		// serving one's workers, which the old rule (a tenth of a CPU for
		// the whole generation) never let through.
		{"serving its share under load", [][2]map[int]time.Duration{
			{busy{1: 0, 2: 0, 3: 0}, oldServing}, {busy{1: ms, 2: 15 * ms, 3: 13 * ms}, oldServing}, {busy{1: 0, 2: 11 * ms, 3: 16 * ms}, oldServing},
		}, true, "busiest: pid 3, 16ms"},
		// Saturated: the serving workers use the whole interval, and so
		// may the new ones.
		{"saturated like the serving one", [][2]map[int]time.Duration{
			{busy{1: 0, 2: 0, 3: 0}, busy{12: 50 * ms}}, {busy{1: 0, 2: 48 * ms, 3: 50 * ms}, busy{12: 50 * ms}}, {busy{1: 0, 2: 50 * ms, 3: 49 * ms}, busy{12: 50 * ms}},
		}, true, "limit 75ms"},
		// Worker 3 still imports the app: a whole CPU, far above a
		// serving worker.
		{"a worker still importing", [][2]map[int]time.Duration{
			{busy{1: 0, 2: 0, 3: 0}, oldServing}, {busy{1: 0, 2: 14 * ms, 3: 50 * ms}, oldServing}, {busy{1: 0, 2: 12 * ms, 3: 49 * ms}, oldServing},
		}, false, "pid 3 was still busy (49ms of CPU in 50ms; the limit was 25ms)"},
		{"a worker forked", [][2]map[int]time.Duration{
			{busy{1: 0, 2: 0}, oldIdle}, {busy{1: 0, 2: 0}, oldIdle}, {busy{1: 0, 2: 0, 3: 0}, oldIdle},
		}, false, "still starting or exiting (3 now)"},
		{"a worker exited", [][2]map[int]time.Duration{
			{busy{1: 0, 2: 0, 3: 0}, oldIdle}, {busy{1: 0, 2: 0}, oldIdle}, {busy{1: 0, 2: 0}, oldIdle},
		}, false, "still starting or exiting (2 now)"},
		// Only the last Samples intervals count.
		{"busy before, settled since", [][2]map[int]time.Duration{
			{busy{1: 0, 2: 0}, oldIdle}, {busy{1: 0, 2: 50 * ms}, oldIdle}, {busy{1: 0, 2: 0}, oldIdle}, {busy{1: 0, 2: ms}, oldIdle},
		}, true, "unchanged for 100ms"},
		// The serving generation is gone or unreadable: the floor holds.
		{"no serving generation to compare with", [][2]map[int]time.Duration{
			{busy{1: 0, 2: 0}, nil}, {busy{1: 0, 2: 30 * ms}, nil}, {busy{1: 0, 2: 20 * ms}, nil},
		}, false, "pid 2 was still busy (30ms"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, why := settled(q, snaps(c.rows...))
			if got != c.want || !strings.Contains(why, c.why) {
				t.Errorf("settled = %v, %q; want %v, %q", got, why, c.want, c.why)
			}
		})
	}
	// The start times vouch for the intervals not sampled: one interval
	// of CPU evidence suffices when the youngest process is older than
	// Samples intervals (100ms here).
	calm := func(age time.Duration, rows ...[2]map[int]time.Duration) []snapshot {
		s := snaps(rows...)
		s[len(s)-1].Calm = age
		return s
	}
	for _, c := range []struct {
		name  string
		snaps []snapshot
		want  bool
		why   string
	}{
		{"forked long ago, quiet in one interval", calm(1600*ms, [2]map[int]time.Duration{busy{1: 0, 2: 0, 3: 0}, oldServing}, [2]map[int]time.Duration{busy{1: 0, 2: 14 * ms, 3: 12 * ms}, oldServing}),
			true, "its 3 processes were unchanged for 1.6s (by their start times; 50ms sampled) and none was busier"},
		{"a worker forked 60ms ago", calm(60*ms, [2]map[int]time.Duration{busy{1: 0, 2: 0, 3: 0}, oldIdle}, [2]map[int]time.Duration{busy{1: 0, 2: 0, 3: 0}, oldIdle}),
			false, "its newest process started 60ms ago"},
		{"forked long ago, a worker still importing", calm(1600*ms, [2]map[int]time.Duration{busy{1: 0, 2: 0, 3: 0}, oldServing}, [2]map[int]time.Duration{busy{1: 0, 2: 14 * ms, 3: 50 * ms}, oldServing}),
			false, "pid 3 was still busy (50ms of CPU in 50ms"},
		{"forked long ago, a worker exited while sampled", calm(1600*ms, [2]map[int]time.Duration{busy{1: 0, 2: 0, 3: 0}, oldIdle}, [2]map[int]time.Duration{busy{1: 0, 2: 0}, oldIdle}),
			false, "still starting or exiting (2 now)"},
		{"start times unknown", calm(0, [2]map[int]time.Duration{busy{1: 0, 2: 0}, oldIdle}, [2]map[int]time.Duration{busy{1: 0, 2: 0}, oldIdle}),
			false, "not sampled long enough"},
		{"nothing sampled yet", calm(1600*ms, [2]map[int]time.Duration{busy{1: 0, 2: 0}, oldIdle}),
			false, "not sampled long enough"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, why := settled(q, c.snaps)
			if got != c.want || !strings.Contains(why, c.why) {
				t.Errorf("settled = %v, %q; want %v, %q", got, why, c.want, c.why)
			}
		})
	}
	// Late ticks: 100ms between samples allow twice the floor.
	late := snaps([][2]map[int]time.Duration{{busy{1: 0}, nil}, {busy{1: 40 * ms}, nil}, {busy{1: 45 * ms}, nil}}...)
	for i := range late {
		late[i].At = time.Unix(0, 0).Add(time.Duration(i) * 100 * ms)
	}
	if ok, why := settled(q, late); !ok || !strings.Contains(why, "unchanged for 200ms") || !strings.Contains(why, "limit 50ms") {
		t.Errorf("late samples: %v, %q; want settled against a limit of 50ms", ok, why)
	}
	if ok, why := settled(q, []snapshot{{Err: errors.New("gone")}}); !ok || !strings.Contains(why, "cannot be watched (gone)") {
		t.Errorf("an unreadable generation: %v, %q; want it to take over", ok, why)
	}
}

func TestQuietWatchSamplesBothGenerations(t *testing.T) {
	p := fakeProc{t, t.TempDir()}
	p.set(10, []int{11}, 0)
	p.set(11, nil, 0)
	p.set(20, nil, 0)
	w := newQuietWatch(Quiet{Interval: 50 * time.Millisecond, Samples: 2}, 10, 20)
	w.proc = p.dir
	run, old := int64(0), int64(0)
	step := func(add, oldAdd time.Duration) bool {
		run += int64(add)
		old += int64(oldAdd)
		p.set(11, nil, run)
		p.set(20, nil, old)
		ok, _ := w.sample()
		return ok
	}
	for i := 0; i < 2; i++ {
		if step(0, 0) {
			t.Fatalf("settled after %d samples, before two intervals were sampled", i+1)
		}
	}
	if step(40*time.Millisecond, 0) || step(0, 0) {
		t.Fatal("a worker using 40ms of 50 beside an idle serving generation counted as settled")
	}
	if !step(40*time.Millisecond, 35*time.Millisecond) {
		t.Fatal("a worker as busy as the serving one (40ms against 35ms twice) did not count as settled")
	}
	if len(w.snaps) != 3 {
		t.Errorf("the watch keeps %d snapshots, want 3", len(w.snaps))
	}
	gone := newQuietWatch(Quiet{Samples: 3}, 4242, 0)
	gone.proc = p.dir
	if ok, _ := gone.sample(); !ok {
		t.Fatal("an unreadable tree must not hold the handover up")
	}
}

// The start times in /proc vouch for the intervals not sampled: a
// generation whose processes all started long ago, quiet in the first
// interval, takes over after that one; one whose newest process started
// just now does not.
func TestQuietWatchTakesStartTimesAsEvidence(t *testing.T) {
	var now unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &now); err != nil {
		t.Fatal(err)
	}
	justNow := now.Nano() / int64(time.Second/100)
	for _, c := range []struct {
		name  string
		ticks int64 // when the worker started
		want  bool
		why   string
	}{{"forked at boot", 0, true, "by their start times"}, {"forked just now", justNow, false, "its newest process started"}} {
		t.Run(c.name, func(t *testing.T) {
			p := fakeProc{t, t.TempDir()}
			p.set(10, []int{11}, 0)
			p.set(11, nil, 0)
			p.set(20, nil, 0)
			p.started(10, 0)
			p.started(11, c.ticks)
			w := newQuietWatch(Quiet{Interval: 50 * time.Millisecond, Samples: 3}, 10, 20)
			w.proc = p.dir
			if ok, why := w.sample(); ok {
				t.Fatalf("the baseline sample settled it: %s", why)
			}
			if ok, why := w.sample(); ok != c.want || !strings.Contains(why, c.why) {
				t.Fatalf("after one quiet interval: %v (%s), want %v (%s)", ok, why, c.want, c.why)
			}
		})
	}
}

func TestBusyTimeOf(t *testing.T) {
	for in, want := range map[string]int64{"123 4 5\n": 127, "0 0 0": 0, "": -1, "7": -1, "x 1 2": -1, "-5 1 1": -1, "1 -1 1": -1} {
		got, ok := busyTimeOf(in)
		if want < 0 {
			if ok {
				t.Errorf("busyTimeOf(%q) = %v, want an error", in, got)
			}
			continue
		}
		if !ok || int64(got) != want {
			t.Errorf("busyTimeOf(%q) = %v, %v; want %d", in, got, ok, want)
		}
	}
}
