package cli

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sitectl/sitectl/internal/lifecycle"
	"github.com/sitectl/sitectl/internal/modes"
)

// syncBuffer is a buffer a signal handler may write while a test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// signalSelf sends sig to this process and waits until w shows want.
func signalSelf(t *testing.T, sig syscall.Signal, w *syncBuffer, want string) {
	t.Helper()
	if err := syscall.Kill(syscall.Getpid(), sig); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(w.String(), want); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("after %s, no line with %q on standard error: %q", sig, want, w.String())
		}
	}
}

// TestLifecycleVerbRunsToItsEndWhenSignalled: SIGINT, SIGTERM and SIGHUP
// while enable, disable or remove runs do not kill sitectl half done: it
// says the verb runs to its end (and a further signal is ignored), runs
// it to its end, prints its report and exits as the verb ended. Without
// the signals caught, the first SIGINT kills the test.
func TestLifecycleVerbRunsToItsEndWhenSignalled(t *testing.T) {
	var stdout, stderr syncBuffer
	e := &env{dirs: testDirs(t), stdout: &stdout, stderr: &stderr}
	s, err := e.loadSite("karl")
	if err != nil {
		t.Fatal(err)
	}
	f := changeFlags{timeout: time.Minute}
	ran := false
	err = within(t, 20*time.Second, func() error {
		return e.lifecycleOn(context.Background(), nil, "disable", "karl", f, s, func(ctx context.Context, _ *lifecycle.Env) (lifecycle.Report, error) {
			// Between stopping one unit and the next.
			signalSelf(t, syscall.SIGINT, &stderr, "SIGINT: sitectl disable karl runs to its end, within --timeout (1m0s), so that nothing is left half done; further signals are ignored too (kill -9 would leave it half done)")
			signalSelf(t, syscall.SIGTERM, &stderr, "SIGTERM ignored: sitectl disable karl runs to its end")
			signalSelf(t, syscall.SIGHUP, &stderr, "SIGHUP (the terminal went away?): sitectl disable karl runs to its end")
			signalSelf(t, syscall.SIGPIPE, &stderr, "")
			if ctx.Err() != nil {
				t.Errorf("the verb's context ended: %v", context.Cause(ctx))
			}
			ran = true
			return lifecycle.Report{Site: "karl", Action: "disable", Changed: true, Stopped: []string{"site-karl.service", "site-karl.socket"}}, nil
		})
	})
	if err != nil || !ran {
		t.Fatalf("got %v (ran: %v), want the verb run to its end and exit 0", err, ran)
	}
	if want := "karl: out of service (stopped site-karl.service, site-karl.socket)"; !strings.Contains(stdout.String(), want) {
		t.Errorf("standard output %q, want the report %q", stdout.String(), want)
	}
}

// TestLifecycleVerbSignalledWhileWaitingDoesNothing: SIGINT while a
// lifecycle verb waits for another sitectl's lock of the site ends the
// wait: exit 1, nothing done, the verb never run.
func TestLifecycleVerbSignalledWhileWaitingDoesNothing(t *testing.T) {
	var stderr syncBuffer
	// interactive: the wait says it waits, once it catches the signals.
	e := &env{dirs: testDirs(t), stdout: &stderr, stderr: &stderr, interactive: true}
	s, err := e.loadSite("karl")
	if err != nil {
		t.Fatal(err)
	}
	held, err := modes.Store{Dir: e.dirs.State}.LockSite(s, false) // another sitectl's
	if err != nil {
		t.Fatal(err)
	}
	defer held.Unlock()
	f := changeFlags{timeout: time.Minute}
	done := make(chan error, 1)
	go func() {
		done <- e.lifecycleOn(context.Background(), nil, "enable", "karl", f, s, func(context.Context, *lifecycle.Env) (lifecycle.Report, error) {
			return lifecycle.Report{}, errors.New("the verb ran without the site's lock")
		})
	}()
	// A SIGINT before sitectl catches it would kill the test binary.
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(stderr.String(), "karl: waiting for another sitectl to finish with this site"); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("enable did not say it waits for the lock within 10s: %q", stderr.String())
		}
	}
	signalSelf(t, syscall.SIGINT, &stderr, "interrupted by SIGINT: sitectl enable karl stops waiting for the site; nothing was done")
	select {
	case err = <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("still waiting for the lock 5s after SIGINT")
	}
	want := "gave up waiting for site karl: sitectl was interrupted by SIGINT; nothing was done"
	if err == nil || err.Error() != want || codeOf(err) != exitFailed {
		t.Errorf("got %v (exit %d), want %q, exit %d", err, codeOf(err), want, exitFailed)
	}
}
