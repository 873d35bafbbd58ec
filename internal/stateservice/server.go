package stateservice

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/sitectl/sitectl/internal/site"
	"github.com/sitectl/sitectl/internal/term"
)

// Backend is what the service does for a request it has let through: what
// root's sitectl does for the same verb. The command line implements it,
// so that root and deployers run the same code.
type Backend interface {
	// LoadSite reads and checks the site file of one site.
	LoadSite(name string) (*site.Site, error)
	// Sites are the valid sites of the config directory.
	Sites() ([]*site.Site, error)
	// Change runs a change verb on site s for caller, sending progress
	// lines. ctx ends when the caller hangs up: that may stop a wait for
	// the site's lock, never a change that has started. interrupt ends,
	// with an *Interrupted cause, when the caller sends an Interrupt: the
	// change is interrupted as root's sitectl's is by its first SIGINT
	// (the wait for the lock ends, a new mode not yet shown to serve is
	// rolled back and the previous one verified). The result is the
	// change's report, also when it failed. still is asked once the
	// site's lock is held, before anything changes: the site as its file
	// says now, if the caller is still granted it. A deployer whose grant
	// root took away while they waited for another sitectl changes
	// nothing.
	Change(ctx, interrupt context.Context, req Request, s *site.Site, caller Caller, progress func(string), still func() (*site.Site, error)) (any, error)
	// Status is what `sitectl status|list --json` prints for the sites,
	// and for missing, named sites that do not exist, what root's status
	// says of them.
	Status(ctx context.Context, verb string, sites, missing []string) (any, error)
	// History is what `sitectl history --json` prints for the site.
	History(s *site.Site, last int) (any, error)
	// Logs is the site's journal, as `sitectl logs` shows it to root,
	// for a logs request (Last, Since, Output), bounded by MaxLogLines,
	// MaxLogText and LogsTimeout: a *Logs. ctx ends when the caller
	// hangs up.
	Logs(ctx context.Context, s *site.Site, req Request) (any, error)
	// Describe is the exit code, message and hints of an error, as
	// sitectl would report it.
	Describe(err error) Final
}

// Why the service refuses a request (with errors.Is), besides
// ErrBadRequest and ErrNotGranted.
var (
	// ErrBusy: the caller, or everyone, holds as many connections as
	// allowed.
	ErrBusy = errors.New("sitectl's state service is busy")
	// ErrSiteUnusable: the site file cannot be read or has mistakes; only
	// root is told which.
	ErrSiteUnusable = errors.New("the site file cannot be used")
)

// Defaults of Server.
const (
	defaultRequestTimeout = 10 * time.Second
	defaultWriteTimeout   = 10 * time.Second
	defaultPerUID         = 8
	defaultTotal          = 64
	defaultLogBurst       = 100
	defaultLogInterval    = 30 * time.Second
)

// Server is the state service on a listening socket. Zero values mean
// defaults.
type Server struct {
	Backend Backend
	// Lookup resolves grants; default SystemLookup.
	Lookup Lookup
	// Creds reads the caller of a connection; default PeerCaller.
	Creds func(net.Conn) (Caller, error)
	// RequestTimeout bounds the arrival of the request; WriteTimeout each
	// write of the answer.
	RequestTimeout, WriteTimeout time.Duration
	// PerUID and Total bound the connections held at once, by one uid and
	// by all.
	PerUID, Total int
	// Logf gets one line per request, for the journal. A uid other than
	// root gets at most LogBurst lines each LogInterval; past that, its
	// requests are counted, and one line at the interval's end says how
	// many were not logged one by one. journald drops every line of a
	// service past its own rate limit (10,000 lines in 30 s by default),
	// so without this one member of sitectl-deploy looping on refused
	// requests would silence the lines of everyone else's changes.
	Logf        func(format string, args ...any)
	LogBurst    int
	LogInterval time.Duration

	mu     sync.Mutex
	perUID map[int]int
	total  int
	logs   map[int]*logWindow
	// serving counts the calls of Serve under way: the uids' log windows
	// are the Server's, and the last Serve to end flushes them, once no
	// request of any listener can log into them any more.
	serving int
}

// logWindow is what one uid logged in the current LogInterval.
type logWindow struct {
	start   time.Time
	lines   int
	dropped int
	flush   *time.Timer
}

