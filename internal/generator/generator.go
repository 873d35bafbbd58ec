// Package generator turns the site directory into unit files, for the
// systemd generator (cmd/sitectl-generator) and for `sitectl units render`,
// so both write exactly the same files.
//
// A site with mistakes is skipped and its mistakes are returned; every valid
// site is still generated. The generator never fails the boot for one bad
// file.
package generator

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/sitectl/sitectl/internal/atomicfile"
	"github.com/sitectl/sitectl/internal/par"
	"github.com/sitectl/sitectl/internal/site"
	"github.com/sitectl/sitectl/internal/units"
)

// File is one file of the output: a unit, or a .wants/ symlink to one.
type File struct {
	Path    string // relative to the output directory
	Content string // for a unit
	Link    string // for a symlink: its target
	Site    string // the site whose file it is; "" for one all sites share
}

// Files renders the units of the given sites, with the .wants/ links that
// make their sockets (and with them their path units) start at boot, and
// sitectl.slice when there is any site. Sites are taken in name order so
// the output is stable.
func Files(sites []*site.Site, opts units.Options) []File { return FilesFor(sites, opts, nil) }

// FilesFor is Files on a host where the sites named in outOfService were
// taken out of service (`sitectl disable`): their units are written, so
// that systemctl and sitectl status know them and `sitectl enable` can
// start them, but no .wants/ link starts them at boot.
func FilesFor(sites []*site.Site, opts units.Options, outOfService map[string]bool) []File {
	return FilesRendered(sites, opts, outOfService, nil)
}

// Rendered holds the units CheckedRendered rendered, by site.
type Rendered map[*site.Site][]units.Unit

// FilesRendered is FilesFor with the units of the sites in done rendered
// already (CheckedRendered): rendering is most of the generator's work.
func FilesRendered(sites []*site.Site, opts units.Options, outOfService map[string]bool, done Rendered) []File {
	sorted := slices.Clone(sites)
	slices.SortFunc(sorted, func(a, b *site.Site) int { return strings.Compare(a.Name, b.Name) })
	rendered := make([][]units.Unit, len(sorted))
	par.Each(len(sorted), func(i int) {
		if us, ok := done[sorted[i]]; ok {
			rendered[i] = us
		} else {
			rendered[i] = units.Render(sorted[i], opts)
		}
	})
	n := 1
	for _, us := range rendered {
		n += 2 * len(us)
	}
	out := make([]File, 0, n)
	if len(sorted) > 0 {
		sl := units.RenderSlice()
		out = append(out, File{Path: sl.Name, Content: sl.Content})
	}
	for i, us := range rendered {
		for _, u := range us {
			name := sorted[i].Name
			out = append(out, File{Path: u.Name, Content: u.Content, Site: name})
			if u.WantedBy != "" && !outOfService[name] {
				out = append(out, File{Path: filepath.Join(u.WantedBy+".wants", u.Name), Link: "../" + u.Name, Site: name})
			}
		}
	}
	return out
}

// Checked moves the sites whose units would not say what their site file
// says (units.Check) from res.Sites to res.Errors, each as FILE:1:1. The
// parser refuses what a unit cannot carry, so this is the last line of
// defence against options a unit cannot carry (a --config-dir with white
// space, say) and against a bug: a site is skipped rather than started
// with a command line, an environment or a listener it did not ask for.
// Sites are checked on all CPUs; the order of res is kept.
func Checked(res site.Result, opts units.Options) site.Result {
	res, _ = CheckedRendered(res, opts)
	return res
}

// CheckedRendered is Checked that also returns the units it rendered for
// the sites it kept, for FilesRendered.
func CheckedRendered(res site.Result, opts units.Options) (site.Result, Rendered) {
	errs := make([]error, len(res.Sites))
	us := make([][]units.Unit, len(res.Sites))
	par.Each(len(res.Sites), func(i int) { us[i], errs[i] = units.RenderChecked(res.Sites[i], opts) })
	var ok []*site.Site
	done := make(Rendered, len(res.Sites))
	for i, s := range res.Sites {
		if errs[i] != nil {
			res.Errors = append(res.Errors, &site.Error{File: s.File, Line: 1, Col: 1, Msg: errs[i].Error()})
			continue
		}
		ok = append(ok, s)
		done[s] = us[i]
	}
	res.Sites = ok
	return res, done
}

