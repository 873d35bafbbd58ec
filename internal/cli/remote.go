package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/sitectl/sitectl/activation"
	"github.com/sitectl/sitectl/internal/dialer"
	"github.com/sitectl/sitectl/internal/flow"
	"github.com/sitectl/sitectl/internal/modes"
	"github.com/sitectl/sitectl/internal/paths"
	"github.com/sitectl/sitectl/internal/pubpath"
	"github.com/sitectl/sitectl/internal/site"
	"github.com/sitectl/sitectl/internal/sitecache"
	"github.com/sitectl/sitectl/internal/sockheld"
	"github.com/sitectl/sitectl/internal/stateservice"
	"github.com/sitectl/sitectl/internal/status"
	"github.com/sitectl/sitectl/internal/term"
)

// remote tells whether this sitectl asks sitectl's state service instead of
// doing the work itself: for everyone but root. Only root reads and writes
// the state, and only root asks systemd to restart a site.
func (e *env) remote() bool { return effectiveUID() != 0 }

// stateSocket is where sitectl's state service listens.
func (e *env) stateSocket() string { return paths.StateSocket(os.Getenv) }

// remoteChange asks the state service for a change, showing its progress
// lines, and returns its report and exit code. When interrupt ends (the
// first SIGINT or SIGTERM, see interruptible), the service is asked to
// interrupt the change as root's sitectl's would be. The report is nil
// when the service sent none: it refused the request before it had the
// site (one that does not exist, has mistakes or is not granted, a bad
// request), or it could not be asked or did not answer, and then the
// change may have happened. Root's sitectl prints no report for the
// same refusals, and a report made up here would say that the change
// never began.
func (e *env) remoteChange(ctx, interrupt context.Context, req stateservice.Request) (*flow.Report, error) {
	var raw json.RawMessage
	err := e.remoteCall(ctx, interrupt, req, &raw)
	if len(raw) == 0 {
		if err == nil {
			err = errors.New("sitectl's state service answered without the change's report")
		}
		return nil, err
	}
	var rep flow.Report
	if jerr := json.Unmarshal(raw, &rep); jerr != nil {
		return nil, errors.Join(err, fmt.Errorf("sitectl's state service answered something else than sitectl does: %w", jerr))
	}
	return &rep, err
}

// remoteCall sends req to the state service and decodes the result into
// result; the error has the exit code the service gave, or the one for a
// service that could not be asked. interrupt (nil: none), once ended by a
// signal, is passed on to the service, and the call goes on to its answer.
func (e *env) remoteCall(ctx, interrupt context.Context, req stateservice.Request, result any) error {
	var sigs chan string
	if interrupt != nil {
		sigs = make(chan string, 1)
		stop := context.AfterFunc(interrupt, func() {
			var s *signalled
			if errors.As(context.Cause(interrupt), &s) {
				sigs <- unix.SignalName(s.sig)
			}
		})
		defer stop()
	}
	final, err := stateservice.Call(ctx, e.stateSocket(), req, func(line string) { e.progressf("%s", line) }, sigs)
	if err != nil {
		return callError(err)
	}
	if len(final.Result) > 0 {
		if err := json.Unmarshal(final.Result, result); err != nil {
			return fmt.Errorf("sitectl's state service answered something else than sitectl does: %w", err)
		}
	}
	if final.Code == 0 && final.Error == "" {
		return nil
	}
	code := final.Code
	if code < exitFailed || code > exitUnavailable {
		code = exitFailed
	}
	return withCode(code, errors.New(final.Error), final.Hints...)
}

// callError gives a failure to ask the state service its exit code: a
// socket that refused the caller is a permission (6); a service that is
// not there or ended the connection before it answered is unavailable
// (7), and then nobody can tell from here whether the change happened.
func callError(err error) error {
	switch {
	case errors.Is(err, stateservice.ErrNoAccess):
		return withCode(exitDenied, err, "only root and members of the group sitectl-deploy may ask sitectl's state service; ask root to add you, and to name you in the site file's deployers")
	case errors.Is(err, stateservice.ErrUnreachable):
		return withCode(exitUnavailable, err, "is sitectl-state.socket running? (systemctl status sitectl-state.socket)")
	case errors.Is(err, stateservice.ErrCut):
		return withCode(exitUnavailable, err, "a change may have happened or still be under way: see `sitectl status` and `sitectl history`")
	}
	return err
}

