package cleanup

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestRunHook(t *testing.T) {
	if msg := runHook(context.Background(), []string{"true"}, time.Second); msg != "" {
		t.Errorf("a succeeding hook reported %q", msg)
	}
	if msg := runHook(context.Background(), []string{"sh", "-c", "exit 3"}, time.Second); !strings.Contains(msg, "exit status 3") {
		t.Errorf("a failing hook reported %q", msg)
	}
	start := time.Now()
	msg := runHook(context.Background(), []string{"sleep", "30"}, 200*time.Millisecond)
	if !strings.Contains(msg, "did not finish within 200ms and was killed") {
		t.Errorf("a hanging hook reported %q", msg)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("a hanging hook held the cleanup for %s", d)
	}
	if msg := runHook(context.Background(), []string{"/nonexistent/hook"}, time.Second); !strings.Contains(msg, "no such file") {
		t.Errorf("a missing hook reported %q", msg)
	}
}

func TestReportResult(t *testing.T) {
	if r := (Report{}).result(); r != "ok" {
		t.Errorf("empty report: %s", r)
	}
	if r := (Report{HookFailures: []string{"x"}}).result(); r != "hook-failed" {
		t.Errorf("failed hook: %s", r)
	}
}

// What Send writes, Last reads back, with the field names and values as
// journalctl -o json prints them (a field that is not plain text as an
// array of bytes).
func TestRecordRoundTrip(t *testing.T) {
	rep := Report{Leftovers: []int{10, 11, 12}, Remaining: []int{12, 13}, HookLeftovers: []int{13}, HooksRun: 2, HookFailures: []string{"/bin/a: exit status 1", "/bin/b: did not finish"}, ListError: "cannot list"}
	for _, want := range []Record{rep.Record("karl"), StartedRecord("karl"), FailedRecord("karl", errors.New("cannot read the cgroup"))} {
		testRoundTrip(t, want)
	}
	if got, _ := parseRecord([]byte(`{"SITECTL_RESULT":"ok","SITECTL_HOOK_FAILURES":""}`)); got.HookFailures == nil || len(got.HookFailures) != 0 {
		t.Errorf("no hook failures read as %#v, want an empty list", got.HookFailures)
	}
}

func testRoundTrip(t *testing.T, want Record) {
	t.Helper()
	want.Time = time.UnixMicro(1700000000123456).UTC()
	want.HooksRun = 0 // in the message only
	if want.HookFailures == nil {
		want.HookFailures = []string{}
	}
	for _, asBytes := range []bool{false, true} {
		entry := map[string]any{"__REALTIME_TIMESTAMP": "1700000000123456", "MESSAGE": want.Message()}
		for k, v := range want.fields() {
			entry[k] = v
			if asBytes {
				b := make([]int, len(v))
				for i := range []byte(v) {
					b[i] = int(v[i])
				}
				entry[k] = b
			}
		}
		data, _ := json.Marshal(entry)
		got, err := parseRecord(data)
		if err != nil || !reflect.DeepEqual(*got, want) {
			t.Errorf("as bytes %v: read back %+v, %v; want %+v", asBytes, got, err, want)
		}
	}
}

