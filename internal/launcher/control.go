package launcher

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sitectl/sitectl/internal/modes"
	"github.com/sitectl/sitectl/internal/paths"
	"github.com/sitectl/sitectl/internal/site"
)

// The control socket (paths.ControlSocket in the runtime directory) is how
// ExecReload= (sitectl launch --reload, through Reload) asks the launcher
// for a reload and learns how it ended. The request is one line, "reload"
// to reload in the serving generation's mode, or "reload N" followed by N
// bytes: the mode file (modes.EnvFile) of the mode to reload into, which
// the root side of ExecReload= read, since the launcher cannot read the
// state directory. The answer is one line, "ok: ..." or "failed: REASON".
// serveControl reads requests and writes the answers, Reload writes
// requests and reads the answers; nothing else speaks this protocol. The
// socket is in the runtime directory (0700, the site's user): only root
// and the site's own processes reach it.

// request is a reload asked for on the control socket.
type request struct {
	mode  []site.EnvVar // nil: the serving generation's
	reply chan reloadResult
}

// requestTimeout bounds the reading of a request.
const requestTimeout = 10 * time.Second

// readRequest reads a request line and the mode file that follows it.
func readRequest(r *bufio.Reader) ([]site.EnvVar, error) {
	line, err := r.ReadSlice('\n')
	if err != nil {
		return nil, fmt.Errorf("no request: %w", err)
	}
	verb, size, sized := strings.Cut(strings.TrimSuffix(string(line), "\n"), " ")
	if verb != "reload" {
		return nil, errors.New("unknown request")
	}
	if !sized {
		return nil, nil
	}
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
	c.SetReadDeadline(time.Now().Add(requestTimeout))
	mode, err := readRequest(bufio.NewReaderSize(c, 256))
	if err != nil {
		io.WriteString(c, "failed: "+oneLine(err.Error())+"\n")
		return
	}
	req := request{mode: mode, reply: make(chan reloadResult, 1)}
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
// reload into the mode whose mode file is modeFile (nil: the serving
// generation's mode), and waits for its result: nil once a new generation
// serves, or why the old one still does (or none does). The wait is as
// long as the new generation's start; systemd's timeout of the reload job
// bounds it.
func Reload(runtimeDir string, modeFile []byte) error {
	c, err := net.Dial("unix", filepath.Join(runtimeDir, paths.ControlSocket))
	if err != nil {
		return fmt.Errorf("cannot reach the launcher: %w", err)
	}
	defer c.Close()
	req := "reload\n"
	if modeFile != nil {
		req = "reload " + strconv.Itoa(len(modeFile)) + "\n" + string(modeFile)
	}
	if _, err := io.WriteString(c, req); err != nil {
		return fmt.Errorf("cannot ask the launcher: %w", err)
	}
	answer, err := io.ReadAll(io.LimitReader(c, 1<<16))
	if err != nil {
		return fmt.Errorf("no answer from the launcher: %w", err)
	}
	return parseReply(string(answer))
}
