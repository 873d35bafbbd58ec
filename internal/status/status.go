// Package status works out what sitectl status and list report of sites:
// what systemd says of each site's socket, service and touch-to-reload
// units, how the service last failed, whether the site file is valid (and
// whether the site runs its last good version), and the mode state. It
// prints nothing: sitectl's command line prints a Site for people or as
// JSON, and the state service answers deployers with the same Site, so
// both see exactly what root sees.
package status

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/sitectl/sitectl/internal/cleanup"
	"github.com/sitectl/sitectl/internal/control"
	"github.com/sitectl/sitectl/internal/flow"
	"github.com/sitectl/sitectl/internal/modes"
	"github.com/sitectl/sitectl/internal/par"
	"github.com/sitectl/sitectl/internal/paths"
	"github.com/sitectl/sitectl/internal/site"
	"github.com/sitectl/sitectl/internal/sitecache"
	"github.com/sitectl/sitectl/internal/units"
)

// Site is the status of one site. Its JSON form is the element of
// `sitectl status --json` and `sitectl list --json` (the doc tags are the
// schema's descriptions; see docs/json.md).
type Site struct {
	Site     string    `json:"site" doc:"the site's name"`
	File     string    `json:"file" doc:"the site file"`
	SiteFile FileState `json:"site_file" doc:"whether the site file is valid, and what runs when it is not"`
	State    string    `json:"state" doc:"the site in one word: running (its service runs), idle (its sockets listen; the first request starts the service), starting, reloading, stopping, restarting (after a crash: the service failed and systemd restarts it, or it runs again since less than 10s, or it stops because it failed), failed (the service or a socket failed), stopped (a socket is stopped, or holds no socket while no process serves, or the service does not run and systemd would not start it (masked, or loaded from no file): visitors are refused)" enum:"running,idle,starting,reloading,stopping,restarting,failed,stopped"`
	Running  bool      `json:"running" doc:"sitectl status exits 0 for the site: every socket listens, and the service runs, is starting, stopping or reloading, or is idle"`

	Mode          string `json:"mode" doc:"the mode recorded for the site (its default mode when none is); empty when its state cannot be read (a warning says why)"`
	PreviousMode  string `json:"previous_mode" doc:"the mode shown to serve before the last successful switch, never one a change cut short did not verify; empty when there was none"`
	ModeGone      bool   `json:"mode_gone" doc:"the site file, valid, no longer has the recorded mode (renamed or removed while the site ran it): the site runs it with the environment recorded when it was switched to, sitectl restart and reload refuse, and sitectl mode switches it to a mode the file has; false in list"`
	PreviousGone  bool   `json:"previous_mode_gone" doc:"the site file, valid, no longer has the previous mode: sitectl rollback refuses; false in list"`
	ModeApplied   bool   `json:"mode_applied" doc:"the running service started after the mode was recorded, so it runs in that mode; false when served_mode names another mode"`
	ServedMode    string `json:"served_mode" doc:"the mode the process that serves runs, from its own environment (SITE_MODE of the main process, or of the serving generation when the main process is an overlap launcher, as the running service says, whatever handoff the site file says now), as a switch verifies it; empty when none serves, it cannot be read, or in list"`
	ServedRelease string `json:"served_release" doc:"the release the process that serves runs from: the working directory, symlinks resolved, its overlap generation started in (as its launcher says), or the main process's current directory; release says where the symlink points now, so a link moved without a reload shows here; empty when none serves, it cannot be read, the site has no workdir, or in list"`
	// ServedDiffers are the recorded mode's variables the serving process
	// runs with other values than the site file's, or lacks.
	ServedDiffers []string `json:"served_differs" doc:"when the process that serves runs the recorded mode (served_mode is mode): the names (never the values) of the mode's variables, as the site file has them now, that its environment has with another value or lacks: it runs an older version of the mode, and the next restart applies the file's (a switch checks the same); [] when it runs the mode as the file has it, or runs another mode, or the file no longer has the mode, or in list"`
	// Warm is the generation a keep_previous site keeps warm.
	Warm *Warm `json:"warm" doc:"the generation kept warm for sitectl rollback (keep_previous), as its launcher reports it; null without one, or in list"`
	// Pending is a switch in progress (Busy) or one that was cut short.
	Pending *modes.Pending `json:"pending" doc:"a switch in progress (busy) or cut short by a killed sitectl; null when there is none"`
	Busy    bool           `json:"busy" doc:"another sitectl holds the site's lock right now"`

	Unit        string     `json:"unit" doc:"the site's service unit"`
	LoadState   string     `json:"load_state" doc:"systemd's LoadState of the service (loaded, not-found, ...)"`
	ActiveState string     `json:"active_state" doc:"systemd's ActiveState of the service"`
	SubState    string     `json:"sub_state" doc:"systemd's SubState of the service (running, dead, auto-restart, ...)"`
	MainPID     int        `json:"main_pid" doc:"the service's main PID; 0 when it has none"`
	Since       *time.Time `json:"since" doc:"when the service entered its state; null when unknown (list reads it only for services that are not inactive)"`
	Result      string     `json:"result" doc:"systemd's Result of the service: how it last ended (success, exit-code, signal, timeout, start-limit-hit, ...)"`
	StatusText  string     `json:"status_text" doc:"the service's STATUS= line"`
	NRestarts   int        `json:"n_restarts" doc:"automatic restarts after failures since the service was last started deliberately (systemd's NRestarts); list reads it only for services that are not inactive"`
	LastFailure *Failure   `json:"last_failure" doc:"how the service last failed, from the journal (status only); null when it has not or the journal cannot be read"`

	Socket  string   `json:"socket" doc:"the site's sockets in one word: listening, stopped (visitors are refused), failed, starting or stopping" enum:"listening,stopped,failed,starting,stopping"`
	Sockets []Socket `json:"sockets" doc:"each socket unit of the site"`
	// activeEnter is when a service restarted after a failure last
	// became active (control.Unit.ActiveEnter).
	activeEnter time.Time
	// OutOfService is when root took the site out of service.
	OutOfService *time.Time `json:"out_of_service" doc:"when the site was taken out of service (sitectl disable): its sockets do not start at boot, and sitectl changes it only after sitectl enable; null when it is in service, or in list"`
	// SocketsLost are listeners whose active socket unit holds no socket.
	SocketsLost []string `json:"sockets_lost" doc:"listeners for which systemd holds no socket although the site's socket units are active and loaded from the site file as it is (their listeners changed while they ran): the running process serves on its own copy, and from the service's next start visitors are refused; running is then false, and with no process running (an idle site) nothing listens: those sockets and the site are stopped; sitectl restart opens them again. Read for every site, in status and list: [] when none"`
	// ListenersPending are listeners of the site file that systemd has
	// not loaded yet.
	ListenersPending []string `json:"listeners_pending" doc:"listeners of the site file for which systemd holds no socket while its socket units are older than the file (it changed since the last daemon-reload): systemd serves the listeners it loaded, and systemctl daemon-reload then sitectl restart moves the site to the file's. Read for every site, in status and list: [] when none"`
	Trigger          *Trigger `json:"trigger" doc:"the touch-to-reload trigger; null for a site without reload_trigger"`
	Listen           []string `json:"listeners" doc:"the site's listeners: addresses and unix socket paths"`
	Release          string   `json:"release" doc:"the working directory with its symlinks resolved; empty without workdir"`
	// StartProblems are why the service would surely not start.
	StartProblems []string `json:"start_problems" doc:"why the service, as systemd has it loaded, would surely not start in the recorded mode, or not serve it (it is masked; a program (ExecStart=, ExecStartPre=, ExecStartPost=), #! interpreter, user, group, supplementary group, working directory, credential file, environment file or path of its mount namespace (ReadWritePaths= and the like) does not exist, or a maintenance mode's page or static_dir; a socket unit's SocketUser= or SocketGroup= (a unix listener's owner or group) does not exist; the site's user (a dynamic one: as one who owns no file) may not run a program or #! interpreter, enter the working directory, or read a maintenance mode's page or static_dir, by the owner, group and mode of each directory on the way; one of them lies where the unit hides the host's files (ProtectHome=, PrivateTmp=, InaccessiblePaths=), or a path of its mount namespace under a directory PrivateTmp= replaces; a program or #! interpreter the kernel would not run (no #! line, a byte order mark before it, empty: exec format error, unless a binfmt_misc handler takes it; on a file system mounted noexec on the host or by NoExecPaths=); a Type= override (oneshot, forking, dbus) has systemd wait for what the launcher never does; or, in a maintenance mode, an ExecStart= override does not run sitectl's launcher): sitectl refuses to restart it, and a crash restart would fail or serve the app; [] when none, or in list"`
	// LocalChanges are the site's units as systemd loaded them other than
	// sitectl generates them: a copy that shadows the generator's file,
	// and drop-ins.
	LocalChanges []LocalChange   `json:"local_changes" doc:"the site's units (service, sockets, touch-to-reload path) that systemd loaded other than sitectl generates them: from a copy that shadows the generator's unit file (systemctl edit --full, a copy in /etc/systemd/system, sitectl units render --dir there), or with drop-ins (systemctl edit, systemctl set-property, files in UNIT.d/ directories); the distribution's drop-ins (/usr/lib) and generators' are not named; [] when none, or in list"`
	Ready        bool            `json:"ready" doc:"the service is active and running"`
	Cleanup      *cleanup.Record `json:"last_cleanup,omitempty" doc:"what the last stop's cleanup found and did (status only, from the journal); left out when unknown"`
}