// Run stops every other process of its cgroup, so it runs only in the
// unit it is for: anywhere else (an operator's shell, another unit, a
// container's root cgroup) it stops nothing and says why.
func TestRunOnlyInItsUnit(t *testing.T) {
	defer func(of func(int) (string, error), procs func(string) ([]int, error)) {
		cgroupOf, cgroupProcs = of, procs
	}(cgroupOf, cgroupProcs)
	neighbour := exec.Command("sleep", "60")
	if err := neighbour.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { neighbour.Process.Kill(); neighbour.Wait() }()
	// The cgroup's processes, whichever it is: the neighbour alone.
	cgroupProcs = func(string) ([]int, error) { return []int{neighbour.Process.Pid}, nil }
	for _, c := range []struct{ group, unit string }{
		{"/", "site-karl.service"},
		{"/user.slice/user-0.slice/session-3.scope", "site-karl.service"},
		{"/system.slice/neighbour.service", "site-karl.service"},
		{"/sitectl.slice/sitectl-1f.slice/site-karl2.service", "site-karl.service"},
		{"/sitectl.slice/sitectl-1f.slice/site-karl.service", ""},
	} {
		cgroupOf = func(int) (string, error) { return c.group, nil }
		rep, err := Run(context.Background(), Options{Unit: c.unit, Timeout: time.Second, Hooks: [][]string{{"false"}}})
		if !errors.Is(err, ErrNotInUnit) || !strings.Contains(err.Error(), "nothing was done") {
			t.Errorf("in %s for %q: %v", c.group, c.unit, err)
		}
		if len(rep.Leftovers) != 0 || rep.HooksRun != 0 {
			t.Errorf("in %s for %q: %+v", c.group, c.unit, rep)
		}
	}
	if err := neighbour.Process.Signal(syscall.Signal(0)); err != nil {
		t.Fatalf("the neighbour was stopped: %v", err)
	}
	// In its unit it does its work: the neighbour, left behind there,
	// gets SIGTERM.
	cgroupOf = func(int) (string, error) { return "/sitectl.slice/sitectl-1f.slice/site-karl.service", nil }
	rep, err := Run(context.Background(), Options{Unit: "site-karl.service", Timeout: time.Second, Poll: 10 * time.Millisecond})
	if err != nil || len(rep.Leftovers) != 1 {
		t.Fatalf("in its unit: %+v, %v", rep, err)
	}
	if err := neighbour.Wait(); err == nil || !strings.Contains(err.Error(), "terminated") {
		t.Errorf("the process left behind in its unit: %v", err)
	}
}

// systemd ends ExecStopPost= at the unit's TimeoutStopSec=, the budget: a
// leftover that ignores SIGTERM must not take the time of the hooks. With
// a budget of 3s, a timeout of 10s and two hooks, the wait for the
// leftover gets a third of what is left and each hook runs, all within
// the budget; without a budget the wait takes its timeout.
func TestBudgetLeavesTheHooksTheirTime(t *testing.T) {
	defer func(of func(int) (string, error), procs func(string) ([]int, error)) {
		cgroupOf, cgroupProcs = of, procs
	}(cgroupOf, cgroupProcs)
	stubborn := exec.Command("sh", "-c", "trap '' TERM; sleep 60 & wait")
	if err := stubborn.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { stubborn.Process.Kill(); stubborn.Wait() }()
	time.Sleep(100 * time.Millisecond) // the trap is set
	cgroupOf = func(int) (string, error) { return "/sitectl.slice/site-karl.service", nil }
	cgroupProcs = func(string) ([]int, error) { return []int{stubborn.Process.Pid}, nil }
	dir := t.TempDir()
	hooks := [][]string{{"sh", "-c", "touch " + dir + "/one"}, {"sh", "-c", "touch " + dir + "/two"}}
	var logged []string
	logf := func(f string, a ...any) { logged = append(logged, fmt.Sprintf(f, a...)) }
	start := time.Now()
	rep, err := Run(context.Background(), Options{Unit: "site-karl.service", Timeout: 10 * time.Second, Budget: 3 * time.Second, Hooks: hooks, Logf: logf, Poll: 10 * time.Millisecond})
	took := time.Since(start)
	if err != nil || rep.HooksRun != 2 || len(rep.HookFailures) != 0 || len(rep.Remaining) != 1 {
		t.Errorf("%+v, %v", rep, err)
	}
	if took > 3*time.Second-budgetReserve+500*time.Millisecond {
		t.Errorf("the cleanup took %s of a budget of 3s", took)
	}
	for _, f := range []string{"one", "two"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("hook %s did not run: %v", f, err)
		}
	}
	if !strings.Contains(strings.Join(logged, "\n"), "the left-behind processes get ") || !strings.Contains(strings.Join(logged, "\n"), "not 10s: systemd gives the cleanup 3s (TimeoutStopSec=) and 2 hooks follow") {
		t.Errorf("logged:\n%s", strings.Join(logged, "\n"))
	}

	start = time.Now()
	rep, err = Run(context.Background(), Options{Unit: "site-karl.service", Timeout: time.Second, Logf: logf, Poll: 10 * time.Millisecond})
	if took := time.Since(start); err != nil || len(rep.Remaining) != 1 || took < time.Second {
		t.Errorf("without a budget: %+v, %v, after %s", rep, err, took)
	}
}

