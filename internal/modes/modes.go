// Package modes keeps the current run mode of each site under the state
// directory. The mode is stored as the environment file that the site's
// service reads through EnvironmentFile= (see paths.Dirs.ModeEnvFile): SITE_MODE,
// what sitectl launch must serve, and the mode's own variables. Every write
// is atomic, so a crash leaves the old mode or the new one, never a torn file.
package modes

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sitectl/sitectl/internal/atomicfile"
	"github.com/sitectl/sitectl/internal/paths"
	"github.com/sitectl/sitectl/internal/site"
)

// Variables sitectl puts in a mode's environment file besides the mode's own.
const (
	VarMode       = "SITE_MODE"
	VarServe      = "SITECTL_SERVE"
	VarPage       = "SITECTL_PAGE"
	VarStaticDir  = "SITECTL_STATIC_DIR"
	VarRetryAfter = "SITECTL_RETRY_AFTER"
	// VarModeVars names the mode's own variables, comma-separated, so that
	// a process that got the mode file through its environment (an overlap
	// site's launcher) can tell them from the site's.
	VarModeVars = "SITECTL_MODE_VARS"
)

// modeEnvironment is what the mode file of mode m holds: SITE_MODE, what
// sitectl launch serves, the maintenance server's settings, and the mode's
// own variables.
// retryAfterSeconds is d as Retry-After says it, in whole seconds,
// rounded up: a part of a second cut off would make "500ms" a 0, which the
// maintenance server takes for unset (and answers 120).
func retryAfterSeconds(d time.Duration) int64 {
	return int64((d + time.Second - 1) / time.Second)
}

func modeEnvironment(m site.Mode) []site.EnvVar {
	env := []site.EnvVar{{Name: VarMode, Value: m.Name}, {Name: VarServe, Value: string(m.Serve)}}
	if m.Serve == site.ServeMaintenance {
		if m.Page != "" {
			env = append(env, site.EnvVar{Name: VarPage, Value: m.Page})
		}
		if m.StaticDir != "" {
			env = append(env, site.EnvVar{Name: VarStaticDir, Value: m.StaticDir})
		}
		env = append(env, site.EnvVar{Name: VarRetryAfter, Value: strconv.FormatInt(retryAfterSeconds(m.RetryAfter), 10)})
	}
	names := make([]string, len(m.Environment))
	for i, v := range m.Environment {
		names[i] = v.Name
	}
	env = append(env, site.EnvVar{Name: VarModeVars, Value: strings.Join(names, ",")})
	return append(env, m.Environment...)
}

// FromEnviron picks the variables of the mode file out of a process's
// environment (KEY=VALUE strings), in the order given: sitectl's own mode
// variables and those VarModeVars names. systemd put them there from the
// mode file (EnvironmentFile=), so a process that may not read the file
// learns its mode this way.
func FromEnviron(environ []string) []site.EnvVar {
	own := map[string]bool{VarMode: true, VarServe: true, VarPage: true, VarStaticDir: true, VarRetryAfter: true, VarModeVars: true}
	for _, kv := range environ {
		if k, v, _ := strings.Cut(kv, "="); k == VarModeVars {
			for _, n := range strings.Split(v, ",") {
				own[n] = n != ""
			}
		}
	}
	var mode []site.EnvVar
	for _, kv := range environ {
		if k, v, _ := strings.Cut(kv, "="); own[k] {
			mode = append(mode, site.EnvVar{Name: k, Value: v})
		}
	}
	return mode
}

