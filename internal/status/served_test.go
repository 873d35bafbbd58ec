package status

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/sitectl/sitectl/internal/launcher"
	"github.com/sitectl/sitectl/internal/procfs"
	"github.com/sitectl/sitectl/internal/site"
)

// The launcher runs as the site's user, and the site's app can answer on
// its control socket: a serving or warm generation it names that is not
// one of the launcher's processes (another site's) is not read, neither
// its mode nor its memory; one of the launcher's own is.
func TestServedAndWarmOnlyOfTheLaunchersProcesses(t *testing.T) {
	start := func(env ...string) int { return startSleep(t, env...) }
	gen := start("SITE_MODE=read-only") // a child of the test, its launcher
	beside := start()                   // a launcher gen does not descend from
	ask := askLauncher
	t.Cleanup(func() { askLauncher = ask })
	askLauncher = func(ctx context.Context, s *site.Site, mainPID int) (launcher.Status, error) {
		g := launcher.GenerationStatus{Generation: 1, PID: gen, Mode: "read-only"}
		return launcher.Status{Serving: &g, Warm: &launcher.WarmStatus{GenerationStatus: g}}, nil
	}
	s := &site.Site{Name: "karl", Handoff: site.HandoffOverlap}
	ctx := context.Background()
	if got := Served(ctx, s, beside).Env; got != nil {
		t.Errorf("served environment of a process not the launcher's: %q", got)
	}
	if w := warmGeneration(ctx, s, beside); w != nil {
		t.Errorf("warm generation not the launcher's: %+v", w)
	}
	if got := modeOf(Served(ctx, s, os.Getpid()).Env); got != "read-only" {
		t.Errorf("served mode of the launcher's generation: %q", got)
	}
	if w := warmGeneration(ctx, s, os.Getpid()); w == nil || w.MainPID != gen || w.Mode != "read-only" {
		t.Errorf("warm generation of the launcher: %+v", w)
	}
}

// Whether the main process is a launcher is the running service's word,
// not the site file's, whose handoff may have changed since it started:
// a launcher that answers names the generation that serves, whatever the
// file says; a main process without a listening control socket is read
// itself; one whose socket does not answer is not read at all.
func TestServedByTheRunningHandoff(t *testing.T) {
	start := func(env ...string) int { return startSleep(t, env...) }
	gen := start("SITE_MODE=read-only")
	main := start("SITE_MODE=normal")
	ask := askLauncher
	t.Cleanup(func() { askLauncher = ask })
	ctx := context.Background()
	for _, c := range []struct {
		answer  error
		handoff site.Handoff
		pid     int
		want    string
	}{
		{nil, site.HandoffRestart, os.Getpid(), "read-only"},                                  // a launcher runs, the file says restart
		{fmt.Errorf("cannot reach: %w", fs.ErrNotExist), site.HandoffOverlap, main, "normal"}, // no launcher runs, the file says overlap
		{fmt.Errorf("cannot reach: %w", syscall.ECONNREFUSED), site.HandoffRestart, main, "normal"},
		{errors.New("no answer from the launcher: i/o timeout"), site.HandoffRestart, main, ""},
	} {
		askLauncher = func(context.Context, *site.Site, int) (launcher.Status, error) {
			g := launcher.GenerationStatus{Generation: 2, PID: gen, Mode: "read-only"}
			return launcher.Status{Serving: &g}, c.answer
		}
		if got := modeOf(Served(ctx, &site.Site{Name: "karl", Handoff: c.handoff}, c.pid).Env); got != c.want {
			t.Errorf("launcher answers %v, file's handoff %s: served mode %q, want %q", c.answer, c.handoff, got, c.want)
		}
	}
}

// startSleep starts a process with environment env that lives for the
// test, and returns its pid once its environment can be read.
func startSleep(t *testing.T, env ...string) int {
	t.Helper()
	cmd := exec.Command("sleep", "60")
	cmd.Env = append([]string{"SITECTL_TEST=1"}, env...) // never empty: waitEnviron tells exec'd from not
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	waitEnviron(t, cmd.Process.Pid, len(cmd.Env))
	return cmd.Process.Pid
}

// waitEnviron waits until /proc/PID/environ shows the n variables process
// pid was started with. Start returns once the child has released the
// parent's memory in execve, which is before the kernel has set the new
// stack's environment: until then the file reads empty, and on a busy
// host a test that reads it at once sees no environment.
func waitEnviron(t *testing.T, pid, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		env, err := procfs.Environ(pid)
		if err == nil && len(env) == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("process %d: environment %q (%v), want %d variables", pid, env, err, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// The release a site's serving process runs from: its overlap
// generation's, as its launcher says, or the main process's current
// directory; none for a site without workdir.
func TestServedRelease(t *testing.T) {
	gen := startSleep(t, "SITE_MODE=normal")
	ask := askLauncher
	t.Cleanup(func() { askLauncher = ask })
	askLauncher = func(ctx context.Context, s *site.Site, mainPID int) (launcher.Status, error) {
		if s.Handoff != site.HandoffOverlap {
			return launcher.Status{}, fs.ErrNotExist // no control socket: the app itself
		}
		return launcher.Status{Serving: &launcher.GenerationStatus{Generation: 2, PID: gen, Release: "/srv/karl/releases/7"}}, nil
	}
	ctx := context.Background()
	if got := Served(ctx, &site.Site{Name: "karl", Handoff: site.HandoffOverlap, Workdir: "/srv/karl/current"}, os.Getpid()).Release; got != "/srv/karl/releases/7" {
		t.Errorf("an overlap generation's release: %q", got)
	}
	wd, _ := os.Getwd()
	if got := Served(ctx, &site.Site{Name: "karl", Workdir: "/srv/karl/current"}, gen).Release; got != wd {
		t.Errorf("the main process's directory: %q, want %q", got, wd)
	}
	if got := Served(ctx, &site.Site{Name: "karl"}, gen).Release; got != "" {
		t.Errorf("a site without workdir: %q", got)
	}
}