func TestBudgetShare(t *testing.T) {
	if got := (budget{}).share(10*time.Second, 3); got != 10*time.Second {
		t.Errorf("no budget: %s", got)
	}
	b := budget{end: time.Now().Add(6 * time.Second), bounded: true}
	if got := b.share(10*time.Second, 3); got > 2*time.Second || got < 1900*time.Millisecond {
		t.Errorf("6s for 3: %s", got)
	}
	if got := b.share(time.Second, 3); got != time.Second {
		t.Errorf("a limit under the share: %s", got)
	}
	if got := (budget{end: time.Now().Add(-time.Second), bounded: true}).share(time.Second, 1); got != 100*time.Millisecond {
		t.Errorf("a spent budget: %s", got)
	}
}

// started starts cmd and returns a channel closed once it has exited, for
// a cgroup stub that lists only live processes (a child the test has not
// reaped yet still takes signals), and where its Wait's error will be.
func started(t *testing.T, cmd *exec.Cmd) (<-chan struct{}, *error) {
	t.Helper()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done, werr := make(chan struct{}), new(error)
	go func() { *werr = cmd.Wait(); close(done) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-done })
	return done, werr
}

func alive(done <-chan struct{}) bool {
	select {
	case <-done:
		return false
	default:
		return true
	}
}

