package modes

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"syscall"
	"time"

	"github.com/sitectl/sitectl/internal/atomicfile"
	"github.com/sitectl/sitectl/internal/procfs"
	"github.com/sitectl/sitectl/internal/site"
)

// maxHistory bounds the history kept per site; older entries are dropped
// (trimHistory), root's newest rootReserve last of all.
const maxHistory = 200

// rootReserve is how many of maxHistory places root's newest entries keep
// against everyone else's: a deployer granted a site may change it as
// often as they like, and must not push out of its history what root did
// to it.
const rootReserve = maxHistory / 2

// maxReason bounds the reason of one history entry.
const maxReason = 4096

// stateVersion is the format of the state file, which EncodeState
// writes. A state file of a later format (a sitectl downgraded after a
// newer one wrote it) is refused, not read: read and written back, it
// would lose what this sitectl does not know of it (its history's fields,
// the modes it records). A file without a version is of a sitectl that
// did not write one, whose format this one reads. A change of the format
// that an older sitectl would get wrong raises it.
const stateVersion = 1

// maxStateFile bounds what ReadState reads: maxHistory entries of at most
// maxReason bytes, escaped, and room to spare.
const maxStateFile = 8 << 20

// Results of a mode switch, as history records them.
const (
	ResultOK             = "ok"              // the site serves in the new mode
	ResultRolledBack     = "rolled-back"     // it did not come up; the old mode serves again
	ResultRollbackFailed = "rollback-failed" // neither came up
	ResultInterrupted    = "interrupted"     // sitectl was killed before it finished
	ResultStopped        = "stopped"         // someone else stopped the site meanwhile; it stays stopped
)

// Kinds of change, as history records them: what the operator asked for.
const (
	KindMode     = "mode"     // sitectl mode
	KindRestart  = "restart"  // sitectl restart
	KindReload   = "reload"   // sitectl reload
	KindRollback = "rollback" // sitectl rollback
)

// Kinds lists every kind of change.
var Kinds = []string{KindMode, KindRestart, KindReload, KindRollback}

// Entry is one change in a site's history. Kind is empty in entries
// recorded before sitectl recorded it.
type Entry struct {
	Time   time.Time `json:"time"`
	Kind   string    `json:"kind,omitempty"`
	From   string    `json:"from"`
	To     string    `json:"to"`
	UID    int       `json:"uid"`
	Result string    `json:"result"`
	Reason string    `json:"reason,omitempty"`
}

// Pending is a switch in progress. It is written before the mode file
// changes and cleared when the switch ends, so a switch cut short (sitectl
// killed) is visible to status and to the next switch.
type Pending struct {
	Since time.Time `json:"since" doc:"when the switch began"`
	Kind  string    `json:"kind,omitempty" doc:"mode, restart, reload or rollback; left out by sitectl before kinds were recorded" enum:"mode,restart,reload,rollback"`
	From  string    `json:"from" doc:"the mode it switches from"`
	To    string    `json:"to" doc:"the mode it switches to"`
	UID   int       `json:"uid" doc:"who asked for it"`
	PID   int       `json:"pid" doc:"the sitectl that runs (or ran) it"`
}

// State is what sitectl keeps besides the mode file: the previous mode, the
// switch in progress, and the history. The current mode itself is the mode
// file, since that is what the service runs. History stays the last field:
// ReadSummary reads only what is written before it.
//
// PreviousMode and VerifiedMode are modes a change showed to serve, never
// one a sitectl stopped before it could (its switch stays pending, then
// interrupted, with the mode file recording the mode it switched to):
// VerifiedMode is the mode of the last change that served (ok), and
// PreviousMode the one verified before it, which sitectl rollback goes
// back to.
type State struct {
	// Version is the format of the file (stateVersion when written);
	// first, so that ReadSummary sees it.
	Version      int       `json:"version,omitempty"`
	PreviousMode string    `json:"previous_mode,omitempty"`
	VerifiedMode string    `json:"verified_mode,omitempty"`
	ChangedAt    time.Time `json:"changed_at,omitzero"`
	Pending      *Pending  `json:"pending,omitempty"`
	History      []Entry   `json:"history"`
}

