package launcher

import (
	"syscall"
	"time"

	"github.com/sitectl/sitectl/internal/sdnotify"
)

// discard stops a generation that will not serve: SIGTERM, then SIGKILL
// after a few seconds. Its exit is consumed here.
func (l *launcher) discard(g *generation) {
	g.discarded = true
	if g.reaped {
		l.sweep(g)
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
				l.sweep(g)
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

// sweep stops what a discarded generation left running after its main
// process exited: a wrapper that exits on SIGTERM, or dies, leaves its
// workers, which hold the shared listeners and would take visitors for a
// generation that never served, until the unit stops. They get SIGTERM
// now, and SIGKILL after the stop timeout (the failsafe's last stage).
func (l *launcher) sweep(g *generation) {
	pids := l.members(g)
	if len(pids) == 0 {
		return
	}
	l.cfg.Logf("generation %d left %d processes running after its main process exited: SIGTERM", g.n, len(pids))
	signalAll(pids, syscall.SIGTERM)
	l.after(l.cfg.StopTimeout, failsafeEvent{g, stageKill})
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