func (s *Server) defaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.Lookup == nil {
		s.Lookup = SystemLookup
	}
	if s.Creds == nil {
		s.Creds = func(c net.Conn) (Caller, error) {
			uc, ok := c.(*net.UnixConn)
			if !ok {
				return Caller{}, errors.New("not a unix socket connection")
			}
			return PeerCaller(uc)
		}
	}
	if s.RequestTimeout <= 0 {
		s.RequestTimeout = defaultRequestTimeout
	}
	if s.WriteTimeout <= 0 {
		s.WriteTimeout = defaultWriteTimeout
	}
	if s.PerUID <= 0 {
		s.PerUID = defaultPerUID
	}
	if s.Total <= 0 {
		s.Total = defaultTotal
	}
	if s.Logf == nil {
		s.Logf = func(string, ...any) {}
	}
	if s.LogBurst <= 0 {
		s.LogBurst = defaultLogBurst
	}
	if s.LogInterval <= 0 {
		s.LogInterval = defaultLogInterval
	}
	if s.perUID == nil {
		s.perUID = map[int]int{}
	}
	if s.logs == nil {
		s.logs = map[int]*logWindow{}
	}
}

// logf logs a line of uid's request, within the uid's share of the
// journal (LogBurst lines each LogInterval; root's are all logged).
func (s *Server) logf(uid int, format string, args ...any) {
	if uid != 0 && !s.logTurn(uid) {
		return
	}
	s.Logf(format, args...)
}

// logTurn tells whether uid may log one more line now, and counts the
// line as dropped when it may not.
func (s *Server) logTurn(uid int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	w := s.logs[uid]
	now := time.Now()
	if w == nil || w.dropped == 0 && now.Sub(w.start) >= s.LogInterval {
		w = &logWindow{start: now}
		s.logs[uid] = w
	}
	if w.lines < s.LogBurst {
		w.lines++
		return true
	}
	if w.dropped++; w.flush == nil {
		w.flush = time.AfterFunc(s.LogInterval-now.Sub(w.start), func() { s.flushLog(uid) })
	}
	return false
}

// flushLog ends uid's window in which lines were dropped, with one line
// that says how many.
func (s *Server) flushLog(uid int) {
	s.mu.Lock()
	w := s.logs[uid]
	delete(s.logs, uid)
	s.mu.Unlock()
	if w == nil || w.dropped == 0 {
		return
	}
	if w.flush != nil {
		w.flush.Stop()
	}
	s.Logf("uid %d: %d more requests since %s not logged one by one: over %d lines in %s", uid, w.dropped, w.start.Format(time.RFC3339), s.LogBurst, s.LogInterval)
}

// servedLast ends a Serve whose requests are all answered, and flushes the
// logs if no other Serve of s is under way.
func (s *Server) servedLast() {
	s.mu.Lock()
	s.serving--
	last := s.serving == 0
	s.mu.Unlock()
	if last {
		s.flushLogs()
	}
}

// flushLogs ends every window in which lines were dropped.
func (s *Server) flushLogs() {
	s.mu.Lock()
	var uids []int
	for uid, w := range s.logs {
		if w.dropped > 0 {
			uids = append(uids, uid)
		}
	}
	s.mu.Unlock()
	for _, uid := range uids {
		s.flushLog(uid)
	}
}

// Serve answers connections on ln until ctx ends, then waits for the
// requests under way: a change that has started finishes and is recorded.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	s.defaults()
	s.mu.Lock()
	s.serving++
	s.mu.Unlock()
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	defer s.servedLast()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		conn, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) || errors.Is(err, syscall.ECONNABORTED) {
				// Out of file descriptors, say: the connections held
				// end, and so does this.
				time.Sleep(100 * time.Millisecond)
				continue
			}
			return fmt.Errorf("cannot accept connections: %w", err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.handle(conn)
		}()
	}
}

