package launcher

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sitectl/sitectl/internal/modes"
	"github.com/sitectl/sitectl/internal/paths"
	"github.com/sitectl/sitectl/internal/site"
)

// The control socket (paths.ControlSocket in the runtime directory) is how
// root's side of sitectl talks to the launcher. One request per
// connection, one answer:
//
//   - "reload" (ExecReload=, sitectl launch --reload, through Reload) to
//     reload in the serving generation's mode, or "reload N" followed by N
//     bytes: the mode file (modes.EnvFile) of the mode to reload into, which
//     the root side of ExecReload= read, since the launcher cannot read the
//     state directory. The answer line is "ok: ..." or "failed: REASON"
//     once the reload ended.
//   - "reload-promote" [N], the same from a caller that can promote (root's
//     side of ExecReload=, see priority.go): before the answer line the
//     launcher may send "promote PID" lines, each answered with
//     "promoted: ..." or "failed: REASON" (which fails the reload). A
//     launcher that does not know the verb answers "failed: unknown
//     request", and the caller asks again with "reload".
//   - "status" (a switch verifying what serves, through AskStatus): one
//     line of JSON, Status, at once.
//   - "rollback" (sitectl rollback of a site with keep_previous, through
//     Rollback): flip back to the warm generation. The answer is "ok:
//     generation N serves again in mode M, flipped in D" once new
//     connections go to it, or "failed: REASON" ("no warm generation
//     (...)" when none is warm); the newer generation drains afterwards.
//     "rollback PID" flips back only if the warm generation is still the
//     one whose pid is PID, the one the asker checked: a reload that ran
//     meanwhile (the request waits for it) made the generation it
//     replaced the warm one, and a flip to that would undo the reload,
//     not what the asker meant to undo.
//   - "abandon PID" (a switch out of time, through Abandon): stop the
//     generation a reload is starting to replace the one whose pid is PID,
//     before it takes over (see abandon.go).
//
// serveControl reads requests and writes the answers, Reload, AskStatus
// and Rollback write requests and read the answers; nothing else speaks
// this protocol. The socket is in the runtime directory (0700, the site's
// user): only root and the site's own processes reach it. The site's app
// can replace it, so root's side talks only to a socket the service's main
// process listens on (dialControl), and checks any pid in an answer
// (CheckGeneration) before it reads anything of that process.

// Status is the launcher's answer to "status": the generation that serves
// and those still draining, with the pids whose environment tells which
// mode they really run.
type Status struct {
	// Serving is nil while no generation serves (before the first is
	// ready, and once the serving one died).
	Serving  *GenerationStatus  `json:"serving"`
	Draining []GenerationStatus `json:"draining"`
	// Last is what ended the last generation that stopped without being
	// asked, or why the last reload failed; empty if nothing did.
	Last string `json:"last,omitempty"`
	// Warm is the generation kept warm for a rollback (keep_previous);
	// nil without one, and NoWarm then says why.
	Warm   *WarmStatus `json:"warm"`
	NoWarm string      `json:"no_warm,omitempty"`
}

// WarmStatus is the warm generation in a Status.
type WarmStatus struct {
	GenerationStatus
	Since time.Time `json:"since"` // when it stopped getting new connections
	Until time.Time `json:"until"` // when it will be drained
}

// GenerationStatus is one generation in a Status.
type GenerationStatus struct {
	Generation int    `json:"generation"`
	PID        int    `json:"pid"`
	Mode       string `json:"mode"`
	Release    string `json:"release,omitempty"`
	// Ready is when the launcher saw it ready (READY=1, and the probe or
	// the settle time); from then on it watched it, through the wait for
	// quiet, until it took over. Zero from a launcher that does not say.
	Ready time.Time `json:"ready,omitzero"`
}

// maxStatus bounds a status answer: a few generations, one line each.
const maxStatus = 64 << 10

// The requests that go to the launcher's loop.
const (
	verbReload        = "reload"
	verbReloadPromote = "reload-promote"
	verbRollback      = "rollback"
)

// request is a reload or a rollback asked for on the control socket.
type request struct {
	verb string        // verbReload or verbRollback
	mode []site.EnvVar // nil: the serving generation's
	// warm is the pid of the generation a rollback is to flip back to;
	// 0: whichever is warm.
	warm  int
	reply chan reloadResult
	// gone tells whether its asker hung up (nil: never).
	gone func() bool
	// promote has the caller promote a generation started at idle
	// priority; nil when the caller cannot.
	promote promoter
}