// FileState is the state of a site file.
type FileState struct {
	State string `json:"state" doc:"ok; invalid: the file has mistakes and the units were not made from it; gone: there is no site file, but systemd still runs the site's units (the file was deleted or renamed): sitectl remove stops them" enum:"ok,invalid,gone"`
	// InvalidSince is the file's modification time: when it was last
	// changed into what is invalid.
	InvalidSince *time.Time  `json:"invalid_since" doc:"when the invalid file was last changed; null when it is valid"`
	Errors       []FileError `json:"errors" doc:"the file's mistakes, as sitectl check reports them"`
	LastGood     bool        `json:"last_good" doc:"the file is invalid and the site runs the last good version of it (kept by sitectl when the service last started; for a site that never started, the version its units were last generated from)"`
	// Pinned: the file is valid, but failed to start as it is, and a
	// rollback pinned the site to the version it ran before (modes.Pin).
	Pinned *Pinned `json:"pinned" doc:"the file, as it is, failed to start, and a rollback pinned the site to the version of it that the site ran before, until the file changes; null otherwise"`
}

// Pinned is a site pinned to its last good version after a failed start.
type Pinned struct {
	Since  time.Time `json:"since" doc:"when the rollback pinned it"`
	Reason string    `json:"reason" doc:"why the file failed to start"`
	Copy   string    `json:"copy" doc:"the last good copy the site runs"`
}

// FileError is one mistake of a site file.
type FileError struct {
	File    string `json:"file" doc:"the file the mistake is in"`
	Line    int    `json:"line" doc:"its line, from 1"`
	Column  int    `json:"column" doc:"its column, from 1"`
	Message string `json:"message" doc:"what is wrong"`
}

// Failure is how a service last failed.
type Failure struct {
	Result     string     `json:"result" doc:"systemd's word for it: exit-code, signal, core-dump, timeout, watchdog, start-limit-hit, resources, ..."`
	Time       *time.Time `json:"time" doc:"when systemd recorded the failure; null when unknown"`
	ExitCode   string     `json:"exit_code" doc:"how the main process ended: exited, killed or dumped; empty when unknown"`
	ExitStatus string     `json:"exit_status" doc:"its exit status or signal (3, TERM, ...); empty when unknown"`
}

// Socket is one socket unit of a site.
type Socket struct {
	Unit        string `json:"unit" doc:"the socket unit"`
	State       string `json:"state" doc:"listening, stopped (not listening: connections are refused; also an active unit for which systemd holds no socket, see sockets_lost, or that systemd loaded again from no file (its site file deleted, or the unit masked, then a daemon-reload) while no process serves), failed, starting or stopping" enum:"listening,stopped,failed,starting,stopping"`
	ActiveState string `json:"active_state" doc:"systemd's ActiveState of the socket"`
	SubState    string `json:"sub_state" doc:"systemd's SubState of the socket (listening, running, dead, ...)"`
}

