package modes

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/sitectl/sitectl/internal/atomicfile"
	"github.com/sitectl/sitectl/internal/site"
)

// What the state directory keeps of a site's life besides its mode: the
// last good copy of its site file, and whether it was taken out of service.
// Both are root's (0600): the copy may hold what the site file's owner
// kept from other users, such as credentials in the environment.

// SaveLastGood keeps data, the content of the site file that the site's
// service is starting from, as its last good copy (paths.Dirs.LastGoodFile),
// atomically, and only when it differs from the copy kept: the generator
// writes the units of a site whose file has mistakes from it.
func (st Store) SaveLastGood(s *site.Site, data []byte) error {
	path := st.paths().LastGoodFile(s.Name)
	if have, err := site.ReadFile(path); err == nil && bytes.Equal(have, data) {
		return nil
	}
	if err := st.siteDir(s.Name); err != nil {
		return err
	}
	if err := atomicfile.Write(path, data, 0o600); err != nil {
		return fmt.Errorf("cannot keep the last good copy of the site file of %s: %w", s.Name, err)
	}
	return nil
}

// KeepRan records that the site's service ran from its last good copy and
// was seen to work: the copy becomes the last ran copy
// (paths.Dirs.LastRanFile), atomically, when it differs. It reports
// whether anything changed; no last good copy is no change.
func (st Store) KeepRan(name string) (bool, error) {
	good, err := site.ReadFile(st.paths().LastGoodFile(name))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("cannot read the last good copy of the site file of %s: %w", name, err)
	}
	path := st.paths().LastRanFile(name)
	if have, err := site.ReadFile(path); err == nil && bytes.Equal(have, good) {
		return false, nil
	}
	if err := atomicfile.Write(path, good, 0o600); err != nil {
		return false, fmt.Errorf("cannot keep the copy of the site file that %s last ran from: %w", name, err)
	}
	return true, nil
}

// PromoteRan makes the last good copy the last ran copy (KeepRan) when the
// service's last run ended cleanly, as the mark its ExecStopPost= leaves
// says (paths.Dirs.RanCleanlyFile), and removes the mark. prepare calls it
// before a start overwrites the last good copy, and a change before it
// reads the copies. It reports whether the last ran copy changed.
func (st Store) PromoteRan(name string) (bool, error) {
	mark := st.paths().RanCleanlyFile(name)
	if _, err := os.Lstat(mark); errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	changed, err := st.KeepRan(name)
	if err != nil {
		return false, err
	}
	// Removed after the copy: a crash in between promotes it again.
	if err := atomicfile.Remove(mark); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return changed, fmt.Errorf("cannot remove the mark of a clean stop of site %s: %w", name, err)
	}
	return changed, nil
}

// ReadRan returns the content of the copy of the site file the service
// last ran from and was seen to work with (KeepRan); nil when there is
// none.
func (st Store) ReadRan(name string) ([]byte, error) {
	data, err := site.ReadFile(st.paths().LastRanFile(name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return data, err
}

// ReadLastGood returns the site as its last good copy says; (nil, nil)
// when there is none.
func (st Store) ReadLastGood(name string) (*site.Site, error) {
	path := st.paths().LastGoodFile(name)
	data, err := site.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return site.ParseNamed(path, name, data)
}

// OutOfService tells whether a site was taken out of service (`sitectl
// disable`), and since when.
func (st Store) OutOfService(name string) (bool, time.Time, error) {
	fi, err := os.Lstat(st.paths().OutOfServiceFile(name))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return false, time.Time{}, nil
	case err != nil:
		return false, time.Time{}, fmt.Errorf("cannot tell whether site %s is out of service: %w", name, err)
	}
	return true, fi.ModTime(), nil
}

// SetOutOfService writes or removes the marker that keeps a site out of
// service across reboots (the generator leaves it out of sockets.target).
// Both sync the directory (atomicfile), so that a marker removed by
// `sitectl enable` does not come back after a power loss. It reports
// whether anything changed.
func (st Store) SetOutOfService(name string, out bool, uid int) (bool, error) {
	was, _, err := st.OutOfService(name)
	if err != nil || was == out {
		return false, err
	}
	path := st.paths().OutOfServiceFile(name)
	if !out {
		if err := removeMarker(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return false, fmt.Errorf("cannot put site %s back in service: %w", name, err)
		}
		return true, nil
	}
	if err := st.siteDir(name); err != nil {
		return false, err
	}
	note := fmt.Sprintf("site %s taken out of service with `sitectl disable` by uid %d at %s\n", name, uid, time.Now().UTC().Format(time.RFC3339))
	if err := atomicfile.Write(path, []byte(note), 0o600); err != nil {
		return false, fmt.Errorf("cannot take site %s out of service: %w", name, err)
	}
	return true, nil
}

// removeMarker removes the out-of-service marker, durably; tests replace
// it to see that it is used.
var removeMarker = atomicfile.Remove

// Forget removes everything sitectl keeps of a site: its mode, previous
// mode and history, its lock, its last good copy, its out-of-service
// marker and its pin, so that a new site of that name starts afresh in its default
// mode. It reports whether there was anything to remove.
func (st Store) Forget(name string) (bool, error) {
	unpinned, err := st.Unpin(name)
	if err != nil {
		return false, err
	}
	dir := st.paths().SiteState(name)
	if _, err := os.Lstat(dir); errors.Is(err, fs.ErrNotExist) {
		return unpinned, nil
	}
	if err := atomicfile.Remove(dir); err != nil {
		return false, fmt.Errorf("cannot forget the state of site %s: %w", name, err)
	}
	return true, nil
}
