// Package modes keeps the current run mode of each site under the state
// directory. The mode is stored as the environment file that the site's
// service reads through EnvironmentFile= (see units.ModeEnvFile): SITE_MODE,
// what sitectl launch must serve, and the mode's own variables. Every write
// is atomic, so a crash leaves the old mode or the new one, never a torn file.
package modes

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/sitectl/sitectl/internal/atomicfile"
	"github.com/sitectl/sitectl/internal/site"
	"github.com/sitectl/sitectl/internal/units"
)

// Variables sitectl puts in a mode's environment file besides the mode's own.
const (
	VarMode       = "SITE_MODE"
	VarServe      = "SITECTL_SERVE"
	VarPage       = "SITECTL_PAGE"
	VarStaticDir  = "SITECTL_STATIC_DIR"
	VarRetryAfter = "SITECTL_RETRY_AFTER"
)

// EnvFile renders the environment file for a site in mode m.
func EnvFile(s *site.Site, m site.Mode) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# The current mode of site %s, written by sitectl. Do not edit: use `sitectl mode`.\n", s.Name)
	line := func(k, v string) { fmt.Fprintf(&b, "%s=%s\n", k, quote(v)) }
	line(VarMode, m.Name)
	line(VarServe, string(m.Serve))
	if m.Serve == site.ServeMaintenance {
		if m.Page != "" {
			line(VarPage, m.Page)
		}
		if m.StaticDir != "" {
			line(VarStaticDir, m.StaticDir)
		}
		line(VarRetryAfter, strconv.FormatInt(int64(m.RetryAfter/time.Second), 10))
	}
	for _, e := range m.Environment {
		line(e.Name, e.Value)
	}
	return b.Bytes()
}

// quote writes a value for systemd's environment-file parser: double quotes,
// with the characters that parser treats specially escaped.
func quote(v string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range v {
		if strings.ContainsRune("\"\\`$", r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	b.WriteByte('"')
	return b.String()
}

// Store is the state directory.
type Store struct {
	Dir string
}

// EnvPath is where the mode environment file of a site lives.
func (st Store) EnvPath(name string) string { return units.ModeEnvFile(st.Dir, name) }

// Current returns the mode recorded for a site; ok is false when the site
// has no state yet (it then starts in its default mode).
func (st Store) Current(name string) (mode string, ok bool, err error) {
	mode, ok, _, err = st.CurrentSince(name)
	return mode, ok, err
}

// CurrentSince is Current with the time the mode was recorded (the mode
// file's modification time), from the same open file.
func (st Store) CurrentSince(name string) (mode string, ok bool, written time.Time, err error) {
	f, err := os.Open(st.EnvPath(name))
	if errors.Is(err, fs.ErrNotExist) {
		return "", false, time.Time{}, nil
	}
	if err != nil {
		return "", false, time.Time{}, fmt.Errorf("cannot read the mode of site %s: %w", name, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", false, time.Time{}, fmt.Errorf("cannot read the mode of site %s: %w", name, err)
	}
	// A mode file is a few lines; the mode is on the second.
	sc := bufio.NewScanner(io.LimitReader(f, maxModeFile))
	for sc.Scan() {
		if v, found := strings.CutPrefix(sc.Text(), VarMode+"="); found {
			if u, err := strconv.Unquote(v); err == nil {
				v = u
			}
			return v, true, fi.ModTime(), nil
		}
	}
	return "", false, time.Time{}, fmt.Errorf("the mode file %s of site %s has no %s line", st.EnvPath(name), name, VarMode)
}

// maxModeFile bounds what CurrentSince reads of a mode file.
const maxModeFile = 1 << 20

// WithState lists the sites that have a state directory, with one read of
// the directory that holds them all: a site without one has no mode recorded
// and no state, so status and list need not look for its files. ok is false
// when that directory cannot be read; then look at each site.
func (st Store) WithState() (names map[string]bool, ok bool) {
	entries, err := os.ReadDir(filepath.Dir(filepath.Dir(st.EnvPath("x"))))
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]bool{}, true
	}
	if err != nil {
		return nil, false
	}
	names = make(map[string]bool, len(entries))
	for _, e := range entries {
		names[e.Name()] = true
	}
	return names, true
}

// Write records m as the current mode of s.
func (st Store) Write(s *site.Site, m site.Mode) error {
	if err := st.siteDir(s.Name); err != nil {
		return err
	}
	return atomicfile.Write(st.EnvPath(s.Name), EnvFile(s, m), 0o644)
}

// siteDir creates the state directory of a site, readable by all: the
// launcher of an overlap site reads the mode file as the site's own user.
// The permissions are set explicitly, since the umask of whoever creates
// them (a unit's UMask=0027, say) would take that away.
func (st Store) siteDir(name string) error {
	dir := filepath.Dir(st.EnvPath(name))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("cannot create the state directory of site %s: %w", name, err)
	}
	for _, d := range []string{st.Dir, filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			return fmt.Errorf("cannot open up the state directory %s: %w", d, err)
		}
	}
	return nil
}

// Ensure writes the default mode for a site that has no mode recorded, and
// leaves an existing record alone. It reports whether it wrote.
func (st Store) Ensure(s *site.Site) (bool, error) {
	if _, ok, err := st.Current(s.Name); ok || err != nil {
		return false, err
	}
	m, _ := s.Mode(s.DefaultMode)
	return true, st.Write(s, m)
}