// LocalChange is what makes one unit of a site, as systemd loaded it,
// other than the unit sitectl generates.
type LocalChange struct {
	Unit string `json:"unit" doc:"the unit"`
	// Shadow is the unit file systemd loaded in place of the generator's.
	Shadow string `json:"shadow" doc:"the unit file systemd loaded in place of the one sitectl generates (it shadows it: no daemon-reload brings a change of the site file into the unit); empty when systemd loads the generator's"`
	// ShadowStale: Shadow was made from another version of the site file
	// than the one there now (units.ParseStamp).
	ShadowStale bool `json:"shadow_stale" doc:"the shadowing unit file was generated from another version of the site file than the one there now (its '# Site file sha256:' line): systemd runs the unit as the file was then; false when it cannot be told (the copy has no such line) or there is no copy"`
	// DropIns are the drop-ins applied to the unit that systemctl revert
	// takes out (UNIT.d/ in /etc and /run).
	DropIns []string `json:"drop_ins" doc:"the unit's own drop-ins (UNIT.d/ under /etc or /run: systemctl edit, set-property's, files put there), which systemctl revert takes out; []: none"`
	// Shared are drop-ins that apply to other units too (site-.service.d/,
	// service.d/), or that revert does not take out (/usr/local).
	Shared []string `json:"shared_drop_ins" doc:"drop-ins that apply to the unit and to others as well (site-.service.d/ for every site's service, service.d/ for every service) or that systemctl revert leaves (/usr/local/lib): removing them changes the other units too; []: none"`
	// Revert is the command that takes the unit's own changes out.
	Revert string `json:"revert" doc:"the command that takes out the copy and the unit's own drop-ins: systemctl revert UNIT (then the unit is the generator's again)"`
}

// Trigger is a site's touch-to-reload path unit.
type Trigger struct {
	Unit        string `json:"unit" doc:"the path unit"`
	Path        string `json:"path" doc:"the file whose touch reloads the site"`
	Armed       bool   `json:"armed" doc:"the path unit is active: a touch reloads the site"`
	ActiveState string `json:"active_state" doc:"systemd's ActiveState of the path unit"`
	SubState    string `json:"sub_state" doc:"systemd's SubState of the path unit (waiting, running, dead, ...)"`
}

// Systemd is what status reads of systemd (control.Manager, or a fake).
type Systemd interface {
	// Units lists the loaded units matching patterns, in one call.
	Units(ctx context.Context, patterns ...string) ([]control.Unit, error)
	// UnitsByName reads the named units in full.
	UnitsByName(ctx context.Context, names ...string) ([]control.Unit, error)
	// List is Units for thousands of sites: nothing is read of inactive
	// services beyond the listing.
	List(ctx context.Context, patterns ...string) ([]control.Unit, error)
}

// Sources is where status reads from. Nil readers are not read.
type Sources struct {
	Dirs    paths.Dirs
	Systemd Systemd
	// Journal reads how a site's service last failed and the record of
	// its last cleanup (LastJournal).
	Journal func(ctx context.Context, site string) (*Failure, *cleanup.Record)
	// Served reads what the serving process of a running site says of
	// itself: the environment it started with and its release (Served,
	// from /proc and the launcher).
	Served func(ctx context.Context, s *site.Site, mainPID int) ServedProcess
	// Warm reads the generation a keep_previous site keeps warm
	// (WarmGeneration, from its launcher).
	Warm func(ctx context.Context, s *site.Site, mainPID int) *Warm
	// SocketsMissing reads at once, for sites, which of their listeners
	// systemd holds no listening socket for (sockheld.ReadHeld), and
	// returns what says it of each of them; nil: not read.
	SocketsMissing func(sites []*site.Site) (func(*site.Site) []string, error)
	// Unlistened reads at once, for sites, on which of their listeners
	// nothing listens (sockheld.ReadListening), for list and status of
	// every site: cheaper than SocketsMissing with 10,000 sites, it finds
	// the sites that refuse visitors on a listener nothing listens on, not
	// the running ones whose process holds a copy; nil: not read.
	Unlistened func(sites []*site.Site) (func(*site.Site) []string, error)
	// UnitsStale tells whether systemd's unit is older than the file it
	// was made from (NeedDaemonReload); nil: taken as not.
	UnitsStale func(ctx context.Context, unit string) (bool, error)
	// Resolve resolves a site's working directory for Release; nil:
	// filepath.EvalSymlinks.
	Resolve func(path string) (string, error)
	// StartProblems says why a site's service would surely not start in
	// mode (flow.StartProblems).
	StartProblems func(ctx context.Context, s *site.Site, mode string) []string
	// SourceChanged tells whether the unit file fragment was generated
	// from another version of the site file source than the one there now
	// (generator.SourceChanged), for a copy that shadows the generator's
	// unit; nil: not told.
	SourceChanged func(fragment, source string) (bool, error)
	// ListCache is the file where list (Brief, all sites) keeps what it
	// read of each site file, so that it reads only the files changed
	// since (package sitecache); empty: no cache. Root's list writes it.
	ListCache string
	// StateCache is the file where list keeps what it read of each site's
	// state directory, so that a stat of its two files stands for reading
	// them (sitecache.StateStore); empty: no cache. Root's list writes it.
	StateCache string
	// now is when a load starts (time.Now); a seam for tests.
	now func() time.Time
	// cacheWrites: a load may write ListCache and StateCache (root's
	// list); nil: when sitectl runs as root. A seam for tests.
	cacheWrites *bool
}

// Request says which sites to read, and how much.
type Request struct {
	// Names are the sites; none means every site of the config directory.
	Names []string
	// Brief is for list, made for thousands of sites: one listing of the
	// site units, no journal and no restart counts of inactive services.
	Brief bool
}

// Result is the status of the sites asked for.
type Result struct {
	Sites []Site
	// Missing are named sites that do not exist (no site file).
	Missing []string
	// Skipped are files of the config directory that cannot be a site
	// (a name that is not valid), and sites whose state cannot be read
	// (shown without it).
	Skipped []error
	// cache is what list did with its cache of the site files.
	cache sitecache.Stats
	// stateCache is what list did with its cache of the state directories.
	stateCache sitecache.Stats
}

// ErrBadName wraps a site name that is not valid.
var ErrBadName = errors.New("not a valid site name")

