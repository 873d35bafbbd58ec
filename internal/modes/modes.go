// Package modes keeps the current run mode of each site under the state
// directory. The mode is stored as the environment file that the site's
// service reads through EnvironmentFile= (see paths.Dirs.ModeEnvFile): SITE_MODE,
// what sitectl launch must serve, and the mode's own variables. Every write
// is atomic, so a crash leaves the old mode or the new one, never a torn file.
package modes

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
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

func (st Store) paths() paths.Dirs { return paths.Dirs{State: st.Dir} }

// EnvPath is where the mode environment file of a site lives.
func (st Store) EnvPath(name string) string { return st.paths().ModeEnvFile(name) }

// Current returns the mode recorded for a site; ok is false when the site
// has no state yet (it then starts in its default mode).
func (st Store) Current(name string) (mode string, ok bool, err error) {
	data, err := os.ReadFile(st.EnvPath(name))
	if errors.Is(err, fs.ErrNotExist) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("cannot read the mode of site %s: %w", name, err)
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		if v, found := strings.CutPrefix(sc.Text(), VarMode+"="); found {
			if u, err := strconv.Unquote(v); err == nil {
				v = u
			}
			return v, true, nil
		}
	}
	return "", false, fmt.Errorf("the mode file %s of site %s has no %s line", st.EnvPath(name), name, VarMode)
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
	dir := st.paths().SiteState(name)
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
