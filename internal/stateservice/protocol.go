// Package stateservice is sitectl's state service: the one way a user other
// than root changes a site or reads its state. It runs as root, as one
// socket-activated daemon (sitectl-state.service), on /run/sitectl/state.sock,
// which only the group sitectl-deploy may open.
//
// A client sends one request: a verb (mode, restart, reload, rollback,
// status, list, history, logs), a site and the verb's options. The service takes
// the caller's identity from the kernel (SO_PEERCRED, SO_PEERGROUPS),
// checks that the site's file grants the caller (Allowed: the one place
// grants are enforced), and then does what root's sitectl does for the
// same verb, as root: for a change, take the site's lock, record, restart
// over D-Bus, verify, roll back, and write the history from what it
// observed. It streams progress lines and then one final answer. A client
// can neither record a result nor write free text: there is nothing in a
// request to carry either. A client that disconnects does not stop a change
// that has started: it finishes or rolls back, and is recorded; it only
// ends a wait for the site's lock.
//
// After its request, a client may send one more line on the same
// connection, an Interrupt: its caller interrupted it (the first SIGINT or
// SIGTERM of the deployer's sitectl). The service then interrupts the
// change exactly as the first such signal interrupts root's sitectl: a
// wait for the site's lock ends with nothing done, a new mode not yet shown
// to serve is rolled back to the previous one, which is verified again,
// and a mode already shown to serve stands. The client goes on reading the
// progress lines and the final answer, which says how the change ended.
// Whatever else a client sends after its request is read and dropped, up
// to MaxRequest bytes in all; beyond that, or at a hang-up, the service
// stops reading and the change goes on as for a client that disconnected.
// A service that predates Interrupt drops it too: the change then runs to
// its end, and the final answer says so.
//
// The service bounds what a client can take: a request must arrive within
// RequestTimeout and fit MaxRequest bytes; each uid may hold PerUID
// connections and all together Total (systemd 252 does not limit unix
// connections per uid); answers are bounded (MaxProgress, MaxProgressLines,
// MaxResponse); a client that does not read its answer is written to for
// WriteTimeout and then left to the change going on without it.
//
// This file owns the protocol: Request, Interrupt and Event, DecodeRequest
// and decodeInterrupt (the server's readers) and Call (the client).
package stateservice

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/sitectl/sitectl/internal/site"
)

// The verbs of a request.
const (
	VerbMode     = "mode"
	VerbRestart  = "restart"
	VerbReload   = "reload"
	VerbRollback = "rollback"
	VerbStatus   = "status"
	VerbList     = "list"
	VerbHistory  = "history"
	VerbLogs     = "logs"
)

// Limits of the protocol.
const (
	// MaxRequest bounds a request line.
	MaxRequest = 4096
	// MaxSites bounds the sites of one status request.
	MaxSites = 1000
	// MaxProgress bounds a progress line; a longer one is cut.
	MaxProgress = 4096
	// MaxProgressLines bounds the progress lines of one answer.
	MaxProgressLines = 1000
	// MaxResponse bounds the final answer's line. A list names no sites,
	// so it must hold every site of a host of the size sitectl is made
	// for (docs/scale.md: 10,000), whose list is about 0.9 KB a site for
	// the shortest site files and names: 8.6 MB, which a bound of 8 MiB
	// refused to a deployer granted them all. 64 MiB leaves them some 6
	// KB each.
	MaxResponse = 64 << 20
	// MinTimeout and MaxTimeout bound a change's timeout.
	MinTimeout = time.Second
	MaxTimeout = 30 * time.Minute
	// MaxLogLines bounds the journal lines of one logs answer, and is
	// what a logs request without last gets: the newest lines.
	MaxLogLines = 10000
	// MaxLogText bounds the text of one logs answer: the newest lines
	// that fit. JSON writes a byte of it in up to 6 (a control
	// character, <, an invalid byte), and the service holds a few
	// copies of an answer while it sends it: 1 MiB of the app's bytes
	// costs it some 30 MB at worst.
	MaxLogText = 1 << 20
	// LogsAtOnce bounds the logs requests the service answers at once,
	// whoever asks; the next waits for one to end.
	LogsAtOnce = 2
	// LogsTimeout bounds the service's read of the journal for one
	// logs request.
	LogsTimeout = 30 * time.Second
)