// Gather reads the status of sites. It is the one place that decides what
// status and list say, for root's command line and for the state service.
func Gather(ctx context.Context, src Sources, req Request) (res Result, _ error) {
	var ents []entry
	var byName unitsByName
	var err error
	st := modes.Store{Dir: src.Dirs.State}
	read := func(name string) (modes.Listed, error) {
		l, _, err := st.ReadListed(name)
		return l, err
	}
	if len(req.Names) == 0 && req.Brief && src.StateCache != "" {
		// list: a record of the state cache whose files did not change
		// stands for reading them.
		now, writes := src.cacheRules()
		states := sitecache.StateStore{Path: src.StateCache, Modes: st, Build: sitecache.Build(), MayWrite: writes}.Open(now)
		read = states.Read
		defer func() { res.stateCache = states.Close() }()
	}
	// Each site's state is a few small files (and, for status, a journal
	// read): on all CPUs, for thousands of sites. For all sites, one read
	// of the state directory says which sites have any: the others' are
	// not looked for. Named sites are looked for: reading the entries of
	// 10,000 sites to show one would not keep status flat.
	withState, known := map[string]bool{}, false
	var missing *socketsAsked
	var journals map[string]*journalRead
	lim := newJournalLimit()
	if len(req.Names) == 0 {
		// The sites' states, and what listens on their listeners, are
		// read while systemd lists the units: neither needs the other,
		// and systemd takes as long as sitectl.
		ents, byName, res.Skipped, res.cache, err = allSites(ctx, src, req.Brief, func(ents []entry) {
			pinnedEntries(src.Dirs, ents)
			missing = startUnlistened(src, ents)
			withState, known = st.WithState()
			readStates(ents, read, withState, known)
		})
		if err == nil {
			ents = append(ents, goneEntries(src.Dirs, ents, byName)...)
			sortEntries(ents)
		}
	} else {
		ents, res.Missing, err = namedEntries(src.Dirs, req.Names)
		var gone []entry
		for _, name := range res.Missing {
			gone = append(gone, goneEntry(src.Dirs, name))
		}
		asked := append(ents, gone...)
		if err == nil && !req.Brief {
			// The journal is read while systemd is asked (journalRead).
			jctx, cancel := context.WithCancel(ctx)
			defer cancel()
			journals = map[string]*journalRead{}
			for _, en := range asked {
				journals[en.site.Name] = startJournal(jctx, src, lim, en.site.Name)
			}
		}
		if err == nil {
			byName, err = readUnits(ctx, src.Systemd, asked, false, req.Brief)
		}
		if err == nil && len(gone) > 0 {
			res.Missing = res.Missing[:0]
			for _, en := range gone {
				if unitsRun(en.site, byName) {
					ents = append(ents, en)
				} else {
					res.Missing = append(res.Missing, en.site.Name)
				}
			}
			sortEntries(ents)
		}
	}
	if err != nil {
		return res, err
	}
	sites := make([]Site, len(ents))
	errs := make([]error, len(ents))
	par.Each(len(ents), func(i int) {
		sites[i], errs[i] = build(st, read, ents[i], byName, !known || withState[ents[i].site.Name], src.Resolve)
		if errs[i] == nil && !req.Brief {
			j := journals[ents[i].site.Name]
			if j == nil {
				j = startJournal(ctx, src, lim, ents[i].site.Name)
			}
			sites[i].localChanges(src, ents[i], byName)
			if ents[i].known && !ents[i].gone {
				sites[i].modesGone(ents[i].site)
				sites[i].readServed(ctx, src, ents[i].site)
				if src.StartProblems != nil && (sites[i].LoadState == "loaded" || sites[i].LoadState == "masked") {
					sites[i].StartProblems = append(sites[i].StartProblems, src.StartProblems(ctx, ents[i].site, sites[i].Mode)...)
				}
				if out, since, err := st.OutOfService(ents[i].site.Name); err == nil && out {
					sites[i].OutOfService = &since
				}
			}
			// Last: the journal was read while the rest was
			// (journalRead).
			sites[i].readJournal(j)
		}
	})
	if len(req.Names) == 0 {
		readUnlistened(ctx, src, sites, ents, errs, missing)
	} else {
		readSocketsHeld(ctx, src, sites, ents, errs)
	}
	// A site whose state cannot be read (a damaged state file) is shown
	// all the same, its mode unknown, with a warning: one site's file
	// must not hide every other site from list and status.
	for i, err := range errs {
		if err == nil {
			continue
		}
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return res, err
		}
		res.Skipped = append(res.Skipped, fmt.Errorf("site %s: its mode and state are not shown: %w", ents[i].site.Name, err))
		en := ents[i]
		en.state = nil
		sites[i], _ = build(st, func(string) (modes.Listed, error) { return modes.Listed{}, nil }, en, byName, false, src.Resolve)
		sites[i].Mode = ""
	}
	res.Sites = sites
	return res, nil
}

// allSites reads every site of the config directory and the listing of
// all site units at the same time: systemd takes as long to list 20,000
// units as sitectl takes to read 10,000 site files, and neither needs the
// other.
// during, when not nil, is given the entries of the site files while
// systemd lists.
func allSites(ctx context.Context, src Sources, brief bool, during func([]entry)) ([]entry, unitsByName, []error, sitecache.Stats, error) {
	var byName unitsByName
	var uerr error
	listed := make(chan struct{})
	go func() {
		defer close(listed)
		byName, uerr = readUnits(ctx, src.Systemd, nil, true, brief)
	}()
	load := func(string) (site.Result, sitecache.Stats, error) {
		res, err := site.LoadDir(src.Dirs.Config, src.held())
		return res, sitecache.Stats{}, err
	}
	if brief && src.ListCache != "" {
		load = src.cachedLoad
	}
	ents, skipped, stats, err := allEntries(src.Dirs, load)
	if err == nil && during != nil {
		during(ents)
	}
	<-listed
	if err == nil {
		err = uerr
	}
	return ents, byName, skipped, stats, err
}

// cachedLoad reads the site directory for list through the list cache:
// only what list reads of a site comes from it (sitecache.Record), so it
// is for Brief alone.
func (src Sources) cachedLoad(dir string) (site.Result, sitecache.Stats, error) {
	now, writes := src.cacheRules()
	st := sitecache.Store{Path: src.ListCache, Dir: dir, Build: sitecache.Build(), MayWrite: writes, Held: src.held()}
	return st.LoadDir(now)
}

// held is site.Held of the state directory: where two sites' listeners
// collide, list shows the one the generator kept as valid.
func (src Sources) held() site.Held { return modes.Store{Dir: src.Dirs.State}.Holders() }

// cacheRules are when a list starts, for its caches, and whether it may
// write them: root's list does.
func (src Sources) cacheRules() (start time.Time, writes bool) {
	now, writes := time.Now, os.Geteuid() == 0
	if src.now != nil {
		now = src.now
	}
	if src.cacheWrites != nil {
		writes = *src.cacheWrites
	}
	return now(), writes
}