func (st Store) statePath(name string) string { return st.paths().StateFile(name) }

// ReadState returns a site's state; a site without one has the zero State.
func (st Store) ReadState(name string) (State, error) {
	s, _, err := st.readState(name)
	return s, err
}

// readState is ReadState with the identity of the file it read; the zero
// FileID when there is none.
func (st Store) readState(name string) (State, site.FileID, error) {
	var s State
	data, id, err := readBounded(st.statePath(name), maxStateFile)
	if errors.Is(err, fs.ErrNotExist) {
		return s, site.FileID{}, nil
	}
	if err != nil {
		return s, site.FileID{}, fmt.Errorf("cannot read the state of site %s: %w", name, err)
	}
	if err := json.Unmarshal(data, &s); err != nil {
		return s, site.FileID{}, &DamagedError{Site: name, Path: st.statePath(name), What: DamagedState, Err: err}
	}
	if err := checkStateVersion(st.statePath(name), name, s.Version); err != nil {
		return State{}, site.FileID{}, err
	}
	return s, id, nil
}

// checkStateVersion refuses a state file of a format later than this
// sitectl's, which it would not read whole.
func checkStateVersion(path, name string, v int) error {
	if v > stateVersion {
		return fmt.Errorf("the state file %s of site %s has format %d, written by a newer sitectl; this one reads format %d at most, and leaves the file as it is: install the newer sitectl again", path, name, v, stateVersion)
	}
	return nil
}

// summaryHead bounds how much of a state file ReadSummary reads; the fields
// before the history take a few hundred bytes.
const summaryHead = 16 << 10

// ReadSummary returns a site's state without its history, as status and
// list need it for thousands of sites: the history (up to maxHistory
// entries) is written last, so only the head of the file is read and
// decoding stops where the history begins. A state whose head does not hold
// the other fields is read whole.
func (st Store) ReadSummary(name string) (State, error) {
	s, _, err := st.readSummary(name)
	return s, err
}

// readSummary is ReadSummary with the identity of the file the summary
// came from; the zero FileID when there is none.
func (st Store) readSummary(name string) (State, site.FileID, error) {
	head, id, err := readUpTo(st.statePath(name), summaryHead)
	if errors.Is(err, fs.ErrNotExist) {
		return State{}, site.FileID{}, nil
	}
	if err != nil {
		return State{}, site.FileID{}, fmt.Errorf("cannot read the state of site %s: %w", name, err)
	}
	if s, ok := decodeSummary(head); ok {
		return s, id, nil
	}
	return st.readState(name)
}

// decodeSummary decodes the fields of a state object up to its history; ok
// is false when data ends, or is not a state, before that.
func decodeSummary(data []byte) (State, bool) {
	var s State
	dec := json.NewDecoder(bytes.NewReader(data))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return s, false
	}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return s, false
		}
		switch t {
		case "history":
			return s, true
		case "version":
			if err = dec.Decode(&s.Version); err == nil && s.Version > stateVersion {
				return s, false // readState says why
			}
		case "previous_mode":
			err = dec.Decode(&s.PreviousMode)
		case "verified_mode":
			err = dec.Decode(&s.VerifiedMode)
		case "changed_at":
			err = dec.Decode(&s.ChangedAt)
		case "pending":
			err = dec.Decode(&s.Pending)
		default:
			var skip json.RawMessage
			err = dec.Decode(&skip)
		}
		if err != nil {
			return s, false
		}
	}
	t, err := dec.Token()
	return s, err == nil && t == json.Delim('}')
}

// WriteState replaces a site's state atomically.
func (st Store) WriteState(name string, s State) error {
	data, err := EncodeState(s)
	if err != nil {
		return err
	}
	if err := st.siteDir(name); err != nil {
		return err
	}
	return atomicfile.Write(st.statePath(name), data, FileMode)
}

// EncodeState is the state file of s, its history cut to maxHistory
// entries (trimHistory).
func EncodeState(s State) ([]byte, error) {
	s.Version = stateVersion
	s.History = trimHistory(s.History)
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(data, '\n'), nil
}