// backend is what sitectl's state service does for a request it let
// through: exactly what root's sitectl does for the same verb.
type backend struct {
	e *env
	// memo keeps the sites the service parsed, for Sites; nil: every
	// call parses every file.
	memo *siteMemo
}

func (b backend) LoadSite(name string) (*site.Site, error) {
	s, err := b.e.loadSite(name)
	var gone noSuchSite
	if errors.As(err, &gone) {
		// Without root's hints: whether a site that is not there ran
		// here before is not a deployer's to learn.
		return nil, withCode(exitNotFound, gone)
	}
	return s, err
}

func (b backend) Sites() ([]*site.Site, error) {
	if b.memo == nil {
		res, err := site.LoadDir(b.e.dirs.Config, b.e.held())
		return res.Sites, err
	}
	return b.memo.load(b.e.dirs.Config, b.e.held(), time.Now())
}

// siteMemo keeps, in the long-running state service, the sites it parsed,
// by file name and the file's identity (device, inode, size, modification
// and change times), so that a deployer's list and status of all sites
// check their grants with a stat of each file instead of a parse of every
// site file. At 10,000 sites that parse cost the service 0.3 s of CPU for
// every such request, whoever asked, one granted no site included. The
// path and socket directory checks still run for every file at every load
// (site.LoadDirReusing); a file changed in the clock tick of the load is
// not kept (sitecache.Settled), so its next change cannot hide behind an
// identity that did not move.
type siteMemo struct {
	mu    sync.Mutex
	sites map[string]memoSite
}

type memoSite struct {
	id site.FileID
	s  *site.Site
}

// load is site.LoadDir of dir, reusing the sites of unchanged files.
func (m *siteMemo) load(dir string, held site.Held, start time.Time) ([]*site.Site, error) {
	m.mu.Lock()
	prev := m.sites
	m.mu.Unlock()
	res, origins, err := site.LoadDirReusing(dir, func(name string, id site.FileID) *site.Site {
		if p, ok := prev[name]; ok && p.id == id {
			return p.copy()
		}
		return nil
	}, held)
	if err != nil {
		return nil, err
	}
	next := make(map[string]memoSite, len(res.Sites))
	for _, s := range res.Sites {
		if o, ok := origins[s.File]; ok && sitecache.Settled(o.ID, start) {
			next[filepath.Base(s.File)] = memoSite{id: o.ID, s: memoSite{s: s}.copy()}
		}
	}
	m.mu.Lock()
	m.sites = next
	m.mu.Unlock()
	return res.Sites, nil
}

// copy is a site of its own for one load: the loader sets its name and
// file and resolves its listeners again, and loads run at once.
func (p memoSite) copy() *site.Site {
	c := *p.s
	c.Listeners = slices.Clone(p.s.Listeners)
	return &c
}

// Change runs a deployer's change as root's sitectl runs it. An Interrupt
// from the caller interrupts it as root's sitectl's first SIGINT or
// SIGTERM does: the wait for the lock ends, a new mode not yet shown to
// serve is rolled back and the previous one verified.
func (b backend) Change(ctx, interrupt context.Context, req stateservice.Request, s *site.Site, c stateservice.Caller, progress func(string), still func() (*site.Site, error)) (any, error) {
	who := modes.Local{Store: modes.Store{Dir: b.e.dirs.State}, UID: c.UID, PID: os.Getpid()}
	fi, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	stop := context.AfterFunc(interrupt, func() {
		var in *stateservice.Interrupted
		if errors.As(context.Cause(interrupt), &in) {
			cancel(interruption(unix.SignalNum(in.Signal)))
		}
	})
	defer stop()
	ctx = mergeCancel(ctx, fi)
	return b.e.localChange(ctx, fi, req, s, who, func(format string, args ...any) { progress(fmt.Sprintf(format, args...)) }, b.e.connectSoon(ctx, req.Timeout()), still)
}

