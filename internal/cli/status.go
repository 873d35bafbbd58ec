package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"runtime"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/sitectl/sitectl/internal/cleanup"
	"github.com/sitectl/sitectl/internal/control"
	"github.com/sitectl/sitectl/internal/flow"
	"github.com/sitectl/sitectl/internal/generator"
	"github.com/sitectl/sitectl/internal/hugeheap"
	"github.com/sitectl/sitectl/internal/paths"
	"github.com/sitectl/sitectl/internal/site"
	"github.com/sitectl/sitectl/internal/sockheld"
	"github.com/sitectl/sitectl/internal/stateservice"
	"github.com/sitectl/sitectl/internal/status"
	"github.com/sitectl/sitectl/internal/term"
)

// Exit codes of sitectl status, systemctl status's (the LSB's for init
// scripts).
const (
	statusRunning    = 0 // every site asked about runs (or is idle with its sockets listening)
	statusNotRunning = 3 // a site is stopped, failed or restarting after a crash
	statusNoSuchSite = 4 // a site asked about does not exist
)

// statusExitHelp is how status documents its own exit codes.
const statusExitHelp = `Exit codes (systemctl status's, from the LSB):
  0  every site runs: its sockets listen, and its service runs, starts, stops or
     reloads, or is idle (the first request starts it)
  2  bad usage (a name that is not valid)
  3  a site does not run: a socket is stopped or failed, the service failed, or it
     is restarting after a crash
  4  a site does not exist
  6  permission denied: a deployer asked of a site not granted to them, or may not
     ask sitectl's state service
  7  systemd or the system bus cannot be reached`

func statusCmd(e *env) *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:     "status [SITE...]",
		GroupID: "run",
		Short:   "Show the state of sites (all when none are named): down, idle, running or crash-looping",
		Long: `Show sites the way systemctl status shows units: whether the site runs (and the exit
code says so), the state of its sockets (listening, or stopped: visitors are refused),
of its service (with the restarts after failures since it was last started, and how
it last failed, from the journal), of its touch-to-reload trigger (armed or not), and
of its site file (valid, or invalid since when, with its mistakes, and whether the
site runs the last good version); the recorded mode and previous mode (and whether
the site file no longer has either), whether the
running process runs in that mode, and with the mode's variables as the site file
has them now (it names those it runs with older values, never the values), a switch
in progress or cut short, the listeners
and the release (the working directory, symlinks resolved), and the site's units
that systemd loaded other than sitectl generates them: from a copy that shadows the
generated unit (and whether it was made from an older version of the site file), or
with drop-ins, with the systemctl revert that takes them out (list does not read them).

Times are printed with their zone and how long ago they were. NO_COLOR turns colour
off; a locale that is not UTF-8 gets ASCII instead of the glyphs. --json prints the
fields described in sitectl-json(7).

` + statusExitHelp,
		ValidArgsFunction: e.completeSites,
		RunE: func(c *cobra.Command, names []string) error {
			res, err := e.gather(c.Context(), status.Request{Names: names})
			if err != nil {
				return err
			}
			e.trace.Step("gathered the status of %d sites", len(res.Sites))
			if asJSON {
				if err := writeSitesJSON(e.stdout, res.Sites); err != nil {
					return err
				}
			} else if err := e.printStatuses(res.Sites); err != nil {
				return err
			}
			e.trace.Step("printed the status")
			return e.statusCode(res)
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "report as JSON on standard output")
	return c
}

// printStatuses prints the sites as status does without --json. The
// printers do not return a write's error: it keeps the first (a full
// disk), so that status does not exit as if it had printed.
func (e *env) printStatuses(sites []status.Site) error {
	out := &reportOut{w: e.stdout}
	pe := *e
	pe.stdout = out
	for i, s := range sites {
		if i > 0 {
			term.Fprintln(out)
		}
		pe.printStatus(s)
	}
	if out.err != nil {
		return fmt.Errorf("cannot write the status to standard output: %w", out.err)
	}
	return nil
}