// trimHistory cuts h to maxHistory entries, keeping their order, so that
// no one who changes a site often can push out of its history what others
// did to it:
//
//   - root's newest rootReserve entries stay, whoever made the newer ones;
//   - the other places go to everyone in turn (root's older entries
//     included), each taking their newest entry not yet kept, the one
//     whose such entry is newest first, until the places are full: of a
//     deployer who made a thousand changes and one who made three, both
//     keep their newest, and each of the three stays as long as the first
//     deployer has more than three entries kept.
//
// A history of one uid's changes keeps its newest maxHistory.
func trimHistory(h []Entry) []Entry {
	if len(h) <= maxHistory {
		return h
	}
	keep := make([]bool, len(h))
	kept := 0
	// byUID is each uid's entries, newest first, those already kept
	// taken off the front.
	byUID := map[int][]int{}
	var uids []int // each uid once
	for i := len(h) - 1; i >= 0; i-- {
		uid := h[i].UID
		if uid == 0 && kept < rootReserve {
			keep[i] = true
			kept++
			continue
		}
		if _, seen := byUID[uid]; !seen {
			uids = append(uids, uid)
		}
		byUID[uid] = append(byUID[uid], i)
	}
	// Round by round: the uids still holding entries, ordered by their
	// newest unkept one.
	for kept < maxHistory {
		var next []int
		for _, uid := range uids {
			if len(byUID[uid]) > 0 {
				next = append(next, byUID[uid][0])
			}
		}
		if len(next) == 0 {
			break
		}
		slices.Sort(next)
		for j := len(next) - 1; j >= 0 && kept < maxHistory; j-- {
			i := next[j]
			keep[i] = true
			kept++
			byUID[h[i].UID] = byUID[h[i].UID][1:]
		}
	}
	out := make([]Entry, 0, maxHistory)
	for i, e := range h {
		if keep[i] {
			out = append(out, e)
		}
	}
	return out
}

// Lock is a site's switch lock, held while a mode switch runs.
type Lock struct{ f *os.File }

// ErrLocked is returned by TryLock when another switch holds the lock.
var ErrLocked = errors.New("another sitectl is changing this site")

// LockSite takes the site's lock, waiting for it when block is true. The
// lock is an flock(2) on a file in the site's state directory, so it is
// released when its holder dies, however it dies. Only root takes it:
// deployers' switches run in sitectl's state service.
func (st Store) LockSite(s *site.Site, block bool) (*Lock, error) {
	how := syscall.LOCK_EX
	if !block {
		how |= syscall.LOCK_NB
	}
	f, err := lockNamed("site "+s.Name, st.paths().LockFile(s.Name), func(path string) (*os.File, error) {
		if err := st.prepareSite(s.Name); err != nil {
			return nil, err
		}
		f, err := openLock(path, os.O_RDWR, 0)
		if err != nil {
			return nil, fmt.Errorf("cannot open the lock of site %s: %w", s.Name, err)
		}
		return f, nil
	}, func(f *os.File) error { return siteLockError(s.Name, flock(f, how)) })
	if err != nil {
		return nil, err
	}
	return &Lock{f}, nil
}

// siteLockError is what flock's err means for site name's lock: nil,
// ErrLocked when another holds it, or a failure.
func siteLockError(name string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, syscall.EWOULDBLOCK):
		return ErrLocked
	}
	return fmt.Errorf("cannot lock site %s: %w", name, err)
}

// lockNamed opens a lock file at path (open, which may return no file
// and no error: there is none to lock) and locks it (lock), until the
// file locked is still the one at path (lockedAsNamed), at most maxRelock
// times. what names the lock in the error of the last try.
func lockNamed(what, path string, open func(path string) (*os.File, error), lock func(*os.File) error) (*os.File, error) {
	for tries := 1; ; tries++ {
		f, err := open(path)
		if f == nil || err != nil {
			return nil, err
		}
		if testHookLockOpened != nil {
			testHookLockOpened()
		}
		if err := lock(f); err != nil {
			f.Close()
			return nil, err
		}
		if lockedAsNamed(f, path) {
			return f, nil
		}
		f.Close() // removed meanwhile: take it again
		if tries == maxRelock {
			return nil, fmt.Errorf("cannot lock %s: its lock file %s was removed or replaced each of the %d times it was locked", what, path, tries)
		}
	}
}

