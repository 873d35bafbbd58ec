package launcher

import (
	"syscall"
	"time"

	"github.com/sitectl/sitectl/internal/sdnotify"
)

// discard stops a generation that will not serve: SIGTERM, then SIGKILL
// after a few seconds. Its exit is consumed here.
func (l *launcher) discard(g *generation) {
	if g.reaped {
		return
	}
	g.proc.Signal(syscall.SIGTERM)
	kill := time.NewTimer(5 * time.Second)
	defer kill.Stop()
	for {
		select {
		case e := <-l.exits:
			e.reaped = true
			if e == g {
				l.cfg.Logf("generation %d stopped: %s", g.n, describeExit(g.err))
				return
			}
			if e == l.current {
				l.current = nil
				l.publish()
			}
			l.reaped(e)
		case <-kill.C:
			g.proc.Signal(syscall.SIGKILL)
			signalAll(l.members(g), syscall.SIGKILL)
		}
	}
}

// reaped takes the exit of a draining generation.
func (l *launcher) reaped(g *generation) {
	if g == l.warm {
		l.warmExited(g)
		return
	}
	delete(l.old, g)
	l.publish()
	l.cfg.Logf("generation %d drained and exited: %s", g.n, describeExit(g.err))
	if g.forced {
		l.killed(g)
	}
	if l.current != nil {
		l.cfg.Notify(sdnotify.Status(l.status()))
	}
}

// stopAll passes the stop on to every generation not draining yet
// (SIGTERM, with workers parked) and waits for them all, bounded as a drain is: each one's
// failsafe, armed when it was told to drain or now, stops every process of
// it after the drain and stop timeouts. systemd's TimeoutStopSec bounds a
// stop it asked for the same way, but when the serving generation died on
// its own systemd waits for the launcher, and so do the visitors.
func (l *launcher) stopAll() {
	running := map[*generation]bool{}
	for g := range l.old {
		running[g] = true
	}
	for _, g := range []*generation{l.current, l.warm} {
		if g != nil {
			running[g] = true
		}
	}
	l.cfg.Notify("STOPPING=1")
	for g := range running {
		// A draining generation was told at its handover, and its
		// failsafe armed then: a second SIGTERM is what a server takes
		// for "stop now" (activation.Serve closes the connections still
		// in flight), so it gets none.
		if !l.old[g] && !g.hasExited() {
			drainParked(procRoot, g.pid, defaultPark)
		}
		l.arm(g)
	}
	l.cfg.Logf("stopping: %d generations drain", len(running))
	for len(running) > 0 {
		select {
		case g := <-l.exits:
			delete(running, g)
			l.cfg.Logf("generation %d exited: %s", g.n, describeExit(g.err))
		case ev := <-l.failsafes:
			l.failsafe(ev)
		}
	}
}
