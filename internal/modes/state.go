package modes

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"
	"time"

	"github.com/sitectl/sitectl/internal/atomicfile"
	"github.com/sitectl/sitectl/internal/site"
)

// maxHistory bounds the history kept per site; older entries are dropped.
const maxHistory = 200

// Results of a mode switch, as history records them.
const (
	ResultOK             = "ok"              // the site serves in the new mode
	ResultRolledBack     = "rolled-back"     // it did not come up; the old mode serves again
	ResultRollbackFailed = "rollback-failed" // neither came up
	ResultInterrupted    = "interrupted"     // sitectl was killed before it finished
	ResultStopped        = "stopped"         // someone else stopped the site meanwhile; it stays stopped
)

// Entry is one mode switch in a site's history.
type Entry struct {
	Time   time.Time `json:"time"`
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
	Since time.Time `json:"since"`
	From  string    `json:"from"`
	To    string    `json:"to"`
	UID   int       `json:"uid"`
	PID   int       `json:"pid"`
}

// State is what sitectl keeps besides the mode file: the previous mode, the
// switch in progress, and the history. The current mode itself is the mode
// file, since that is what the service runs.
type State struct {
	PreviousMode string    `json:"previous_mode,omitempty"`
	ChangedAt    time.Time `json:"changed_at,omitzero"`
	Pending      *Pending  `json:"pending,omitempty"`
	History      []Entry   `json:"history"`
}

func (st Store) statePath(name string) string { return st.paths().StateFile(name) }

// ReadState returns a site's state; a site without one has the zero State.
func (st Store) ReadState(name string) (State, error) {
	var s State
	data, err := os.ReadFile(st.statePath(name))
	if errors.Is(err, fs.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return s, fmt.Errorf("cannot read the state of site %s: %w", name, err)
	}
	if err := json.Unmarshal(data, &s); err != nil {
		return s, fmt.Errorf("the state file %s of site %s is damaged: %w", st.statePath(name), name, err)
	}
	return s, nil
}

// WriteState replaces a site's state atomically.
func (st Store) WriteState(name string, s State) error {
	if len(s.History) > maxHistory {
		s.History = s.History[len(s.History)-maxHistory:]
	}
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	if err := st.siteDir(name); err != nil {
		return err
	}
	return atomicfile.Write(st.statePath(name), append(data, '\n'), 0o644)
}

// Lock is a site's switch lock, held while a mode switch runs.
type Lock struct{ f *os.File }

// ErrLocked is returned by TryLock when another switch holds the lock.
var ErrLocked = errors.New("another sitectl is changing this site")

// LockSite takes the site's lock, waiting for it when block is true. The
// lock is an flock(2) on a file in the site's state directory, so it is
// released when its holder dies, however it dies.
func (st Store) LockSite(s *site.Site, block bool) (*Lock, error) {
	lock := st.paths().LockFile(s.Name)
	var f *os.File
	var err error
	if os.Geteuid() == 0 {
		if err := st.prepareSite(s.Name); err != nil {
			return nil, err
		}
		f, err = os.OpenFile(lock, os.O_RDWR, 0)
	} else {
		// A deployer cannot create it; flock needs only a file open for
		// reading. (Client.Prepare has the state service create it.)
		f, err = os.Open(lock)
	}
	if err != nil {
		return nil, fmt.Errorf("cannot open the lock of site %s: %w", s.Name, err)
	}
	how := syscall.LOCK_EX
	if !block {
		how |= syscall.LOCK_NB
	}
	for {
		err = syscall.Flock(int(f.Fd()), how)
		if err != syscall.EINTR {
			break
		}
	}
	if errors.Is(err, syscall.EWOULDBLOCK) {
		f.Close()
		return nil, ErrLocked
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("cannot lock site %s: %w", s.Name, err)
	}
	return &Lock{f}, nil
}

// prepareSite creates a site's state directory and its lock file, so that a
// deployer can take the lock with a file opened for reading.
func (st Store) prepareSite(name string) error {
	if err := st.siteDir(name); err != nil {
		return err
	}
	f, err := os.OpenFile(st.paths().LockFile(name), os.O_RDONLY|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("cannot create the lock of site %s: %w", name, err)
	}
	return f.Close()
}

// Unlock releases the lock.
func (l *Lock) Unlock() error { return l.f.Close() }

// Busy reports whether a switch of the site is running right now: another
// process holds its lock.
func (st Store) Busy(name string) bool {
	f, err := os.Open(st.paths().LockFile(name))
	if err != nil {
		return false
	}
	defer f.Close()
	return syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB) != nil
}
