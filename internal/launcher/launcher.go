// Package launcher is the overlapped handoff of a site: the process that a
// site with handoff = "overlap" runs as its service's main process. It holds
// the listening sockets systemd passed, runs the app as a child (a
// generation), and on reload starts a new generation on the same sockets,
// waits until that one is ready, and only then tells the old one to drain.
// Visitors never wait for a cold start, and systemd keeps one main PID it
// trusts (the launcher) with every process in the unit's cgroup.
//
// One goroutine owns all state; the notify socket, the control socket,
// signals and child exits reach it as events, and each step of a handover
// is a method of its own (see startup). Generations are started through
// Config.Start, so the whole state machine runs against test processes.
//
// A generation is started through `sitectl launch` with
// SITECTL_SET_LISTEN_PID=1, which sets LISTEN_PID to its own pid and then
// execs the app, so the pid the app sees is its own (systemd's LISTEN_PID
// trap; see setListenPID). It is ready when it sends READY=1 to the
// launcher's notify socket (sites with readiness = "notify"; the kernel's
// credentials prove the sender), and then, when the site has a probe, when
// an HTTP GET through a private socket that only this generation serves
// returns the probe status: gunicorn says READY=1 before its workers have
// loaded the app.
package launcher

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/sitectl/sitectl/internal/paths"
	"github.com/sitectl/sitectl/internal/sdnotify"
	"github.com/sitectl/sitectl/internal/site"
)

// Config of a launcher. Zero-valued functions do nothing, and zero values
// mean defaults.
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
	// Mode is the mode environment the first generation runs in (the mode
	// file's variables, which systemd put in the launcher's environment).
	Mode []site.EnvVar
	// Prepare makes the spec of the next generation in the mode whose
	// environment is mode.
	Prepare func(mode []site.EnvVar) (Spec, error)
	// Start starts a generation; default startProcess (an exec).
	Start func(Command) (Process, error)
	// Signals are the stops (SIGTERM, SIGINT) and reloads (SIGHUP) the
	// launcher gets; default: those sent to this process.
	Signals <-chan os.Signal
	// Notify sends a state to systemd (sd_notify).
	Notify func(state string)
	Logf   func(format string, args ...any)
	// Settle is how long a generation without readiness or probe must keep
	// running to count as ready; default 1s.
	Settle time.Duration
	// Quiet is when a ready generation has finished starting; Max < 0
	// hands over as soon as it is ready.
	Quiet Quiet
	// DrainTimeout is how long a generation told to drain may take to
	// exit; then the failsafe stops every process of it (see failsafe.go).
	// Zero: no failsafe.
	DrainTimeout time.Duration
	// StopTimeout is how long the failsafe's SIGTERM may take before
	// SIGKILL; default 5s.
	StopTimeout time.Duration
	// Invocation is the unit's INVOCATION_ID, which every generation
	// inherits: with SITE_GENERATION, it finds a generation's daemons.
	Invocation string
	// KeepPrevious is how long the generation a handover replaced stays
	// warm for a rollback (see warm.go); zero: it drains at once.
	KeepPrevious time.Duration
	// StartIdle starts a reload's generation at idle priority when the
	// reload's caller can promote it (see priority.go).
	StartIdle bool
	// PromoteAfter bounds an idle start: a generation not ready after
	// this long is promoted anyway; default 5s.
	PromoteAfter time.Duration
	// standby sets up the warm standby; default newStandby. A seam for
	// tests.
	standby func(ctx context.Context, listeners []*os.File) (*standby, error)
}

func (cfg Config) withDefaults() Config {
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	if cfg.Notify == nil {
		cfg.Notify = func(string) {}
	}
	if cfg.Settle == 0 {
		cfg.Settle = time.Second
	}
	if cfg.Start == nil {
		cfg.Start = startProcess
	}
	if cfg.PromoteAfter <= 0 {
		cfg.PromoteAfter = defaultPromoteAfter
	}
	if cfg.StopTimeout <= 0 {
		cfg.StopTimeout = 5 * time.Second
	}
	return cfg
}

