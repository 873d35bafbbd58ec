// Package launcher is the overlapped handoff of a site: the process that a
// site with handoff = "overlap" runs as its service's main process. It holds
// the listening sockets systemd passed, runs the app as a child (a
// generation), and on reload starts a new generation on the same sockets,
// waits until that one is ready, and only then tells the old one to drain.
// Visitors never wait for a cold start, and systemd keeps one main PID it
// trusts (the launcher) with every process in the unit's cgroup.
//
// One goroutine owns all state; the notify socket, the control socket,
// signals and child exits reach it as events.
//
// A generation is started through `sitectl launch` with
// SITECTL_SET_LISTEN_PID=1, which sets LISTEN_PID to its own pid and then
// execs the app, so the pid the app sees is its own (systemd's LISTEN_PID
// trap). It is ready when it sends READY=1 to the launcher's notify socket
// (sites with readiness = "notify"; the kernel's credentials prove the
// sender), and then, when the site has a probe, when an HTTP GET through a
// private socket that only this generation serves returns the probe status:
// gunicorn says READY=1 before its workers have loaded the app.
package launcher

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sitectl/sitectl/internal/paths"
	"github.com/sitectl/sitectl/internal/probe"
	"github.com/sitectl/sitectl/internal/sdnotify"
	"github.com/sitectl/sitectl/internal/site"
)

// Config of a launcher. Zero-valued functions do nothing.
type Config struct {
	Site      string
	Argv      []string   // the app's command line
	Listeners []*os.File // the sockets systemd passed, in order
	Names     []string   // their FileDescriptorNames
	// RuntimeDir holds the notify, control and probe sockets.
	RuntimeDir string
	// Shim is the command line that starts a generation: sitectl and its
	// global flags; "launch SITE -- ARGV" is appended.
	Shim []string
	// Prepare reads the spec of the next generation.
	Prepare func() (Spec, error)
	// Notify sends a state to systemd (sd_notify).
	Notify func(state string)
	Logf   func(format string, args ...any)
	// Settle is how long a generation without readiness or probe must keep
	// running to count as ready; default 1s.
	Settle time.Duration
	// Quiet is when a ready generation has finished starting; Max < 0
	// hands over as soon as it is ready.
	Quiet Quiet
}

type generation struct {
	n       int
	cmd     *exec.Cmd
	mode    string
	release string
	err     error // set when exited
	reaped  bool  // its exit event was taken from the exits channel
}

type launcher struct {
	cfg      Config
	notes    chan sdnotify.Message
	exits    chan *generation
	requests chan request
	sigs     chan os.Signal
	current  *generation
	old      map[*generation]bool // told to drain, not yet exited
	next     int
}

// Why a reload ends without a new generation serving (with errors.Is).
var (
	// errStopping: the launcher was told to stop meanwhile.
	errStopping = errors.New("the site is stopping")
	// errServingDied: the serving generation died while its successor
	// started, and the successor did not come up either.
	errServingDied = errors.New("the serving generation died meanwhile")
)

