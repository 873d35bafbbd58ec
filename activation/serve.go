package activation

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"
)

// DefaultDrainTimeout is how long [Serve] waits for in-flight requests when
// neither ServeOptions.DrainTimeout nor SITE_DRAIN_TIMEOUT says otherwise.
const DefaultDrainTimeout = 30 * time.Second

// DrainTimeoutEnv names the environment variable that sets the drain timeout
// (a Go duration such as "10s") when ServeOptions.DrainTimeout is zero.
const DrainTimeoutEnv = "SITE_DRAIN_TIMEOUT"

// ErrDrainTimeout is matched (with errors.Is) by the error [Serve] returns
// when in-flight requests did not finish in time and their connections were
// closed.
var ErrDrainTimeout = errors.New("in-flight requests did not finish in time, their connections were closed")

// ServeOptions tunes [Serve]. The zero value gives the defaults.
type ServeOptions struct {
	// DrainTimeout bounds how long in-flight requests may run once shutdown
	// has begun. Zero means SITE_DRAIN_TIMEOUT if set, else
	// DefaultDrainTimeout; a negative value closes connections at once.
	DrainTimeout time.Duration

	// Signals that start a graceful shutdown. Nil means SIGTERM (what
	// systemd sends on stop) and SIGINT; an empty non-nil slice disables
	// signal handling, leaving shutdown to ctx. A second such signal during
	// the drain closes the remaining connections at once.
	Signals []os.Signal

	// NoNotify disables the READY=1 and STOPPING=1 notifications, for
	// programs that report readiness themselves.
	NoNotify bool

	// OnReady, if set, is called once every listener is being served, right
	// after READY=1 is sent. It runs on Serve's goroutine and must return
	// promptly.
	OnReady func()

	// Children, if set, are stopped (SIGTERM, their grace, SIGKILL) once
	// the in-flight requests have drained, before Serve returns.
	Children *Children

	// OnDrain, if set, is called when shutdown begins, after STOPPING=1 is
	// sent and before in-flight requests are drained, with a short reason
	// such as "received signal terminated". It runs on Serve's goroutine and
	// must return promptly. It is the place to tell hijacked connections
	// (WebSockets) to close: Serve does not call the functions registered
	// with srv.RegisterOnShutdown.
	OnDrain func(reason string)
}

// Serve serves srv on every listener and manages its lifecycle for systemd:
//
//  1. It starts serving every listener and, once each of them is in its
//     accept loop, sends READY=1 (see [Notify]) and calls opts.OnReady.
//  2. It waits until ctx is done, one of opts.Signals arrives (SIGTERM or
//     SIGINT by default) or serving a listener fails.
//  3. It turns keep-alive off for good (see [SwitchKeepAlives]), sends
//     STOPPING=1, calls opts.OnDrain, stops accepting connections
//     and waits for in-flight requests for up to the drain timeout (see
//     [ServeOptions.DrainTimeout]), then closes any connections left
//     (hijacked ones excepted, see below).
//
// Serve takes ownership of the listeners and closes them, and srv must not
// be used to serve elsewhere. It wraps srv.ConnState to follow connections
// (a hook already set there still runs). If srv.TLSConfig carries certificates, the
// listeners are served with TLS, and with it HTTP/2. The drain does not use
// srv.Shutdown (it drops a request read just as the drain began), so an
// HTTP/2 connection gets no GOAWAY: one between requests is closed as an
// idle HTTP/1.1 connection is, and a client's request sent at that moment
// is one it must retry. Behind a proxy that speaks HTTP/1.1 to the app,
// nothing is lost. For the same reason functions registered with
// srv.RegisterOnShutdown are never called, and a hijacked connection (a
// WebSocket) is neither waited for nor closed: it is no longer the
// server's, and Serve may return while it is open. Tell such connections
// to finish in opts.OnDrain, and wait for them before the program exits.
//
// Serve returns nil after a requested shutdown (ctx or signal) whose drain
// completed, an error matching [ErrDrainTimeout] if connections had to be
// closed, and other errors if it could not start, if sending READY=1 failed
// (systemd would otherwise wait for it until the start timeout), or if
// serving a listener failed. A failure to send STOPPING=1 is ignored.
func Serve(ctx context.Context, srv *http.Server, listeners []net.Listener, opts ServeOptions) error {
	s, err := newServing(srv, listeners, opts)
	if err != nil {
		return err
	}
	defer s.stopSignals()
	s.start()
	reason := s.wait(ctx)
	// Keep-alive goes off before anything else, OnDrain included: a
	// response finished from here on tells its client that the connection
	// closes, as the drain will close it.
	defer keepAlivesOffForDrain(srv)()
	if !opts.NoNotify {
		Stopping() // nothing useful to do if this fails
	}
	if opts.OnDrain != nil {
		opts.OnDrain(reason)
	}
	drainErr := s.drain()
	srv.Close()
	if opts.Children != nil {
		opts.Children.Stop()
	}
	return errors.Join(s.failure, drainErr)
}