// readUnits reads the units of every entry: one listing of all site units
// for all sites (brief: nothing more of inactive services), or the named
// units.
func readUnits(ctx context.Context, sd Systemd, ents []entry, all, brief bool) (unitsByName, error) {
	var us []control.Unit
	var err error
	patterns := []string{"site-*.service", "site-*.socket", "site-*.path"}
	switch {
	case all && brief:
		us, err = sd.List(ctx, patterns...)
	case all:
		us, err = sd.Units(ctx, patterns...)
	default:
		var names []string
		for _, en := range ents {
			names = append(names, en.unitNames()...)
		}
		us, err = sd.UnitsByName(ctx, names...)
	}
	if err != nil {
		return nil, err
	}
	byName := make(unitsByName, len(us))
	for i := range us {
		byName[us[i].Name] = &us[i]
	}
	return byName, nil
}

// unitsByName are the units systemd listed, by name. A map of pointers
// into the listing: a map copies a value over 128 bytes to a heap object
// of its own, 20,000 of them for 10,000 sites.
type unitsByName map[string]*control.Unit

// unit is what systemd said of a unit; a unit it did not list is not
// loaded: inactive.
func unit(byName unitsByName, name string) control.Unit {
	if u, ok := byName[name]; ok {
		return *u
	}
	return control.Unit{Name: name, LoadState: "not-loaded", ActiveState: "inactive", SubState: "dead"}
}

// build puts together the status of one site; hasState false says the
// site has no state directory (no mode recorded, no state). read reads the
// state of a site that has one.
func build(st modes.Store, read func(name string) (modes.Listed, error), en entry, byName unitsByName, hasState bool, resolve func(string) (string, error)) (Site, error) {
	s := en.site
	u := unit(byName, units.ServiceName(s.Name))
	ms, err := readModeState(read, s, hasState, en.state)
	if err != nil {
		return Site{}, err
	}
	mode, state := ms.Mode, ms.State
	out := Site{
		Site: s.Name, File: en.file, SiteFile: en.fileState(), Mode: mode, PreviousMode: state.PreviousMode, Pending: state.Pending,
		Unit: u.Name, LoadState: u.LoadState, ActiveState: u.ActiveState, SubState: u.SubState, MainPID: u.MainPID,
		Result: u.Result, StatusText: u.StatusText, NRestarts: u.NRestarts, Listen: []string{}, Sockets: []Socket{}, StartProblems: []string{}, LocalChanges: []LocalChange{}, ServedDiffers: []string{}, SocketsLost: []string{}, ListenersPending: []string{},
	}
	if !u.Since.IsZero() {
		t := u.Since
		out.Since = &t
	}
	out.activeEnter = u.ActiveEnter
	if state.Pending != nil {
		out.Busy = st.Busy(s.Name)
	}
	if en.known {
		for _, l := range s.Listeners {
			out.Listen = append(out.Listen, l.Endpoint())
		}
	}
	if s.Workdir != "" {
		out.Release = s.Workdir
		if resolve == nil {
			resolve = filepath.EvalSymlinks
		}
		if r, err := resolve(s.Workdir); err == nil {
			out.Release = r
		}
	}
	for _, name := range units.SocketNames(s) {
		su := unit(byName, name)
		state := socketState(su)
		if state == "listening" && fromNoFile(su.LoadState) && !serves(u.ActiveState) {
			// No process serves on a copy of its sockets either:
			// nothing listens, and visitors are refused.
			state = "stopped"
		}
		out.Sockets = append(out.Sockets, Socket{Unit: name, State: state, ActiveState: su.ActiveState, SubState: su.SubState})
	}
	out.Socket = worstSocket(out.Sockets)
	if s.ReloadTrigger != "" {
		pu := unit(byName, units.ReloadPathName(s.Name))
		out.Trigger = &Trigger{Unit: pu.Name, Path: s.ReloadTrigger, Armed: pu.ActiveState == "active", ActiveState: pu.ActiveState, SubState: pu.SubState}
	}
	out.Ready = u.ActiveState == "active" && u.SubState == "running"
	out.ModeApplied = flow.ModeAppliedSince(ms.Recorded, ms.Written, u)
	out.State = siteState(out, time.Now())
	out.Running = isRunning(out.State)
	return out, nil
}

// readModeState reads the recorded mode (else the site's default mode) and
// the state without its history; a site without a state directory has
// neither, and nothing is looked for.
// pre, when not nil, is the state read already.
func readModeState(read func(name string) (modes.Listed, error), s *site.Site, hasState bool, pre *stateRead) (modes.Listed, error) {
	l := modes.Listed{}
	if pre != nil {
		if pre.err != nil {
			return modes.Listed{}, pre.err
		}
		l = pre.listed
	} else if hasState {
		var err error
		if l, err = read(s.Name); err != nil {
			return modes.Listed{}, err
		}
	}
	if !l.Recorded {
		l.Mode = s.DefaultMode
	}
	return l, nil
}

// localChanges names what makes the site's units, as systemd loaded them
// (what UnitsByName read of them), other than sitectl generates them: a
// unit file that shadows the generator's, and drop-ins. The distribution's
// drop-ins and generators' are not an operator's change. Only a shadowing
// copy is read, for the stamp of the site file it was made from.
func (s *Site) localChanges(src Sources, en entry, byName unitsByName) {
	for _, name := range en.unitNames() {
		u, ok := byName[name]
		if !ok {
			continue
		}
		lc := LocalChange{Unit: name, DropIns: []string{}, Shared: []string{}, Revert: "systemctl revert " + name}
		// A masked unit's file is /dev/null's link: status says masked.
		if u.LoadState != "masked" && flow.Shadows(u.Fragment) {
			lc.Shadow = u.Fragment
			if src.SourceChanged != nil && en.known && !en.gone {
				stale, err := src.SourceChanged(u.Fragment, en.file)
				lc.ShadowStale = err == nil && stale
			}
		}
		for _, d := range u.DropIns {
			switch {
			case !flow.Shadows(d) || vendorDropIn(d):
				// A generator's, or the distribution's.
			case filepath.Base(filepath.Dir(d)) == name+".d" && (strings.HasPrefix(d, "/etc/") || strings.HasPrefix(d, "/run/")):
				lc.DropIns = append(lc.DropIns, d)
			default:
				lc.Shared = append(lc.Shared, d)
			}
		}
		if lc.Shadow != "" || len(lc.DropIns) > 0 || len(lc.Shared) > 0 {
			s.LocalChanges = append(s.LocalChanges, lc)
		}
	}
}

