package activation

import (
	"errors"
	"fmt"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// DefaultChildGrace is how long [Children.Stop] waits after SIGTERM before
// it sends SIGKILL, when Children.Grace is zero.
const DefaultChildGrace = 10 * time.Second

// childWaitDelay is the cmd.WaitDelay [Children.Start] sets when it is
// zero: how long a child's output is still read after the child exited.
const childWaitDelay = time.Second

// Children starts child processes that must not outlive the app: workers
// spawned for requests, helpers holding a resource. Stop sends each one
// SIGTERM (to its whole process group, so its own children get it too),
// waits up to Grace for them to exit, then sends SIGKILL. [Serve] calls Stop
// after draining when ServeOptions.Children is set.
//
// Whatever a crash leaves behind is still in the unit's cgroup, where
// `sitectl cleanup` (ExecStopPost=) finds it.
//
// A child whose Stdout or Stderr is not an *os.File has its output copied
// through a pipe, which a process outside the child's process group (one
// that started a session of its own) may keep open after the child
// exited; Stop cannot signal that process, and waiting for the pipe to
// close would hold Stop, and Serve's drain, forever. So Start sets
// cmd.WaitDelay to one second when it is zero: a second after the child
// exited, the pipes are closed, what is written to them afterwards is
// lost, and done gets [exec.ErrWaitDelay] if the child itself succeeded.
//
// The zero value is ready to use; it must not be copied after first use.
type Children struct {
	// Grace is how long children get to exit after SIGTERM; zero means
	// DefaultChildGrace.
	Grace time.Duration

	mu      sync.Mutex
	running map[*exec.Cmd]chan struct{} // closed when the child was reaped
	stopped bool
}

// ErrStopped is returned by Start once Stop has begun.
var ErrStopped = errors.New("activation: children are being stopped; no new child is started")

// Start starts cmd in a process group of its own (in a session of its own
// if cmd.SysProcAttr.Setsid is set; a Pgid there is ignored) and tracks it
// until it exits. Do not call cmd.Wait: Start reaps the child. done, if not nil, is
// called with the child's exit error when it has exited. A zero
// cmd.WaitDelay is set to one second (see [Children]).
func (c *Children) Start(cmd *exec.Cmd, done func(error)) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return ErrStopped
	}
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	// Stop signals the group whose ID is the child's pid. A child that
	// starts a session of its own leads such a group already (and the
	// kernel refuses setpgid to a session leader); any other is made to
	// lead one, even if Pgid named another group.
	if !cmd.SysProcAttr.Setsid {
		cmd.SysProcAttr.Setpgid = true
		cmd.SysProcAttr.Pgid = 0
	}
	if cmd.WaitDelay == 0 {
		cmd.WaitDelay = childWaitDelay
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("activation: cannot start child %s: %w", cmd.Path, err)
	}
	if c.running == nil {
		c.running = map[*exec.Cmd]chan struct{}{}
	}
	exited := make(chan struct{})
	c.running[cmd] = exited
	go func() {
		err := cmd.Wait()
		c.mu.Lock()
		delete(c.running, cmd)
		c.mu.Unlock()
		close(exited)
		if done != nil {
			done(err)
		}
	}()
	return nil
}

// Len is the number of children running.
func (c *Children) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.running)
}

// Stop stops every child: SIGTERM to each process group, up to Grace for
// them to exit, then SIGKILL. It returns how many had to be killed, at the
// latest a child's cmd.WaitDelay after the last one exited. Start fails
// once Stop has begun.
func (c *Children) Stop() (killed int) {
	c.mu.Lock()
	c.stopped = true
	waiting := make(map[*exec.Cmd]chan struct{}, len(c.running))
	for cmd, exited := range c.running {
		waiting[cmd] = exited
		signalChild(cmd, syscall.SIGTERM)
	}
	c.mu.Unlock()

	grace := c.Grace
	if grace == 0 {
		grace = DefaultChildGrace
	}
	timer := time.NewTimer(grace)
	defer timer.Stop()
	expired := false
	for cmd, exited := range waiting {
		if !expired {
			select {
			case <-exited:
				continue
			case <-timer.C:
				expired = true // the grace is over for all that are left
			}
		}
		select {
		case <-exited:
		default:
			signalChild(cmd, syscall.SIGKILL)
			killed++
			<-exited
		}
	}
	return killed
}

// signalChild sends sig to the child's process group, or to the child
// alone if it has left that group (the group is gone then): Stop must
// reach it, or it would wait for the child forever.
func signalChild(cmd *exec.Cmd, sig syscall.Signal) {
	if err := syscall.Kill(-cmd.Process.Pid, sig); errors.Is(err, syscall.ESRCH) {
		syscall.Kill(cmd.Process.Pid, sig)
	}
}