type launcher struct {
	cfg        Config
	notifyPath string
	notes      chan sdnotify.Message
	exits      chan *generation
	requests   chan request
	abandons   chan abandonRequest
	sigs       <-chan os.Signal
	failsafes  chan failsafeEvent
	done       chan struct{} // closed when Run returns
	current    *generation
	old        map[*generation]bool // told to drain, not yet exited
	next       int
	notice     string // what the failsafe did, until the next handover
	last       string // what ended the last generation that died, or the last reload
	pub        atomic.Pointer[Status]

	// The warm standby (warm.go); standby is nil without one.
	standby   *standby
	warm      *generation // the warm generation, if any
	warmSince time.Time
	warmUntil time.Time
	warmEnds  chan warmEnd // keep_previous of a warm generation ran out
	noWarm    string       // why no generation is warm
}

// notification is a message on the launcher's notify socket.
type notification = sdnotify.Message

// Why a reload ends without a new generation serving (with errors.Is).
var (
	// ErrStopping: the launcher was told to stop meanwhile. Reload
	// returns it too.
	ErrStopping = errors.New("the site is stopping")
	// errServingDied: the serving generation died while its successor
	// started, and the successor did not come up either.
	errServingDied = errors.New("the serving generation died meanwhile")
)

// Run runs the launcher until it is told to stop (SIGTERM) or the current
// generation dies. It returns nil after a requested stop.
func Run(ctx context.Context, cfg Config) error {
	l, closeAll, err := open(cfg.withDefaults())
	if err != nil {
		return err
	}
	defer closeAll()
	l.setupStandby(ctx)
	first, err := l.startReady(ctx, l.cfg.Mode, nil)
	if err != nil {
		if errors.Is(err, ErrStopping) {
			return nil
		}
		l.cfg.Notify(sdnotify.Status("the first generation did not come up: " + err.Error()))
		return err
	}
	l.current = first
	l.publish()
	l.cfg.Notify("READY=1\n" + sdnotify.Status(l.status()))
	l.cfg.Logf("generation %d (pid %d) serves in mode %s", first.n, first.pid, first.mode)
	return l.serve(ctx)
}

// open sets up a launcher: its signals, its notify socket and its control
// socket. closeAll undoes it.
func open(cfg Config) (*launcher, func(), error) {
	l := &launcher{
		cfg:       cfg,
		notes:     make(chan sdnotify.Message, 16),
		exits:     make(chan *generation, 16),
		requests:  make(chan request),
		abandons:  make(chan abandonRequest),
		sigs:      cfg.Signals,
		failsafes: make(chan failsafeEvent, 16),
		done:      make(chan struct{}),
		old:       map[*generation]bool{},
		warmEnds:  make(chan warmEnd),
	}
	var undo []func()
	closeAll := func() {
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i]()
		}
	}
	if l.sigs == nil {
		sigs := make(chan os.Signal, 4)
		signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
		undo = append(undo, func() { signal.Stop(sigs) })
		l.sigs = sigs
	}
	ns, err := sdnotify.Listen(filepath.Join(cfg.RuntimeDir, paths.NotifySocket))
	if err != nil {
		closeAll()
		return nil, nil, err
	}
	undo = append(undo, ns.Close)
	go ns.Read(l.notes)
	l.notifyPath = ns.Path

	controlPath := filepath.Join(cfg.RuntimeDir, paths.ControlSocket)
	os.Remove(controlPath)
	control, err := net.Listen("unix", controlPath)
	if err != nil {
		closeAll()
		return nil, nil, fmt.Errorf("cannot open the control socket: %w", err)
	}
	undo = append(undo, func() { control.Close() }, func() { close(l.done) })
	go l.serveControl(control, l.done)
	return l, closeAll, nil
}