// handle answers one connection: who, whether it may, what it asks, the
// answer.
func (s *Server) handle(conn net.Conn) {
	defer conn.Close()
	caller, err := s.Creds(conn)
	if err != nil {
		s.Logf("a connection without credentials: %v", err)
		return
	}
	out := &answer{conn: conn, timeout: s.WriteTimeout}
	if !s.admit(caller.UID) {
		out.final(s.Backend.Describe(fmt.Errorf("%w: uid %d holds %d connections already, or all together hold %d", ErrBusy, caller.UID, s.PerUID, s.Total)))
		s.logf(caller.UID, "uid %d (pid %d): refused: too many connections", caller.UID, caller.PID)
		return
	}
	defer s.release(caller.UID)
	conn.SetReadDeadline(time.Now().Add(s.RequestTimeout))
	in := bufio.NewReaderSize(conn, MaxRequest+1)
	req, err := decodeRequest(in)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		err = fmt.Errorf("%w: no request within %s", ErrBadRequest, s.RequestTimeout)
	}
	if err != nil {
		out.final(s.Backend.Describe(err))
		s.logf(caller.UID, "uid %d (pid %d): refused: %s", caller.UID, caller.PID, term.Escape(err.Error()))
		return
	}
	conn.SetReadDeadline(time.Time{})
	what := req.Verb + " " + req.Site
	if req.Mode != "" {
		what += " " + req.Mode
	}
	// A change that took the site's lock is always logged: the lines a
	// uid may drop are those of requests that change nothing, so that a
	// deployer cannot use up their own share to make a change of theirs
	// go unrecorded. Such changes cannot flood: each waits for its
	// site's lock. A change refused before it (a site not granted or not
	// there, a mode the site lacks, a bad timeout, --no-block on a busy
	// site) changes nothing, and counts as any other request: looping on
	// one otherwise filled the journal past journald's own rate limit,
	// which then dropped the lines of everyone's changes.
	var locked atomic.Bool
	logf := func(uid int, format string, args ...any) {
		if locked.Load() {
			s.Logf(format, args...)
			return
		}
		s.logf(uid, format, args...)
	}
	ctx, interrupt, stop := listen(in, func(sig string) {
		logf(caller.UID, "uid %d (pid %d): %s: interrupted by %s", caller.UID, caller.PID, strings.TrimSpace(what), sig)
	})
	defer stop()
	final := s.dispatch(ctx, interrupt, req, caller, out.progress, &locked)
	out.final(final)
	result := "ok"
	if final.Error != "" {
		result = fmt.Sprintf("exit %d: %s", final.Code, final.Error)
	}
	logf(caller.UID, "uid %d (pid %d): %s: %s", caller.UID, caller.PID, strings.TrimSpace(what), term.Escape(result))
}

// admit takes a connection slot for uid, if one is free.
func (s *Server) admit(uid int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.total >= s.Total || s.perUID[uid] >= s.PerUID {
		return false
	}
	s.total++
	s.perUID[uid]++
	return true
}

func (s *Server) release(uid int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.total--
	if s.perUID[uid]--; s.perUID[uid] == 0 {
		delete(s.perUID, uid)
	}
}

// listen reads what the caller sends after its request (in), at most
// MaxRequest bytes: nothing, or an Interrupt line. hangup ends when the
// caller hangs up (closes the connection or its writing side) or sends
// more than that; interrupt ends at the first Interrupt, with an
// *Interrupted cause, after onInterrupt is told its signal. Any other line
// is dropped. stop ends both.
func listen(in *bufio.Reader, onInterrupt func(sig string)) (hangup, interrupt context.Context, stop func()) {
	hangup, hungUp := context.WithCancel(context.Background())
	interrupt, interrupted := context.WithCancelCause(context.Background())
	go func() {
		defer hungUp()
		read, partial := 0, false
		for read <= MaxRequest {
			line, err := in.ReadSlice('\n')
			read += len(line)
			switch {
			case errors.Is(err, bufio.ErrBufferFull):
				partial = true // a line too long to be an Interrupt
			case err != nil:
				return
			case partial:
				partial = false
			case read <= MaxRequest && interrupt.Err() == nil:
				if i, ok := decodeInterrupt(line[:len(line)-1]); ok {
					onInterrupt(i.Signal)
					interrupted(&Interrupted{Signal: i.Signal})
				}
			}
		}
	}()
	return hangup, interrupt, func() {
		hungUp()
		interrupted(nil)
	}
}