// Mismatch compares the environment a process started with (KEY=VALUE
// strings) with mode m as the site file has it: differ are the variables
// of m (SITE_MODE first, then its own) that the process has with another
// value, unset those it lacks. Both empty: the process runs m as the file
// has it. Only names are returned, never a value: a mode's variables hold
// the site's secrets.
//
// sitectl's own SITECTL_* variables are compared only for the maintenance
// server: an app never has them (the launch shim removes them before it
// execs it), but the maintenance server execs nothing and keeps them, and
// they are what it serves: the page, the static directory, Retry-After. A
// maintenance mode whose page the site file changed since its server
// started is not the mode the file has, nor is a mode the file now serves
// with the app while the maintenance server runs it.
func Mismatch(env []string, m site.Mode) (differ, unset []string) {
	have := map[string]string{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		have[k] = v
	}
	for _, v := range append([]site.EnvVar{{Name: VarMode, Value: m.Name}}, m.Environment...) {
		got, ok := have[v.Name]
		switch {
		case !ok:
			unset = append(unset, v.Name)
		case got != v.Value:
			differ = append(differ, v.Name)
		}
	}
	if m.Serve != site.ServeMaintenance && have[VarServe] != string(site.ServeMaintenance) {
		return differ, unset
	}
	want := map[string]string{}
	for _, v := range modeEnvironment(m) {
		want[v.Name] = v.Value
	}
	for _, k := range []string{VarServe, VarPage, VarStaticDir, VarRetryAfter} {
		w, wok := want[k]
		got, ok := have[k]
		switch {
		case wok && !ok:
			unset = append(unset, k)
		case wok != ok || got != w:
			differ = append(differ, k)
		}
	}
	return differ, unset
}

// RecordedMode is the mode site name's mode file records, as it was
// rendered from the site file when it was written: the inverse of
// EnvFile. It is how a mode the site file no longer has is still known
// as the site ran it (sitectl prepare keeps such a file as it is), so that
// a failed switch out of it can bring it back.
func (st Store) RecordedMode(name string) (site.Mode, error) {
	env, err := st.ReadEnv(name)
	if err != nil {
		return site.Mode{}, err
	}
	m, err := modeFromEnvironment(env)
	if err != nil {
		return site.Mode{}, &DamagedError{Site: name, Path: st.EnvPath(name), What: DamagedMode, Err: err}
	}
	return m, nil
}

// modeFromEnvironment reads a mode back from what modeEnvironment wrote.
func modeFromEnvironment(env []site.EnvVar) (site.Mode, error) {
	vars := map[string]string{}
	for _, v := range env {
		vars[v.Name] = v.Value
	}
	m := site.Mode{Name: vars[VarMode], Serve: site.Serve(vars[VarServe]), Page: vars[VarPage], StaticDir: vars[VarStaticDir]}
	if m.Name == "" {
		return site.Mode{}, fmt.Errorf("it has no %s", VarMode)
	}
	if r, ok := vars[VarRetryAfter]; ok {
		secs, err := strconv.ParseInt(r, 10, 64)
		if err != nil {
			return site.Mode{}, fmt.Errorf("its %s is not a number of seconds: %w", VarRetryAfter, err)
		}
		m.RetryAfter = time.Duration(secs) * time.Second
	}
	if names := vars[VarModeVars]; names != "" {
		for _, n := range strings.Split(names, ",") {
			v, ok := vars[n]
			if !ok {
				return site.Mode{}, fmt.Errorf("the mode file names %s in %s but does not set it", n, VarModeVars)
			}
			m.Environment = append(m.Environment, site.EnvVar{Name: n, Value: v})
		}
	}
	slices.SortFunc(m.Environment, func(a, b site.EnvVar) int { return strings.Compare(a.Name, b.Name) })
	return m, nil
}

// EnvFile renders the mode file of site s in mode m. It fails only for a
// variable the file cannot carry exactly, which the site file's checks
// already refuse, and for a file longer than MaxEnvFile, which no valid
// site file gives.
func EnvFile(s *site.Site, m site.Mode) ([]byte, error) {
	data, err := marshalEnv(fmt.Sprintf("The current mode of site %s, written by sitectl. Do not edit: use `sitectl mode`.", s.Name), modeEnvironment(m))
	if err != nil {
		return nil, fmt.Errorf("cannot write mode %s of site %s: %w", m.Name, s.Name, err)
	}
	if len(data) > MaxEnvFile {
		return nil, fmt.Errorf("cannot write mode %s of site %s: its mode file would be %d bytes long, and sitectl reads one of at most %d", m.Name, s.Name, len(data), MaxEnvFile)
	}
	return data, nil
}

// Store is the state directory.
type Store struct {
	Dir string
}

func (st Store) paths() paths.Dirs { return paths.Dirs{State: st.Dir} }

// EnvPath is where the mode environment file of a site lives.
func (st Store) EnvPath(name string) string { return st.paths().ModeEnvFile(name) }

// SitesDir is the directory that holds the sites' state directories.
func (st Store) SitesDir() string { return st.paths().SitesState() }

