package launcher

import (
	"context"
	"fmt"
	"os"
	"syscall"
	"time"

	"github.com/sitectl/sitectl/internal/probe"
	"github.com/sitectl/sitectl/internal/sdnotify"
	"github.com/sitectl/sitectl/internal/site"
)

// startup follows one generation from its start until it is ready to
// serve, in steps: READY=1 (notify sites), then the probe (sites with a
// probe) or the settle time (sites with neither), then, when it takes over
// from a serving generation, the wait until it is quiet (see Quiet). As in
// tableflip's upgrader, each step's channel is nil until the step is under
// way and nil again once its event has happened, and every event has a
// method of its own that says whether the wait is over, and how.
type startup struct {
	l      *launcher
	g      *generation
	spec   Spec
	target probe.Target
	pctx   context.Context // bounds the probe; it ends with the start deadline

	// stopProbe ends the probe under way (its own timeout, the site's
	// probe timeout, counted from its start); a no-op when none runs.
	stopProbe context.CancelFunc

	notified bool             // READY=1 came, or is not awaited
	probed   chan error       // the probe's result, while it runs
	settled  <-chan time.Time // the settle time, while it runs
	deadline <-chan time.Time // the start deadline, until it passed

	// promote raises a generation started at idle priority, once it is
	// ready or when promoteBy fires; nil once done, or when it started at
	// normal priority.
	promote   promoter
	promoteBy <-chan time.Time

	watch     *quietWatch // the wait for quiet, once ready
	since     time.Time   // when the wait began
	why       string      // the last sample's verdict, in words
	quietTick <-chan time.Time
	quietEnd  <-chan time.Time
	stopTick  func()
}

// waitReady waits until generation g is ready to serve, while watching for
// its death, the deadline and a stop.
func (l *launcher) waitReady(ctx context.Context, g *generation, spec Spec, target probe.Target, promote promoter) error {
	pctx, cancel := context.WithTimeout(ctx, spec.StartTimeout)
	defer cancel()
	deadline := time.NewTimer(spec.StartTimeout)
	defer deadline.Stop()
	s := &startup{l: l, g: g, spec: spec, target: target, pctx: pctx, deadline: deadline.C,
		notified: spec.Readiness != site.ReadinessNotify, stopTick: func() {}, stopProbe: func() {}, promote: promote}
	defer func() { s.stopTick(); s.stopProbe() }()
	if promote != nil {
		by := time.NewTimer(l.cfg.PromoteAfter)
		defer by.Stop()
		s.promoteBy = by.C
	}
	if s.notified {
		s.check()
	}
	for {
		if s.ready() && s.watch == nil {
			g.readyAt = time.Now()
			// It serves at normal priority, and waits for quiet at it: a
			// worker left idle waits for the CPU, which looks busy.
			if err := s.promoteNow("it is ready"); err != nil {
				return err
			}
			// The first generation, or one replacing a generation that
			// died, has nobody to take over from: it serves at once.
			if l.cfg.Quiet.Max < 0 || l.current == nil {
				return s.alive()
			}
			s.waitQuiet()
		}
		if done, err := s.step(); done {
			return err
		}
	}
}

// step takes the next event; one that ends the wait with the generation
// to take over (nil) is checked by alive.
func (s *startup) step() (done bool, err error) {
	done, err = s.next()
	if done && err == nil {
		err = s.alive()
	}
	return done, err
}

// alive is the last check before the generation takes over: its main
// process has not exited meanwhile. Its exit may wait in l.exits behind
// the event that said it takes over (a sample of the quiet watch, which
// finds no process to watch then, the cap or the deadline), and a dead
// generation must not be handed the site and reported ready.
func (s *startup) alive() error {
	if s.g.hasExited() {
		return fmt.Errorf("generation %d exited before it took over: %s", s.g.n, describeExit(s.g.err))
	}
	return nil
}

// ready: READY=1 came (or is not awaited), and the probe or the settle
// time passed.
func (s *startup) ready() bool { return s.notified && s.probed == nil && s.settled == nil }

// next waits for the next event and takes it.
func (s *startup) next() (done bool, err error) {
	select {
	case <-s.quietTick:
		return s.quietSample(), nil
	case <-s.quietEnd:
		s.l.cfg.Logf("generation %d takes over at the cap of %s, not settled: %s", s.g.n, s.watch.q.Max, s.why)
		return true, nil
	case n := <-s.l.notes:
		s.notification(n)
	case err := <-s.probed:
		return s.probeDone(err)
	case <-s.settled:
		s.settled = nil
	case e := <-s.l.exits:
		return s.exit(e)
	case <-s.deadline:
		return s.deadlinePassed()
	case sig := <-s.l.sigs:
		return s.signal(sig)
	case a := <-s.l.abandons:
		return s.abandon(a)
	case ev := <-s.l.failsafes:
		s.l.failsafe(ev)
	case <-s.promoteBy:
		if err := s.promoteNow("it is still starting after " + s.l.cfg.PromoteAfter.String()); err != nil {
			return true, err
		}
	}
	return false, nil
}