// A process that appears in the cgroup after the first look (a
// leftover's child, the second fork of a daemon) is left behind as well:
// it gets SIGTERM and its time, not only systemd's SIGKILL once the wait
// is over, and the record counts it among the leftovers.
func TestRunStopsLeftoversThatAppearLater(t *testing.T) {
	defer func(of func(int) (string, error), procs func(string) ([]int, error)) {
		cgroupOf, cgroupProcs = of, procs
	}(cgroupOf, cgroupProcs)
	first, late := exec.Command("sleep", "60"), exec.Command("sleep", "60")
	firstDone, _ := started(t, first)
	lateDone, lateErr := started(t, late)
	cgroupOf = func(int) (string, error) { return "/sitectl.slice/site-karl.service", nil }
	looks := 0
	cgroupProcs = func(string) ([]int, error) {
		looks++
		var pids []int
		if alive(firstDone) {
			pids = append(pids, first.Process.Pid)
		}
		if looks > 1 && alive(lateDone) {
			pids = append(pids, late.Process.Pid)
		}
		return pids, nil
	}
	start := time.Now()
	rep, err := Run(context.Background(), Options{Unit: "site-karl.service", Timeout: 3 * time.Second, Poll: 10 * time.Millisecond})
	if err != nil || len(rep.Remaining) != 0 || len(rep.Leftovers) != 2 {
		t.Errorf("%+v, %v; want 2 leftovers, none remaining", rep, err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("the cleanup waited %s for a process it never asked to stop", d)
	}
	select {
	case <-lateDone:
	case <-time.After(2 * time.Second):
		t.Fatal("the process that appeared later still runs")
	}
	if *lateErr == nil || !strings.Contains((*lateErr).Error(), "terminated") {
		t.Errorf("the process that appeared later: %v, want terminated by SIGTERM", *lateErr)
	}
}

// A stopped leftover (SIGSTOP) that handles SIGTERM gets to run its
// handler: SIGCONT follows the SIGTERM, as in systemd's own stop. Without
// it the SIGTERM stays pending, the wait takes its whole timeout and
// systemd's SIGKILL ends the process before it released anything.
func TestRunContinuesStoppedLeftovers(t *testing.T) {
	defer func(of func(int) (string, error), procs func(string) ([]int, error)) {
		cgroupOf, cgroupProcs = of, procs
	}(cgroupOf, cgroupProcs)
	dir := t.TempDir()
	stopped := exec.Command("sh", "-c", "trap 'touch "+dir+"/released; exit 0' TERM; while :; do sleep 0.05; done")
	done, _ := started(t, stopped)
	time.Sleep(200 * time.Millisecond) // the trap is set
	if err := stopped.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	cgroupOf = func(int) (string, error) { return "/sitectl.slice/site-karl.service", nil }
	cgroupProcs = func(string) ([]int, error) {
		if alive(done) {
			return []int{stopped.Process.Pid}, nil
		}
		return nil, nil
	}
	start := time.Now()
	rep, err := Run(context.Background(), Options{Unit: "site-karl.service", Timeout: 3 * time.Second, Poll: 10 * time.Millisecond})
	if err != nil || len(rep.Remaining) != 0 {
		t.Errorf("%+v, %v; want none remaining", rep, err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("the cleanup waited %s for a stopped process", d)
	}
	if _, err := os.Stat(filepath.Join(dir, "released")); err != nil {
		t.Errorf("the stopped process did not run its SIGTERM handler: %v", err)
	}
}

// A cgroup whose processes cannot be listed (more than the listing
// bounds, an unreadable cgroup.procs) stops no process, but the site's own
// cleanup still runs: its hooks remove locks and deregister. The record
// says the listing failed, not ok with nothing left behind.
func TestRunHooksRunWhenTheListingFails(t *testing.T) {
	defer func(of func(int) (string, error), procs func(string) ([]int, error)) {
		cgroupOf, cgroupProcs = of, procs
	}(cgroupOf, cgroupProcs)
	cgroupOf = func(int) (string, error) { return "/sitectl.slice/site-karl.service", nil }
	cgroupProcs = func(string) ([]int, error) {
		return nil, errors.New("cannot list the processes of cgroup /sitectl.slice/site-karl.service: more than 131072 processes")
	}
	dir := t.TempDir()
	var logged []string
	logf := func(f string, a ...any) { logged = append(logged, fmt.Sprintf(f, a...)) }
	rep, err := Run(context.Background(), Options{Unit: "site-karl.service", Timeout: time.Second, Logf: logf,
		Hooks: [][]string{{"sh", "-c", "touch " + dir + "/unlocked"}}})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "unlocked")); err != nil || rep.HooksRun != 1 {
		t.Errorf("the hook did not run after a failed listing (%d run): %v", rep.HooksRun, err)
	}
	rec := rep.Record("karl")
	if rec.Result != ResultListFailed || !strings.Contains(rec.Reason, "more than 131072 processes") {
		t.Errorf("record %+v: want %s with the listing's error", rec, ResultListFailed)
	}
	if !strings.Contains(strings.Join(logged, "\n"), "the processes left behind are not known") {
		t.Errorf("logged:\n%s", strings.Join(logged, "\n"))
	}
}

