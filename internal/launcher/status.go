package launcher

import "slices"

// publish makes the launcher's state what a status request answers (see
// Status). The launcher's goroutine, which owns the state, publishes after
// every change, so a request is answered at once, even while a reload or a
// stop keeps that goroutine busy.
func (l *launcher) publish() {
	st := &Status{Draining: []GenerationStatus{}, Last: l.last}
	if g := l.current; g != nil {
		st.Serving = g.status()
	}
	for g := range l.old {
		st.Draining = append(st.Draining, *g.status())
	}
	slices.SortFunc(st.Draining, func(a, b GenerationStatus) int { return a.Generation - b.Generation })
	if w := l.warm; w != nil {
		st.Warm = &WarmStatus{GenerationStatus: *w.status(), Since: l.warmSince, Until: l.warmUntil}
	} else if l.standby != nil || l.cfg.KeepPrevious > 0 {
		st.NoWarm = l.noWarm
	}
	l.pub.Store(st)
}

// snapshot is the state last published.
func (l *launcher) snapshot() Status {
	if st := l.pub.Load(); st != nil {
		return *st
	}
	return Status{Draining: []GenerationStatus{}}
}

func (g *generation) status() *GenerationStatus {
	return &GenerationStatus{Generation: g.n, PID: g.pid, Mode: g.mode, Release: g.release, Ready: g.readyAt}
}