// serve is the launcher's life once a generation serves: reloads asked on
// the control socket or by SIGHUP, a stop, or the death of the serving
// generation.
func (l *launcher) serve(ctx context.Context) error {
	for {
		select {
		case req := <-l.requests:
			if ended, err := l.take(ctx, req); ended {
				return err
			}
		case a := <-l.abandons:
			l.refuseAbandon(a) // no reload under way
		case s := <-l.sigs:
			if s != syscall.SIGHUP {
				l.stopAll()
				return nil
			}
			h, err := l.reload(ctx, nil, nil)
			l.cfg.Logf("SIGHUP: %s", reply(reloadResult{h, err}))
			if l.current == nil {
				return l.ended(err)
			}
		case g := <-l.exits:
			if err := l.exited(g); err != nil {
				return err
			}
		case ev := <-l.failsafes:
			l.failsafe(ev)
		case end := <-l.warmEnds:
			l.warmEnded(ctx, end)
		case n := <-l.notes:
			l.note(n) // keep-alive reports; the rest is late or stray: the state is ours
		}
	}
}

// take takes a reload or a rollback asked on the control socket, unless
// its asker hung up meanwhile (see answer). ended: the launcher ends, with
// err, since no generation serves.
func (l *launcher) take(ctx context.Context, req request) (ended bool, err error) {
	switch {
	case req.gone != nil && req.gone():
		l.cfg.Logf("a %s asked on the control socket was withdrawn: its asker hung up while it waited", req.verb)
		req.reply <- reloadResult{err: errWithdrawn}
		return false, nil
	case req.verb == verbRollback:
		l.rollback(ctx, req.warm, req.reply)
		return false, nil
	}
	h, err := l.reload(ctx, req.mode, req.promote)
	req.reply <- reloadResult{h, err}
	if l.current == nil {
		return true, l.ended(err)
	}
	return false, nil
}

// exited takes the exit of a generation that nobody was waiting for. The
// serving generation dying without being asked ends the launcher, so that
// systemd restarts the unit (Restart=on-failure).
func (l *launcher) exited(g *generation) error {
	if g != l.current {
		l.reaped(g)
		return nil
	}
	l.cfg.Notify(sdnotify.Status("generation " + strconv.Itoa(g.n) + " exited: " + describeExit(g.err)))
	l.current = nil
	l.last = fmt.Sprintf("generation %d exited without being asked: %s", g.n, describeExit(g.err))
	l.publish()
	l.stopAll()
	return fmt.Errorf("generation %d exited without being asked: %s", g.n, describeExit(g.err))
}

// ended is Run's result when a reload left no generation serving: a stop
// that came in meanwhile, or the serving generation died and its successor
// did not come up.
func (l *launcher) ended(err error) error {
	if errors.Is(err, ErrStopping) {
		return nil
	}
	l.stopAll()
	return fmt.Errorf("no generation serves: %w", err)
}

// handover is a reload that succeeded: the generation that now serves.
type handover struct {
	n    int
	mode string
	// rollback: a flip back to the warm generation, which took flip.
	rollback bool
	flip     time.Duration
	// abandoned: no handover; generation abandoned was stopped before it
	// took over, and why says how far it had come (see abandon.go).
	abandoned int
	why       string
}

// reload starts a new generation in the mode whose environment is mode (nil:
// the serving generation's) and hands over to it, or leaves the old one
// serving and returns why. promote (nil: none) is how the reload's caller
// promotes a generation started at idle priority.
func (l *launcher) reload(ctx context.Context, mode []site.EnvVar, promote promoter) (handover, error) {
	h, err := l.startNext(ctx, mode, promote)
	if err != nil {
		l.last = "the last reload failed: " + oneLine(err.Error())
	}
	l.publish()
	return h, err
}

