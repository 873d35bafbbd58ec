package launcher

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/sitectl/sitectl/internal/reuseport"
	"github.com/sitectl/sitectl/internal/sdnotify"
)

// The warm standby of a site with keep_previous (docs/warm-rollback.md):
// the socket unit holds each TCP address twice, in one reuseport group,
// and the launcher steers every new connection to one of the two sockets,
// the serving side. A generation gets its side's socket of each address.
// After a handover the previous generation keeps running on the other side
// for Config.KeepPrevious, getting no new connections (its keep-alive
// switched off when it announced the switch), so that a rollback is one
// flip of the steering, without a process start.

// standby is the launcher's warm-standby state.
type standby struct {
	steer steering
	// sides are the listener indexes of each side (Config.Listeners).
	sides [2]map[int]bool
	// serving is the side new connections go to.
	serving int
	// shared: the first generation got both sides (connections waited on
	// both when the launcher started), and is never kept warm.
	shared bool
}

// steering moves new connections between the sides: the kernel's reuseport
// groups (groupSteering), or a fake in tests.
type steering interface {
	// steer gives every new connection to side.
	steer(side int) error
	// quiesce returns once side, which new connections no longer reach,
	// has no connection waiting and none on the way; its generation must
	// keep accepting meanwhile.
	quiesce(ctx context.Context, side int) error
}

// pair is one TCP address of the site: its two sockets, in the group's
// order.
type pair struct {
	port    uint16
	members [2]*os.File
}

// groupSteering steers the site's reuseport groups.
type groupSteering struct{ pairs []pair }

func (s groupSteering) steer(side int) error {
	for _, p := range s.pairs {
		if err := reuseport.Steer(p.members[0], side); err != nil {
			return err
		}
	}
	return nil
}

func (s groupSteering) quiesce(ctx context.Context, side int) error {
	if err := reuseport.Settle(); err != nil {
		return err
	}
	for _, p := range s.pairs {
		hs, err := reuseport.PendingHandshakes(p.port)
		if err != nil {
			return err
		}
		if err := reuseport.Quiesce(ctx, p.members[side], p.port, hs); err != nil {
			return err
		}
	}
	return nil
}

// pairListeners finds the pairs among the listeners: every listener must
// be one of exactly two sockets of its address (a socket unit not
// restarted since keep_previous was added has one).
func pairListeners(listeners []*os.File) ([]pair, error) {
	conns := make([]syscall.Conn, len(listeners))
	for i, f := range listeners {
		conns[i] = f
	}
	groups, err := reuseport.Groups(conns)
	if err != nil {
		return nil, err
	}
	paired := map[int]bool{}
	var pairs []pair
	for _, g := range groups {
		if len(g.Members) != 2 {
			return nil, fmt.Errorf("%d sockets listen on %s, not 2", len(g.Members), g.Addr)
		}
		paired[g.Members[0]], paired[g.Members[1]] = true, true
		pairs = append(pairs, pair{port: g.Addr.Port(), members: [2]*os.File{listeners[g.Members[0]], listeners[g.Members[1]]}})
	}
	for i, f := range listeners {
		if !paired[i] {
			return nil, fmt.Errorf("listener %d (%s) has no second socket of its address with SO_REUSEPORT: restart the site's socket units after adding keep_previous", i, f.Name())
		}
	}
	return pairs, nil
}

// newStandby sets up the warm standby (plan step 3 of
// docs/warm-rollback.md): the side is the one with connections waiting if
// exactly one has (a previous launcher steered there), else 0, and
// reuseport.Verify checks each pair's order and leaves it steered there.
func newStandby(ctx context.Context, listeners []*os.File) (*standby, error) {
	pairs, err := pairListeners(listeners)
	if err != nil {
		return nil, err
	}
	st := &standby{steer: groupSteering{pairs}, sides: [2]map[int]bool{{}, {}}, serving: waitingSide(pairs)}
	for i, f := range listeners {
		for _, p := range pairs {
			for side, m := range p.members {
				if m == f {
					st.sides[side][i] = true
				}
			}
		}
	}
	for _, p := range pairs {
		err := reuseport.Verify(ctx, []syscall.Conn{p.members[0], p.members[1]}, st.serving)
		switch {
		case errors.Is(err, reuseport.ErrQueued):
			st.shared = true
		case err != nil:
			return nil, err
		}
	}
	return st, nil
}

// waitingSide is the side with connections waiting, if exactly one has.
func waitingSide(pairs []pair) int {
	for _, p := range pairs {
		w0, err0 := reuseport.Waiting(p.members[0])
		w1, err1 := reuseport.Waiting(p.members[1])
		if err0 == nil && err1 == nil && w0 != w1 {
			if w1 {
				return 1
			}
			return 0
		}
	}
	return 0
}

