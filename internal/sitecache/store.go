package sitecache

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sitectl/sitectl/internal/atomicfile"
	"github.com/sitectl/sitectl/internal/site"
)

// Store is the cache file of one site directory, as one sitectl build
// reads and writes it.
type Store struct {
	Path  string // the cache file (paths.ListCache)
	Dir   string // the site directory
	Build string // this sitectl's build (Build); empty: no cache
	// MayWrite lets a load write the cache file when what it holds
	// changed: root's list does. A cache file is trusted only when the
	// reader's own user owns it and nobody else may read or write it.
	MayWrite bool
	// Held decides which of two sites whose listeners collide keeps them
	// (site.LoadDir).
	Held site.Held
}

// Stats says what a load did with the cache.
type Stats struct {
	Trusted int  // records of a cache file that could be used; 0 when it was ignored
	Reused  int  // sites taken from the cache: their files were not read
	Wrote   bool // the cache file was written
}

// Settle is how long before a load a file must have last changed for its
// record to be kept. File times come from a clock that ticks every few
// milliseconds (every second on some file systems): a file read in the
// tick it was written may be written again in that same tick, with the
// same size and times, and its record would hide the change for good (git
// calls this racy). A file changed less than Settle before the load is
// read by every load until it has settled.
const Settle = 2 * time.Second

// Settled says whether a file with identity id, read by a load that
// started at start, may be recorded.
func Settled(id site.FileID, start time.Time) bool {
	return id.Ctime != 0 && id.Ctime < start.Add(-Settle).UnixNano()
}

// LoadDir is site.LoadDir of st.Dir that takes the sites of unchanged
// files from the cache file instead of reading them, and writes the cache
// file again when what it should hold changed (or it could not be used).
// start is when the load began (time.Now). A missing, damaged, foreign or
// oversized cache file is not an error: every file is read, as without a
// cache.
func (st Store) LoadDir(start time.Time) (site.Result, Stats, error) {
	old, usable := st.read()
	stats := Stats{Trusted: len(old)}
	res, origins, err := site.LoadDirReusing(st.Dir, func(name string, id site.FileID) *site.Site {
		if r, ok := old[name]; ok && r.ID == id {
			return r.Site()
		}
		return nil
	}, st.Held)
	if err != nil {
		return res, stats, err
	}
	recs := make([]Record, 0, len(res.Sites))
	fresh := 0
	for _, s := range res.Sites {
		o, ok := origins[s.File]
		name := filepath.Base(s.File)
		switch {
		case !ok || o.ID == (site.FileID{}):
		case o.Reused:
			stats.Reused++
			recs = append(recs, *old[name])
		case Settled(o.ID, start):
			fresh++
			recs = append(recs, FromSite(name, o.ID, s))
		}
	}
	if st.MayWrite && st.Build != "" && (!usable || fresh > 0 || len(recs) != len(old)) {
		stats.Wrote = st.write(recs) == nil
	}
	return res, stats, nil
}

// read is the records of the cache file by file name, when it is one this
// build wrote for this directory; usable is false when it is not. The map
// points into the decoded records: a map copies a value over 128 bytes to
// a heap object of its own.
func (st Store) read() (recs map[string]*Record, usable bool) {
	if st.Build == "" {
		return nil, false
	}
	data, err := readFile(st.Path)
	if err != nil {
		return nil, false
	}
	c, err := Decode(data)
	if err != nil || c.Build != st.Build || c.Dir != st.Dir {
		return nil, false
	}
	recs = make(map[string]*Record, len(c.Records))
	for i := range c.Records {
		recs[c.Records[i].File] = &c.Records[i]
	}
	return recs, true
}

// readFile reads the cache file if it is a regular file of at most
// MaxSize bytes that the reader's user owns and nobody else may read or
// write; a symlink is not followed.
func readFile(path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	sys, ok := fi.Sys().(*syscall.Stat_t)
	switch {
	case !fi.Mode().IsRegular():
		return nil, fmt.Errorf("%s is not a regular file", path)
	case !ok || int(sys.Uid) != os.Geteuid() || fi.Mode().Perm()&0o077 != 0:
		return nil, fmt.Errorf("%s is not private to this user", path)
	case fi.Size() > MaxSize:
		return nil, fmt.Errorf("%s is larger than %d bytes", path, MaxSize)
	}
	// Read into a buffer of the size it has, and one byte more to see
	// that it grew meanwhile (a cache that is being written is not used).
	data := make([]byte, fi.Size()+1)
	n, err := io.ReadFull(f, data)
	switch {
	case err == nil:
		return nil, fmt.Errorf("%s grew while it was read", path)
	case errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF):
		return data[:n], nil
	}
	return nil, err
}

// write replaces the cache file with recs.
func (st Store) write(recs []Record) error {
	return writeCache(st.Path, Encode(Cache{Build: st.Build, Dir: st.Dir, Records: recs}))
}

// writeCache replaces the cache file at path with data. Its directory is
// private (0700); the directory above it, shared with the state service's
// socket, 0755 as sitectl-state.socket makes it.
func writeCache(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.Mkdir(filepath.Dir(dir), 0o755); err == nil {
		// Whatever the umask: deployers reach the socket in it.
		if err := os.Chmod(filepath.Dir(dir), 0o755); err != nil {
			return err
		}
	} else if !errors.Is(err, fs.ErrExist) {
		return err
	}
	if err := os.Mkdir(dir, 0o700); err == nil {
		return atomicfile.Write(path, data, 0o600)
	} else if !errors.Is(err, fs.ErrExist) {
		return err
	}
	// A directory that was there already is used only when it is this
	// user's own directory, not a link or another user's directory that
	// the file would be written through or into, and its mode is set back
	// to 0700 when it is anything else: the names of the files in it are
	// nobody else's business. The directory above it is root's, so nobody else can put
	// another one in its place meanwhile.
	fi, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	sys, ok := fi.Sys().(*syscall.Stat_t)
	switch {
	case !fi.IsDir():
		return fmt.Errorf("%s is not a directory", dir)
	case !ok || int(sys.Uid) != os.Geteuid():
		return fmt.Errorf("%s is not this user's", dir)
	case fi.Mode().Perm() != 0o700:
		if err := os.Chmod(dir, 0o700); err != nil {
			return err
		}
	}
	return atomicfile.Write(path, data, 0o600)
}

// Build is this sitectl's build identity: a hash of the cache format's
// version, the identity of the running executable (a new package or a
// rebuilt binary is a new file) and its build information (module
// versions, VCS revision). Empty when the executable cannot be found: no
// cache is read or written then.
func Build() string { return buildOnce() }

var buildOnce = sync.OnceValue(func() string {
	var st unix.Stat_t
	if err := unix.Stat("/proc/self/exe", &st); err != nil {
		return ""
	}
	h := sha256.New()
	fmt.Fprintf(h, "%d\n%d %d %d %d %d\n", Version, st.Dev, st.Ino, st.Size, st.Mtim.Nano(), st.Ctim.Nano())
	if bi, ok := debug.ReadBuildInfo(); ok {
		io.WriteString(h, bi.String())
	}
	return hex.EncodeToString(h.Sum(nil))
})