// startNext is reload's work.
func (l *launcher) startNext(ctx context.Context, mode []site.EnvVar, promote promoter) (handover, error) {
	// A clock that cannot be read leaves RELOADING=1 out; systemd 252
	// (Type=notify) does not need it.
	reloading, _ := sdnotify.Reloading()
	l.cfg.Notify(reloading + "\n" + sdnotify.Status(fmt.Sprintf("starting generation %d", l.next+1)))
	if mode == nil && l.current != nil {
		mode = l.current.modeEnv
	}
	l.retireWarm(ctx, "a reload needs its side")
	g, err := l.startReady(ctx, mode, promote)
	switch {
	case errors.Is(err, ErrStopping):
		l.stopAll()
		l.current = nil
		return handover{}, err
	case err != nil && l.current == nil:
		return handover{}, fmt.Errorf("%w; and %w", err, errServingDied)
	case err != nil:
		l.cfg.Logf("reload failed, generation %d keeps serving: %v", l.current.n, err)
		l.cfg.Notify("READY=1\n" + sdnotify.Status(l.status()+"; last reload failed: "+err.Error()))
		return handover{}, err
	}
	old := l.current
	if err := l.takeOver(ctx, old, g); err != nil {
		// old still serves (a failed flip): systemd, told RELOADING=1,
		// is told the reload ended.
		if l.current != nil {
			l.cfg.Notify("READY=1\n" + sdnotify.Status(l.status()+"; last reload failed: "+err.Error()))
		}
		return handover{}, err
	}
	l.cfg.Notify("READY=1\n" + sdnotify.Status(l.status()))
	return handover{n: g.n, mode: g.mode}, nil
}

// takeOver makes g the serving generation, and old (if any) a warm or a
// draining one.
func (l *launcher) takeOver(ctx context.Context, old, g *generation) error {
	if l.standby != nil {
		if err := l.handOver(ctx, old, g); err != nil {
			l.cfg.Logf("reload failed, generation %d was discarded: %v", g.n, err)
			return err
		}
	}
	l.current, l.notice, l.last = g, "", ""
	if old != nil && l.standby == nil {
		l.drain(old)
	}
	return nil
}

// drain tells the generation that no longer serves to finish: at the
// lowest priority, with its workers parked for the stop (see park.go).
func (l *launcher) drain(old *generation) {
	l.old[old] = true
	nice := "nice 0"
	if err := setTreePriority(old.pid, drainPriority); err == nil {
		nice = fmt.Sprintf("nice %d", drainPriority)
	}
	// Its autogroup too, or the nice value counts only inside its own
	// session (autogroup.go). The kernel may make an unprivileged change
	// wait up to 100 ms: not on the launcher's loop.
	go func() {
		if err := drainAutogroup(procRoot, old.pid); err != nil {
			l.cfg.Logf("generation %d drains in an autogroup at nice 0: %v", old.n, err)
		}
	}()
	parked := drainParked(procRoot, old.pid, defaultPark)
	l.arm(old)
	g := l.current
	l.cfg.Logf("generation %d (pid %d) serves in mode %s; generation %d (pid %d) drains at %s (%d workers parked for the stop)", g.n, g.pid, g.mode, old.n, old.pid, nice, parked)
}

// status is the service's status line (STATUS=).
func (l *launcher) status() string {
	g := l.current
	s := fmt.Sprintf("mode %s, generation %d", g.mode, g.n)
	if g.release != "" {
		s += ", release " + g.release
	}
	if n := len(l.old); n > 0 {
		s += fmt.Sprintf(", %d draining", n)
	}
	if w := l.warm; w != nil {
		s += fmt.Sprintf("; warm: generation %d until %s", w.n, l.warmUntil.Format(time.TimeOnly))
	}
	if l.notice != "" {
		s += "; " + l.notice
	}
	return s
}

func describeExit(err error) string {
	if err == nil {
		return "status 0"
	}
	return err.Error()
}

func oneLine(s string) string { return strings.ReplaceAll(s, "\n", " ") }
