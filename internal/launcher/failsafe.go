package launcher

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sitectl/sitectl/internal/cgroup"
	"github.com/sitectl/sitectl/internal/procfs"
	"github.com/sitectl/sitectl/internal/sdnotify"
)

// The failsafe of a draining generation (handoff = "overlap" has no
// systemd stop for an old generation): once it has been told to drain, it
// has DrainTimeout to exit; then every process of it gets SIGTERM, and
// whatever is left StopTimeout later gets SIGKILL, as systemd's own stop
// of a restarting site would do. The status line and the journal say so.
//
// "Every process of a generation" is found among the processes of the
// launcher's own cgroup, which is the unit's: every process of the site,
// and nothing else. A process belongs to generation N when it is
//
//   - in N's session: each generation starts in a session of its own
//     (setsid), which its workers inherit and keep;
//   - below N's main process in the process tree, while that one lives (a
//     child that made a session of its own);
//   - marked with N in the environment it started with: SITE_GENERATION=N
//     together with the launcher's INVOCATION_ID. That finds a daemon (fork,
//     setsid, fork, the parent exits), which left both the session and the
//     tree and was reparented.
//
// A process whose environment names another generation is never taken.
// Not chosen: a sub-cgroup per generation would be exact, but needs
// Delegate=yes and a writable cgroup tree, which ProtectControlGroups=yes
// forbids and which would cost the unit its systemd-analyze security
// score; a child subreaper would catch orphans as children of the
// launcher, without saying which generation they came from.

// Stages of the failsafe of one generation.
type failsafeStage int

const (
	stageTerm failsafeStage = iota // the drain timeout passed
	stageKill                      // the stop timeout passed too
)

type failsafeEvent struct {
	g     *generation
	stage failsafeStage
}

// arm starts the failsafe of a generation told to drain, or to stop (see
// stopAll); once.
func (l *launcher) arm(g *generation) {
	if l.cfg.DrainTimeout > 0 && !g.armed {
		g.armed = true
		l.after(l.cfg.DrainTimeout, failsafeEvent{g, stageTerm})
	}
}

// after delivers a failsafe event to the launcher's loop.
func (l *launcher) after(d time.Duration, ev failsafeEvent) {
	time.AfterFunc(d, func() {
		select {
		case l.failsafes <- ev:
		case <-l.done:
		}
	})
}

// failsafe takes a failsafe event: SIGTERM to every process of the
// generation when the drain timeout passed, SIGKILL to what is left when
// the stop timeout passed too.
func (l *launcher) failsafe(ev failsafeEvent) {
	g := ev.g
	pids := l.members(g)
	if ev.stage == stageTerm {
		if len(pids) == 0 {
			return // drained in time
		}
		g.forced = true
		l.cfg.Logf("generation %d did not exit within the drain timeout (%s): SIGTERM to its %d processes", g.n, l.cfg.DrainTimeout, len(pids))
		signalAll(pids, syscall.SIGTERM)
		l.after(l.cfg.StopTimeout, failsafeEvent{g, stageKill})
		return
	}
	if len(pids) > 0 {
		l.cfg.Logf("generation %d still runs %d processes after the stop timeout (%s): SIGKILL", g.n, len(pids), l.cfg.StopTimeout)
		signalAll(pids, syscall.SIGKILL)
	}
	l.killed(g)
}

// killed reports, once, that the failsafe ended a generation.
func (l *launcher) killed(g *generation) {
	if g.killReported {
		return
	}
	g.killReported = true
	l.notice = fmt.Sprintf("generation %d was killed after the drain timeout", g.n)
	if g.discarded {
		l.notice = fmt.Sprintf("generation %d, which did not take over, was killed after the stop timeout", g.n)
	}
	l.cfg.Logf("%s", l.notice)
	if l.current != nil {
		l.cfg.Notify(sdnotify.Status(l.status()))
	}
}

func signalAll(pids []int, sig syscall.Signal) {
	for _, pid := range pids {
		syscall.Kill(pid, sig)
	}
}

