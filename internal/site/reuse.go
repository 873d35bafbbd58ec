package site

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// FileID tells one version of a file from another without reading it, as
// git's index does: a file whose device, inode, size, modification time
// and change time are all the same has not been written, renamed over or
// changed in any way. The change time cannot be set by anyone but the
// kernel, and every write, rename and chmod sets it.
type FileID struct {
	Dev, Ino     uint64
	Size         int64
	Mtime, Ctime int64 // nanoseconds since the epoch
}

// FileIDOf is the identity of the file that st describes.
func FileIDOf(st *unix.Stat_t) FileID {
	return FileID{Dev: st.Dev, Ino: st.Ino, Size: st.Size, Mtime: st.Mtim.Nano(), Ctime: st.Ctim.Nano()}
}

// Reuse gives the site parsed earlier from the file called name in the
// directory (its base name) when that file had identity id: a *Site as
// ParseNamed gave it, for which the loader sets File and resolves the
// listeners again; nil to read and parse the file. It is called on several
// goroutines at once.
type Reuse func(name string, id FileID) *Site

// Origin is how LoadDirReusing got a valid site.
type Origin struct {
	// ID is the identity of the file, taken before it was read; the zero
	// FileID when it could not be taken.
	ID FileID
	// Reused: the site came from Reuse, the file was not read.
	Reused bool
}

// LoadDirReusing is LoadDir that asks reuse for each file's site before it
// reads the file, by the file's identity (one fstatat, following a
// symlink). The sites it is given are checked against each other like the
// others (listener collisions, symlinked unix paths): only what a file
// says on its own is reused. Origins says, by Site.File, how each valid
// site was got.
func LoadDirReusing(dir string, reuse Reuse, held Held) (res Result, origins map[string]Origin, err error) {
	paths, hint, closeDir, err := readDir(dir)
	if err != nil || paths == nil {
		return Result{}, nil, err
	}
	defer closeDir()
	if hint.fd != unix.AT_FDCWD {
		hint.reuse, hint.origins = reuse, make([]Origin, len(paths))
	}
	res = loadFiles(paths, hint, nil, nil, nil, held)
	origins = make(map[string]Origin, len(res.Sites))
	index := make(map[string]int, len(paths))
	for i, p := range paths {
		index[p] = i
	}
	for _, s := range res.Sites {
		if i, ok := index[s.File]; ok && hint.origins != nil {
			origins[s.File] = hint.origins[i]
		}
	}
	return res, origins, nil
}

// readDir lists the site files of dir (NAME.toml, not hidden), with what
// the listing says of each and the directory's descriptor (closeDir closes
// it). A missing directory is no files and no error.
func readDir(dir string) (paths []string, hint *dirHint, closeDir func(), err error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, nil, nil
	}
	if err != nil {
		return nil, nil, nil, fmt.Errorf("cannot read the site directory: %w", err)
	}
	// The files are opened by name in the directory, not by a path the
	// kernel walks 10,000 times; without the directory's descriptor, by
	// path.
	hint = &dirHint{fd: unix.AT_FDCWD, dirProblem: hostView.dirProblem(dir)}
	closeDir = func() {}
	if fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0); err == nil {
		hint.fd, closeDir = fd, func() { unix.Close(fd) }
	}
	paths = []string{}
	for _, e := range entries {
		// Anything named NAME.toml is meant as a site file, whatever its
		// type: ReadFile says why a directory or a pipe is not one.
		if !strings.HasSuffix(e.Name(), ".toml") || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		paths = append(paths, filepath.Join(dir, e.Name()))
		hint.regular = append(hint.regular, e.Type().IsRegular())
	}
	return paths, hint, closeDir, nil
}

// reused asks hint.reuse for the i-th file, p, by its identity, and
// records the answer in origins. regular says the file is a regular file
// (so that reading it needs no stat of its own).
func (h *dirHint) reused(i int, p string) (s *Site, regular bool) {
	name := filepath.Base(p)
	var st unix.Stat_t
	if err := ignoringEINTR(func() error { return unix.Fstatat(h.fd, name, &st, 0) }); err != nil {
		return nil, false
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, false
	}
	id := FileIDOf(&st)
	h.origins[i].ID = id
	if s = h.reuse(name, id); s == nil {
		return nil, true
	}
	s.Name, s.File = NameFromFile(p), p
	h.origins[i].Reused = true
	return s, true
}

// WrittenAt is when the file at path (through symlinks) was last written,
// renamed into place or changed: the later of its modification and change
// times. Not its modification time alone, which a copy that keeps times
// (cp -p, rsync -t, an archive) sets to the original's, years back; the
// change time only the kernel sets. ok is false when it cannot be read.
func WrittenAt(path string) (t time.Time, ok bool) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return time.Time{}, false
	}
	return time.Unix(0, max(st.Mtim.Nano(), st.Ctim.Nano())), true
}