// Run runs the launcher until it is told to stop (SIGTERM) or the current
// generation dies. It returns nil after a requested stop.
func Run(ctx context.Context, cfg Config) error {
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	if cfg.Notify == nil {
		cfg.Notify = func(string) {}
	}
	if cfg.Settle == 0 {
		cfg.Settle = time.Second
	}
	l := &launcher{
		cfg:      cfg,
		notes:    make(chan sdnotify.Message, 16),
		exits:    make(chan *generation, 16),
		requests: make(chan request),
		sigs:     make(chan os.Signal, 4),
		old:      map[*generation]bool{},
	}
	signal.Notify(l.sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer signal.Stop(l.sigs)

	ns, err := sdnotify.Listen(filepath.Join(cfg.RuntimeDir, paths.NotifySocket))
	if err != nil {
		return err
	}
	defer ns.Close()
	go ns.Read(l.notes)

	controlPath := filepath.Join(cfg.RuntimeDir, paths.ControlSocket)
	os.Remove(controlPath)
	control, err := net.Listen("unix", controlPath)
	if err != nil {
		return fmt.Errorf("cannot open the control socket: %w", err)
	}
	defer control.Close()
	done := make(chan struct{})
	defer close(done)
	go l.serveControl(control, done)

	first, err := l.startReady(ctx, ns.Path)
	if err != nil {
		if errors.Is(err, errStopping) {
			return nil
		}
		cfg.Notify("STATUS=the first generation did not come up: " + oneLine(err.Error()))
		return err
	}
	l.current = first
	cfg.Notify("READY=1\nSTATUS=" + l.status())
	cfg.Logf("generation %d (pid %d) serves in mode %s", first.n, first.cmd.Process.Pid, first.mode)

	for {
		select {
		case req := <-l.requests:
			h, err := l.reload(ctx, ns.Path)
			req.reply <- reloadResult{h, err}
			if l.current == nil {
				return l.ended(err)
			}
		case s := <-l.sigs:
			if s == syscall.SIGHUP {
				h, err := l.reload(ctx, ns.Path)
				cfg.Logf("SIGHUP: %s", reply(reloadResult{h, err}))
				if l.current == nil {
					return l.ended(err)
				}
				continue
			}
			l.stopAll(s)
			return nil
		case g := <-l.exits:
			if g != l.current {
				l.reaped(g)
				continue
			}
			// The serving generation died without being asked: let
			// systemd restart the unit (Restart=on-failure).
			cfg.Notify("STATUS=generation " + strconv.Itoa(g.n) + " exited: " + describeExit(g.err))
			l.current = nil
			l.stopAll(syscall.SIGTERM)
			return fmt.Errorf("generation %d exited without being asked: %s", g.n, describeExit(g.err))
		case <-l.notes: // late or stray notifications: the state is ours
		}
	}
}

// ended is Run's result when a reload left no generation serving: a stop
// that came in meanwhile, or the serving generation died and its successor
// did not come up.
func (l *launcher) ended(err error) error {
	if errors.Is(err, errStopping) {
		return nil
	}
	l.stopAll(syscall.SIGTERM)
	return fmt.Errorf("no generation serves: %w", err)
}

// handover is a reload that succeeded: the generation that now serves.
type handover struct {
	n    int
	mode string
}

// reload starts a new generation and hands over to it, or leaves the old one
// serving and returns why.
func (l *launcher) reload(ctx context.Context, notifyPath string) (handover, error) {
	// A clock that cannot be read leaves RELOADING=1 out; systemd 252
	// (Type=notify) does not need it.
	reloading, _ := sdnotify.Reloading()
	l.cfg.Notify(fmt.Sprintf("%s\nSTATUS=starting generation %d", reloading, l.next+1))
	g, err := l.startReady(ctx, notifyPath)
	if errors.Is(err, errStopping) {
		l.stopAll(syscall.SIGTERM)
		l.current = nil
		return handover{}, err
	}
	if err != nil {
		if l.current == nil {
			return handover{}, fmt.Errorf("%w; and %w", err, errServingDied)
		}
		l.cfg.Logf("reload failed, generation %d keeps serving: %v", l.current.n, err)
		l.cfg.Notify("READY=1\nSTATUS=" + l.status() + "; last reload failed: " + oneLine(err.Error()))
		return handover{}, err
	}
	old := l.current
	l.current = g
	if old != nil {
		l.old[old] = true
		nice := "nice 0"
		if err := setTreePriority(old.cmd.Process.Pid, drainPriority); err == nil {
			nice = fmt.Sprintf("nice %d", drainPriority)
		}
		parked := drainParked(procRoot, old.cmd.Process.Pid, defaultPark)
		l.cfg.Logf("generation %d (pid %d) serves in mode %s; generation %d (pid %d) drains at %s (%d workers parked for the stop)", g.n, g.cmd.Process.Pid, g.mode, old.n, old.cmd.Process.Pid, nice, parked)
	}
	l.cfg.Notify("READY=1\nSTATUS=" + l.status())
	return handover{n: g.n, mode: g.mode}, nil
}

func (l *launcher) status() string {
	g := l.current
	s := fmt.Sprintf("mode %s, generation %d", g.mode, g.n)
	if g.release != "" {
		s += ", release " + g.release
	}
	if n := len(l.old); n > 0 {
		s += fmt.Sprintf(", %d draining", n)
	}
	return s
}

// startReady starts the next generation and waits until it is ready; a
// generation that does not get there is stopped.
func (l *launcher) startReady(ctx context.Context, notifyPath string) (*generation, error) {
	spec, err := l.cfg.Prepare()
	if err != nil {
		return nil, fmt.Errorf("cannot prepare generation %d: %w", l.next+1, err)
	}
	l.next++
	g := &generation{n: l.next, mode: spec.Mode, release: spec.Dir}

	var probe net.Listener
	files, names := l.cfg.Listeners, l.cfg.Names
	if spec.Probe != nil {
		path := filepath.Join(l.cfg.RuntimeDir, paths.ProbeSocket(g.n))
		os.Remove(path)
		probe, err = net.Listen("unix", path)
		if err != nil {
			return nil, fmt.Errorf("cannot open the probe socket: %w", err)
		}
		defer func() { probe.Close(); os.Remove(path) }()
		f, err := probe.(*net.UnixListener).File()
		if err != nil {
			return nil, err
		}
		defer f.Close()
		files = append(append([]*os.File{}, files...), f)
		names = append(append([]string{}, names...), "sitectl-probe")
	}

	argv := append(append(append([]string{}, l.cfg.Shim...), "launch", l.cfg.Site, "--"), l.cfg.Argv...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(append([]string{}, spec.Env...),
		envSetListenPID+"=1",
		"LISTEN_FDS="+strconv.Itoa(len(files)),
		"LISTEN_FDNAMES="+strings.Join(names, ":"),
		"SITE_GENERATION="+strconv.Itoa(g.n))
	if spec.Readiness == site.ReadinessNotify {
		cmd.Env = append(cmd.Env, "NOTIFY_SOCKET="+notifyPath)
	}
	cmd.ExtraFiles = files
	cmd.Dir = spec.Dir
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("cannot start generation %d: %w", g.n, err)
	}
	g.cmd = cmd
	go func() {
		g.err = cmd.Wait()
		l.exits <- g
	}()
	where := ""
	if spec.Dir != "" {
		where = " in " + spec.Dir
	}
	l.cfg.Logf("started generation %d (pid %d) in mode %s%s", g.n, cmd.Process.Pid, g.mode, where)

	if err := l.waitReady(ctx, g, spec, probe); err != nil {
		if !errors.Is(err, errStopping) {
			l.discard(g)
		}
		return nil, err
	}
	return g, nil
}

// waitReady waits for READY=1 from the generation (notify sites), then for
// its probe, while watching for its death, the deadline and a stop.
func (l *launcher) waitReady(ctx context.Context, g *generation, spec Spec, probeLn net.Listener) error {
	end := time.Now().Add(spec.StartTimeout)
	deadline := time.NewTimer(spec.StartTimeout)
	defer deadline.Stop()
	pctx, cancelProbe := context.WithDeadline(ctx, end)
	defer cancelProbe()
	pid := g.cmd.Process.Pid
	notified := spec.Readiness != site.ReadinessNotify
	var probed chan error
	var settled <-chan time.Time
	startProbe := func() {
		if spec.Probe == nil {
			if spec.Readiness != site.ReadinessNotify {
				settled = time.After(l.cfg.Settle)
			}
			return
		}
		probed = make(chan error, 1)
		target := probe.Target{Host: "generation", Dial: func(ctx context.Context) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", probeLn.Addr().String())
		}}
		go func() { probed <- probe.Get(pctx, target, spec.Probe) }()
	}
	// Once ready, the generation gets the listeners when it is quiet too
	// (see Quiet), or when the wait for that ends.
	var quietTick <-chan time.Time
	var quietEnd <-chan time.Time
	var watch *quietWatch
	stopQuiet := func() {}
	defer func() { stopQuiet() }()
	ready := func() {
		probed, settled = nil, nil
		q := l.cfg.Quiet.withDefaults()
		watch = newQuietWatch(q, pid)
		watch.sample() // the baseline
		t := time.NewTicker(q.Interval)
		stopQuiet = t.Stop
		quietTick = t.C
		quietEnd = time.After(q.Max)
	}
	if notified {
		startProbe()
	}
	for {
		if notified && probed == nil && settled == nil && watch == nil {
			// The first generation, or one replacing a generation that
			// died, has nobody to take over from: it serves at once.
			if l.cfg.Quiet.Max < 0 || l.current == nil {
				return nil
			}
			ready()
		}
		select {
		case <-quietTick:
			if watch.sample() || l.current == nil {
				return nil
			}
		case <-quietEnd:
			l.cfg.Logf("generation %d is ready but still busy after %s; it takes over anyway", g.n, l.cfg.Quiet.withDefaults().Max)
			return nil
		case n := <-l.notes:
			if n.PID == pid && n.Fields["READY"] == "1" && !notified {
				notified = true
				startProbe()
			}
		case err := <-probed:
			if err != nil {
				return fmt.Errorf("generation %d failed its probe: %w", g.n, err)
			}
			probed = nil
		case <-settled:
			settled = nil
		case e := <-l.exits:
			e.reaped = true
			if e == g {
				return fmt.Errorf("generation %d exited before it was ready: %s", g.n, describeExit(g.err))
			}
			if e == l.current {
				// The serving generation died while a new one starts: the
				// new one takes over as soon as it is ready.
				l.cfg.Logf("generation %d exited while generation %d started: %s", e.n, g.n, describeExit(e.err))
				l.current = nil
				continue
			}
			l.reaped(e)
		case <-deadline.C:
			if watch != nil {
				return nil // ready; the wait for quiet ends with the deadline
			}
			if probed == nil {
				return fmt.Errorf("generation %d was not ready within %s", g.n, spec.StartTimeout)
			}
			// the probe's context ends at the same deadline; its error follows
		case s := <-l.sigs:
			if s == syscall.SIGHUP {
				continue // a reload is already under way
			}
			l.discard(g)
			return errStopping
		}
	}
}