// Write puts the files into dir. Units are written, and symlinks made or
// replaced, atomically and durably (atomicfile): an existing .wants/ link
// is never missing, not after a crash and not to a daemon-reload that
// reads the directory meanwhile, or its site would not start at boot. So
// is a directory Write creates (a .wants/ directory): the links in it
// would be lost with it.
//
// All the files are written under hidden names first, and only then put
// in place: a file that cannot be written (the disk full, say) changes
// none of them, rather than leaving some sites' units new and others old,
// or a site's socket without its service. Only a rename that fails once
// some are in place (ErrPartlyWritten) leaves a mix, and says so.
func Write(dir string, files []File) error {
	staged := make([]*atomicfile.Staged, 0, len(files))
	abort := func(err error) error {
		for _, st := range staged {
			st.Abort()
		}
		return fmt.Errorf("%w; nothing in %s was changed", err, dir)
	}
	for _, f := range files {
		p := filepath.Join(dir, f.Path)
		if err := atomicfile.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return abort(fmt.Errorf("cannot create %s: %w", filepath.Dir(p), err))
		}
		var st *atomicfile.Staged
		var err error
		if f.Link == "" {
			st, err = atomicfile.Stage(p, []byte(f.Content), 0o644)
		} else {
			st, err = atomicfile.StageSymlink(f.Link, p)
		}
		if err != nil {
			return abort(err)
		}
		staged = append(staged, st)
	}
	var dirs []string
	for i, st := range staged {
		if err := st.Commit(); err != nil {
			for _, rest := range staged[i+1:] {
				rest.Abort()
			}
			if i == 0 {
				return fmt.Errorf("%w; nothing in %s was changed", err, dir)
			}
			return fmt.Errorf("%w: %w; the %d files before it in %s were written, the %d after it were not", ErrPartlyWritten, err, i, dir, len(staged)-i-1)
		}
		if d := filepath.Dir(st.Path()); !slices.Contains(dirs, d) {
			dirs = append(dirs, d)
		}
	}
	for _, d := range dirs {
		if err := atomicfile.SyncDir(d); err != nil {
			return fmt.Errorf("%w: the units are in place, but may not be after a crash: %w", ErrPartlyWritten, err)
		}
	}
	return nil
}

// ErrPartlyWritten is Write's error when some of the files are in place
// and the others are not.
var ErrPartlyWritten = errors.New("the units were written in part")

// WriteNew puts the files into dir, which systemd gives a generator empty
// on every run (a tmpfs under /run, read right after the generator exits):
// each file is created with O_EXCL and written once, without the temporary
// file, fsync and rename of Write, which for 10,000 sites cost most of the
// generator's time. A file that exists after all (dir was not empty) is
// replaced atomically as Write does.
func WriteNew(dir string, files []File) error {
	// Files are created by name in their directory, open once, rather
	// than by a path the kernel walks 30,000 times.
	dirfds := map[string]int{}
	defer func() {
		for _, fd := range dirfds {
			unix.Close(fd)
		}
	}()
	at := make([]int, len(files))
	for i, f := range files {
		d := filepath.Dir(filepath.Join(dir, f.Path))
		fd, ok := dirfds[d]
		if !ok {
			if err := os.MkdirAll(d, 0o755); err != nil {
				return fmt.Errorf("cannot create %s: %w", d, err)
			}
			var err error
			if fd, err = unix.Open(d, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0); err != nil {
				return fmt.Errorf("cannot open %s: %w", d, err)
			}
			dirfds[d] = fd
		}
		at[i] = fd
	}
	// Each file is its own open, write and close (or symlink): on all
	// CPUs. The first error in the order of files is returned.
	errs := make([]error, len(files))
	par.Each(len(files), func(i int) {
		f := files[i]
		err := createNew(at[i], filepath.Join(dir, f.Path), f)
		if errors.Is(err, fs.ErrExist) {
			err = Write(dir, []File{f})
		}
		errs[i] = err
	})
	return dropIncomplete(dir, files, errs)
}

// dropIncomplete removes every file of a site of which a file could not
// be written (the tmpfs full, say), and returns the first error with the
// sites left out. A site's units go together: a socket without its
// service would accept connections at boot that nothing serves, and a
// service without its socket would start with no listener. With none,
// systemd knows no site of that name, which the generator's log and
// sitectl status say.
func dropIncomplete(dir string, files []File, errs []error) error {
	var first error
	failed := map[string]bool{}
	for i, err := range errs {
		if err == nil {
			continue
		}
		if first == nil {
			first = err
		}
		if files[i].Site != "" {
			failed[files[i].Site] = true
		}
	}
	if first == nil {
		return nil
	}
	var dropped []string
	for i, f := range files {
		if !failed[f.Site] {
			continue
		}
		if errs[i] == nil {
			if err := os.Remove(filepath.Join(dir, f.Path)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				first = errors.Join(first, err)
			}
		}
		if len(dropped) == 0 || dropped[len(dropped)-1] != f.Site {
			dropped = append(dropped, f.Site)
		}
	}
	if len(dropped) > 0 {
		return fmt.Errorf("%w; the units of %s were left out, so that none is there without the others", first, strings.Join(dropped, ", "))
	}
	return first
}