// serving is one run of [Serve], in steps: start serves every listener,
// wait waits for the reason to shut down (sending READY=1 on the way), and
// drain lets in-flight requests finish.
type serving struct {
	srv         *http.Server
	listeners   []net.Listener
	opts        ServeOptions
	drainFor    time.Duration
	sigCh       chan os.Signal
	stopSignals func()
	conns       *connTracker
	accepting   chan struct{} // one per listener in its accept loop
	results     chan serveResult
	returned    int   // results already received
	failure     error // why serving failed, if it did
}

// serveResult is how serving one listener ended.
type serveResult struct {
	addr net.Addr
	err  error
}

// newServing checks Serve's arguments and takes the signals; on an error
// the listeners are closed.
func newServing(srv *http.Server, listeners []net.Listener, opts ServeOptions) (*serving, error) {
	closeAll := func() {
		for _, l := range listeners {
			l.Close()
		}
	}
	if srv == nil {
		closeAll()
		return nil, errors.New("activation: Serve needs an *http.Server")
	}
	if len(listeners) == 0 {
		return nil, errors.New("activation: no listeners to serve")
	}
	drain, err := drainTimeout(opts.DrainTimeout)
	if err != nil {
		closeAll()
		return nil, err
	}
	s := &serving{srv: srv, listeners: listeners, opts: opts, drainFor: drain, sigCh: make(chan os.Signal, 2), stopSignals: func() {}}
	sigs := opts.Signals
	if sigs == nil {
		sigs = []os.Signal{syscall.SIGTERM, syscall.SIGINT}
	}
	if len(sigs) > 0 {
		signal.Notify(s.sigCh, sigs...)
		s.stopSignals = func() { signal.Stop(s.sigCh) }
	}
	return s, nil
}

// start serves every listener, with TLS when srv.TLSConfig has
// certificates.
func (s *serving) start() {
	tls := s.srv.TLSConfig
	useTLS := tls != nil && (len(tls.Certificates) > 0 || tls.GetCertificate != nil || tls.GetConfigForClient != nil)
	s.conns = trackConns(s.srv)
	s.accepting = make(chan struct{}, len(s.listeners))
	s.results = make(chan serveResult, len(s.listeners))
	for _, l := range s.listeners {
		wl := &acceptNotifier{Listener: l, accepting: s.accepting}
		go func() {
			var err error
			if useTLS {
				err = s.srv.ServeTLS(wl, "", "")
			} else {
				err = s.srv.Serve(wl)
			}
			s.results <- serveResult{l.Addr(), err}
		}()
	}
}

// wait sends READY=1 once every listener is in its accept loop, and
// returns why serving must end: ctx, a signal, or a failure (s.failure).
func (s *serving) wait(ctx context.Context) string {
	pending, readyC := len(s.listeners), s.accepting
	for {
		select {
		case <-readyC:
			if pending--; pending > 0 {
				continue
			}
			readyC = nil
			if reason := s.ready(); reason != "" {
				return reason
			}
		case r := <-s.results:
			// Before shutdown, serving stops only on failure.
			s.returned++
			s.failure = fmt.Errorf("activation: serving %s %s stopped: %w", r.addr.Network(), r.addr, r.err)
			return "serving failed"
		case <-ctx.Done():
			return context.Cause(ctx).Error()
		case sig := <-s.sigCh:
			return "received signal " + sig.String()
		}
	}
}

// ready tells systemd and the caller that every listener is served; a
// failure to send READY=1 is a reason to stop.
func (s *serving) ready() string {
	if !s.opts.NoNotify {
		if _, err := Ready(); err != nil {
			s.failure = err
			return "could not send READY=1"
		}
	}
	if s.opts.OnReady != nil {
		s.opts.OnReady()
	}
	return ""
}