// statusCode prints what is missing and gives status's exit code.
func (e *env) statusCode(res status.Result) error {
	for _, name := range res.Missing {
		term.Fprintf(e.stderr, "sitectl: error: site %s does not exist: there is no %s\n", name, term.Escape(e.dirs.SiteFile(name)))
	}
	if len(res.Missing) > 0 {
		return reported{statusNoSuchSite}
	}
	for _, s := range res.Sites {
		if !s.Running {
			return reported{statusNotRunning}
		}
	}
	return nil
}

func listCmd(e *env) *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:     "list",
		GroupID: "run",
		Short:   "List all sites with their state, sockets, service and mode, one line each",
		Long: `List every site of the config directory, one line each: its state in one word
(running, idle, stopped, failed, restarting, ...), its site file (ok, invalid,
last-good: invalid, and the site runs its last good version, pinned: it failed to
start as it is, and the site runs its last good version, or gone: deleted, but the
site's units still run), its sockets (listening,
stopped: visitors are refused, failed), its service, its mode (* marks a switch in
progress or cut short), main PID, since when, and its listeners.

Made for thousands of sites: systemd is asked for one listing of the site units,
and the kernel once for what listens on the sites' ports and paths: an idle site
whose socket unit is active but holds no socket (its listener changed, then a
daemon-reload) is stopped, and a running one with a listener nothing listens on is
not running (its process serves on its copy of the old socket), as status says.
Where something listens it may be a running site's own copy of a socket systemd no
longer holds: sitectl status SITE tells that apart. The journal is not read, so list has no last failure or cleanup, and no restart
count of an inactive service: sitectl status SITE reads everything of a site.
Root's list keeps what it reads of each valid site file in ` + paths.ListCache + `,
and of each site's mode and state files in ` + paths.StateCache + ` (root's alone,
emptied at boot). It reads and parses again only the files whose identity (inode,
size, modification and change time) changed, or that changed in the last seconds,
and the state of a site with a switch pending; a cache of another sitectl build, or
a damaged one, is ignored.`,
		Args: args(0, 0, "no arguments"),
		RunE: func(c *cobra.Command, _ []string) error {
			res, err := e.gather(c.Context(), status.Request{Brief: true})
			if err != nil {
				return err
			}
			// One line each here: the mistakes go to standard error.
			for _, s := range res.Sites {
				for _, m := range s.SiteFile.Errors {
					term.Fprintf(e.stderr, "sitectl: warning: %s\n", term.Escape(fmt.Sprintf("%s:%d:%d: %s", m.File, m.Line, m.Column, m.Message)))
				}
			}
			if asJSON {
				return writeSitesJSON(e.stdout, res.Sites)
			}
			// tabwriter writes each cell and its padding on its own:
			// buffered, 10,000 sites are a few writes, not 200,000.
			bw := bufio.NewWriterSize(e.stdout, 64<<10)
			tw := tabwriter.NewWriter(bw, 0, 4, 2, ' ', 0)
			term.Fprintf(tw, "SITE\tSTATE\tFILE\tSOCKET\tSERVICE\tMODE\tPID\tSINCE\tLISTENERS\n")
			for _, s := range res.Sites {
				mode := s.Mode
				if mode == "" {
					mode = "?" // its state cannot be read: a warning says why
				}
				if s.Pending != nil {
					mode += "*"
				}
				file := s.SiteFile.State
				switch {
				case s.SiteFile.LastGood:
					file = "last-good"
				case s.SiteFile.Pinned != nil:
					file = "pinned"
				}
				term.Fprintf(tw, "%s\t%s\t%s\t%s\t%s/%s\t%s\t%d\t%s\t%s\n", s.Site, s.State, file, s.Socket, s.ActiveState, s.SubState,
					term.Escape(mode), s.MainPID, since(s.Since), strings.Join(s.Listen, ","))
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			return bw.Flush()
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "report as JSON on standard output")
	return c
}

// remoteStatus is what sitectl's state service sends a deployer for status
// and list: the sites the deployer may see.
type remoteStatus struct {
	Sites   []status.Site `json:"sites"`
	Missing []string      `json:"missing"`
}