// vendorDropIn tells whether drop-in d is the distribution's (systemd's
// own package ships some, such as Fedora's service.d/10-timeout-abort.conf),
// not the operator's.
func vendorDropIn(d string) bool {
	return strings.HasPrefix(d, "/usr/lib/") || strings.HasPrefix(d, "/lib/")
}

// readJournal adds what only the journal knows, once j, the read of it
// (startJournal), is done: how the service last failed, and the last
// cleanup. Without a failure in the journal (it cannot be read, or
// rotated), a failed service's own Result says it.
func (s *Site) readJournal(j *journalRead) {
	failure, rec := j.wait()
	if s.LoadState == "loaded" {
		s.LastFailure = failure
	}
	if s.LastFailure == nil && s.ActiveState == "failed" {
		s.LastFailure = &Failure{Result: s.Result, Time: s.Since}
	}
	s.Cleanup = lastCleanup(rec, s.SubState)
}

// lastCleanup is what status says of a site's last cleanup record rec,
// its service in subState. A cleanup records that it started before
// anything else, and its result at its end: a last record that is the
// start is a cleanup that runs now (the service is in stop-post, where
// ExecStopPost= runs), or one that did not finish (systemd killed it at
// TimeoutStopSec=, or it died), never an earlier stop's result.
func lastCleanup(rec *cleanup.Record, subState string) *cleanup.Record {
	if rec == nil || rec.Result != cleanup.ResultStarted {
		return rec
	}
	r := *rec
	r.Result = cleanup.ResultUnfinished
	if subState == "stop-post" {
		r.Result = cleanup.ResultRunning
	}
	return &r
}

// socketsAsked is the answer of Sources.Unlistened, once it is read.
type socketsAsked struct {
	done    chan struct{}
	missing func(*site.Site) []string
	err     error
}

// startUnlistened asks src.Unlistened about the sites of ents (entries of
// site files) in the background.
func startUnlistened(src Sources, ents []entry) *socketsAsked {
	if src.Unlistened == nil {
		return nil
	}
	var of []*site.Site
	for _, en := range ents {
		if en.known && !en.gone {
			of = append(of, en.site)
		}
	}
	a := &socketsAsked{done: make(chan struct{})}
	go func() {
		defer close(a.done)
		a.missing, a.err = src.Unlistened(of)
	}()
	return a
}

// readUnlistened finds, among every site (list and status of all sites),
// those whose socket units listen although nothing listens on their
// listeners: systemd holds no socket for them and no process of theirs
// holds a copy, so visitors are refused there (socketsMissing). Where
// something listens it may be a running site's own copy of a socket
// systemd no longer holds: telling the two apart needs PID 1's open
// files, which status SITE reads.
func readUnlistened(ctx context.Context, src Sources, sites []Site, ents []entry, errs []error, a *socketsAsked) {
	if a == nil {
		return
	}
	<-a.done
	if a.err != nil {
		return
	}
	var suspect []int
	var again []*site.Site
	for i := range sites {
		if errs[i] == nil && ents[i].known && !ents[i].gone && sites[i].Socket == "listening" &&
			len(a.missing(ents[i].site)) > 0 {
			suspect = append(suspect, i)
			again = append(again, ents[i].site)
		}
	}
	if len(suspect) == 0 {
		return
	}
	// What listens was read while systemd listed the units: a socket
	// started meanwhile listens now, but was not seen. The few sites
	// found without one are looked at again, after the listing.
	missing, err := src.Unlistened(again)
	if err != nil {
		return
	}
	par.Each(len(suspect), func(j int) {
		i := suspect[j]
		if m := missing(ents[i].site); len(m) > 0 {
			sites[i].socketsMissing(ctx, src, ents[i].site, m)
		}
	})
}

// readSocketsHeld finds listeners of the sites whose socket units
// listen for which systemd holds no socket, reading PID 1's sockets once
// for all of them. A check that cannot tell (sockheld.ErrUnknown) finds
// nothing.
func readSocketsHeld(ctx context.Context, src Sources, sites []Site, ents []entry, errs []error) {
	if src.SocketsMissing == nil {
		return
	}
	var asked []int
	var of []*site.Site
	for i := range sites {
		if errs[i] == nil && ents[i].known && !ents[i].gone && sites[i].Socket == "listening" {
			asked = append(asked, i)
			of = append(of, ents[i].site)
		}
	}
	if len(asked) == 0 {
		return
	}
	missing, err := src.SocketsMissing(of)
	if err != nil {
		return
	}
	par.Each(len(asked), func(j int) {
		i := asked[j]
		if m := missing(ents[i].site); len(m) > 0 {
			sites[i].socketsMissing(ctx, src, ents[i].site, m)
		}
	})
}

// socketsMissing is what it means for site si that systemd holds no
// socket for its listeners missing, although its socket units listen.
// With the units loaded from the site file as it is, they are lost: the
// site is then not running as status means it, although its process may
// serve on for now. With units older than the file, systemd has not
// loaded them yet: it holds the listeners it loaded, and they are
// pending.
func (s *Site) socketsMissing(ctx context.Context, src Sources, si *site.Site, missing []string) {
	if src.UnitsStale != nil {
		for _, so := range s.Sockets {
			if stale, err := src.UnitsStale(ctx, so.Unit); err == nil && stale {
				s.ListenersPending = append(s.ListenersPending, missing...)
				return
			}
		}
	}
	s.SocketsLost = append(s.SocketsLost, missing...)
	s.Running = false
	if serves(s.ActiveState) {
		return
	}
	// No process serves on a copy of them: nothing listens there, and
	// visitors are refused now, whatever systemd says of the units.
	lost := map[string]bool{}
	for _, l := range si.Listeners {
		if slices.Contains(missing, l.Endpoint()) {
			lost[units.SocketNameOf(si, l)] = true
		}
	}
	for i := range s.Sockets {
		if lost[s.Sockets[i].Unit] {
			s.Sockets[i].State = "stopped"
		}
	}
	s.Socket = worstSocket(s.Sockets)
	s.State = siteState(*s, time.Now())
}

// serves tells whether a service in ActiveState state has a process that
// may hold the site's sockets (its own copy of systemd's).
func serves(state string) bool {
	switch state {
	case "active", "reloading", "activating", "deactivating":
		return true
	}
	return false
}

// modesGone tells whether the site file, valid and what the site runs,
// lost its recorded or previous mode.
func (s *Site) modesGone(si *site.Site) {
	if s.SiteFile.State != "ok" || s.SiteFile.Pinned != nil {
		return
	}
	_, has := si.Mode(s.Mode)
	s.ModeGone = s.Mode != "" && !has
	_, has = si.Mode(s.PreviousMode)
	s.PreviousGone = s.PreviousMode != "" && !has
}

