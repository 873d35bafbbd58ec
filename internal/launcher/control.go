package launcher

import (
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
// ExecReload= (sitectl launch --reload, through Reload) asks the launcher
// for a reload and learns how it ended: one request line, "reload", and
// one answer line, "ok: ..." or "failed: REASON". serveControl writes the
// answers and Reload reads them; nothing else speaks this protocol.

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
	if strings.TrimSpace(string(buf[:n])) != "reload" {
		io.WriteString(c, "failed: unknown request\n")
		return
	}
	req := request{reply: make(chan reloadResult, 1)}
	select {
	case l.requests <- req:
	case <-done:
		io.WriteString(c, reply(reloadResult{err: errStopping})+"\n")
		return
	}
	select {
	case r := <-req.reply:
		io.WriteString(c, reply(r)+"\n")
	case <-done:
		io.WriteString(c, reply(reloadResult{err: errStopping})+"\n")
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