// maxRelock bounds how often a lock is taken again because its file was
// removed or replaced meanwhile (lockedAsNamed): once is a remove that
// came in between, a few times something that keeps removing it.
const maxRelock = 5

// testHookLockOpened, when set (by tests), is called between the open of
// a site's lock file and its flock.
var testHookLockOpened func()

// flock is flock(2) on f, again when a signal interrupts it.
func flock(f *os.File, how int) error {
	for {
		err := syscall.Flock(int(f.Fd()), how)
		if err != syscall.EINTR {
			return err
		}
	}
}

// lockedAsNamed reports whether f, just locked, is still the file at path.
// A lock file can be removed between its open and its flock: `sitectl
// remove` forgets the site's state directory, lock and all, while it
// holds the lock, and a sitectl that opened the file before that gets the
// lock once remove ends, on a file nobody else can open any more, while
// the next one creates a new file and locks that: two changes of one site
// at once. Such a lock is let go and taken again.
func lockedAsNamed(f *os.File, path string) bool {
	held, err := f.Stat()
	if err != nil {
		return false
	}
	named, err := os.Stat(path)
	return err == nil && os.SameFile(held, named)
}

// TryLockExisting takes the site's lock without waiting and without
// creating anything, for a reader of a read-only state directory (the
// touch-to-reload unit). No lock file means no change of the site ever
// ran: it returns nil and no error then. A change holding it: ErrLocked.
//
// The lock is taken shared: it keeps every change out (each takes it
// exclusive) while the touch reloads, but it is no change itself. Busy,
// which probes with a shared lock, does not take the touch for a change
// under way, so status and history still show a change whose sitectl died
// as cut short (HistoryAsItStands), not as in progress, while a deploy's
// touch reloads the site.
func (st Store) TryLockExisting(name string) (*Lock, error) {
	f, err := lockNamed("site "+name, st.paths().LockFile(name), func(path string) (*os.File, error) {
		f, err := openLock(path, os.O_RDONLY, 0)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return nil, nil
		case err != nil:
			return nil, fmt.Errorf("cannot open the lock of site %s: %w", name, err)
		}
		return f, nil
	}, func(f *os.File) error { return siteLockError(name, flock(f, syscall.LOCK_SH|syscall.LOCK_NB)) })
	if f == nil || err != nil {
		return nil, err
	}
	return &Lock{f}, nil
}

// RootWaits marks that root waits for site name's lock, until the mark is
// let go (Unlock): a deployer's change does not take the site's lock
// meanwhile (RootWaiting). The site's lock is a plain flock(2), which
// whoever tries at the right moment gets: a deployer looping on changes
// of a site through the state service, which tries every 100 ms, kept
// root's restart of it out until root's --timeout, time after time. nil,
// and no error, when another root's sitectl marks it already.
func (st Store) RootWaits(name string) (*Lock, error) {
	f, err := openLock(st.paths().RootWaitFile(name), os.O_RDONLY|os.O_CREATE, FileMode)
	if err != nil {
		return nil, fmt.Errorf("cannot mark that root waits for site %s: %w", name, err)
	}
	if err := flock(f, syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, nil
		}
		return nil, fmt.Errorf("cannot mark that root waits for site %s: %w", name, err)
	}
	return &Lock{f}, nil
}

// RootWaiting tells whether root's sitectl waits for site name's lock
// (RootWaits). A mark that cannot be looked at is none.
func (st Store) RootWaiting(name string) bool {
	f, err := openLock(st.paths().RootWaitFile(name), os.O_RDONLY, 0)
	if err != nil {
		return false
	}
	defer f.Close()
	return errors.Is(flock(f, syscall.LOCK_SH|syscall.LOCK_NB), syscall.EWOULDBLOCK)
}