// readServed reads which mode the serving process of a running site runs,
// and whether it runs it as the site file has it now.
func (s *Site) readServed(ctx context.Context, src Sources, si *site.Site) {
	if src.Served != nil && (s.ActiveState == "active" || s.ActiveState == "reloading") {
		served := src.Served(ctx, si, s.MainPID)
		env := served.Env
		s.ServedMode, s.ServedRelease = modeOf(env), served.Release
		if s.ServedMode != "" && s.ServedMode != s.Mode {
			// Started after the mode was recorded, but what it runs
			// says otherwise (a drop-in that sets SITE_MODE, say).
			s.ModeApplied = false
		}
		if m, ok := si.Mode(s.Mode); ok && s.ServedMode != "" && s.ServedMode == s.Mode {
			differ, unset := modes.Mismatch(env, m)
			s.ServedDiffers = append(append(s.ServedDiffers, differ...), unset...)
		}
	}
	// Asked whatever the file says now: a generation kept warm runs on
	// after keep_previous (or overlap) was taken out of the file, until
	// its time is up or the service restarts. Without a launcher's
	// control socket nothing is dialled.
	if src.Warm != nil && (s.ActiveState == "active" || s.ActiveState == "reloading") {
		s.Warm = src.Warm(ctx, si, s.MainPID)
		if s.Warm != nil {
			s.Warm.RollbackFlips, s.Warm.NoFlip = rollbackFlips(si, s.Warm)
		}
	}
}

// socketState words a socket unit's state.
func socketState(u control.Unit) string {
	switch u.ActiveState {
	case "active", "reloading":
		return "listening"
	case "failed":
		return "failed"
	case "activating":
		return "starting"
	case "deactivating":
		return "stopping"
	}
	return "stopped"
}

// fromNoFile tells whether systemd loaded a unit in loadState from no
// file, or from one it refused: the site file deleted or renamed, the unit
// masked, or a drop-in with a bad setting (a unit takes such a load state
// only when it is loaded: an active one at a daemon-reload). systemd
// starts no such unit. A socket unit loaded so has no listeners, and
// systemd closed the sockets it held: it says active, but holds none.
func fromNoFile(loadState string) bool {
	switch loadState {
	case "not-found", "masked", "bad-setting", "error":
		return true
	}
	return false
}

// worstSocket is the state of a site's sockets together: the worst of them.
func worstSocket(ss []Socket) string {
	rank := map[string]int{"listening": 0, "starting": 1, "stopping": 2, "stopped": 3, "failed": 4}
	worst := "listening"
	for _, s := range ss {
		if rank[s.State] > rank[worst] {
			worst = s.State
		}
	}
	return worst
}

// crashWindow is how long a service that systemd restarted after a
// failure counts as restarting once it runs again: in a crash loop the
// app runs for a moment between its failures (gunicorn says READY=1
// before its workers import the app), and status must not say
// "running" in those moments. It is the units' StartLimitIntervalSec.
const crashWindow = 10 * time.Second

// siteState is the site in one word (see Site.State), at time now.
func siteState(s Site, now time.Time) string {
	switch {
	case s.ActiveState == "failed" || s.Socket == "failed":
		return "failed"
	case s.Socket == "stopped" || s.Socket == "stopping":
		return "stopped"
	case s.SubState == "auto-restart" || s.ActiveState == "activating" && s.NRestarts > 0,
		s.ActiveState == "active" && s.NRestarts > 0 && !s.activeEnter.IsZero() && now.Sub(s.activeEnter) < crashWindow,
		// Stopping because it failed (its cleanup runs), not because
		// someone stopped it: systemd restarts it next.
		s.ActiveState == "deactivating" && s.Result != "" && s.Result != "success":
		return "restarting"
	case s.ActiveState == "active":
		return "running"
	case s.ActiveState == "reloading":
		return "reloading"
	case s.ActiveState == "activating":
		return "starting"
	case s.ActiveState == "deactivating":
		return "stopping"
	case fromNoFile(s.LoadState):
		// systemd starts no such service: the first request fails the
		// sockets, which then refuse every visitor.
		return "stopped"
	}
	return "idle"
}

// isRunning is what exit code 0 of sitectl status means: visitors are
// served, now or once the app started.
func isRunning(state string) bool {
	switch state {
	case "running", "idle", "starting", "reloading", "stopping":
		return true
	}
	return false
}

// entry is a site to report: its current site file's, or, when that is
// invalid, its last good version's, or only its name.
type entry struct {
	// site: Name always; the rest when known. For list, from its cache,
	// it holds only what list reads (sitecache.Record).
	site     *site.Site
	known    bool // site holds a parsed site file
	file     string
	errs     site.Errors
	lastGood bool
	modTime  time.Time
	pin      *modes.Pin // the valid file failed to start: site is its last good copy
	gone     bool       // no site file, but its units run
	// state is the site's state read already (readStates); nil: not yet.
	state *stateRead
}

// stateRead is what reading a site's state gave.
type stateRead struct {
	listed modes.Listed
	err    error
}

// readStates reads the state of each entry whose site has a state
// directory (withState, when known), on all CPUs.
func readStates(ents []entry, read func(name string) (modes.Listed, error), withState map[string]bool, known bool) {
	states := make([]stateRead, len(ents))
	par.Each(len(ents), func(i int) {
		if name := ents[i].site.Name; !known || withState[name] {
			states[i].listed, states[i].err = read(name)
			ents[i].state = &states[i]
		}
	})
}

func (en entry) unitNames() []string {
	names := append([]string{units.ServiceName(en.site.Name)}, units.SocketNames(en.site)...)
	if en.site.ReloadTrigger != "" {
		names = append(names, units.ReloadPathName(en.site.Name))
	}
	return names
}

func (en entry) fileState() FileState {
	fs := FileState{State: "ok", Errors: []FileError{}}
	if en.gone {
		fs.State = "gone"
		return fs
	}
	if en.pin != nil {
		fs.Pinned = &Pinned{Since: en.pin.Since.UTC(), Reason: en.pin.Reason, Copy: en.site.File}
	}
	if len(en.errs) == 0 {
		return fs
	}
	fs.State, fs.LastGood = "invalid", en.lastGood
	if !en.modTime.IsZero() {
		t := en.modTime.UTC()
		fs.InvalidSince = &t
	}
	for _, e := range en.errs {
		fs.Errors = append(fs.Errors, FileError{File: e.File, Line: e.Line, Column: e.Col, Message: e.Msg})
	}
	return fs
}