// A listing that fails while the cleanup waits for the leftovers is not
// taken for "all exited".
func TestRunListingFailsDuringTheWait(t *testing.T) {
	defer func(of func(int) (string, error), procs func(string) ([]int, error)) {
		cgroupOf, cgroupProcs = of, procs
	}(cgroupOf, cgroupProcs)
	leftover := exec.Command("sleep", "60")
	started(t, leftover)
	cgroupOf = func(int) (string, error) { return "/sitectl.slice/site-karl.service", nil }
	looks := 0
	cgroupProcs = func(string) ([]int, error) {
		if looks++; looks > 1 {
			return nil, errors.New("cgroup.procs: input/output error")
		}
		return []int{leftover.Process.Pid}, nil
	}
	var logged []string
	logf := func(f string, a ...any) { logged = append(logged, fmt.Sprintf(f, a...)) }
	rep, err := Run(context.Background(), Options{Unit: "site-karl.service", Timeout: time.Second, Logf: logf, Poll: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if rec := rep.Record("karl"); rec.Result != ResultListFailed || rec.Leftovers != 1 || !strings.Contains(rec.Reason, "input/output error") {
		t.Errorf("record %+v", rec)
	}
	if log := strings.Join(logged, "\n"); strings.Contains(log, "all left-behind processes exited") {
		t.Errorf("logged:\n%s", log)
	}
}

// A hook that leaves a process running in the cgroup (a daemon it
// started) is counted in the record: systemd's final SIGKILL ends it.
func TestRunCountsWhatTheHooksLeave(t *testing.T) {
	defer func(of func(int) (string, error), procs func(string) ([]int, error)) {
		cgroupOf, cgroupProcs = of, procs
	}(cgroupOf, cgroupProcs)
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "daemon.pid")
	t.Cleanup(func() {
		if b, err := os.ReadFile(pidFile); err == nil {
			var pid int
			fmt.Sscan(string(b), &pid)
			if pid > 0 {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
	cgroupOf = func(int) (string, error) { return "/sitectl.slice/site-karl.service", nil }
	// The cgroup holds the hook's daemon once it wrote its pid.
	cgroupProcs = func(string) ([]int, error) {
		b, err := os.ReadFile(pidFile)
		if err != nil {
			return nil, nil
		}
		var pid int
		fmt.Sscan(string(b), &pid)
		if syscall.Kill(pid, 0) != nil {
			return nil, nil
		}
		return []int{pid}, nil
	}
	hook := []string{"sh", "-c", "sleep 60 >/dev/null 2>&1 & echo $! >" + pidFile}
	rep, err := Run(context.Background(), Options{Unit: "site-karl.service", Timeout: 2 * time.Second, Hooks: [][]string{hook}, Poll: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	rec := rep.Record("karl")
	if rec.Result != ResultOK || rec.Leftovers != 0 || rec.HookLeftovers != 1 || rec.Remaining != 1 {
		t.Errorf("record %+v: want the hook's daemon among what remains, counted as the hooks'", rec)
	}
	if !strings.Contains(rec.Message(), "1 processes left running by the hooks") {
		t.Errorf("message %q", rec.Message())
	}
}

// Run says it started (the record that tells a cleanup systemd killed
// from one that ended) once it knows it runs in its unit, before it looks
// at the cgroup; outside its unit it says nothing.
func TestRunSaysItStartedFirst(t *testing.T) {
	defer func(of func(int) (string, error), procs func(string) ([]int, error)) {
		cgroupOf, cgroupProcs = of, procs
	}(cgroupOf, cgroupProcs)
	var events []string
	cgroupProcs = func(string) ([]int, error) { events = append(events, "listed"); return nil, nil }
	started := func() { events = append(events, "started") }
	cgroupOf = func(int) (string, error) { return "/system.slice/neighbour.service", nil }
	if _, err := Run(context.Background(), Options{Unit: "site-karl.service", Started: started}); !errors.Is(err, ErrNotInUnit) || len(events) != 0 {
		t.Errorf("outside its unit: %v, %q", err, events)
	}
	cgroupOf = func(int) (string, error) { return "/sitectl.slice/site-karl.service", nil }
	if _, err := Run(context.Background(), Options{Unit: "site-karl.service", Started: started}); err != nil || len(events) == 0 || events[0] != "started" {
		t.Errorf("in its unit: %v, %q; want started first", err, events)
	}
}