// promoter promotes the generation whose main process is pid to normal
// priority, and says what it did.
type promoter func(pid int) (string, error)

// requestTimeout bounds the reading of a request.
const requestTimeout = 10 * time.Second

// readRequest reads a request line and the mode file that follows it. The
// pid is an abandon's (see abandon.go) or a rollback's.
func readRequest(r *bufio.Reader) (verb string, pid int, mode []site.EnvVar, err error) {
	line, err := r.ReadSlice('\n')
	if err != nil {
		return "", 0, nil, fmt.Errorf("no request: %w", err)
	}
	verb, size, sized := strings.Cut(strings.TrimSuffix(string(line), "\n"), " ")
	switch {
	case (verb == "status" || verb == verbRollback) && !sized:
		return verb, 0, nil, nil
	case (verb == verbAbandon || verb == verbRollback) && sized:
		pid, err := parseAbandon(size)
		return verb, pid, nil, err
	case verb != verbReload && verb != verbReloadPromote:
		return "", 0, nil, errors.New(errUnknownRequest)
	case !sized:
		return verb, 0, nil, nil
	}
	if mode, err = readModeFile(r, size); err != nil {
		return "", 0, nil, err
	}
	return verb, 0, mode, nil
}

// readModeFile reads the mode file of size bytes that follows a reload
// request.
func readModeFile(r *bufio.Reader, size string) ([]site.EnvVar, error) {
	n, err := strconv.Atoi(size)
	if err != nil || n < 0 || n > modes.MaxEnvFile {
		return nil, fmt.Errorf("a mode file of %q bytes", size)
	}
	data := make([]byte, n)
	if _, err := io.ReadFull(r, data); err != nil {
		return nil, fmt.Errorf("the mode file: %w", err)
	}
	mode, err := modes.ParseEnv(data)
	if err != nil {
		return nil, err
	}
	if !slices.ContainsFunc(mode, func(v site.EnvVar) bool { return v.Name == modes.VarMode }) {
		return nil, fmt.Errorf("the mode file has no %s", modes.VarMode)
	}
	return mode, nil
}

// reloadResult is how a reload ended.
type reloadResult struct {
	handover handover
	err      error
}

// reply is the answer line of a result.
func reply(r reloadResult) string {
	if r.err != nil {
		return "failed: " + oneLine(r.err.Error())
	}
	if h := r.handover; h.abandoned > 0 {
		return fmt.Sprintf("ok: generation %d will not take over: %s; it is being stopped", h.abandoned, oneLine(h.why))
	}
	if r.handover.rollback {
		return fmt.Sprintf("ok: generation %d serves again in mode %s, flipped in %s", r.handover.n, r.handover.mode, r.handover.flip)
	}
	return fmt.Sprintf("ok: generation %d serves in mode %s", r.handover.n, r.handover.mode)
}

// parseReply turns an answer line back into nil or the reason.
func parseReply(line string) error {
	line = strings.TrimSpace(line)
	switch {
	case strings.HasPrefix(line, "ok"):
		return nil
	case line == "failed: "+ErrStopping.Error():
		return ErrStopping
	case strings.HasPrefix(line, "failed: "):
		return errors.New(strings.TrimPrefix(line, "failed: "))
	}
	return fmt.Errorf("the launcher answered %q", line)
}

// serveControl answers reload requests, one per connection, until ln is
// closed. done ends a request the launcher will no longer take.
//
// An accept that fails for another reason is tried again, after a pause
// that grows to maxAcceptPause: the launcher out of file descriptors
// (EMFILE; the site's app, which runs as the same user, can connect to
// the socket until it is), or the kernel out of memory for a socket, is
// a passing state. Given up on, it would leave the service running with
// nothing answering root's reloads, rollbacks and status questions until
// its next restart.
func (l *launcher) serveControl(ln net.Listener, done <-chan struct{}) {
	var pause time.Duration
	for {
		c, err := ln.Accept()
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			if pause == 0 && l.cfg.Logf != nil {
				l.cfg.Logf("cannot accept a connection on the control socket, trying again: %v", err)
			}
			pause = min(max(2*pause, minAcceptPause), maxAcceptPause)
			select {
			case <-done:
				return
			case <-time.After(pause):
			}
			continue
		}
		pause = 0
		go l.answer(c, done)
	}
}