// buffers hold a unit's content for write(2), which takes bytes, so that
// writing 30,000 files does not copy each into a new slice.
var buffers = sync.Pool{New: func() any { return new([]byte) }}

// createNew creates p, which is filepath.Base(p) in the directory open as
// dirfd, as the file or link f says; fs.ErrExist if p exists.
func createNew(dirfd int, p string, f File) error {
	name := filepath.Base(p)
	if f.Link != "" {
		if err := unix.Symlinkat(f.Link, dirfd, name); err != nil {
			return fmt.Errorf("cannot link %s: %w", p, err)
		}
		return nil
	}
	fd, err := unix.Openat(dirfd, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return fmt.Errorf("cannot write %s: %w", p, err)
	}
	buf := buffers.Get().(*[]byte)
	defer buffers.Put(buf)
	*buf = append((*buf)[:0], f.Content...)
	for b := *buf; len(b) > 0; {
		n, err := unix.Write(fd, b)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			unix.Close(fd)
			unix.Unlinkat(dirfd, name, 0)
			return fmt.Errorf("cannot write %s: %w", p, err)
		}
		b = b[n:]
	}
	if err := unix.Close(fd); err != nil {
		unix.Unlinkat(dirfd, name, 0)
		return fmt.Errorf("cannot write %s: %w", p, err)
	}
	return nil
}

// Print writes the files as the generator's --dryrun shows them.
func Print(w io.Writer, files []File) error {
	// One write per 64 KiB rather than per file: standard output is not
	// buffered, and at 10,000 sites there are 30,000 files.
	b := bufio.NewWriterSize(w, 64<<10)
	for _, f := range files {
		if f.Link != "" {
			b.WriteString("---" + f.Path + " -> " + f.Link + "---\n")
		} else {
			b.WriteString("---" + f.Path + "---\n")
			b.WriteString(f.Content)
			b.WriteString("\n")
		}
	}
	return b.Flush()
}

// MaxLoggedMistakes bounds the mistakes of one file the generator logs:
// one more line says how many more there are and how to see them. Every
// line is a record for the journal, or the kernel log at boot, which
// keeps 10 lines in 5 s of a writer.
const MaxLoggedMistakes = 20

// Mistakes words the errors of site files for the log. First one line for
// each site that runs its last good version (outcomes, see WithLastGood),
// so that a log that keeps only the first lines keeps those; then, grouped
// by file, each mistake, and for a skipped site that it was skipped and
// why it has no last good version. It returns the lines and the number of
// files skipped.
func Mistakes(errs site.Errors, outcomes []Outcome) ([]string, int) {
	var files []string
	byFile := map[string][]string{}
	more := map[string]int{} // mistakes past MaxLoggedMistakes
	for _, m := range errs {
		if _, seen := byFile[m.File]; !seen {
			files = append(files, m.File)
		}
		if len(byFile[m.File]) == MaxLoggedMistakes {
			more[m.File] += max(1, m.More)
			continue
		}
		byFile[m.File] = append(byFile[m.File], m.Error())
	}
	for f, n := range more {
		byFile[f] = append(byFile[f], fmt.Sprintf("%s: and %d more mistakes: run sitectl check %s", f, n, f))
	}
	outcome := map[string]Outcome{}
	var lines []string
	for _, o := range outcomes {
		outcome[o.File] = o
		if o.LastGood != "" {
			lines = append(lines, RunningLastGood(o))
		}
	}
	skipped := 0
	for _, f := range files {
		lines = append(lines, byFile[f]...)
		if o := outcome[f]; o.LastGood == "" {
			skip := f + ": site skipped: no units generated for it"
			if o.NoCopy != "" {
				skip += "; " + o.NoCopy
			}
			lines = append(lines, skip)
			skipped++
		}
	}
	return lines, skipped
}

// RunningLastGood is the line that says a site runs its last good version.
func RunningLastGood(o Outcome) string {
	mistakes := "1 mistake"
	if o.Mistakes != 1 {
		mistakes = fmt.Sprintf("%d mistakes", o.Mistakes)
	}
	saved := ""
	if !o.Saved.IsZero() {
		saved = ", saved " + o.Saved.Format("2006-01-02 15:04:05 MST")
	}
	what := "the file the site last started from" + saved
	if o.Recovered != nil {
		what = "the version its units were last generated from: the site has not started since sitectl keeps a copy"
	}
	return fmt.Sprintf("%s has %s: running the last good version: units generated from %s (%s); fix the file and run systemctl daemon-reload",
		o.File, mistakes, o.LastGood, what)
}
