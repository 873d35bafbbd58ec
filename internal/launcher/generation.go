package launcher

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sitectl/sitectl/internal/paths"
	"github.com/sitectl/sitectl/internal/probe"
	"github.com/sitectl/sitectl/internal/site"
)

// Command is how a generation is started.
type Command struct {
	Argv  []string
	Env   []string
	Dir   string
	Files []*os.File // inherited as fds 3, 4, ...
	// Idle: an idle start (see priority.go). startProcess starts it at
	// idle priority (startBornIdle) and sets the autogroup its session
	// made to nice 19 at once, before the shim's own start (a Go
	// runtime's, 20-30 ms of CPU); the shim retries what it could not.
	Idle bool
}

// Process is a started generation as the launcher sees it: its main
// process.
type Process interface {
	Pid() int
	Signal(os.Signal) error
	// Wait waits for it to exit; the launcher calls it once.
	Wait() error
}

// startProcess is the default Config.Start: an exec, with the launcher's
// standard error as the generation's output (the journal).
func startProcess(c Command) (Process, error) {
	cmd := exec.Command(c.Argv[0], c.Argv[1:]...)
	cmd.Env, cmd.Dir, cmd.ExtraFiles = c.Env, c.Dir, c.Files
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	// A session of its own marks the generation's processes for the
	// failsafe (see failsafe.go).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if !c.Idle {
		if err := cmd.Start(); err != nil {
			return nil, err
		}
		return execProcess{cmd}, nil
	}
	if err := startBornIdle(cmd); err != nil {
		return nil, err
	}
	// Start returns once the shim runs, in the session (so the autogroup)
	// it made; what this cannot do, the shim retries.
	lowerStartAutogroup("/proc", cmd.Process.Pid)
	return execProcess{cmd}, nil
}

// startBornIdle starts cmd from a thread of its own put at the idle start's
// priority first, so that the generation, which inherits it, never runs
// above it: had the shim lowered itself, a promotion (ready, or at
// Config.PromoteAfter) that came before it did, on a busy host, would have
// been undone by it, and the generation would have served at idle
// priority. The thread is not reused: it ends with its goroutine, locked.
// That must not be the main thread, which the runtime keeps (parked, at
// the lowered priority, which root's promotion reads as the launcher's):
// the main goroutine holds it (init below), and should another goroutine
// get it all the same, the shim lowers itself as an older launcher asked.
func startBornIdle(cmd *exec.Cmd) error {
	way := idleStartFor(os.Getpid())
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if unix.Gettid() == os.Getpid() {
			runtime.UnlockOSThread()
			setEnv(cmd, envStartIdle, lowerIdle)
			done <- cmd.Start()
			return
		}
		// Never unlocked: the thread ends with this goroutine.
		if err := way.apply(unix.Gettid()); err != nil {
			done <- fmt.Errorf("cannot start at idle priority: %w", err)
			return
		}
		done <- cmd.Start()
	}()
	return <-done
}

// The main goroutine keeps the main thread, so that no thread startBornIdle
// lowers is the main one (the runtime never ends the main thread).
func init() { runtime.LockOSThread() }

// setEnv sets key to value in cmd's environment.
func setEnv(cmd *exec.Cmd, key, value string) {
	for i, kv := range cmd.Env {
		if k, _, _ := strings.Cut(kv, "="); k == key {
			cmd.Env[i] = key + "=" + value
			return
		}
	}
	cmd.Env = append(cmd.Env, key+"="+value)
}

type execProcess struct{ cmd *exec.Cmd }

func (p execProcess) Pid() int                 { return p.cmd.Process.Pid }
func (p execProcess) Signal(s os.Signal) error { return p.cmd.Process.Signal(s) }
func (p execProcess) Wait() error              { return p.cmd.Wait() }

// generation is one run of the app.
type generation struct {
	n       int
	proc    Process
	pid     int
	mode    string
	modeEnv []site.EnvVar // what its mode file said: a reload without a new mode keeps it
	release string
	err     error         // set when exited
	exited  chan struct{} // closed when exited
	reaped  bool          // its exit event was taken from the exits channel
	// armed: its failsafe runs; forced: the failsafe sent SIGTERM;
	// killReported: and said so.
	armed, forced, killReported bool
	// side is its side of a warm standby (warm.go); -1: every listener.
	side int
	// idle: it starts at idle priority (idleStart), until it is promoted.
	idle bool
	// readyAt is when it was ready (see startup.ready); zero before.
	readyAt time.Time
	// keepAliveSig switches its keep-alive (0: it announced no switch);
	// keepAlive is the state it last reported.
	keepAliveSig syscall.Signal
	keepAlive    bool
	// discarded: it was stopped without taking over (discard).
	discarded bool
}

