package launcher

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
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

func (p fakeProc) remove(pid int) { os.RemoveAll(filepath.Join(p.dir, strconv.Itoa(pid))) }

func write(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestTreeSamplerSumsDescendantsAndNoticesChanges(t *testing.T) {
	p := fakeProc{t, t.TempDir()}
	p.set(10, []int{11, 12}, 1_000_000)
	p.set(11, nil, 5_000_000, 2_000_000) // two threads
	p.set(12, []int{13}, 0)
	p.set(13, nil, 4_000_000)
	p.set(99, nil, 50_000_000) // not in the tree
	s := &treeSampler{proc: p.dir, root: 10}

	if _, changed, err := s.sample(); err != nil || !changed {
		t.Fatalf("first sample: changed %v, err %v; want the baseline reported as a change", changed, err)
	}
	p.set(11, nil, 6_000_000, 2_500_000) // +1.5ms
	p.set(13, nil, 4_100_000)            // +0.1ms
	used, changed, err := s.sample()
	if err != nil || changed || used != 1600*time.Microsecond {
		t.Fatalf("second sample: used %v, changed %v, err %v; want 1.6ms, unchanged", used, changed, err)
	}

	// A worker exits and another is forked: a change, whatever the time.
	p.set(12, []int{14}, 0)
	p.remove(13)
	p.set(14, nil, 0)
	if _, changed, _ := s.sample(); !changed {
		t.Fatal("a replaced process went unnoticed")
	}
	if used, changed, _ := s.sample(); changed || used != 0 {
		t.Fatalf("idle tree: used %v, changed %v", used, changed)
	}

	p.remove(10)
	if _, _, err := s.sample(); err == nil {
		t.Fatal("a vanished tree gave no error")
	}
}

func TestQuietWatchNeedsConsecutiveQuietSamples(t *testing.T) {
	p := fakeProc{t, t.TempDir()}
	p.set(10, nil, 0)
	w := newQuietWatch(Quiet{Interval: 50 * time.Millisecond, Samples: 2}, 10)
	w.sampler.proc = p.dir
	run := int64(0)
	step := func(add time.Duration) bool {
		run += int64(add)
		p.set(10, nil, run)
		return w.sample()
	}
	if w.sample() {
		t.Fatal("the baseline sample counted as quiet")
	}
	if step(0) {
		t.Fatal("quiet after one quiet sample, want two")
	}
	if step(20 * time.Millisecond) {
		t.Fatal("a busy sample (20ms of 50) counted as quiet")
	}
	if step(time.Millisecond) || !step(time.Millisecond) {
		t.Fatal("two quiet samples (1ms of 50 each) after a busy one did not make the generation quiet")
	}

	gone := newQuietWatch(Quiet{Samples: 3}, 4242)
	gone.sampler.proc = p.dir
	if !gone.sample() {
		t.Fatal("an unreadable tree must not hold the handover up")
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