// The pauses between failed accepts on the control socket.
const (
	minAcceptPause = 5 * time.Millisecond
	maxAcceptPause = time.Second
)

func (l *launcher) answer(c net.Conn, done <-chan struct{}) {
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(requestTimeout))
	r := bufio.NewReaderSize(c, 256)
	verb, pid, mode, err := readRequest(r)
	if err != nil {
		io.WriteString(c, "failed: "+oneLine(err.Error())+"\n")
		return
	}
	if verb == verbAbandon {
		l.answerAbandon(c, pid, done)
		return
	}
	if verb == "status" {
		c.SetWriteDeadline(time.Now().Add(requestTimeout))
		json.NewEncoder(c).Encode(l.snapshot())
		return
	}
	req := request{verb: verb, mode: mode, warm: pid, reply: make(chan reloadResult, 1), gone: peerGone(c)}
	if verb == verbReloadPromote {
		req.verb, req.promote = verbReload, askPromotion(c, r)
	}
	answer(c, l.requests, req, req.reply, done)
}

// answer hands req to the launcher's loop on queue and writes the answer
// that comes back on replies; a launcher that stops meanwhile answers
// ErrStopping. A request still waiting for the loop (a reload under way)
// when its asker hangs up is withdrawn: whoever asked gave up on it and
// said so (sitectl, out of time; systemd, which failed the reload job and
// killed ExecReload=), and doing it later would change the site behind
// their backs (a rollback undoing a reload nobody asked to undo). The
// loop looks again as it takes the request (request.gone).
func answer[R any](c net.Conn, queue chan<- R, req R, replies <-chan reloadResult, done <-chan struct{}) {
	gone, stop := hangUp(c)
	r := reloadResult{err: ErrStopping}
	select {
	case queue <- req:
		stop()
		select {
		case r = <-replies:
		case <-done:
		}
	case <-gone:
		stop()
		return
	case <-done:
		stop()
	}
	io.WriteString(c, reply(r)+"\n")
}

// hangUpPoll is how often hangUp looks at the connection.
const hangUpPoll = 100 * time.Millisecond

// errWithdrawn answers a request whose asker hung up before the
// launcher's loop took it (see answer).
var errWithdrawn = errors.New("withdrawn: its asker hung up while it waited")

// peerGone tells, when called, whether the peer of c has closed its end
// (POLLHUP; a peer that only shut down its writing still waits for the
// answer). Nothing is read, so a promotion's answers stay for
// askPromotion, and nothing waits: a look returns at once. The launcher's
// loop asks it as it takes a request, and hangUp between.
func peerGone(c net.Conn) func() bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return func() bool { return false }
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return func() bool { return false }
	}
	return func() bool {
		var revents int16
		raw.Control(func(fd uintptr) {
			fds := []unix.PollFd{{Fd: int32(fd)}}
			if n, err := unix.Poll(fds, 0); err == nil && n > 0 {
				revents = fds[0].Revents
			}
		})
		return revents&(unix.POLLHUP|unix.POLLERR|unix.POLLNVAL) != 0
	}
}

// hangUp watches c until stop: gone is closed once its peer has hung up
// (peerGone). stop returns once the watch has ended.
func hangUp(c net.Conn) (gone <-chan struct{}, stop func()) {
	hung, quit, ended := make(chan struct{}), make(chan struct{}), make(chan struct{})
	left := peerGone(c)
	go func() {
		defer close(ended)
		tick := time.NewTicker(hangUpPoll)
		defer tick.Stop()
		for {
			select {
			case <-quit:
				return
			case <-tick.C:
			}
			if left() {
				close(hung)
				return
			}
		}
	}()
	return hung, func() { close(quit); <-ended }
}

