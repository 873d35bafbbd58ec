package launcher

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strings"
	"time"

	"github.com/sitectl/sitectl/internal/paths"
)

// The control socket (paths.ControlSocket in the runtime directory) is how
// root's side of sitectl talks to the launcher. One request line per
// connection, one answer:
//
//   - "reload" (ExecReload=, sitectl launch --reload, through Reload): the
//     answer line is "ok: ..." or "failed: REASON" once the reload ended.
//   - "status" (a switch verifying what serves, through AskStatus): one
//     line of JSON, Status, at once.
//
// serveControl writes the answers, Reload and AskStatus read them; nothing
// else speaks this protocol.

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
}

// GenerationStatus is one generation in a Status.
type GenerationStatus struct {
	Generation int    `json:"generation"`
	PID        int    `json:"pid"`
	Mode       string `json:"mode"`
	Release    string `json:"release,omitempty"`
}

// maxStatus bounds a status answer: a few generations, one line each.
const maxStatus = 64 << 10

// request is a reload asked for on the control socket.
type request struct {
	reply chan reloadResult
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
func (l *launcher) serveControl(ln net.Listener, done <-chan struct{}) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go l.answer(c, done)
	}
}

func (l *launcher) answer(c net.Conn, done <-chan struct{}) {
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 64)
	n, _ := c.Read(buf)
	switch strings.TrimSpace(string(buf[:n])) {
	case "status":
		c.SetWriteDeadline(time.Now().Add(10 * time.Second))
		json.NewEncoder(c).Encode(l.snapshot())
		return
	case "reload":
	default:
		io.WriteString(c, "failed: unknown request\n")
		return
	}
	req := request{reply: make(chan reloadResult, 1)}
	select {
	case l.requests <- req:
	case <-done:
		io.WriteString(c, reply(reloadResult{err: ErrStopping})+"\n")
		return
	}
	select {
	case r := <-req.reply:
		io.WriteString(c, reply(r)+"\n")
	case <-done:
		io.WriteString(c, reply(reloadResult{err: ErrStopping})+"\n")
	}
}

// Reload asks the launcher whose runtime directory is runtimeDir for a
// reload, and waits for its result: nil once a new generation serves, or
// why the old one still does (or none does). The wait is as long as the
// new generation's start; systemd's timeout of the reload job bounds it.
func Reload(runtimeDir string) error {
	c, err := net.Dial("unix", filepath.Join(runtimeDir, paths.ControlSocket))
	if err != nil {
		return fmt.Errorf("cannot reach the launcher: %w", err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, "reload\n"); err != nil {
		return fmt.Errorf("cannot ask the launcher: %w", err)
	}
	answer, err := io.ReadAll(io.LimitReader(c, 1<<16))
	if err != nil {
		return fmt.Errorf("no answer from the launcher: %w", err)
	}
	return parseReply(string(answer))
}

// AskStatus asks the launcher whose runtime directory is runtimeDir which
// generation serves. ctx bounds the whole exchange.
func AskStatus(ctx context.Context, runtimeDir string) (Status, error) {
	var st Status
	c, err := (&net.Dialer{}).DialContext(ctx, "unix", filepath.Join(runtimeDir, paths.ControlSocket))
	if err != nil {
		return st, fmt.Errorf("cannot reach the launcher: %w", err)
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