// setupStandby is the launcher's warm standby, or nil: without
// keep_previous, or when the listeners do not allow one (logged, and said
// by status).
func (l *launcher) setupStandby(ctx context.Context) {
	if l.cfg.KeepPrevious <= 0 {
		return
	}
	setup := l.cfg.standby
	if setup == nil {
		setup = newStandby
	}
	st, err := setup(ctx, l.cfg.Listeners)
	if err != nil {
		l.noWarm = "no warm standby: " + oneLine(err.Error())
		l.cfg.Logf("keep_previous is set, but %s", l.noWarm)
		return
	}
	l.standby, l.noWarm = st, "none kept yet"
	how := ""
	if st.shared {
		how = "; connections waited on both sides, so the first generation gets both and is not kept warm"
	}
	l.cfg.Logf("warm standby: new connections go to side %d%s", st.serving, how)
}

// sideFor is the side generation n starts on: -1 for both.
func (l *launcher) sideFor(n int) int {
	st := l.standby
	switch {
	case st == nil || n == 1 && st.shared:
		return -1
	case n == 1:
		return st.serving
	}
	return 1 - st.serving
}

// filesFor are the listeners and their names generation g gets: its side's
// socket of each address.
func (l *launcher) filesFor(g *generation) ([]*os.File, []string) {
	if l.standby == nil || g.side < 0 {
		return l.cfg.Listeners, l.cfg.Names
	}
	var files []*os.File
	var names []string
	for i, f := range l.cfg.Listeners {
		if !l.standby.sides[1-g.side][i] {
			files, names = append(files, f), append(names, l.cfg.Names[i])
		}
	}
	return files, names
}

// flipTo gives new connections to side.
func (l *launcher) flipTo(side int) (time.Duration, error) {
	start := time.Now()
	if err := l.standby.steer.steer(side); err != nil {
		return 0, fmt.Errorf("cannot steer new connections to side %d: %w", side, err)
	}
	l.standby.serving = side
	return time.Since(start), nil
}

// quiesce waits, bounded by the drain timeout, until side gets no more
// connections; a failure is logged, and the drain goes on.
func (l *launcher) quiesce(ctx context.Context, side int, g *generation) {
	bound := l.cfg.DrainTimeout
	if bound <= 0 {
		bound = 30 * time.Second
	}
	qctx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()
	start := time.Now()
	if err := l.standby.steer.quiesce(qctx, side); err != nil {
		l.cfg.Logf("generation %d drains although its socket may still get connections: %v", g.n, err)
		return
	}
	l.cfg.Logf("generation %d's side %d has no connection left to take (%s)", g.n, side, time.Since(start).Round(time.Millisecond))
}

// handOver is the end of a reload with a warm standby: new connections go
// to g's side, and the generation that served either stays warm or, when
// it held both sides, drains once its side is quiet. A failed flip leaves
// old serving, and g is discarded.
func (l *launcher) handOver(ctx context.Context, old, g *generation) error {
	if _, err := l.flipTo(g.side); err != nil {
		l.discard(g)
		return err
	}
	l.current = g
	if old == nil {
		return nil
	}
	if old.side < 0 {
		l.quiesce(ctx, 1-g.side, old)
		l.drain(old)
		return nil
	}
	l.keepWarm(old)
	return nil
}

// keepWarm makes g the warm generation: it keeps running, with keep-alive
// off, until the timer ends it.
func (l *launcher) keepWarm(g *generation) {
	l.warm = g
	l.switchKeepAlive(g, false)
	l.warmSince = time.Now()
	l.warmUntil = l.warmSince.Add(l.cfg.KeepPrevious)
	// The end of this warm spell, not of g's: a generation rolled back
	// to and replaced again is warm a second time, with a time of its own.
	end := warmEnd{g, l.warmUntil}
	time.AfterFunc(l.cfg.KeepPrevious, func() {
		select {
		case l.warmEnds <- end:
		case <-l.done:
		}
	})
	l.cfg.Logf("generation %d (pid %d) serves in mode %s; generation %d (pid %d) stays warm until %s (keep_previous %s)",
		l.current.n, l.current.pid, l.current.mode, g.n, g.pid, l.warmUntil.Format(time.TimeOnly), l.cfg.KeepPrevious)
}

// warmEnded takes the end of a warm spell: the warm generation drains,
// if the spell is still the one under way.
func (l *launcher) warmEnded(ctx context.Context, end warmEnd) {
	if end.g == l.warm && end.until.Equal(l.warmUntil) {
		l.retireWarm(ctx, "keep_previous "+l.cfg.KeepPrevious.String()+" ran out")
	}
}

// warmEnd is the end of one warm spell: keep_previous of generation g ran
// out at until.
type warmEnd struct {
	g     *generation
	until time.Time
}