// gather reads the status of sites with systemd and the journal: root
// itself, anyone else through sitectl's state service, which runs
// localGather for the sites the caller may deploy.
func (e *env) gather(ctx context.Context, req status.Request) (status.Result, error) {
	if !e.remote() {
		if len(req.Names) == 0 {
			adviseHugeHeap(paths.ListCache)
		}
		return e.localGather(ctx, req)
	}
	return e.remoteGather(ctx, req)
}

// remoteGather is gather through sitectl's state service.
func (e *env) remoteGather(ctx context.Context, req status.Request) (status.Result, error) {
	verb := stateservice.VerbStatus
	if req.Brief {
		verb = stateservice.VerbList
	}
	var rs remoteStatus
	if err := e.remoteCall(ctx, nil, stateservice.Request{Verb: verb, Sites: req.Names}, &rs); err != nil {
		if codeOf(err) == exitNotFound {
			// The service refuses a status naming a site that does not
			// exist with sitectl's 3, which status gives a site that
			// does not run: status's own code is 4, as root's.
			err = withCode(statusNoSuchSite, err, hintsOf(err)...)
		}
		return status.Result{}, err
	}
	return status.Result{Sites: rs.Sites, Missing: rs.Missing}, nil
}

// adviseHugeHeap asks for huge pages for the heap that reading every site
// is about to fill (package hugeheap) when root's list cache says there
// are many: about 70 bytes of cache and 5 KB of heap a site, so from some
// 900 sites on, with room for the heap of about 96 bytes a cache byte.
// Not in sitectl's state service, which lives on: only a command that
// starts with a small heap gains from it.
func adviseHugeHeap(listCache string) {
	fi, err := os.Lstat(listCache)
	if err != nil || !fi.Mode().IsRegular() || fi.Size() < hugeHeapFrom {
		return
	}
	// A failed advice leaves the heap as it was: nothing to report.
	_, _, _ = hugeheap.Advise(int(min(max(fi.Size()*96, 32<<20), 1<<30)))
}

// hugeHeapFrom is the size of root's list cache from which a listing of
// every site advises its heap for huge pages.
const hugeHeapFrom = 64 << 10

// localGather is gather as root.
func (e *env) localGather(ctx context.Context, req status.Request) (status.Result, error) {
	var missing []string
	if len(req.Names) > 0 {
		// Names are checked before systemd is asked: a bad name is a usage
		// error. Sites that all have no file are looked for in systemd
		// (their units may run on: a file deleted while its site served),
		// but need no bus to be reported missing when it cannot be reached.
		for _, n := range req.Names {
			if err := site.ValidateName(n); err != nil {
				return status.Result{}, withCode(exitUsage, err)
			}
			if _, err := os.Lstat(e.dirs.SiteFile(n)); errors.Is(err, fs.ErrNotExist) {
				missing = append(missing, n)
			}
		}
	}
	mgr, err := e.connect(ctx)
	if err != nil && len(req.Names) > 0 && len(missing) == len(req.Names) {
		return status.Result{Missing: missing}, nil
	}
	if err != nil {
		return status.Result{}, err
	}
	defer mgr.Close()
	e.trace.Step("connected to systemd")
	src := status.Sources{Dirs: e.dirs, Systemd: mgr, Journal: status.LastJournal, Served: status.Served, Warm: status.WarmGeneration,
		StartProblems: e.startProblems(mgr), SourceChanged: generator.SourceChanged, Resolve: e.resolve,
		SocketsMissing: e.socketsMissing, Unlistened: unlistened, UnitsStale: mgr.NeedDaemonReload,
		ListCache: paths.ListCache, StateCache: paths.StateCache}
	if e.trace != nil {
		e.traceJournal(&src)
	}
	return e.gatherFrom(ctx, src, req)
}

// traceJournal marks each read of the journal status makes, which run
// beside its other reads.
func (e *env) traceJournal(src *status.Sources) {
	read := src.Journal
	src.Journal = func(ctx context.Context, name string) (*status.Failure, *cleanup.Record) {
		f, r := read(ctx, name)
		e.trace.Step("read the last failure and cleanup of site %s from the journal", name)
		return f, r
	}
}