func (b backend) Status(ctx context.Context, verb string, names, missing []string) (any, error) {
	if len(names) == 0 { // not "all": none the caller may see
		return remoteStatus{Sites: []status.Site{}, Missing: append([]string{}, missing...)}, nil
	}
	req, cut := gatherFor(verb, names)
	res, err := b.e.localGather(ctx, req)
	if err != nil {
		return nil, err
	}
	if cut {
		var gone []string
		res.Sites, gone = cutTo(res.Sites, names)
		res.Missing = append(res.Missing, gone...)
	}
	return remoteStatus{Sites: sitesJSON(res.Sites), Missing: append(append([]string{}, res.Missing...), missing...)}, nil
}

// manySites is how many sites a deployer's list asks for from which the
// state service gathers every site, as root's list does (one listing of
// the units, list's caches), and keeps those asked for (cutTo): by name,
// each site's file is read again and its units read one by one, which at
// 10,000 sites made a list of them all take 3.5 s where root's took 0.2 s.
// Not status: root's status of every site reads much more of each (its
// journal, its processes), which a deployer of a few hundred sites among
// thousands would pay for all.
const manySites = 64

// gatherFor is the request that gathers names for verb; cut says that it
// gathers every site, to be cut to names.
func gatherFor(verb string, names []string) (req status.Request, cut bool) {
	req = status.Request{Names: names, Brief: verb == stateservice.VerbList}
	if req.Brief && len(names) >= manySites {
		req.Names = nil
		return req, true
	}
	return req, false
}

// cutTo keeps of sites those named, in the order of names, as status by
// name gives them; gone are the names it has no site for (their files
// went since the caller's grants were checked).
func cutTo(sites []status.Site, names []string) (kept []status.Site, gone []string) {
	byName := make(map[string]int, len(sites))
	for i, s := range sites {
		byName[s.Site] = i
	}
	kept = make([]status.Site, 0, len(names))
	for _, n := range names {
		if i, ok := byName[n]; ok {
			kept = append(kept, sites[i])
		} else {
			gone = append(gone, n)
		}
	}
	return kept, gone
}

func (b backend) History(s *site.Site, last int) (any, error) { return b.e.localHistory(s, last) }

func (b backend) Logs(ctx context.Context, s *site.Site, req stateservice.Request) (any, error) {
	return b.e.journalText(ctx, s.Name, req)
}

// Describe gives an error the exit code, message and hints sitectl prints.
func (b backend) Describe(err error) stateservice.Final {
	switch {
	case errors.Is(err, stateservice.ErrBadRequest):
		err = withCode(exitUsage, err)
	case errors.Is(err, stateservice.ErrNotGranted):
		err = withCode(exitDenied, err, "root grants a site to users and groups with deployers in its site file")
	case errors.Is(err, stateservice.ErrBusy):
		err = withCode(exitUnavailable, err, "close other connections to it, or try again")
	case errors.Is(err, stateservice.ErrSiteUnusable):
		err = withCode(exitUsage, err)
	}
	return stateservice.Final{Code: codeOf(err), Error: err.Error(), Hints: hintsOf(err)}
}