// Current returns the mode recorded for a site; ok is false when the site
// has no state yet (it then starts in its default mode).
func (st Store) Current(name string) (mode string, ok bool, err error) {
	mode, ok, _, err = st.CurrentSince(name)
	return mode, ok, err
}

// CurrentSince is Current with the time the mode was recorded (the mode
// file's modification or change time, the later), from the same open file.
func (st Store) CurrentSince(name string) (mode string, ok bool, written time.Time, err error) {
	mode, id, err := st.currentMode(name)
	if err != nil || id == (site.FileID{}) {
		return "", false, time.Time{}, err
	}
	return mode, true, modTime(id), nil
}

// currentMode reads the mode recorded in a site's mode file, with the
// identity of the file it read; the zero FileID when there is none.
func (st Store) currentMode(name string) (string, site.FileID, error) {
	data, id, err := readBounded(st.EnvPath(name), MaxEnvFile)
	if errors.Is(err, fs.ErrNotExist) {
		return "", site.FileID{}, nil
	}
	if err != nil {
		return "", site.FileID{}, fmt.Errorf("cannot read the mode of site %s: %w", name, err)
	}
	env, err := ParseEnv(data)
	if err != nil {
		return "", site.FileID{}, &DamagedError{Site: name, Path: st.EnvPath(name), What: DamagedMode, Err: err}
	}
	for _, v := range env {
		if v.Name == VarMode && v.Value != "" {
			return v.Value, id, nil
		}
	}
	return "", site.FileID{}, &DamagedError{Site: name, Path: st.EnvPath(name), What: DamagedMode, Err: fmt.Errorf("it has no %s", VarMode)}
}

// modTime is the modification time of the file version id.
// modTime is when the mode file was last written: its modification time,
// or its change time when that is later. A file edited by hand with its
// modification time put back (touch -r) still counts as written then: a
// mode it names is not taken for applied by a service that started
// before, by status, list and a change alike.
func modTime(id site.FileID) time.Time { return time.Unix(0, max(id.Mtime, id.Ctime)) }

// WithState lists the sites that have a state directory, with one read of
// the directory that holds them all: a site without one has no mode recorded
// and no state, so status and list need not look for its files. ok is false
// when that directory cannot be read; then look at each site.
func (st Store) WithState() (names map[string]bool, ok bool) {
	names, err := entryNames(st.SitesDir(), "")
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]bool{}, true
	}
	return names, err == nil
}

// entryNames are the names of dir's entries that end in suffix, without
// it. The names alone, unsorted: os.ReadDir sorts 10,000 entries and makes
// an object for each.
func entryNames(dir, suffix string) (map[string]bool, error) {
	d, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	entries, err := d.Readdirnames(-1)
	if err != nil {
		return nil, err
	}
	names := make(map[string]bool, len(entries))
	for _, e := range entries {
		if name, ok := strings.CutSuffix(e, suffix); ok {
			names[name] = true
		}
	}
	return names, nil
}

// ReadEnv returns the variables of a site's mode file, as systemd reads
// them for the service.
func (st Store) ReadEnv(name string) ([]site.EnvVar, error) {
	data, _, err := readBounded(st.EnvPath(name), MaxEnvFile)
	if err != nil {
		return nil, fmt.Errorf("cannot read the mode of site %s: %w", name, err)
	}
	env, err := ParseEnv(data)
	if err != nil {
		return nil, &DamagedError{Site: name, Path: st.EnvPath(name), What: DamagedMode, Err: err}
	}
	return env, nil
}

// readBounded reads a file of at most limit bytes, with its identity from
// the same open file.
func readBounded(path string, limit int64) ([]byte, site.FileID, error) {
	data, id, err := readUpTo(path, limit+1)
	if err == nil && int64(len(data)) > limit {
		err = fmt.Errorf("%s is larger than %d bytes", path, limit)
	}
	return data, id, err
}

// Write records m as the current mode of s, under the site's mode lock.
func (st Store) Write(s *site.Site, m site.Mode) error {
	data, err := EnvFile(s, m)
	if err != nil {
		return err
	}
	return st.withModeLock(s.Name, func() error { return st.writeEnv(s.Name, data) })
}

