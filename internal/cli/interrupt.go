package cli

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/sitectl/sitectl/internal/flow"
	"github.com/sitectl/sitectl/internal/term"
)

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
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGPIPE)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for sig := range sigs {
			e.interrupted(ctx, cancel, name, sig)
		}
	}()
	return ctx, func() {
		signal.Stop(sigs)
		close(sigs)
		<-done
		cancel(nil)
	}
}

// interrupted acts on one signal caught by interruptible.
func (e *env) interrupted(ctx context.Context, cancel context.CancelCauseFunc, name string, sig os.Signal) {
	s, _ := sig.(syscall.Signal)
	signame := unix.SignalName(s)
	switch {
	case s == syscall.SIGPIPE:
	case s == syscall.SIGHUP:
		term.Fprintf(e.stderr, "sitectl: %s (the terminal went away?): the change of site %s runs to its end; `sitectl history %s` shows how it ended\n", signame, name, name)
	case ctx.Err() == nil:
		term.Fprintf(e.stderr, "sitectl: interrupted by %s: the change of site %s stops; a new mode not yet shown to serve is rolled back to the previous one, which is verified again; further signals are ignored until then\n", signame, name)
		cancel(fmt.Errorf("%w by %s", flow.ErrInterrupted, signame))
	default:
		term.Fprintf(e.stderr, "sitectl: %s ignored: site %s is being brought back to a mode shown to serve; sitectl exits when that is done (kill -9 would leave the site unverified)\n", signame, name)
	}
}

// mergeCancel is ctx, ended also when other ends, with other's cause.
func mergeCancel(ctx, other context.Context) context.Context {
	merged, cancel := context.WithCancelCause(ctx)
	context.AfterFunc(other, func() { cancel(context.Cause(other)) })
	return merged
}