// Reload asks the launcher whose runtime directory is runtimeDir, the
// service's main process mainPID, for a reload into the mode whose mode
// file is modeFile (nil: the serving generation's mode), and waits for its
// result: nil once a new generation serves, or why the old one still does
// (or none does). The wait is as long as the new generation's start;
// systemd's timeout of the reload job bounds it. With promote, the
// launcher may start the generation at idle priority and has promote raise
// it once it is ready (see priority.go).
func Reload(runtimeDir string, mainPID int, modeFile []byte, promote func(pid int) (string, error)) error {
	if promote != nil {
		err := reload(runtimeDir, mainPID, verbReloadPromote, modeFile, promote)
		if err == nil || err.Error() != errUnknownRequest {
			return err
		}
		// A launcher of an older sitectl, still running after an upgrade.
	}
	return reload(runtimeDir, mainPID, verbReload, modeFile, nil)
}

// errUnknownRequest is a launcher's answer to a verb it does not know.
const errUnknownRequest = "unknown request"

func reload(runtimeDir string, mainPID int, verb string, modeFile []byte, promote func(pid int) (string, error)) error {
	c, err := dialControl(context.Background(), runtimeDir, mainPID)
	if err != nil {
		return err
	}
	defer c.Close()
	req := verb + "\n"
	if modeFile != nil {
		req = verb + " " + strconv.Itoa(len(modeFile)) + "\n" + string(modeFile)
	}
	if _, err := io.WriteString(c, req); err != nil {
		return fmt.Errorf("cannot ask the launcher: %w", err)
	}
	r := bufio.NewReaderSize(io.LimitReader(c, 1<<16), 4096)
	for {
		line, err := r.ReadString('\n')
		if err != nil && (line == "" || err != io.EOF) {
			return fmt.Errorf("no answer from the launcher: %w", err)
		}
		pid, asked := strings.CutPrefix(strings.TrimSpace(line), "promote ")
		if !asked || promote == nil {
			return parseReply(line)
		}
		if _, err := io.WriteString(c, promotion(pid, promote)+"\n"); err != nil {
			return fmt.Errorf("cannot answer the launcher: %w", err)
		}
	}
}

// promotion is root's answer to "promote PID".
func promotion(pid string, promote func(pid int) (string, error)) string {
	n, err := strconv.Atoi(pid)
	if err != nil || n <= 0 {
		return fmt.Sprintf("failed: %q is not a pid", pid)
	}
	did, err := promote(n)
	if err != nil {
		return "failed: " + oneLine(err.Error())
	}
	return "promoted: " + oneLine(did)
}

// promoteTimeout bounds one promotion: root's side walks a process tree.
const promoteTimeout = 10 * time.Second

// askPromotion is the launcher's side of a promotion, on the connection
// of the reload that allowed it.
func askPromotion(c net.Conn, r *bufio.Reader) promoter {
	return func(pid int) (string, error) {
		c.SetDeadline(time.Now().Add(promoteTimeout))
		defer c.SetDeadline(time.Time{})
		if _, err := fmt.Fprintf(c, "promote %d\n", pid); err != nil {
			return "", fmt.Errorf("cannot ask root's side of the reload: %w", err)
		}
		line, err := r.ReadSlice('\n')
		if err != nil {
			return "", fmt.Errorf("no answer from root's side of the reload: %w", err)
		}
		answer := strings.TrimSpace(string(line))
		if did, ok := strings.CutPrefix(answer, "promoted: "); ok {
			return did, nil
		}
		if why, ok := strings.CutPrefix(answer, "failed: "); ok {
			return "", errors.New(why)
		}
		return "", fmt.Errorf("root's side of the reload answered %.80q", answer)
	}
}

// AskStatus asks the launcher whose runtime directory is runtimeDir, the
// service's main process mainPID, which generation serves. ctx bounds the
// whole exchange. The pids in the answer are the launcher's word: check
// one with CheckGeneration before reading anything of it.
func AskStatus(ctx context.Context, runtimeDir string, mainPID int) (Status, error) {
	var st Status
	c, err := dialControl(ctx, runtimeDir, mainPID)
	if err != nil {
		return st, err
	}
	defer c.Close()
	deadline, ok := ctx.Deadline()
	if !ok || time.Until(deadline) > 10*time.Second {
		deadline = time.Now().Add(10 * time.Second)
	}
	c.SetDeadline(deadline)
	if _, err := io.WriteString(c, "status\n"); err != nil {
		return st, fmt.Errorf("cannot ask the launcher: %w", err)
	}
	answer, err := io.ReadAll(io.LimitReader(c, maxStatus+1))
	switch {
	case err != nil:
		return st, fmt.Errorf("no answer from the launcher: %w", err)
	case len(answer) > maxStatus:
		return st, fmt.Errorf("the launcher's status is larger than %d bytes", maxStatus)
	}
	if err := json.Unmarshal(answer, &st); err != nil {
		return st, fmt.Errorf("the launcher answered %.80q: %w", answer, err)
	}
	return st, nil
}

