package modes

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/sitectl/sitectl/internal/paths"
	"github.com/sitectl/sitectl/internal/site"
)

// request is one operation asked of the state service; one per connection.
type request struct {
	Op     string `json:"op"` // begin, set-mode, finish, prepare
	Site   string `json:"site"`
	To     string `json:"to,omitempty"`
	Mode   string `json:"mode,omitempty"`
	Result string `json:"result,omitempty"`
	Reason string `json:"reason,omitempty"`
}

type response struct {
	Error string `json:"error,omitempty"`
}

// Client asks the state service to write, for a deployer who may not write
// the state directory. It implements Writer.
type Client struct {
	Socket string // default paths.DefaultStateSocket
}

func (c Client) call(req request) error {
	path := c.Socket
	if path == "" {
		path = paths.DefaultStateSocket
	}
	conn, err := net.DialTimeout("unix", path, 5*time.Second)
	if err != nil {
		return fmt.Errorf("cannot reach sitectl's state service at %s: %w", path, err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	if err := json.NewEncoder(conn).Encode(req); err != nil {
		return fmt.Errorf("state service: %w", err)
	}
	var resp response
	if err := json.NewDecoder(conn).Decode(&resp); err != nil {
		return fmt.Errorf("state service: no answer: %w", err)
	}
	if resp.Error != "" {
		return fmt.Errorf("state service: %s", resp.Error)
	}
	return nil
}

// Begin implements Writer. The service works out the mode the switch starts
// from itself.
func (c Client) Begin(s *site.Site, _, to string) error {
	return c.call(request{Op: "begin", Site: s.Name, To: to})
}

// SetMode implements Writer.
func (c Client) SetMode(s *site.Site, mode string) error {
	return c.call(request{Op: "set-mode", Site: s.Name, Mode: mode})
}

// Finish implements Writer.
func (c Client) Finish(s *site.Site, result, reason string) error {
	return c.call(request{Op: "finish", Site: s.Name, Result: result, Reason: reason})
}

// Prepare asks the service to create the site's state directory and lock.
func (c Client) Prepare(s *site.Site) error {
	return c.call(request{Op: "prepare", Site: s.Name})
}

// Caller is who is on the other end of a state service connection, as the
// kernel says (SO_PEERCRED).
type Caller struct {
	UID, PID int
}

// Serve answers one request on rw for caller. load reads a site from the
// operator's site directory: every mode is checked against it and rendered
// from it, so a caller can only choose among the modes the operator wrote.
func Serve(rw io.ReadWriter, caller Caller, store Store, load func(name string) (*site.Site, error)) error {
	var req request
	if err := json.NewDecoder(bufio.NewReader(io.LimitReader(rw, 1<<16))).Decode(&req); err != nil {
		return reply(rw, fmt.Errorf("bad request: %w", err))
	}
	return reply(rw, serve(req, caller, store, load))
}

func serve(req request, caller Caller, store Store, load func(string) (*site.Site, error)) error {
	if err := site.ValidateName(req.Site); err != nil {
		return err
	}
	s, err := load(req.Site)
	if err != nil {
		return err
	}
	w := Local{Store: store, UID: caller.UID, PID: caller.PID}
	switch req.Op {
	case "prepare":
		return store.prepareSite(s.Name)
	case "begin":
		if _, ok := s.Mode(req.To); !ok {
			return fmt.Errorf("site %s has no mode %q", s.Name, req.To)
		}
		from, ok, err := store.Current(s.Name)
		if err != nil {
			return err
		}
		if !ok {
			from = s.DefaultMode
		}
		return w.Begin(s, from, req.To)
	case "set-mode":
		return w.SetMode(s, req.Mode)
	case "finish":
		switch req.Result {
		case ResultOK, ResultRolledBack, ResultRollbackFailed, ResultStopped:
		default:
			return fmt.Errorf("%q is not a result", req.Result)
		}
		if len(req.Reason) > 4096 {
			req.Reason = req.Reason[:4096]
		}
		return w.Finish(s, req.Result, req.Reason)
	}
	return fmt.Errorf("unknown operation %q", req.Op)
}

func reply(w io.Writer, err error) error {
	resp := response{}
	if err != nil {
		resp.Error = err.Error()
	}
	return errors.Join(err, json.NewEncoder(w).Encode(resp))
}
