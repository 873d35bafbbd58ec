package cli

import (
	"context"
	"errors"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sitectl/sitectl/internal/control"
	"github.com/sitectl/sitectl/internal/modes"
	"github.com/sitectl/sitectl/internal/stateservice"
)

// busySystemd is PID 1 in the middle of a daemon-reload: it answers no new
// connection until ctx ends. allowed receives how long each connect was
// given.
func busySystemd(t *testing.T) (allowed chan time.Duration) {
	allowed = make(chan time.Duration, 8)
	gone := make(chan struct{})
	shorten(t, &connectSystemd, func(ctx context.Context) (*control.Manager, error) {
		d, ok := ctx.Deadline()
		if !ok {
			allowed <- -1
		} else {
			allowed <- time.Until(d)
		}
		select {
		case <-ctx.Done():
		case <-gone: // the test is over
		}
		return nil, errors.New("systemd cannot be reached: no answer within the time allowed")
	})
	t.Cleanup(func() { close(gone) }) // before connectSystemd is put back
	return allowed
}

// A daemon-reload at 10,000 sites keeps PID 1 from answering anything,
// a new connection included, for 15 to 20 s (docs/scale.md), and any
// sitectl enable, disable or remove of another site begins one. A change
// waits for systemd as long as its timeout allows, a lifecycle verb its
// --timeout, status more than such a reload: it gave up after 10 s, and
// said that systemd could not be reached, exit 7, to an Ansible run whose
// restarts of other sites met another fork's enable.
func TestConnectWaitsOutABusySystemd(t *testing.T) {
	allowed := busySystemd(t)
	e := &env{dirs: testDirs(t), stdout: io.Discard, stderr: io.Discard}

	p := e.connectSoon(context.Background(), 2*time.Minute)
	if got := <-allowed; got < 110*time.Second {
		t.Errorf("a change with a timeout of 2m waits for systemd's connection %v", got)
	}
	p.discard()

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	go func() { _, _ = e.connect(ctx) }()
	if got := <-allowed; got < 110*time.Second {
		t.Errorf("a lifecycle verb with --timeout 2m waits for systemd's connection %v", got)
	}
	cancel()

	go func() { _, _ = e.connect(context.Background()) }()
	if got := <-allowed; got < 25*time.Second {
		t.Errorf("status waits for systemd's connection %v, less than a daemon-reload at 10,000 sites takes", got)
	}
}

// One that does not answer in time is said to be maybe reloading, with
// how long it was waited for.
func TestConnectToABusySystemdSaysWhatItWaitedFor(t *testing.T) {
	busySystemd(t)
	shorten(t, &connectWait, 100*time.Millisecond)
	e := &env{dirs: testDirs(t), stdout: io.Discard, stderr: io.Discard}
	_, err := e.connect(context.Background())
	if codeOf(err) != exitUnavailable || !strings.Contains(strings.Join(hintsOf(err), "\n"), "reloads its units") {
		t.Errorf("a systemd that does not answer: exit %d, %v; want 7 and that it may be reloading", codeOf(err), err)
	}
}

// A change that waits for a busy systemd ends at once when its sitectl is
// interrupted (or the state service's caller hangs up), nothing done, as
// its wait for the site's lock does.
func TestInterruptEndsTheWaitForSystemd(t *testing.T) {
	allowed := busySystemd(t)
	e := &env{dirs: testDirs(t), stdout: io.Discard, stderr: io.Discard}
	s, err := e.loadSite("karl")
	if err != nil {
		t.Fatal(err)
	}
	req := stateservice.Request{Verb: stateservice.VerbRestart, Site: "karl", TimeoutMS: time.Minute.Milliseconds()}
	ctx, cancel := context.WithCancel(context.Background())
	conn := e.connectSoon(ctx, req.Timeout())
	time.AfterFunc(50*time.Millisecond, cancel)
	who := modes.Local{Store: modes.Store{Dir: e.dirs.State}, UID: 0, PID: os.Getpid()}
	err = within(t, 3*time.Second, func() error {
		_, err := e.localChange(ctx, context.Background(), req, s, who, func(string, ...any) {}, conn, nil)
		return err
	})
	if codeOf(err) != exitFailed || !strings.Contains(err.Error(), "nothing was done") {
		t.Errorf("an interrupted wait for systemd: exit %d, %v; want 1, nothing done", codeOf(err), err)
	}
	<-allowed // the connection was tried: it ends with the test
}

// A request that arrived whole is carried out whatever its caller does
// next: the state service's caller that hangs up at once (its ctx ends)
// still gets its change when systemd's connection comes as usual, within
// connectGrace; only a wait for a busy systemd ends with ctx.
func TestHangUpDoesNotDropAConnectionOnItsWay(t *testing.T) {
	m := &control.Manager{}
	shorten(t, &connectSystemd, func(ctx context.Context) (*control.Manager, error) {
		time.Sleep(100 * time.Millisecond)
		return m, nil
	})
	e := &env{dirs: testDirs(t), stdout: io.Discard, stderr: io.Discard}
	ctx, cancel := context.WithCancel(context.Background())
	p := e.connectSoon(ctx, time.Minute)
	cancel()
	got, err := p.wait(ctx)
	if err != nil || got != m {
		t.Errorf("a connection on its way when the caller hung up: %v, %v; want it taken", got, err)
	}
}