// The cgroup of a process and the processes of a cgroup; variables for
// tests.
var (
	cgroupOf    = cgroup.Of
	cgroupProcs = cgroup.Procs
)

// members lists the processes of generation g (see above).
func (l *launcher) members(g *generation) []int {
	id := generationID{n: g.n, root: g.pid, rootAlive: !g.hasExited(), invocation: l.cfg.Invocation}
	var procs []procInfo
	for _, pid := range l.universe() {
		if pid == os.Getpid() {
			continue
		}
		if p, ok := readProc(procRoot, pid); ok {
			procs = append(procs, p)
		}
	}
	return id.members(procs)
}

// universe is every process of the launcher's cgroup; all processes it
// can see when the cgroup cannot be read, or is the root one. Under
// systemd the launcher's cgroup is its service's; the root cgroup (a
// launcher not started by systemd, as in tests in a container) holds every
// process of the host in every cgroup of it, and walking them all (10,000
// beside 10,000 sites) took seconds on a busy host, while the failsafe's
// SIGKILL waited: listing /proc says the same at a fraction of the cost.
func (l *launcher) universe() []int {
	if group, err := cgroupOf(0); err == nil && group != "/" {
		if pids, err := cgroupProcs(group); err == nil {
			return pids
		}
	}
	entries, _ := os.ReadDir(procRoot)
	var pids []int
	for _, e := range entries {
		if pid, err := strconv.Atoi(e.Name()); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

// procInfo is what membership needs to know of a process.
type procInfo struct {
	pid, ppid, sid int
	generation     string // SITE_GENERATION in its environment, if readable
	invocation     string // INVOCATION_ID likewise
}

// readProc reads a process's parent, session and markers from /proc. An
// environment larger than procfs.MaxEnviron is one that cannot be read: no
// markers, and the session and the tree still find the process.
func readProc(proc string, pid int) (procInfo, bool) {
	dir := filepath.Join(proc, strconv.Itoa(pid))
	stat, err := procfs.ReadBounded(filepath.Join(dir, "stat"), procfs.MaxStat)
	if err != nil {
		return procInfo{}, false
	}
	i := bytes.LastIndexByte(stat, ')')
	f := strings.Fields(string(stat[i+1:])) // state ppid pgrp session ...
	if i < 0 || len(f) < 4 {
		return procInfo{}, false
	}
	p := procInfo{pid: pid}
	p.ppid, _ = strconv.Atoi(f[1])
	p.sid, _ = strconv.Atoi(f[3])
	env, _ := procfs.ReadMemoryBounded(filepath.Join(dir, "environ"), procfs.MaxEnviron)
	for _, kv := range bytes.Split(env, []byte{0}) {
		if v, ok := bytes.CutPrefix(kv, []byte("SITE_GENERATION=")); ok {
			p.generation = string(v)
		} else if v, ok := bytes.CutPrefix(kv, []byte("INVOCATION_ID=")); ok {
			p.invocation = string(v)
		}
	}
	return p, true
}

// generationID is what tells a generation's processes from the others.
type generationID struct {
	n          int
	root       int  // its main process
	rootAlive  bool // and whether that is still it (a pid is reused once reaped)
	invocation string
}

// members picks the processes of the generation from procs.
func (id generationID) members(procs []procInfo) []int {
	parent := map[int]int{}
	for _, p := range procs {
		parent[p.pid] = p.ppid
	}
	var out []int
	for _, p := range procs {
		if p.generation != "" && p.generation != strconv.Itoa(id.n) {
			continue // another generation's, whatever else it shares
		}
		if p.sid == id.root || id.rootAlive && descends(parent, p.pid, id.root) || id.marked(p) {
			out = append(out, p.pid)
		}
	}
	return out
}

func (id generationID) marked(p procInfo) bool {
	return id.invocation != "" && p.invocation == id.invocation && p.generation == strconv.Itoa(id.n)
}

// descends tells whether pid is root or below it.
func descends(parent map[int]int, pid, root int) bool {
	for seen := 0; pid > 1 && seen < len(parent)+1; seen++ {
		if pid == root {
			return true
		}
		pid = parent[pid]
	}
	return false
}