// EnsureLock creates site name's state directory and its lock file, if
// they do not exist: sitectl touched, which may not create them (the
// reload unit sees the state directory read-only), takes the lock of a
// site only where the file exists, and prepare creates it at every start,
// so that a touch of a site that has ever started waits for a change of it
// under way, its first one included.
func (st Store) EnsureLock(name string) error { return st.prepareSite(name) }

// prepareSite creates a site's state directory and its lock file.
func (st Store) prepareSite(name string) error {
	if err := st.siteDir(name); err != nil {
		return err
	}
	f, err := openLock(st.paths().LockFile(name), os.O_RDONLY|os.O_CREATE, FileMode)
	if err != nil {
		return fmt.Errorf("cannot create the lock of site %s: %w", name, err)
	}
	return f.Close()
}

// openLock opens a lock file, which is only ever flocked, never read:
// without blocking, since opening a named pipe put in its place would
// wait for a writer (a status of every site, a change) where the lock's
// own wait is bounded.
func openLock(path string, flag int, perm os.FileMode) (*os.File, error) {
	return os.OpenFile(path, flag|syscall.O_NONBLOCK|syscall.O_NOCTTY, perm)
}

// Unlock releases the lock. What Hold wrote goes first, so that a lock
// nobody holds names no holder.
func (l *Lock) Unlock() error {
	_ = l.f.Truncate(0) // best effort: LockHolder checks the holder runs
	return l.f.Close()
}

// Holder is who holds a site's lock, as the holder wrote it into the lock
// file (Lock.Hold): what another sitectl that finds the site busy tells
// its operator, who may have to wait for it, or find and stop it.
type Holder struct {
	PID   int       `json:"pid"`   // the sitectl that holds it: root's, or sitectl's state service
	UID   int       `json:"uid"`   // who asked: root, or the deployer the state service acts for
	Verb  string    `json:"verb"`  // mode, restart, reload, rollback, enable, disable, remove
	Since time.Time `json:"since"` // when it took the lock
}

// maxHolder bounds what LockHolder reads of a lock file.
const maxHolder = 1024

// Hold writes h, with the time now, into the lock file, for LockHolder.
// Best effort: a lock whose holder cannot be written is held all the same,
// and another sitectl only says less of who holds it.
func (l *Lock) Hold(h Holder) {
	data, err := json.Marshal(h)
	if err != nil || len(data) > maxHolder {
		return
	}
	if l.f.Truncate(0) == nil {
		_, _ = l.f.WriteAt(data, 0)
	}
}

// LockHolder is who holds site name's lock, as its holder wrote it (Hold),
// when that holder still runs and was running when it took the lock: a
// holder that was killed leaves its words in the file, and its pid may be
// another process's since. ok is false when that is not known (a touch's
// reload, which may not write the state directory, holds it too).
func (st Store) LockHolder(name string) (h Holder, ok bool) {
	f, err := openLock(st.paths().LockFile(name), os.O_RDONLY, 0)
	if err != nil {
		return Holder{}, false
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxHolder+1))
	if err != nil || len(data) == 0 || len(data) > maxHolder || json.Unmarshal(data, &h) != nil || h.PID <= 0 || h.Since.IsZero() {
		return Holder{}, false
	}
	age, err := procfs.Age(h.PID)
	if err != nil || age < time.Since(h.Since)-time.Second {
		return Holder{}, false // gone, or a newer process with its pid
	}
	return h, true
}

// Busy reports whether a switch of the site is running right now: another
// process holds its lock exclusively, as a change does (a touch's reload
// holds it shared, see TryLockExisting).
func (st Store) Busy(name string) bool {
	f, err := openLock(st.paths().LockFile(name), os.O_RDONLY, 0)
	if err != nil {
		return false
	}
	defer f.Close()
	return syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB) != nil
}

// HeldShared reports whether site name's lock is held, and only shared: a
// touch's reload holds it (TryLockExisting), and no change does.
func (st Store) HeldShared(name string) bool {
	f, err := openLock(st.paths().LockFile(name), os.O_RDONLY, 0)
	if err != nil {
		return false
	}
	defer f.Close() // releases what a probe took
	if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) == nil {
		return false // free
	}
	return syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB) == nil
}