// allEntries are the sites of the config directory, valid or not, as
// load reads them.
func allEntries(d paths.Dirs, load func(dir string) (site.Result, sitecache.Stats, error)) ([]entry, []error, sitecache.Stats, error) {
	res, stats, err := load(d.Config)
	if err != nil {
		return nil, nil, stats, err
	}
	ents := make([]entry, 0, len(res.Sites)+len(res.Errors))
	for _, s := range res.Sites {
		ents = append(ents, entry{site: s, known: true, file: s.File})
	}
	var skipped []error
	byFile := map[string]site.Errors{}
	var order []string
	for _, e := range res.Errors {
		if _, ok := byFile[e.File]; !ok {
			order = append(order, e.File)
		}
		byFile[e.File] = append(byFile[e.File], e)
	}
	for _, file := range order {
		name := site.NameFromFile(file)
		if site.ValidateName(name) != nil {
			skipped = append(skipped, byFile[file])
			continue
		}
		ents = append(ents, invalidEntry(d, name, file, byFile[file]))
	}
	sortEntries(ents)
	return ents, skipped, stats, nil
}

// namedEntries are the named sites; missing are those without a site file.
func namedEntries(d paths.Dirs, names []string) ([]entry, []string, error) {
	var ents []entry
	var missing []string
	seen := make(map[string]bool, len(names))
	for _, name := range names {
		if err := site.ValidateName(name); err != nil {
			return nil, nil, fmt.Errorf("%w: %w", ErrBadName, err)
		}
		if seen[name] {
			continue // shown once, however often it is named
		}
		seen[name] = true
		file := d.SiteFile(name)
		data, err := site.ReadSiteFile(file)
		if errors.Is(err, fs.ErrNotExist) {
			if _, lerr := os.Lstat(file); errors.Is(lerr, fs.ErrNotExist) {
				missing = append(missing, name)
				continue
			}
		}
		var errs site.Errors
		if err != nil {
			msg := err.Error()
			if fe := (*site.FileError)(nil); errors.As(err, &fe) {
				msg = fe.Reason // as LoadDir words it: the path is the error's file
			}
			errs = site.Errors{{File: file, Line: 1, Col: 1, Msg: msg}}
		} else if s, perr := site.ParseNamed(file, name, data); perr != nil {
			errs = perr.(site.Errors)
		} else {
			en := entry{site: s, known: true, file: file}
			// What runs is the last good copy while the file as it is
			// failed to start and is pinned.
			if pin, good, err := (modes.Store{Dir: d.State}).Pinned(name, data); err == nil && pin != nil {
				en.site, en.pin = good, pin
			}
			ents = append(ents, en)
			continue
		}
		ents = append(ents, invalidEntry(d, name, file, errs))
	}
	return ents, missing, nil
}

// pinnedEntries marks the valid sites that are pinned to their last good
// version (modes.Pin) and shows that version, as status by name does; one
// read of the pins' directory finds them, so list pays nothing for sites
// without one.
func pinnedEntries(d paths.Dirs, ents []entry) {
	st := modes.Store{Dir: d.State}
	names := st.PinnedNames()
	if len(names) == 0 {
		return
	}
	for i := range ents {
		en := &ents[i]
		if !names[en.site.Name] || len(en.errs) > 0 || en.file != d.SiteFile(en.site.Name) {
			continue
		}
		data, err := site.ReadSiteFile(en.file)
		if err != nil {
			continue
		}
		if pin, good, err := st.Pinned(en.site.Name, data); err == nil && pin != nil {
			en.site, en.pin, en.known = good, pin, true
		}
	}
}

// goneEntries are the sites that systemd runs units of but that have no
// site file (ents are those that have one): a file deleted or renamed
// while its site served. Until sitectl remove, or a reboot, those units
// go on serving, or holding the site's ports; list must not hide them.
// A name is a site's when a site service or main socket of that name is
// not inactive (site names never end in -reload, so the trigger's service
// is never taken for a site's).
func goneEntries(d paths.Dirs, ents []entry, byName unitsByName) []entry {
	have := make(map[string]bool, len(ents))
	for _, en := range ents {
		have[en.site.Name] = true
	}
	var out []entry
	seen := map[string]bool{}
	for unitName, u := range byName {
		if !runs(u) {
			continue
		}
		base, ok := strings.CutPrefix(unitName, "site-")
		if !ok {
			continue
		}
		name, ok := strings.CutSuffix(base, ".service")
		if !ok {
			name, ok = strings.CutSuffix(base, ".socket")
		}
		if !ok || have[name] || seen[name] || site.ValidateName(name) != nil {
			continue
		}
		en := goneEntry(d, name)
		if unitsRun(en.site, byName) {
			seen[name] = true
			out = append(out, en)
		}
	}
	return out
}

// goneEntry is a site without a site file: its last good version when
// sitectl kept one (its listeners, its socket units), else its name.
func goneEntry(d paths.Dirs, name string) entry {
	en := entry{site: &site.Site{Name: name}, file: d.SiteFile(name), gone: true}
	if s, ok := (modes.Store{Dir: d.State}).LastGood(name); ok {
		en.site, en.known = s, true
	}
	return en
}

// unitsRun tells whether the service or a socket unit of site s is not
// inactive (or failed): it serves, starts, stops or listens.
func unitsRun(s *site.Site, byName unitsByName) bool {
	if u, ok := byName[units.ServiceName(s.Name)]; ok && runs(u) {
		return true
	}
	for _, n := range units.SocketNames(s) {
		if u, ok := byName[n]; ok && runs(u) {
			return true
		}
	}
	return false
}

func runs(u *control.Unit) bool {
	return u.ActiveState != "" && u.ActiveState != "inactive" && u.ActiveState != "failed"
}

// invalidEntry is a site whose file is invalid: its last good version when
// sitectl kept one, else its name only.
func invalidEntry(d paths.Dirs, name, file string, errs site.Errors) entry {
	en := entry{site: &site.Site{Name: name}, file: file, errs: errs}
	if t, ok := site.WrittenAt(file); ok {
		en.modTime = t
	}
	if s, ok := (modes.Store{Dir: d.State}).LastGood(name); ok {
		en.site, en.known, en.lastGood = s, true, true
	}
	return en
}