func stateServerCmd(e *env) *cobra.Command {
	var srv stateservice.Server
	var dialSocket string
	c := &cobra.Command{
		Use:     "state-server",
		GroupID: "internal",
		Short:   "Serve deployers' changes and reads of sites as root (sitectl-state.service)",
		Long: `Run as root by sitectl-state.service on the socket sitectl-state.socket passes
(/run/sitectl/state.sock, group sitectl-deploy). For a user other than root, sitectl
mode, restart, reload, rollback, status, list and history ask it instead of doing
the work. It takes the caller's identity from the kernel, allows only the sites
whose file names the caller in deployers, and runs exactly what root's sitectl runs
for the same verb: a change takes the site's lock, records the mode, restarts the
site over D-Bus, verifies it, rolls it back if it does not come up, and writes the
history from what it saw. A change that has started finishes even if its caller
goes away; a caller's sitectl that gets SIGINT or SIGTERM says so on the connection,
and the change is interrupted as root's sitectl's is (a new mode not yet shown to
serve is rolled back and the previous one verified). A request must arrive within --request-timeout; one uid may hold
--per-uid connections at once, everyone together --total. One line per request
goes to the journal: every change, and at most 100 other requests in 30 s of one
uid other than root (one more line counts the rest). The service has no network of its own: a change's probe
connects to a site's TCP listener through sitectl-dial.service (--dial-socket).`,
		Args: args(0, 0, "no arguments"),
		RunE: func(c *cobra.Command, _ []string) error {
			ln, err := stateListener()
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(c.Context(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			if dialSocket != "" {
				e.dialTCP = func(ctx context.Context, address string) (net.Conn, error) {
					return dialer.Dial(ctx, dialSocket, address)
				}
			}
			// The service answers deployers, and its unit hides /root,
			// /home and /run/user (ProtectHome=yes) and has its own /tmp
			// (PrivateTmp=yes): packaging/systemd/sitectl-state.service.
			e.public = &pubpath.Resolver{Unseen: []string{"/root", "/home", "/run/user", "/tmp", "/var/tmp"}}
			srv.Backend = backend{e: e, memo: &siteMemo{}}
			srv.Logf = func(format string, args ...any) { term.Fprintf(e.stderr, format+"\n", args...) }
			activation.Notify("READY=1")
			return srv.Serve(ctx, ln)
		},
	}
	c.Flags().DurationVar(&srv.RequestTimeout, "request-timeout", 10*time.Second, "close a connection whose request has not arrived after this long")
	c.Flags().IntVar(&srv.PerUID, "per-uid", 8, "connections one uid may hold at once")
	c.Flags().IntVar(&srv.Total, "total", 64, "connections everyone may hold at once")
	c.Flags().StringVar(&dialSocket, "dial-socket", paths.DefaultDialSocket, "where sitectl-dial.service connects to TCP listeners for the probe (empty: connect directly)")
	return c
}

func dialServerCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:     "dial-server",
		GroupID: "internal",
		Short:   "Connect to sites' TCP listeners for the state service (sitectl-dial.service)",
		Long: `Run unprivileged by sitectl-dial.service on the socket sitectl-dial.socket passes
(/run/sitectl/dial.sock, root's alone). sitectl's state service runs as root without
a network of its own; to verify a site it changed, it asks this service to connect
to the site's TCP listener, and gets the connection back over the socket.`,
		Args: args(0, 0, "no arguments"),
		RunE: func(c *cobra.Command, _ []string) error {
			ln, err := activatedListener("sitectl-dial.socket")
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(c.Context(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			activation.Notify("READY=1")
			return dialer.Serve(ctx, ln, func(format string, args ...any) { term.Fprintf(e.stderr, format+"\n", args...) })
		},
	}
}

// activatedListener is the one socket systemd passed from unit (Accept=no).
func activatedListener(unit string) (net.Listener, error) {
	files := activation.Files(true)
	if len(files) != 1 {
		return nil, fmt.Errorf("this needs the one socket of %s, and got %d", unit, len(files))
	}
	return fileListener(files[0])
}

func fileListener(f *os.File) (net.Listener, error) {
	ln, err := net.FileListener(f)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("the socket systemd passed: %w", err)
	}
	return ln, nil
}

// stateListener is the listening socket sitectl-state.socket passed, and
// makes the netlink socket it passed with it (ListenNetlink=inet-diag,
// created in the host's network namespace) the one this service asks
// which sockets listen there (sockheld.UseHostKernel). A unit without
// that socket (an older sitectl-state.socket) leaves the service reading
// PID 1's tables.
func stateListener() (net.Listener, error) {
	const unit = "sitectl-state.socket"
	files := activation.Files(true)
	var listener, kernel *os.File
	for _, f := range files {
		domain, err := unix.GetsockoptInt(int(f.Fd()), unix.SOL_SOCKET, unix.SO_DOMAIN)
		switch {
		case err != nil:
			return nil, fmt.Errorf("a socket %s passed: %w", unit, err)
		case domain == unix.AF_NETLINK && kernel == nil:
			kernel = f
		case domain != unix.AF_NETLINK && listener == nil:
			listener = f
		default:
			return nil, fmt.Errorf("this needs the listening socket of %s and at most its netlink socket, and got %d sockets", unit, len(files))
		}
	}
	if listener == nil {
		return nil, fmt.Errorf("this needs the listening socket of %s, and got %d sockets, none of them that", unit, len(files))
	}
	if kernel != nil {
		if err := sockheld.UseHostKernel(kernel); err != nil {
			return nil, err
		}
	}
	return fileListener(listener)
}
