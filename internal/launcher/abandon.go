package launcher

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"
)

// A switch (sitectl mode, restart, reload) that runs out of time while the
// launcher still waits for a new generation asks the launcher to abandon
// that reload: "abandon PID", where PID is the generation that served when
// the switch began. The launcher ends the wait, so that the new generation
// can no longer take over, answers "ok: generation N will not take over:
// WHY; it is being stopped" (WHY: how far it had come), and then stops it;
// the reload fails, so that systemd's reload job ends with the old
// generation serving. Without this, the new generation could take over
// after sitectl said the site was rolled back, and sitectl, finding the
// unit still reloading, restarted the site cold instead.
//
// The answer is "failed: no reload under way" while the generation PID
// serves and no reload has reached the launcher (ExecReload= may still be
// on its way: ask again), and "failed: ..." naming the generation that
// serves when PID no longer does (the new one took over first).

// verbAbandon is the control socket's request to abandon a reload.
const verbAbandon = "abandon"

// ErrNoReload is the answer to an abandon while no reload is under way.
var ErrNoReload = errors.New("no reload under way")

// abandonRequest is an abandon asked for on the control socket: the reload
// that would replace the generation whose pid is serving.
type abandonRequest struct {
	serving int
	reply   chan reloadResult
	gone    func() bool // its asker hung up; nil: never
}

// abandoned is the error of a start that was abandoned: startReady answers
// req and stops the generation.
type abandoned struct {
	n   int
	why string // how far the generation had come
	req abandonRequest
}

func (a *abandoned) Error() string {
	return fmt.Sprintf("generation %d was abandoned before it took over: the change that asked for it gave up on it while %s", a.n, a.why)
}

// refuse answers an abandon that finds nothing to abandon: the launcher is
// not starting a generation to replace req.serving.
func (l *launcher) refuseAbandon(req abandonRequest) {
	switch g := l.current; {
	case g == nil:
		req.reply <- reloadResult{err: errors.New("no generation serves")}
	case g.pid != req.serving:
		req.reply <- reloadResult{err: fmt.Errorf("generation %d (pid %d) serves, not pid %d", g.n, g.pid, req.serving)}
	default:
		req.reply <- reloadResult{err: ErrNoReload}
	}
}

// abandon takes an abandon while generation s.g starts: it ends the start
// when s.g is to replace the generation req names, and says how far s.g
// had come. A probe under way is stopped for its last answer.
func (s *startup) abandon(req abandonRequest) (bool, error) {
	if req.gone != nil && req.gone() {
		req.reply <- reloadResult{err: errWithdrawn}
		return false, nil
	}
	if s.l.current == nil || s.l.current.pid != req.serving {
		s.l.refuseAbandon(req)
		return false, nil
	}
	return true, &abandoned{n: s.g.n, why: s.progress(), req: req}
}

// progress says how far a starting generation has come, for an abandon.
func (s *startup) progress() string {
	switch {
	case !s.notified:
		return "it had not said READY=1"
	case s.probed != nil:
		s.stopProbe()
		select {
		case err := <-s.probed:
			s.probed = nil
			if err != nil {
				return "it had not passed its probe: " + err.Error()
			}
			return "it had just passed its probe"
		case <-time.After(time.Second):
			return "its probe had not answered"
		}
	case s.settled != nil:
		return "it had not run for its settle time"
	case s.watch != nil:
		return "it was ready and had not settled: " + s.why
	}
	return "it was ready"
}

// answerAbandoned answers the abandon that ended a start: the generation
// can no longer take over, and is about to be stopped.
func (l *launcher) answerAbandoned(a *abandoned) {
	if l.current == nil {
		a.req.reply <- reloadResult{err: fmt.Errorf("generation %d will not take over, and no generation serves", a.n)}
		return
	}
	a.req.reply <- reloadResult{handover: handover{abandoned: a.n, why: a.why}}
}

// parseAbandon reads the pid of an abandon request.
func parseAbandon(arg string) (int, error) {
	pid, err := strconv.Atoi(arg)
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("%q is not a pid", arg)
	}
	return pid, nil
}

// answerAbandon hands an abandon to the launcher's loop and writes its
// answer.
func (l *launcher) answerAbandon(c net.Conn, serving int, done <-chan struct{}) {
	req := abandonRequest{serving: serving, reply: make(chan reloadResult, 1), gone: peerGone(c)}
	answer(c, l.abandons, req, req.reply, done)
}

// Abandon asks the launcher whose runtime directory is runtimeDir, the
// service's main process mainPID, to abandon the reload that would replace
// the generation whose pid is serving, and returns its answer once the new
// generation can no longer take over ("generation N will not take over:
// WHY; it is being stopped", WHY how far it had come). ErrNoReload: no reload has reached
// the launcher (yet). Any other error says why nothing was abandoned: the
// new generation took over first, say. ctx bounds the exchange.
func Abandon(ctx context.Context, runtimeDir string, mainPID, serving int) (string, error) {
	c, err := dialControl(ctx, runtimeDir, mainPID)
	if err != nil {
		return "", err
	}
	defer c.Close()
	if deadline, ok := ctx.Deadline(); ok {
		c.SetDeadline(deadline)
	}
	if _, err := io.WriteString(c, verbAbandon+" "+strconv.Itoa(serving)+"\n"); err != nil {
		return "", fmt.Errorf("cannot ask the launcher: %w", err)
	}
	line, err := bufio.NewReader(io.LimitReader(c, 1<<16)).ReadString('\n')
	if err != nil && (line == "" || err != io.EOF) {
		return "", fmt.Errorf("no answer from the launcher: %w", err)
	}
	if strings.TrimSpace(line) == "failed: "+ErrNoReload.Error() {
		return "", ErrNoReload
	}
	if err := parseReply(line); err != nil {
		return "", err
	}
	return strings.TrimPrefix(strings.TrimSpace(line), "ok: "), nil
}