// dispatch runs a request and makes its final answer.
// dispatch runs a request and makes its final answer. locked is set
// once a change holds the site's lock (the backend asks still).
func (s *Server) dispatch(ctx, interrupt context.Context, req Request, caller Caller, progress func(string), locked *atomic.Bool) Final {
	result, err := s.do(ctx, interrupt, req, caller, progress, locked)
	var data []byte
	if result != nil {
		var merr error
		if data, merr = json.Marshal(result); merr != nil {
			err = errors.Join(err, merr)
		} else if len(data) > MaxResponse {
			data, err = nil, fmt.Errorf("the answer would be %d bytes, more than the %d allowed: ask for the status of fewer sites, by name", len(data), MaxResponse)
		}
	}
	f := Final{}
	if err != nil {
		f = s.Backend.Describe(err)
	}
	f.Result = data
	return f
}

func (s *Server) do(ctx, interrupt context.Context, req Request, caller Caller, progress func(string), locked *atomic.Bool) (any, error) {
	switch {
	case req.IsChange():
		st, err := s.granted(req.Site, caller)
		if err != nil {
			return nil, err
		}
		still := func() (*site.Site, error) {
			locked.Store(true)
			return s.granted(req.Site, caller)
		}
		return s.Backend.Change(ctx, interrupt, req, st, caller, progress, still)
	case req.Verb == VerbHistory:
		st, err := s.granted(req.Site, caller)
		if err != nil {
			return nil, err
		}
		return s.Backend.History(st, req.Last)
	case req.Verb == VerbLogs:
		st, err := s.granted(req.Site, caller)
		if err != nil {
			return nil, err
		}
		return s.Backend.Logs(ctx, st, req)
	}
	names, missing, err := s.visible(req.Sites, caller)
	if err != nil {
		return nil, err
	}
	return s.Backend.Status(ctx, req.Verb, names, missing)
}

// granted loads a site the caller may deploy. Root learns why a site file
// cannot be used; anyone else only that it cannot, or that it does not
// exist: the file may hold what they may not see.
func (s *Server) granted(name string, c Caller) (*site.Site, error) {
	st, err := s.Backend.LoadSite(name)
	switch {
	case err != nil && c.UID != 0 && !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("site %s: %w; root can see why with sitectl check", name, ErrSiteUnusable)
	case err != nil:
		return nil, err
	case !Allowed(st, c, s.Lookup):
		return nil, fmt.Errorf("uid %d may not deploy site %s: its site file does not name them in deployers: %w", c.UID, name, ErrNotGranted)
	}
	return st, nil
}

// visible are the sites a status or list shows the caller: those named,
// each of which the caller must be granted, or, when none are named, every
// valid site the caller is granted (root: all). missing are the named
// sites that do not exist, which status leaves out, as root's does, after
// the others; they are not looked for in systemd, whose units of a site
// whose file is gone nobody is granted.
func (s *Server) visible(names []string, c Caller) (shown, missing []string, _ error) {
	if len(names) > 0 {
		shown = []string{}
		for _, n := range names {
			_, err := s.granted(n, c)
			switch {
			case errors.Is(err, fs.ErrNotExist):
				missing = append(missing, n)
			case err != nil:
				return nil, nil, err
			default:
				shown = append(shown, n)
			}
		}
		return shown, missing, nil
	}
	sites, err := s.Backend.Sites()
	if err != nil {
		return nil, nil, err
	}
	out := []string{}
	lookup := remembered(s.Lookup)
	for _, st := range sites {
		if Allowed(st, c, lookup) {
			out = append(out, st.Name)
		}
	}
	return out, nil, nil
}

// answer writes an answer's lines, each within the write timeout. Once a
// write fails (the caller left, or does not read), the rest is dropped:
// the request goes on without its caller.
type answer struct {
	mu      sync.Mutex
	conn    net.Conn
	timeout time.Duration
	lines   int
	broken  bool
}

func (a *answer) write(ev Event) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.broken {
		return
	}
	a.conn.SetWriteDeadline(time.Now().Add(a.timeout))
	if _, err := a.conn.Write(encodeEvent(ev)); err != nil {
		a.broken = true
	}
}

// progress sends a progress line, cut to MaxProgress bytes; after
// MaxProgressLines lines, nothing more.
func (a *answer) progress(line string) {
	a.mu.Lock()
	a.lines++
	n := a.lines
	a.mu.Unlock()
	if n > MaxProgressLines {
		return
	}
	if len(line) > MaxProgress {
		line = strings.ToValidUTF8(line[:MaxProgress], "")
	}
	a.write(Event{Progress: line})
}

func (a *answer) final(f Final) { a.write(Event{Final: &f}) }