// promoteNow has the reload's caller promote a generation started at idle
// priority, once; a promotion that fails fails the start.
func (s *startup) promoteNow(why string) error {
	if s.promote == nil {
		return nil
	}
	promote := s.promote
	s.promote, s.promoteBy = nil, nil
	start := time.Now()
	did, err := promote(s.g.pid)
	if err != nil {
		return fmt.Errorf("cannot promote generation %d to normal priority: %w", s.g.n, err)
	}
	s.g.idle = false
	s.l.cfg.Logf("generation %d promoted since %s, in %s: %s", s.g.n, why, time.Since(start).Round(time.Microsecond), did)
	return nil
}

// check starts the step after READY=1: the probe, or for a site with
// neither readiness nor probe, the settle time. The probe is retried for
// the site's probe timeout, as a switch's own verification is, and not
// past the start deadline: a generation that answers 404 fails its start
// with that answer, not at the start deadline with nothing more to say.
func (s *startup) check() {
	switch {
	case s.spec.Probe != nil:
		p := s.spec.Probe
		pctx, cancel := context.WithTimeout(s.pctx, p.Timeout)
		s.probed, s.stopProbe = make(chan error, 1), cancel
		go func() { s.probed <- probe.Get(pctx, s.target, p) }()
	case s.spec.Readiness != site.ReadinessNotify:
		s.settled = time.After(s.l.cfg.Settle)
	}
}

// waitQuiet starts the last step: the generation gets the listeners when
// it has settled too (see settled), or when the wait for that ends.
func (s *startup) waitQuiet() {
	q := s.l.cfg.Quiet.withDefaults()
	s.watch = newQuietWatch(q, s.g.pid, s.l.current.pid)
	s.since = time.Now()
	_, s.why = s.watch.sample() // the baseline
	t := time.NewTicker(q.Interval)
	s.stopTick, s.quietTick, s.quietEnd = t.Stop, t.C, time.After(q.Max)
}

// quietSample takes a sample, and tells whether the generation takes over
// now: it settled, or the generation it was to replace is gone. The journal
// says why a handover happened when it did.
func (s *startup) quietSample() bool {
	ok, why := s.watch.sample()
	s.why = why
	switch {
	case s.l.current == nil:
		s.l.cfg.Logf("generation %d takes over at once: the serving generation is gone", s.g.n)
		return true
	case ok:
		s.l.cfg.Logf("generation %d takes over after %s of waiting: %s", s.g.n, time.Since(s.since).Round(time.Millisecond), why)
		return true
	}
	return false
}

// notification takes READY=1, from this generation only.
func (s *startup) notification(n sdnotify.Message) {
	if n.PID == s.g.pid {
		s.g.noted(n.Fields)
	} else {
		s.l.note(n)
	}
	if n.PID == s.g.pid && n.Fields["READY"] == "1" && !s.notified {
		s.notified = true
		s.check()
	}
}

func (s *startup) probeDone(err error) (bool, error) {
	s.probed = nil
	s.stopProbe()
	if err != nil {
		return true, fmt.Errorf("generation %d failed its probe: %w", s.g.n, err)
	}
	return false, nil
}

// exit takes the exit of a generation: this one (it failed), the serving
// one (this one takes over as soon as it is ready), or a draining one.
func (s *startup) exit(e *generation) (bool, error) {
	e.reaped = true
	switch e {
	case s.g:
		return true, fmt.Errorf("generation %d exited before it was ready: %s", s.g.n, describeExit(s.g.err))
	case s.l.current:
		s.l.cfg.Logf("generation %d exited while generation %d started: %s", e.n, s.g.n, describeExit(e.err))
		s.l.current = nil
		s.l.publish()
	default:
		s.l.reaped(e)
	}
	return false, nil
}

func (s *startup) deadlinePassed() (bool, error) {
	s.deadline = nil
	switch {
	case s.watch != nil: // ready; the wait for quiet ends with the deadline
		s.l.cfg.Logf("generation %d takes over at its start deadline, not settled: %s", s.g.n, s.why)
		return true, nil
	case s.probed != nil:
		return false, nil // the probe's context ends too; its error follows
	}
	return true, fmt.Errorf("generation %d was not ready within %s", s.g.n, s.spec.StartTimeout)
}

// signal: a reload is already under way; a stop discards the generation.
func (s *startup) signal(sig os.Signal) (bool, error) {
	if sig == syscall.SIGHUP {
		return false, nil
	}
	s.l.discard(s.g)
	return true, ErrStopping
}