// retireWarm drains the warm generation, if there is one: its side has
// had no new connection since it became warm, so the quiesce is short.
func (l *launcher) retireWarm(ctx context.Context, why string) {
	w := l.warm
	if w == nil {
		return
	}
	l.warm, l.noWarm = nil, fmt.Sprintf("generation %d was drained: %s", w.n, why)
	l.cfg.Logf("warm generation %d drains: %s", w.n, why)
	l.quiesce(ctx, w.side, w)
	l.drain(w)
	l.publish()
	if l.current != nil {
		l.cfg.Notify(sdnotify.Status(l.status()))
	}
}

// warmExited takes the exit of the warm generation: a rollback now goes
// cold.
func (l *launcher) warmExited(g *generation) {
	l.warm = nil
	l.noWarm = fmt.Sprintf("warm generation %d exited: %s", g.n, describeExit(g.err))
	l.cfg.Logf("%s; a rollback now starts the previous mode or release afresh", l.noWarm)
	l.publish()
	if l.current != nil {
		l.cfg.Notify(sdnotify.Status(l.status()))
	}
}

// errNoWarm is matched by a rollback's error when no generation is warm.
var errNoWarm = errors.New("no warm generation")

// rollback flips back to the warm generation, when it is the one whose
// pid is want (0: any): keep-alive on, new connections to its side, the
// answer (with the time of the flip); then the generation that served,
// keep-alive off, drains once its side is quiet.
func (l *launcher) rollback(ctx context.Context, want int, answer chan<- reloadResult) {
	w, newer := l.warm, l.current
	if want > 0 && w != nil && w.pid != want {
		// A reload since the asker looked made the generation it replaced
		// the warm one.
		answer <- reloadResult{err: fmt.Errorf("%w with pid %d: generation %d (pid %d) is warm now, since a reload replaced it; nothing was changed", errNoWarm, want, w.n, w.pid)}
		return
	}
	if w != nil && w.hasExited() {
		// Its exit waits in l.exits: it is warm no longer.
		answer <- reloadResult{err: fmt.Errorf("%w (warm generation %d exited: %s)", errNoWarm, w.n, describeExit(w.err))}
		return
	}
	if w == nil || newer == nil {
		answer <- reloadResult{err: fmt.Errorf("%w (%s)", errNoWarm, l.noWarm)}
		return
	}
	l.switchKeepAlive(w, true)
	took, err := l.flipTo(w.side)
	if err != nil {
		l.switchKeepAlive(w, false)
		answer <- reloadResult{err: err}
		return
	}
	l.current, l.warm, l.notice, l.last = w, nil, "", ""
	l.noWarm = fmt.Sprintf("generation %d was rolled back from", newer.n)
	l.publish()
	answer <- reloadResult{handover: handover{n: w.n, mode: w.mode, flip: took, rollback: true}}
	l.cfg.Logf("rollback: generation %d (pid %d) serves again in mode %s, flipped in %s", w.n, w.pid, w.mode, took)
	// Its kept-alive connections go to the one that serves again at
	// once, not when it drains after the quiesce.
	l.switchKeepAlive(newer, false)
	l.quiesce(ctx, newer.side, newer)
	l.drain(newer)
	l.cfg.Notify(sdnotify.Status(l.status()))
}

// keepAliveWait bounds the wait for a generation's report of a keep-alive
// switch.
const keepAliveWait = time.Second

// switchKeepAlive turns g's keep-alive on or off, when g announced the
// switch (activation.SwitchKeepAlives), and waits for its report: one
// signal at a time, since two pending ones would coalesce. Not fatal.
func (l *launcher) switchKeepAlive(g *generation, on bool) {
	if g.keepAliveSig == 0 || g.keepAlive == on {
		return
	}
	if err := g.proc.Signal(g.keepAliveSig); err != nil {
		l.cfg.Logf("cannot switch the keep-alive of generation %d: %v", g.n, err)
		return
	}
	end := time.After(keepAliveWait)
	for g.keepAlive != on {
		select {
		case n := <-l.notes:
			l.note(n)
		case <-end:
			l.cfg.Logf("generation %d did not report its keep-alive switch within %s", g.n, keepAliveWait)
			return
		}
	}
}

// note takes a notification of a running generation: its keep-alive
// switch and state.
func (l *launcher) note(n notification) {
	for _, g := range []*generation{l.current, l.warm} {
		if g != nil && g.pid == n.PID {
			g.noted(n.Fields)
		}
	}
}

// noted records the keep-alive fields of a notification of g.
func (g *generation) noted(fields map[string]string) {
	if v, ok := fields[keepAliveSignalField]; ok {
		var sig int
		if _, err := fmt.Sscan(v, &sig); err == nil && sig > 0 && sig < 65 {
			g.keepAliveSig = syscall.Signal(sig)
		}
	}
	if v, ok := fields[keepAliveField]; ok {
		g.keepAlive = strings.TrimSpace(v) == "1"
	}
}

// The fields of activation.SwitchKeepAlives (the launcher does not import
// the public package).
const (
	keepAliveSignalField = "X_SITECTL_KEEPALIVE_SIGNAL"
	keepAliveField       = "X_SITECTL_KEEPALIVE"
)
