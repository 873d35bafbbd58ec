package stateservice

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"time"
)

// Why a call got no final answer (with errors.Is). A client maps each to
// its own exit code: the first is a permission, the others say nothing
// about the change (which may have happened, or be under way).
var (
	// ErrNoAccess: the socket refused the caller (not in sitectl-deploy).
	ErrNoAccess = errors.New("permission denied")
	// ErrUnreachable: nothing listens on the socket.
	ErrUnreachable = errors.New("sitectl's state service cannot be reached")
	// ErrCut: the connection ended, or stayed silent past the deadline,
	// before the final answer.
	ErrCut = errors.New("sitectl's state service ended the connection before it answered")
)

// connectTimeout bounds connecting; answerMargin is what a client waits
// beyond the request's own bounds.
const (
	connectTimeout = 5 * time.Second
	answerMargin   = 30 * time.Second
)

// Call sends req to the service listening on socket, calls progress with
// each progress line, and returns the final answer. Its wait is bounded:
// for a change, by the lock wait and the change's timeout the service
// applies; otherwise by a minute. The first signal name (SIGINT, SIGTERM)
// received from interrupt (nil: none) is sent to the service as an
// Interrupt, and Call goes on reading the answer: how the interrupted
// change ended.
func Call(ctx context.Context, socket string, req Request, progress func(string), interrupt <-chan string) (*Final, error) {
	d := net.Dialer{Timeout: connectTimeout}
	conn, err := d.DialContext(ctx, "unix", socket)
	if err != nil {
		return nil, dialError(socket, err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(answerWait(req)))
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()
	data, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	if _, err := conn.Write(append(data, '\n')); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCut, err)
	}
	if interrupt != nil {
		done := make(chan struct{})
		defer close(done)
		go func() {
			select {
			case sig := <-interrupt:
				// A write that fails leaves the change to run to its
				// end; the answer says how it ended.
				line, _ := json.Marshal(Interrupt{Signal: sig})
				conn.Write(append(line, '\n'))
			case <-done:
			}
		}()
	}
	return readAnswer(bufio.NewReaderSize(conn, 64<<10), progress)
}

// answerWait is how long Call waits for the answer to req: a minute for
// a request that changes nothing; for a change, what the service may take
// and answerMargin: its wait for the site's lock and for systemd's
// connection (each at most the change's timeout, side by side), then the
// change itself, bounded by twice its timeout and a minute for a systemd
// slow to answer (sitectl's runFlow). Waiting less, a deployer was told
// that the service ended the connection (exit 7) while root's change,
// given as long, ran to its end and was reported.
func answerWait(req Request) time.Duration {
	if !req.IsChange() {
		return time.Minute
	}
	return 3*req.Timeout() + time.Minute + answerMargin
}

// dialError words a failure to connect.
func dialError(socket string, err error) error {
	switch {
	case errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.EPERM):
		return fmt.Errorf("%w: cannot open %s: %w", ErrNoAccess, socket, err)
	default:
		return fmt.Errorf("%w at %s: %w", ErrUnreachable, socket, err)
	}
}

// readAnswer reads progress lines until the final answer. Every line is
// bounded; a line that is not an event ends the call.
func readAnswer(r *bufio.Reader, progress func(string)) (*Final, error) {
	for lines := 0; ; lines++ {
		line, err := readLine(r, MaxResponse+MaxRequest)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrCut, err)
		}
		var ev Event
		if err := json.Unmarshal(line, &ev); err != nil {
			return nil, fmt.Errorf("sitectl's state service answered something else than sitectl does: %w", err)
		}
		if ev.Final != nil {
			return ev.Final, nil
		}
		if lines <= MaxProgressLines && progress != nil {
			progress(ev.Progress)
		}
	}
}

// readLine reads one line of at most limit bytes, without its newline.
func readLine(r *bufio.Reader, limit int) ([]byte, error) {
	var line []byte
	for {
		chunk, err := r.ReadSlice('\n')
		line = append(line, chunk...)
		if len(line) > limit {
			return nil, fmt.Errorf("an answer longer than %d bytes", limit)
		}
		switch {
		case err == nil:
			return line[:len(line)-1], nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF):
			return nil, io.ErrUnexpectedEOF
		default:
			return nil, err
		}
	}
}