// Rollback asks the launcher whose runtime directory is runtimeDir, the
// service's main process mainPID, to flip back to its warm generation,
// the one whose pid is warmPID (0: whichever is warm), and returns its
// answer ("generation N serves again in mode M, flipped in D"), or why it
// could not: no warm generation, another one warm now, or the launcher is
// not reachable. ctx bounds the exchange.
func Rollback(ctx context.Context, runtimeDir string, mainPID, warmPID int) (string, error) {
	if warmPID > 0 {
		answer, err := rollback(ctx, runtimeDir, mainPID, verbRollback+" "+strconv.Itoa(warmPID))
		if err == nil || err.Error() != errUnknownRequest {
			return answer, err
		}
		// A launcher of an older sitectl, still running after an upgrade.
	}
	return rollback(ctx, runtimeDir, mainPID, verbRollback)
}

func rollback(ctx context.Context, runtimeDir string, mainPID int, req string) (string, error) {
	c, err := dialControl(ctx, runtimeDir, mainPID)
	if err != nil {
		return "", err
	}
	defer c.Close()
	if deadline, ok := ctx.Deadline(); ok {
		c.SetDeadline(deadline)
	}
	if _, err := io.WriteString(c, req+"\n"); err != nil {
		return "", fmt.Errorf("cannot ask the launcher: %w", err)
	}
	answer, err := io.ReadAll(io.LimitReader(c, 1<<16))
	if err != nil {
		return "", fmt.Errorf("no answer from the launcher: %w", err)
	}
	if err := parseReply(string(answer)); err != nil {
		return "", err
	}
	return strings.TrimPrefix(strings.TrimSpace(string(answer)), "ok: "), nil
}

// dialControl connects to the control socket in runtimeDir and checks that
// the process that listens on it is the launcher, the service's main
// process mainPID, before anything is sent. The runtime directory is the
// site's user's, so the site's app can put anything at that path: a
// symlink to another site's control socket (which a connect follows, and
// root may reach), or a socket it listens on itself. The kernel records
// the pid of the process that called listen() on a socket and gives it to
// whoever connects (SO_PEERCRED): through a symlink that is the other
// site's launcher, on the app's own socket the app, and neither can make
// it this site's launcher. Without the check, root's side would send this
// site's mode file to another site's launcher, flip another site back, or
// believe an answer the app made up.
func dialControl(ctx context.Context, runtimeDir string, mainPID int) (net.Conn, error) {
	path := filepath.Join(runtimeDir, paths.ControlSocket)
	if mainPID <= 0 {
		return nil, fmt.Errorf("cannot tell whether %s is the launcher's: the service's main PID is not known; nothing was sent", path)
	}
	c, err := (&net.Dialer{}).DialContext(ctx, "unix", path)
	if err != nil {
		return nil, fmt.Errorf("cannot reach the launcher: %w", err)
	}
	peer, err := peerPID(c)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("cannot tell whether %s is the launcher's: %w; nothing was sent", path, err)
	}
	if peer != mainPID {
		c.Close()
		return nil, fmt.Errorf("the control socket %s is not the launcher's (pid %d answered, the service's main PID is %d): the site's app may have replaced it; nothing was sent",
			path, peer, mainPID)
	}
	return c, nil
}

// peerPID is the pid of the process that listened on the socket c is
// connected to, as the kernel recorded it when it called listen().
func peerPID(c net.Conn) (int, error) {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return 0, fmt.Errorf("a %T is not a unix socket", c)
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return 0, err
	}
	var cred *unix.Ucred
	var credErr error
	if err := raw.Control(func(fd uintptr) {
		cred, credErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return 0, err
	}
	if credErr != nil {
		return 0, fmt.Errorf("cannot read its peer's credentials: %w", credErr)
	}
	return int(cred.Pid), nil
}
