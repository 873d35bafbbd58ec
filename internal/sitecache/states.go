package sitecache

import (
	"encoding/binary"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sitectl/sitectl/internal/modes"
	"github.com/sitectl/sitectl/internal/site"
)

// The state cache is the list cache's counterpart for the sites' state
// directories. For each site that has one, list reads two small files
// (the mode file and the state file): eight system calls, which cost
// 20-30 µs a site on a virtual machine, 0.2-0.3 s of CPU for 10,000 sites.
// A state record holds what list shows of them, with the identities of the
// two files (absent ones included): a stat of each is enough to use it.

// StateVersion is the format of the state cache file.
const StateVersion = 1

// stateMagic opens every state cache file.
const stateMagic = "sitectl state cache\n"

// StateCache is the content of the state cache file.
type StateCache struct {
	Build   string // the sitectl build that wrote it (Build)
	Dir     string // the state directory the records are of (modes.Store.Dir)
	Records []StateRecord
}

// StateRecord is what list shows of one site's state directory, read
// from the versions of its files that Files names. A site whose state has
// a switch pending has no record: list reads its files each time.
type StateRecord struct {
	Site         string
	Files        modes.Files
	Mode         string // the recorded mode; none when Files.Mode is zero
	PreviousMode string
}

// FromListed is the record of site name's state l, read from files f.
func FromListed(name string, f modes.Files, l modes.Listed) StateRecord {
	return StateRecord{Site: name, Files: f, Mode: l.Mode, PreviousMode: l.State.PreviousMode}
}

// Listed is what r records, as modes.ReadListed gave it (without the
// state's change time, which list does not show).
func (r StateRecord) Listed() modes.Listed {
	l := modes.Listed{State: modes.State{PreviousMode: r.PreviousMode}}
	if r.Files.Mode != (site.FileID{}) {
		l.Mode, l.Recorded, l.Written = r.Mode, true, time.Unix(0, max(r.Files.Mode.Mtime, r.Files.Mode.Ctime))
	}
	return l
}

// EncodeStates is the state cache file of c, written as Encode writes
// the list cache.
func EncodeStates(c StateCache) []byte {
	b := appendHeader(make([]byte, 0, 64+len(c.Records)*96), stateMagic, StateVersion, c.Build, c.Dir)
	b = binary.AppendUvarint(b, uint64(len(c.Records)))
	for _, r := range c.Records {
		b = appendString(b, r.Site)
		b = appendFileID(b, r.Files.Mode)
		b = appendFileID(b, r.Files.State)
		b = appendString(b, r.Mode)
		b = appendString(b, r.PreviousMode)
	}
	return seal(b)
}

// DecodeStates reads a state cache file; any damage is ErrDamaged.
func DecodeStates(data []byte) (StateCache, error) {
	d, build, dir, err := openCache(data, stateMagic, StateVersion)
	if err != nil {
		return StateCache{}, err
	}
	c := StateCache{Build: build, Dir: dir}
	// A record takes at least 13 bytes (a name, two file identities and
	// two strings): no damaged count can make a huge allocation.
	n := d.count(13)
	c.Records = make([]StateRecord, 0, n)
	for i := 0; i < n && d.err == nil; i++ {
		r := StateRecord{Site: d.string()}
		r.Files.Mode, r.Files.State = d.fileID(), d.fileID()
		r.Mode, r.PreviousMode = d.string(), d.string()
		c.Records = append(c.Records, r)
	}
	if err := d.end(); err != nil {
		return StateCache{}, err
	}
	return c, nil
}

// StateStore is the state cache file of one state directory, as one
// sitectl build reads and writes it; trusted and written under the same
// rules as Store.
type StateStore struct {
	Path     string      // the cache file (paths.StateCache)
	Modes    modes.Store // the state directory
	Build    string      // this sitectl's build (Build); empty: no cache
	MayWrite bool
}

// States is one list's reading of the sites' states through a StateStore.
// Its Read is safe on many goroutines at once.
type States struct {
	st     StateStore
	start  time.Time
	old    map[string]*StateRecord
	usable bool

	mu     sync.Mutex
	recs   []StateRecord
	reused int
	fresh  int
	// sites is a descriptor of the directory of the sites' state
	// directories, for the stats of Read (modes.Store.StatListedAt); -1:
	// none, they stat by path.
	sites int
}

// Open reads the state cache file for a list that started at start
// (time.Now). A missing, damaged, foreign or oversized file is not an
// error: every site's files are read, as without a cache.
func (st StateStore) Open(start time.Time) *States {
	s := &States{st: st, start: start, sites: -1}
	if st.Build == "" {
		return s
	}
	data, err := readFile(st.Path)
	if err != nil {
		return s
	}
	c, err := DecodeStates(data)
	if err != nil || c.Build != st.Build || c.Dir != st.Modes.Dir {
		return s
	}
	s.usable = true
	if fd, err := unix.Open(st.Modes.SitesDir(), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0); err == nil {
		s.sites = fd
	}
	s.old = make(map[string]*StateRecord, len(c.Records))
	for i := range c.Records {
		s.old[c.Records[i].Site] = &c.Records[i]
	}
	return s
}

// Read is modes.Store.ReadListed of site name: from its record when a stat
// of each file finds the versions the record was read from, else from the
// files (an error of theirs is returned as ReadListed returns it).
func (s *States) Read(name string) (modes.Listed, error) {
	if r, ok := s.old[name]; ok {
		if f, err := s.stat(name); err == nil && f == r.Files {
			s.keep(*r, false)
			return r.Listed(), nil
		}
	}
	l, f, err := s.st.Modes.ReadListed(name)
	if err != nil {
		return l, err
	}
	// A file changed within Settle of the start may change again with
	// the same identity: not recorded until it has settled.
	if l.State.Pending == nil && settledOrAbsent(f.Mode, s.start) && settledOrAbsent(f.State, s.start) {
		s.keep(FromListed(name, f, l), true)
	}
	return l, nil
}

// stat is modes.Store.StatListed of site name.
func (s *States) stat(name string) (modes.Files, error) {
	if s.sites >= 0 {
		return s.st.Modes.StatListedAt(s.sites, name)
	}
	return s.st.Modes.StatListed(name)
}

func settledOrAbsent(id site.FileID, start time.Time) bool {
	return id == (site.FileID{}) || Settled(id, start)
}

func (s *States) keep(r StateRecord, fresh bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.recs = append(s.recs, r)
	if fresh {
		s.fresh++
	} else {
		s.reused++
	}
}

// Close writes the state cache file again when what it should hold
// changed (or it could not be used), if the store may write. It says what
// the list did with the cache.
func (s *States) Close() Stats {
	if s.sites >= 0 {
		unix.Close(s.sites)
		s.sites = -1
	}
	stats := Stats{Reused: s.reused}
	if s.usable {
		stats.Trusted = len(s.old)
	}
	if s.st.MayWrite && s.st.Build != "" && (!s.usable || s.fresh > 0 || len(s.recs) != len(s.old)) {
		stats.Wrote = writeCache(s.st.Path, EncodeStates(StateCache{Build: s.st.Build, Dir: s.st.Modes.Dir, Records: s.recs})) == nil
	}
	return stats
}