// socketsMissingOf is the listeners of site s for which systemd holds no
// socket, read with the site's hint (flow.Env, lifecycle.Env).
func (e *env) socketsMissingOf(s *site.Site) ([]string, error) {
	return sockheld.Missing("/proc", s, e.dirs.HeldHintFile(s.Name))
}

// socketsMissing reads PID 1's sockets once for sites (status.Sources),
// with the hint of a site read alone.
func (e *env) socketsMissing(sites []*site.Site) (func(*site.Site) []string, error) {
	hint := ""
	if len(sites) == 1 {
		hint = e.dirs.HeldHintFile(sites[0].Name)
	}
	h, err := sockheld.ReadHeld("/proc", sites, hint)
	if err != nil {
		return nil, err
	}
	return h.Missing, nil
}

// unlistened reads what listens on sites' listeners once for all of them
// (status.Sources).
func unlistened(sites []*site.Site) (func(*site.Site) []string, error) {
	h, err := sockheld.ReadListening("/proc", sites)
	if err != nil {
		return nil, err
	}
	return h.Missing, nil
}

// startProblems reads why a site's service would not start
// (flow.StartProblems), within systemdReadTimeout; nothing when systemd
// does not answer in time, which the rest of status reports.
func (e *env) startProblems(mgr *control.Manager) func(ctx context.Context, s *site.Site, mode string) []string {
	host := e.host()
	return func(ctx context.Context, s *site.Site, mode string) []string {
		ctx, cancel := context.WithTimeout(ctx, systemdReadTimeout)
		defer cancel()
		problems, _ := flow.StartProblems(ctx, &flow.Env{Systemd: mgr, Host: &host}, s, mode)
		return problems
	}
}

// gatherFrom is localGather once systemd is reached: it reads the sites
// from src, and gives systemd systemdReadTimeout to answer.
func (e *env) gatherFrom(ctx context.Context, src status.Sources, req status.Request) (status.Result, error) {
	src.Systemd = boundedSystemd{Systemd: src.Systemd, wait: systemdReadTimeout}
	res, err := status.Gather(ctx, src, req)
	if errors.Is(err, status.ErrBadName) {
		return res, withCode(exitUsage, err)
	}
	if err != nil {
		return res, withCode(codeOf(flowExit(err, flow.Report{})), err, hintsOf(err)...)
	}
	for _, m := range res.Skipped {
		term.Fprintf(e.stderr, "sitectl: warning: %s\n", term.Escape(m.Error()))
		for _, h := range hintsOf(m) {
			term.Fprintf(e.stderr, "sitectl: hint: %s\n", term.Escape(h))
		}
	}
	return res, nil
}

// systemdReadTimeout bounds status's and list's read of systemd: the
// command's context has no deadline, and godbus's calls wait as long as
// theirs, so a wedged or busy PID 1 would hang sitectl status (and, in
// sitectl's state service, a goroutine until its caller hangs up).
// control's raw listing of units is bounded as long. A variable for tests.
var systemdReadTimeout = 30 * time.Second

// boundedSystemd is status's reader of systemd with each read bounded by
// wait; one that runs out is systemd that cannot be reached (exit 7).
type boundedSystemd struct {
	status.Systemd
	wait time.Duration
}

func (b boundedSystemd) Units(ctx context.Context, patterns ...string) ([]control.Unit, error) {
	return b.read(ctx, func(ctx context.Context) ([]control.Unit, error) { return b.Systemd.Units(ctx, patterns...) })
}

func (b boundedSystemd) UnitsByName(ctx context.Context, names ...string) ([]control.Unit, error) {
	return b.read(ctx, func(ctx context.Context) ([]control.Unit, error) { return b.Systemd.UnitsByName(ctx, names...) })
}

func (b boundedSystemd) List(ctx context.Context, patterns ...string) ([]control.Unit, error) {
	return b.read(ctx, func(ctx context.Context) ([]control.Unit, error) { return b.Systemd.List(ctx, patterns...) })
}