// Request is what a client asks: one JSON object on one line.
type Request struct {
	Verb string `json:"verb"`
	// Site is the site of every verb but status and list.
	Site string `json:"site,omitempty"`
	// Sites are the sites of status; none: every site the caller may see.
	Sites []string `json:"sites,omitempty"`
	// Mode is the mode of VerbMode.
	Mode string `json:"mode,omitempty"`
	// Force: VerbMode restarts even when the site runs in the mode.
	Force bool `json:"force,omitempty"`
	// Cold: VerbRollback goes to the previous mode afresh, even when a
	// generation is kept warm (keep_previous).
	Cold bool `json:"cold,omitempty"`
	// NoBlock: a change fails at once when another changes the site.
	NoBlock bool `json:"no_block,omitempty"`
	// TimeoutMS bounds a change (0: the default, 2 minutes) and the wait
	// for the site's lock before it.
	TimeoutMS int64 `json:"timeout_ms,omitempty"`
	// Last: history shows only the last N entries (0: all); logs the
	// last N lines (0: MaxLogLines).
	Last int `json:"last,omitempty"`
	// Since: logs shows the lines from this time on, in seconds since
	// the epoch (0: all).
	Since int64 `json:"since,omitempty"`
	// Output is the journalctl output format of logs ("": short).
	Output string `json:"output,omitempty"`
}

// Logs is the result of a logs request: the site's journal as
// journalctl printed it, and whether older lines were left out to keep
// within MaxLogText.
type Logs struct {
	Text string `json:"text"`
	Cut  bool   `json:"cut,omitempty"`
}

// Timeout is the request's timeout as a duration, the default for none.
func (r Request) Timeout() time.Duration {
	if r.TimeoutMS == 0 {
		return 2 * time.Minute
	}
	return time.Duration(r.TimeoutMS) * time.Millisecond
}

// IsChange tells whether the verb changes a site.
func (r Request) IsChange() bool {
	switch r.Verb {
	case VerbMode, VerbRestart, VerbReload, VerbRollback:
		return true
	}
	return false
}

// Interrupt is what a client may send after its request, one JSON object
// on one line: {"interrupt":"SIGINT"}. Signal is SIGINT or SIGTERM; the
// service drops any other line.
type Interrupt struct {
	Signal string `json:"interrupt"`
}

// Interrupted is the cause of the interrupt context the service gives
// Backend.Change once the caller sent an Interrupt (with errors.As).
type Interrupted struct {
	// Signal is the signal the caller's sitectl got: SIGINT or SIGTERM.
	Signal string
}

func (i *Interrupted) Error() string {
	return "the caller's sitectl was interrupted by " + i.Signal
}

// decodeInterrupt reads an Interrupt line (without its newline), and says
// whether it is one.
func decodeInterrupt(line []byte) (Interrupt, bool) {
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	var in Interrupt
	if err := dec.Decode(&in); err != nil || dec.More() {
		return Interrupt{}, false
	}
	return in, in.Signal == "SIGINT" || in.Signal == "SIGTERM"
}

// Event is one line of an answer: a progress line, or the final answer,
// which is the last line.
type Event struct {
	Progress string `json:"progress,omitempty"`
	Final    *Final `json:"final,omitempty"`
}

// Final is how a request ended: the result (a report, statuses, history,
// as the verb's --json prints it) and the exit code sitectl gives with
// the error and its hints.
type Final struct {
	Result json.RawMessage `json:"result,omitempty"`
	Code   int             `json:"code"`
	Error  string          `json:"error,omitempty"`
	Hints  []string        `json:"hints,omitempty"`
}

// ErrBadRequest wraps every reason a request is refused before it is
// looked at.
var ErrBadRequest = errors.New("bad request")

// DecodeRequest reads one request line of at most MaxRequest bytes and
// checks it: a known verb, the fields that verb takes and no others, valid
// names, a timeout in range. Unknown fields are refused, so a request of
// another protocol (one with a result or a reason) is refused whole.
func DecodeRequest(r io.Reader) (Request, error) {
	return decodeRequest(bufio.NewReaderSize(io.LimitReader(r, MaxRequest+1), MaxRequest+1))
}

