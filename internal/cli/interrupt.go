package cli

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sitectl/sitectl/internal/flow"
	"github.com/sitectl/sitectl/internal/term"
)

// catchSignals is the one place sitectl catches the signals that would
// otherwise kill it in the middle of a change: SIGINT and SIGTERM (someone
// asks it to stop), SIGHUP (the terminal went away) and SIGPIPE (whoever
// read its output did). Each is handed to on, one at a time, in the order
// they came, until stop, which returns once on is done with the last.
// What a signal does is on's: a switch of mode rolls back (interruptible),
// a lifecycle verb runs to its end (runsToItsEnd), a deployer's sitectl
// asks the state service to interrupt the change (interruptible too, and
// remoteCall). After stop, SIGPIPE stays ignored: the change's outcome
// is still to be printed, and a write to an output nobody reads any more
// (`sitectl restart shop 2>&1 | head -0`, an ssh session without a
// terminal that dropped) must fail, not kill sitectl with SIGPIPE (Go's
// runtime dies of it on standard output and error), which would turn the
// exit code that says how the change ended into 141.
func catchSignals(on func(syscall.Signal)) (stop func()) {
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGPIPE)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for sig := range sigs {
			s, _ := sig.(syscall.Signal)
			on(s)
		}
	}()
	return func() {
		signal.Ignore(syscall.SIGPIPE)
		signal.Stop(sigs)
		close(sigs)
		<-done
	}
}

// interruptible catches, while root's sitectl changes site name, the
// signals that would otherwise kill it mid-change and leave a mode that was
// never shown to serve running. The first SIGINT or SIGTERM ends the
// returned context, with flow.ErrInterrupted and the signal as its cause:
// the flow then rolls back a new mode not yet shown to serve and verifies
// the previous one (flow.Env.Interrupt). Later ones are ignored, with a
// line that says so: a rollback cut short would leave the site as the
// first signal found it, or worse. SIGHUP (the terminal went away) and
// SIGPIPE (whoever read the output did) ask nobody to stop: the change
// runs to its end, and its history says how it ended. stop undoes it all.
func (e *env) interruptible(name string) (ctx context.Context, stop func()) {
	ctx, cancel := context.WithCancelCause(context.Background())
	stopCatching := catchSignals(func(sig syscall.Signal) { e.interrupted(ctx, cancel, name, sig) })
	return ctx, func() {
		stopCatching()
		cancel(nil)
	}
}

// interrupted acts on one signal caught by interruptible.
func (e *env) interrupted(ctx context.Context, cancel context.CancelCauseFunc, name string, s syscall.Signal) {
	signame := unix.SignalName(s)
	switch {
	case s == syscall.SIGPIPE:
	case s == syscall.SIGHUP:
		term.Fprintf(e.stderr, "sitectl: %s (the terminal went away?): the change of site %s runs to its end; `sitectl history %s` shows how it ended\n", signame, name, name)
	case ctx.Err() == nil:
		term.Fprintf(e.stderr, "sitectl: interrupted by %s: the change of site %s stops; a new mode not yet shown to serve is rolled back to the previous one, which is verified again; further signals are ignored until then\n", signame, name)
		cancel(interruption(s))
	case e.remote():
		// sitectl's state service runs the change, whatever becomes
		// of this sitectl.
		term.Fprintf(e.stderr, "sitectl: %s ignored: site %s is being brought back to a mode shown to serve; sitectl exits when that is done (kill -9 would not stop that, only leave you without its outcome, which `sitectl history %s` shows)\n", signame, name, name)
	default:
		term.Fprintf(e.stderr, "sitectl: %s ignored: site %s is being brought back to a mode shown to serve; sitectl exits when that is done (kill -9 would leave the site unverified)\n", signame, name)
	}
}

// signalled is the cause a signal gives the change it interrupts:
// flow.ErrInterrupted, and which signal.
type signalled struct{ sig syscall.Signal }

func interruption(s syscall.Signal) error { return &signalled{s} }

func (s *signalled) Error() string {
	return fmt.Sprintf("%v by %s", flow.ErrInterrupted, unix.SignalName(s.sig))
}

func (s *signalled) Unwrap() error { return flow.ErrInterrupted }

// runsToItsEnd catches, while root's sitectl runs lifecycle verb (enable,
// disable, remove) on site name, the signals that would otherwise kill it
// half done: a remove killed between stopping a site's socket and starting
// the socket of the site that takes its listeners over would leave the
// port refusing, and nobody told. These verbs are short and bounded by
// timeout (--timeout), so once one has begun, no signal stops it: the
// first SIGINT or SIGTERM is answered with a line saying that it runs to
// its end, later ones with a line saying they are ignored; sitectl then
// prints its report and exits as it would have without the signal.
// SIGHUP and SIGPIPE ask nobody to stop either. Before the verb begins
// (begin), while it waits for another sitectl's lock of the site, the
// first SIGINT or SIGTERM ends wait, with flow.ErrInterrupted and the
// signal as its cause: nothing has been done. begin returns that cause if
// a signal came first, and nil once the verb may run. stop undoes it all.
func (e *env) runsToItsEnd(verb, name string, timeout time.Duration) (wait context.Context, begin func() error, stop func()) {
	wait, cancel := context.WithCancelCause(context.Background())
	var mu sync.Mutex
	begun, caught := false, 0
	stopCatching := catchSignals(func(s syscall.Signal) {
		mu.Lock()
		defer mu.Unlock()
		signame := unix.SignalName(s)
		switch {
		case s == syscall.SIGPIPE:
		case s == syscall.SIGHUP:
			term.Fprintf(e.stderr, "sitectl: %s (the terminal went away?): sitectl %s %s runs to its end\n", signame, verb, name)
		case !begun && wait.Err() == nil:
			term.Fprintf(e.stderr, "sitectl: interrupted by %s: sitectl %s %s stops waiting for the site; nothing was done\n", signame, verb, name)
			cancel(interruption(s))
		case !begun:
			term.Fprintf(e.stderr, "sitectl: %s ignored: sitectl %s %s is giving up its wait; nothing was done\n", signame, verb, name)
		case caught == 0:
			caught++
			term.Fprintf(e.stderr, "sitectl: %s: sitectl %s %s runs to its end, within --timeout (%s), so that nothing is left half done; further signals are ignored too (kill -9 would leave it half done)\n", signame, verb, name, timeout)
		default:
			term.Fprintf(e.stderr, "sitectl: %s ignored: sitectl %s %s runs to its end (kill -9 would leave it half done)\n", signame, verb, name)
		}
	})
	begin = func() error {
		mu.Lock()
		defer mu.Unlock()
		if wait.Err() != nil {
			return context.Cause(wait)
		}
		begun = true
		return nil
	}
	return wait, begin, func() {
		stopCatching()
		cancel(nil)
	}
}

// mergeCancel is ctx, ended also when other ends, with other's cause.
func mergeCancel(ctx, other context.Context) context.Context {
	merged, cancel := context.WithCancelCause(ctx)
	context.AfterFunc(other, func() { cancel(context.Cause(other)) })
	return merged
}