// read runs one read of systemd within b.wait. The raw listing's socket
// times out at the same deadline, maybe a moment before the context says
// so: its timeout counts too.
func (b boundedSystemd) read(parent context.Context, read func(context.Context) ([]control.Unit, error)) ([]control.Unit, error) {
	ctx, cancel := context.WithTimeout(parent, b.wait)
	defer cancel()
	us, err := read(ctx)
	if err != nil && parent.Err() == nil && (ctx.Err() != nil || errors.Is(err, os.ErrDeadlineExceeded)) {
		return nil, withCode(exitUnavailable, fmt.Errorf("systemd did not answer within %s: %w", b.wait, err),
			"systemd may be busy (a daemon-reload of many units, say) or hung: try again in a while")
	}
	return us, err
}

// sitesJSON is never null: no sites is [].
func sitesJSON(ss []status.Site) []status.Site {
	if ss == nil {
		return []status.Site{}
	}
	return ss
}

// writeSitesJSON writes sites as writeJSON writes the slice (never null:
// no sites is []), byte for byte, each site marshalled and indented on its
// own on all CPUs: list --json of 10,000 sites spent a fifth of its time
// marshalling and indenting one 20 MB document on one CPU. The sites go a
// batch at a time, each CPU's share into a buffer it keeps from batch to
// batch: holding all 10,000 sites' JSON at once took 30 MB of fresh
// memory, and touching fresh pages is most of what an allocation costs.
func writeSitesJSON(w io.Writer, ss []status.Site) error {
	if len(ss) == 0 {
		return writeJSON(w, []status.Site{})
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	bw.WriteString("[\n")
	shares := make([]jsonShare, runtime.GOMAXPROCS(0))
	per := sitesJSONBatch
	for start := 0; start < len(ss); start += len(shares) * per {
		var wg sync.WaitGroup
		for k := range shares {
			lo := min(start+k*per, len(ss))
			hi := min(lo+per, len(ss))
			wg.Add(1)
			go func() {
				defer wg.Done()
				shares[k].encode(ss, lo, hi)
			}()
		}
		wg.Wait()
		for k := range shares {
			if shares[k].err != nil {
				return shares[k].err
			}
			bw.Write(shares[k].out)
		}
	}
	bw.WriteString("]\n")
	return bw.Flush()
}

// sitesJSONBatch is how many sites one CPU encodes in a batch of
// writeSitesJSON: about 300 KB of JSON. A variable for tests.
var sitesJSONBatch = 256

// jsonShare is one CPU's share of a batch of writeSitesJSON: out holds
// the elements of sites [lo, hi) as they are printed, enc what
// json.Encoder wrote of the one in hand. Both are reused batch after batch.
type jsonShare struct {
	enc bytes.Buffer
	out []byte
	err error
}

func (j *jsonShare) encode(ss []status.Site, lo, hi int) {
	j.out = j.out[:0]
	e := json.NewEncoder(&j.enc)
	for i := lo; i < hi; i++ {
		j.enc.Reset()
		if err := e.Encode(&ss[i]); err != nil {
			j.err = err
			return
		}
		// An element of an indented array: one level in.
		j.out = append(j.out, "  "...)
		j.out = term.IndentJSON(j.out, j.enc.Bytes(), "  ", "  ")
		if i < len(ss)-1 {
			j.out = append(j.out, ',')
		}
		j.out = append(j.out, '\n')
	}
}

func since(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return term.Timestamp(*t, time.Local)
}

// ago is a time as status prints it: with its zone and how long ago.
func (e *env) ago(t time.Time) string { return term.TimestampAgo(t, e.now(), time.Local) }

// siteGlyph is the dot before a site: as systemctl's for a unit in the
// state that matches the site's, green where visitors are served and red
// where they are not.
func (e *env) siteGlyph(s status.Site) string {
	switch s.State {
	case "running":
		return e.style.Green(e.style.Glyph("active"))
	case "reloading":
		return e.style.Green(e.style.Glyph("reloading"))
	case "idle":
		return e.style.Green(e.style.Glyph("inactive"))
	case "failed":
		return e.style.Red(e.style.Glyph("failed"))
	case "restarting":
		return e.style.Red(e.style.Glyph("activating"))
	case "stopped":
		return e.style.Red(e.style.Glyph("inactive"))
	}
	return e.style.Glyph("activating")
}