// decodeRequest is DecodeRequest from a reader of at least MaxRequest+1
// bytes, which keeps what follows the request (an Interrupt) for the next
// read.
func decodeRequest(br *bufio.Reader) (Request, error) {
	line, err := br.ReadSlice('\n')
	switch {
	case errors.Is(err, bufio.ErrBufferFull) || len(line) > MaxRequest:
		return Request{}, fmt.Errorf("%w: longer than %d bytes", ErrBadRequest, MaxRequest)
	case err != nil:
		return Request{}, fmt.Errorf("%w: no complete line: %w", ErrBadRequest, err)
	}
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	var req Request
	if err := dec.Decode(&req); err != nil {
		return Request{}, fmt.Errorf("%w: %w", ErrBadRequest, err)
	}
	if rest, _ := io.ReadAll(dec.Buffered()); len(bytes.TrimSpace(rest)) > 0 {
		return Request{}, fmt.Errorf("%w: more than one JSON object on the line", ErrBadRequest)
	}
	if err := req.Check(); err != nil {
		return Request{}, fmt.Errorf("%w: %w", ErrBadRequest, err)
	}
	return req, nil
}

// Check checks a request's fields against its verb.
func (r Request) Check() error {
	if r.Verb != VerbLogs && (r.Since != 0 || r.Output != "") {
		return fmt.Errorf("%s takes no such option", r.Verb)
	}
	switch r.Verb {
	case VerbMode, VerbRestart, VerbReload, VerbRollback:
		return r.checkChange()
	case VerbLogs:
		return r.checkLogs()
	case VerbStatus, VerbList:
		if r.Site != "" || r.Mode != "" || r.Force || r.NoBlock || r.TimeoutMS != 0 || r.Last != 0 || r.Verb == VerbList && len(r.Sites) > 0 {
			return fmt.Errorf("%s takes no such option", r.Verb)
		}
		if len(r.Sites) > MaxSites {
			return fmt.Errorf("more than %d sites", MaxSites)
		}
		// A name given twice would cost the service each site's reads
		// (systemd, the journal, the launcher) twice for nothing: a
		// request of one name a thousand times is refused.
		seen := make(map[string]bool, len(r.Sites))
		for _, s := range r.Sites {
			if err := site.ValidateName(s); err != nil {
				return err
			}
			if seen[s] {
				return fmt.Errorf("site %s is named twice", s)
			}
			seen[s] = true
		}
		return nil
	case VerbHistory:
		if len(r.Sites) > 0 || r.Mode != "" || r.Force || r.NoBlock || r.TimeoutMS != 0 || r.Last < 0 {
			return errors.New("history takes a site and last only")
		}
		return site.ValidateName(r.Site)
	case "":
		return errors.New("no verb")
	}
	return fmt.Errorf("unknown verb %q", r.Verb)
}

// checkLogs checks a logs request. The output format is only bounded
// here: the backend knows journalctl's formats, and refuses another.
func (r Request) checkLogs() error {
	if len(r.Sites) > 0 || r.Mode != "" || r.Force || r.NoBlock || r.Cold || r.TimeoutMS != 0 {
		return errors.New("logs takes a site, last, since and output only")
	}
	if r.Last < 0 || r.Last > MaxLogLines {
		return fmt.Errorf("last %d is not between 0 and %d", r.Last, MaxLogLines)
	}
	if r.Since < 0 || len(r.Output) > 32 {
		return errors.New("logs: since before the epoch, or an output format longer than 32 bytes")
	}
	return site.ValidateName(r.Site)
}

func (r Request) checkChange() error {
	if len(r.Sites) > 0 || r.Last != 0 || r.Verb != VerbMode && (r.Mode != "" || r.Force) || r.Verb != VerbRollback && r.Cold {
		return fmt.Errorf("%s takes no such option", r.Verb)
	}
	if err := site.ValidateName(r.Site); err != nil {
		return err
	}
	if r.Verb == VerbMode {
		if err := site.ValidateModeName(r.Mode); err != nil {
			return err
		}
	}
	if t := r.Timeout(); t < MinTimeout || t > MaxTimeout {
		return fmt.Errorf("timeout %s is not between %s and %s", t, MinTimeout, MaxTimeout)
	}
	return nil
}

// encodeEvent is one line of an answer.
func encodeEvent(ev Event) []byte {
	data, err := json.Marshal(ev)
	if err != nil { // only a Result that is not JSON, which the server never sends
		data, _ = json.Marshal(Event{Final: &Final{Code: 1, Error: "the answer could not be encoded: " + err.Error()}})
	}
	return append(data, '\n')
}