// writeEnv replaces the mode file; the caller holds the mode lock.
func (st Store) writeEnv(name string, data []byte) error {
	return atomicfile.Write(st.EnvPath(name), data, FileMode)
}

// The permissions of the state: root's alone. A mode's variables may be
// secrets, and the history is what root trusts. Deployers read state
// through sitectl's state service, the site's own service through its
// environment.
const (
	DirMode  = 0o700
	FileMode = 0o600
)

// siteDir creates the state directory of a site, and makes it and its
// parents root's alone. The permissions are checked on every write, and
// set where they differ: a state directory made by an older sitectl was
// readable by all.
// The directories it creates are durable (atomicfile.MkdirAll): the first
// file of a new site (the marker of `sitectl disable`, say) is synced into
// its directory, and would still be lost at a power loss with a directory
// whose own name was not. It then removes what a crash left of earlier
// writes and removals in the site's directory (atomicfile.RemoveStale):
// nothing else cleans it up. That is tidying: it does not fail the write.
func (st Store) siteDir(name string) error {
	dir := st.paths().SiteState(name)
	if err := atomicfile.MkdirAll(dir, DirMode); err != nil {
		return fmt.Errorf("cannot create the state directory of site %s: %w", name, err)
	}
	for _, d := range []string{st.Dir, filepath.Dir(dir), dir} {
		// Only where it is needed: a state directory on a file system
		// remounted read-only (after I/O errors) must still let a site
		// whose mode file is current start.
		if fi, err := os.Stat(d); err == nil && fi.Mode().Perm() == DirMode {
			continue
		}
		if err := os.Chmod(d, DirMode); err != nil {
			return fmt.Errorf("cannot make the state directory %s private: %w", d, err)
		}
	}
	p := st.paths()
	removeStale(dir, filepath.Base(p.ModeEnvFile(name)), filepath.Base(p.StateFile(name)),
		filepath.Base(p.LastGoodFile(name)), filepath.Base(p.LastRanFile(name)), filepath.Base(p.RanCleanlyFile(name)), filepath.Base(p.OutOfServiceFile(name)))
	return nil
}

// removeStale is atomicfile.RemoveStale; tests replace it to see that it
// is used.
var removeStale = atomicfile.RemoveStale

// Ensure writes the default mode for a site that has no mode recorded, and
// leaves an existing record alone. It reports whether it wrote.
func (st Store) Ensure(s *site.Site) (bool, error) {
	r, err := st.refresh(s, false)
	return r == RefreshedDefault, err
}

// What Refresh did.
type Refreshed int

const (
	RefreshedNothing Refreshed = iota // the mode file was up to date
	RefreshedDefault                  // the site had no mode: its default mode was recorded
	RefreshedMode                     // the recorded mode's file was rewritten from the site file
	RefreshedKept                     // the recorded mode is gone from the site file: its file was kept
)

// Refresh is what `sitectl prepare` does before each start of a site's
// service: a site without a recorded mode gets its default mode, and the
// file of the recorded mode is rendered afresh from the site file (its
// variables may have changed). It reads the recorded mode and writes it
// back under the mode lock, so a switch that records another mode
// meanwhile is never undone.
func (st Store) Refresh(s *site.Site) (Refreshed, error) {
	return st.refresh(s, true)
}

func (st Store) refresh(s *site.Site, render bool) (Refreshed, error) {
	r := RefreshedNothing
	err := st.withModeLock(s.Name, func() error {
		current, ok, err := st.Current(s.Name)
		if testHookRead != nil {
			testHookRead()
		}
		switch {
		case err != nil:
			return err
		case !ok:
			current, r = s.DefaultMode, RefreshedDefault
		case !render:
			return nil
		}
		m, found := s.Mode(current)
		if !found {
			r = RefreshedKept
			return nil
		}
		want, err := EnvFile(s, m)
		if err != nil {
			return err
		}
		if have, _, err := readBounded(st.EnvPath(s.Name), MaxEnvFile); err == nil && string(have) == string(want) {
			return nil
		}
		if r == RefreshedNothing {
			r = RefreshedMode
		}
		return st.writeEnv(s.Name, want)
	})
	return r, err
}

// testHookRead, when set (by tests), is called by Refresh between reading
// the recorded mode and writing its file.
var testHookRead func()