// drain ends serving without srv.Shutdown: once it has begun, net/http
// drops a request it reads from a connection accepted just before, closing
// the connection unanswered. Under socket activation that is the request
// that arrived as SIGTERM did. So: no more keep-alive (Serve turned it
// off before OnDrain: idle connections closed then, busy ones close after
// their response), stop accepting, wait for the
// accept loops (after that every accepted connection is tracked), then
// wait until every connection has answered and closed, for at most the
// drain timeout; a second signal cuts that short.
func (s *serving) drain() error {
	drainCtx, cancel := context.WithTimeout(context.Background(), max(s.drainFor, 0))
	defer cancel()
	secondSignal := make(chan struct{})
	stopWatching := make(chan struct{})
	defer close(stopWatching)
	go func() {
		select {
		case <-s.sigCh:
			close(secondSignal)
			cancel()
		case <-stopWatching:
		}
	}()
	for _, l := range s.listeners {
		l.Close()
	}
	s.collectResults()
	if err := s.conns.wait(drainCtx); err != nil {
		select {
		case <-secondSignal:
			return fmt.Errorf("activation: drain cut short by a second signal: %w", ErrDrainTimeout)
		default:
			return fmt.Errorf("activation: drain timeout of %s exceeded: %w", s.drainFor, ErrDrainTimeout)
		}
	}
	return nil
}

// draining holds the servers whose Serve is draining: their keep-alive
// stays off whatever [SwitchKeepAlives] is told, so that every response
// of the drain says that its connection closes.
var draining = struct {
	mu      sync.Mutex
	servers map[*http.Server]bool
}{servers: map[*http.Server]bool{}}

// keepAlivesOffForDrain turns srv's keep-alive off for good, and returns
// the function that forgets srv once its drain is over.
func keepAlivesOffForDrain(srv *http.Server) (forget func()) {
	draining.mu.Lock()
	defer draining.mu.Unlock()
	draining.servers[srv] = true
	srv.SetKeepAlivesEnabled(false)
	return func() {
		draining.mu.Lock()
		delete(draining.servers, srv)
		draining.mu.Unlock()
	}
}

// setKeepAlives turns srv's keep-alive on or off, unless srv is draining,
// and returns whether it is on.
func setKeepAlives(srv *http.Server, on bool) bool {
	draining.mu.Lock()
	defer draining.mu.Unlock()
	on = on && !draining.servers[srv]
	srv.SetKeepAlivesEnabled(on)
	return on
}

// collectResults waits for every accept loop to end; a loop that ended
// with an error other than the close is a failure.
func (s *serving) collectResults() {
	for ; s.returned < len(s.listeners); s.returned++ {
		r := <-s.results
		if s.failure == nil && r.err != nil && !errors.Is(r.err, http.ErrServerClosed) && !errors.Is(r.err, net.ErrClosed) {
			s.failure = fmt.Errorf("activation: serving %s %s stopped: %w", r.addr.Network(), r.addr, r.err)
		}
	}
}

// connTracker follows the server's connections through its ConnState
// hook (the server's own hook, if any, still runs).
type connTracker struct {
	mu    sync.Mutex
	conns map[net.Conn]connInfo
}

type connInfo struct {
	state http.ConnState
	since time.Time
}

// newConnGrace is how long a connection that has sent nothing yet is waited
// for during a drain, as net/http's own Shutdown does.
const newConnGrace = 5 * time.Second

func trackConns(srv *http.Server) *connTracker {
	t := &connTracker{conns: map[net.Conn]connInfo{}}
	hook := srv.ConnState
	srv.ConnState = func(c net.Conn, st http.ConnState) {
		t.mu.Lock()
		switch st {
		case http.StateClosed, http.StateHijacked:
			delete(t.conns, c)
		default:
			t.conns[c] = connInfo{st, time.Now()}
		}
		t.mu.Unlock()
		if hook != nil {
			hook(c, st)
		}
	}
	return t
}

// wait returns once no connection is left, closing idle ones and ones that
// sent nothing within newConnGrace, or with ctx's error when the drain
// deadline comes first.
func (t *connTracker) wait(ctx context.Context) error {
	for {
		t.mu.Lock()
		busy := 0
		for c, info := range t.conns {
			if info.state == http.StateIdle || info.state == http.StateNew && time.Since(info.since) > newConnGrace {
				c.Close()
				delete(t.conns, c)
				continue
			}
			busy++
		}
		t.mu.Unlock()
		if busy == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// acceptNotifier reports the first call to Accept, which shows that
// http.Server.Serve has entered its accept loop for this listener.
type acceptNotifier struct {
	net.Listener
	once      sync.Once
	accepting chan<- struct{}
}

func (l *acceptNotifier) Accept() (net.Conn, error) {
	l.once.Do(func() { l.accepting <- struct{}{} })
	return l.Listener.Accept()
}

func drainTimeout(d time.Duration) (time.Duration, error) {
	if d != 0 {
		return d, nil
	}
	v, ok := os.LookupEnv(DrainTimeoutEnv)
	if !ok || v == "" {
		return DefaultDrainTimeout, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("activation: %s=%q is not a valid drain timeout: want a non-negative Go duration such as 30s or 1m30s", DrainTimeoutEnv, v)
	}
	return d, nil
}
