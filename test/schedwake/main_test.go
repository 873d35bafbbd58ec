package main

import (
	"strings"
	"testing"
	"time"
)

// A trace of two generations of an app: 200 (worker 201) forked first, 300
// (worker 301) forked later, both by the launcher's thread 100.
const trace = `
[000] 0.100000: sched:sched_process_fork: comm=sitectl pid=100 child_comm=sitectl child_pid=200
[000] 0.200000: sched:sched_switch: prev_comm=gunicorn prev_pid=200 prev_prio=120 prev_state=S ==> next_comm=swapper/0 next_pid=0 next_prio=120
[000] 0.300000: sched:sched_process_fork: comm=gunicorn pid=200 child_comm=gunicorn child_pid=201
[000] 0.500000: sched:sched_process_fork: comm=sitectl pid=100 child_comm=sitectl child_pid=300
[001] 0.600000: sched:sched_process_fork: comm=gunicorn pid=300 child_comm=gunicorn child_pid=301
[001] 1.000000: sched:sched_waking: comm=gunicorn pid=201 prio=120 target_cpu=000
[000] 1.004000: sched:sched_switch: prev_comm=gunicorn prev_pid=301 prev_prio=120 prev_state=R ==> next_comm=gunicorn next_pid=201 next_prio=120
[001] 2.000000: sched:sched_waking: comm=gunicorn pid=301 prio=120 target_cpu=001
[001] 2.000100: sched:sched_switch: prev_comm=gunicorn prev_pid=201 prev_prio=139 prev_state=R+ ==> next_comm=gunicorn next_pid=301 next_prio=120
[000] 3.000000: sched:sched_waking: comm=gunicorn pid=301 prio=120 target_cpu=000
a line perf prints that is not an event
[000] 3.002000: sched:sched_switch: prev_comm=bench prev_pid=50 prev_prio=120 prev_state=S ==> next_comm=gunicorn next_pid=301 next_prio=120
[000] 4.000000: sched:sched_switch: prev_comm=bench prev_pid=50 prev_prio=120 prev_state=S ==> next_comm=gunicorn next_pid=201 next_prio=120
`

func TestClassifyNamesWhatTheWokenWorkerWaitedFor(t *testing.T) {
	evs, err := parse(strings.NewReader(trace))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]row{}
	for _, r := range classify(evs, "gunicorn", 1500*time.Microsecond, 0) {
		got[r.what] = r
	}
	for what, want := range map[string]struct {
		wakeups int
		delays  []time.Duration
	}{
		"gunicorn, newer generation (prio 120), preempted": {1, []time.Duration{4 * time.Millisecond}},
		"gunicorn, older generation (prio 139), preempted": {1, nil},
		"bench, gave the CPU up":                           {1, []time.Duration{2 * time.Millisecond}},
	} {
		r, ok := got[what]
		if !ok {
			t.Errorf("no row %q; got %v", what, got)
			continue
		}
		if r.wakeups != want.wakeups || len(r.delays) != len(want.delays) {
			t.Errorf("%q: %d wakeups, delays %v; want %d, %v", what, r.wakeups, r.delays, want.wakeups, want.delays)
			continue
		}
		for i, d := range r.delays {
			if diff := d - want.delays[i]; diff < -time.Microsecond || diff > time.Microsecond {
				t.Errorf("%q: delay %v, want %v", what, d, want.delays[i])
			}
		}
	}
	// The switch at 4.0 ran 201 without a wakeup before it: not counted.
	if n := len(got); n != 3 {
		t.Errorf("%d rows, want 3: %v", n, got)
	}
}

func TestClassifySplitsTheNewerGenerationsByAge(t *testing.T) {
	evs, err := parse(strings.NewReader(trace))
	if err != nil {
		t.Fatal(err)
	}
	// Generation 300 was forked at 0.5 s; 201 preempted it at 1.004 s.
	for young, want := range map[time.Duration]string{
		time.Second:            "gunicorn, newer generation younger than 1s (prio 120), preempted",
		400 * time.Millisecond: "gunicorn, newer generation 400ms or older (prio 120), preempted",
	} {
		found := false
		for _, r := range classify(evs, "gunicorn", 1500*time.Microsecond, young) {
			found = found || r.what == want
		}
		if !found {
			t.Errorf("young %v: no row %q", young, want)
		}
	}
}

func TestPreemptedBySaysWhatInterruptedTheProcess(t *testing.T) {
	const stacked = `
[000] 0.100000: sched:sched_process_fork: comm=sitectl pid=100 child_comm=sitectl child_pid=200
[000] 0.300000: sched:sched_process_fork: comm=gunicorn pid=200 child_comm=gunicorn child_pid=201
[000] 0.500000: sched:sched_process_fork: comm=sitectl pid=100 child_comm=sitectl child_pid=300
[001] 1.000000: sched:sched_waking: comm=gunicorn pid=201 prio=120 target_cpu=000
	ffffffff813b4b46 try_to_wake_up
[000] 1.003000: sched:sched_switch: prev_comm=gunicorn prev_pid=300 prev_prio=120 prev_state=R ==> next_comm=gunicorn next_pid=201 next_prio=120
	ffffffff82265908 __schedule
	ffffffff82266273 irqentry_exit_to_user_mode
	ffffffff82400b0a asm_sysvec_apic_timer_interrupt
	          4f1c2 _PyEval_EvalFrameDefault

[001] 2.000000: sched:sched_waking: comm=gunicorn pid=201 prio=120 target_cpu=000
[000] 2.000050: sched:sched_switch: prev_comm=gunicorn prev_pid=300 prev_prio=120 prev_state=R ==> next_comm=gunicorn next_pid=201 next_prio=120
	ffffffff82265908 __schedule
	ffffffff82266273 irqentry_exit_to_user_mode
	ffffffff82400b0a asm_sysvec_reschedule_ipi
`
	evs, err := parse(strings.NewReader(stacked))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, r := range classify(evs, "gunicorn", 1500*time.Microsecond, 0) {
		got[r.what] = len(r.delays)
	}
	want := map[string]int{
		"gunicorn, newer generation (prio 120), preempted at a timer tick":           1,
		"gunicorn, newer generation (prio 120), preempted by a reschedule interrupt": 0,
	}
	if len(got) != len(want) {
		t.Errorf("rows %v, want %v", got, want)
	}
	for k, n := range want {
		if d, ok := got[k]; !ok || d != n {
			t.Errorf("%q: %d delayed (present %v), want %d", k, d, ok, n)
		}
	}
}