// discard stops a generation that will not serve: SIGTERM, then SIGKILL
// after a few seconds. Its exit is consumed here.
func (l *launcher) discard(g *generation) {
	if g.reaped {
		return
	}
	g.cmd.Process.Signal(syscall.SIGTERM)
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
			}
			l.reaped(e)
		case <-kill.C:
			g.cmd.Process.Kill()
		}
	}
}

func (l *launcher) reaped(g *generation) {
	delete(l.old, g)
	l.cfg.Logf("generation %d drained and exited: %s", g.n, describeExit(g.err))
	if l.current != nil {
		l.cfg.Notify("STATUS=" + l.status())
	}
}

// stopAll passes the stop on to every generation and waits for them all;
// systemd's TimeoutStopSec bounds the wait.
func (l *launcher) stopAll(sig os.Signal) {
	running := map[*generation]bool{}
	for g := range l.old {
		running[g] = true
	}
	if l.current != nil {
		running[l.current] = true
	}
	l.cfg.Notify("STOPPING=1")
	for g := range running {
		drainParked(procRoot, g.cmd.Process.Pid, defaultPark)
	}
	l.cfg.Logf("stopping: %d generations drain", len(running))
	for len(running) > 0 {
		g := <-l.exits
		delete(running, g)
		l.cfg.Logf("generation %d exited: %s", g.n, describeExit(g.err))
	}
}

func describeExit(err error) string {
	if err == nil {
		return "status 0"
	}
	return err.Error()
}

func oneLine(s string) string { return strings.ReplaceAll(s, "\n", " ") }