// hasExited tells whether the generation's main process has exited.
func (g *generation) hasExited() bool {
	select {
	case <-g.exited:
		return true
	default:
		return false
	}
}

// startReady starts the next generation in the mode whose environment is
// mode and waits until it is ready; a generation that does not get there
// is stopped. With promote and Config.StartIdle it starts at idle priority
// and is promoted once ready (see priority.go).
func (l *launcher) startReady(ctx context.Context, mode []site.EnvVar, promote promoter) (*generation, error) {
	spec, err := l.cfg.Prepare(mode)
	if err != nil {
		return nil, fmt.Errorf("cannot prepare generation %d: %w", l.next+1, err)
	}
	l.next++
	g := &generation{n: l.next, mode: spec.Mode, modeEnv: mode, release: spec.Dir, exited: make(chan struct{}), side: l.sideFor(l.next),
		idle: l.cfg.StartIdle && promote != nil}
	if !g.idle {
		promote = nil
	}
	var ps *probeSocket
	if spec.Probe != nil {
		if ps, err = openProbe(l.cfg.RuntimeDir, g.n); err != nil {
			return nil, err
		}
		defer ps.close()
	}
	if err := l.start(g, spec, ps); err != nil {
		return nil, err
	}
	if err := l.waitReady(ctx, g, spec, ps.target(), promote); err != nil {
		if a := (*abandoned)(nil); errors.As(err, &a) {
			// It can no longer take over: say so before its stop, which
			// may take the stop timeout, for the switch out of time.
			l.answerAbandoned(a)
		}
		if !errors.Is(err, ErrStopping) {
			l.discard(g)
		}
		return nil, err
	}
	return g, nil
}

// start starts generation g on the listeners (and its probe socket), and
// delivers its exit to l.exits.
func (l *launcher) start(g *generation, spec Spec, ps *probeSocket) error {
	proc, err := l.cfg.Start(l.command(g, spec, ps))
	if err != nil {
		return fmt.Errorf("cannot start generation %d: %w", g.n, err)
	}
	g.proc, g.pid = proc, proc.Pid()
	go func() {
		g.err = proc.Wait()
		close(g.exited)
		l.exits <- g
	}()
	where := ""
	if spec.Dir != "" {
		where = " in " + spec.Dir
	}
	if g.idle {
		where += " at idle priority"
	}
	l.cfg.Logf("started generation %d (pid %d) in mode %s%s", g.n, g.pid, g.mode, where)
	return nil
}

// command is the command that starts generation g: the shim, with the
// sockets and the variables of socket activation, and the notify socket
// when the generation says READY=1.
func (l *launcher) command(g *generation, spec Spec, ps *probeSocket) Command {
	files, names := l.filesFor(g)
	if ps != nil {
		files = append(append([]*os.File{}, files...), ps.file)
		names = append(append([]string{}, names...), "sitectl-probe")
	}
	argv := append(append(append([]string{}, l.cfg.Shim...), "launch", l.cfg.Site, "--"), l.cfg.Argv...)
	env := append(append([]string{}, spec.Env...),
		envSetListenPID+"=1",
		"LISTEN_FDS="+strconv.Itoa(len(files)),
		"LISTEN_FDNAMES="+strings.Join(names, ":"),
		"SITE_GENERATION="+strconv.Itoa(g.n))
	if spec.Readiness == site.ReadinessNotify {
		env = append(env, "NOTIFY_SOCKET="+l.notifyPath)
	}
	if g.idle {
		env = append(env, envStartIdle+"="+startedIdle)
	}
	return Command{Argv: argv, Env: env, Dir: spec.Dir, Files: files, Idle: g.idle}
}

// probeSocket is the private socket through which the launcher probes one
// generation: passed to it as the socket named sitectl-probe, and to no
// other generation.
type probeSocket struct {
	ln   net.Listener
	file *os.File
	path string
}

func openProbe(dir string, n int) (*probeSocket, error) {
	path := filepath.Join(dir, paths.ProbeSocket(n))
	os.Remove(path)
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("cannot open the probe socket: %w", err)
	}
	f, err := ln.(*net.UnixListener).File()
	if err != nil {
		ln.Close()
		os.Remove(path)
		return nil, fmt.Errorf("cannot pass the probe socket: %w", err)
	}
	return &probeSocket{ln: ln, file: f, path: path}, nil
}

// target reaches the generation through the socket.
func (ps *probeSocket) target() probe.Target {
	if ps == nil {
		return probe.Target{}
	}
	return probe.Target{Host: "generation", Dial: func(ctx context.Context) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", ps.path)
	}}
}

func (ps *probeSocket) close() {
	ps.file.Close()
	ps.ln.Close()
	os.Remove(ps.path)
}
