package modes

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/sitectl/sitectl/internal/atomicfile"
	"github.com/sitectl/sitectl/internal/site"
)

// A Pin says that a site file failed to start and that the site was rolled
// back to the version it ran before (its last good copy, paths.Dirs.
// LastGoodFile). While the site file's content stays what failed, the
// generator writes the site's units from the copy, and prepare starts
// from it: a restart by systemd (a crash, a reboot, socket activation), a
// daemon-reload by apt, or the next sitectl restart must not bring the
// failed version back and take the site down. Any change to the file lifts
// the pin: it is the operator's next attempt.
type Pin struct {
	// FileSHA256 is the SHA-256 of the site file's content that failed.
	FileSHA256 string    `json:"site_file_sha256"`
	Since      time.Time `json:"since"`
	// Reason is why its start failed, as the switch's report said it.
	Reason string `json:"reason"`
	UID    int    `json:"uid"`
	// Undone: the version the pin went back to did not come up either,
	// so it is not this content that fails. The pin holds nothing, and
	// stays so that the same content is not pinned again: each pin and
	// its undoing cost a daemon-reload, which a deployer's restarts must
	// not be able to repeat at will.
	Undone bool `json:"undone,omitempty"`
}

// Matches tells whether data, a site file's content, is what the pin was
// written for.
func (p *Pin) Matches(data []byte) bool {
	return p != nil && data != nil && p.FileSHA256 == FileHash(data)
}

// FileHash is how a pin names a site file's content.
func FileHash(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// ReadPin returns the site's pin; (nil, nil) when it has none.
func (st Store) ReadPin(name string) (*Pin, error) {
	path := st.paths().PinFile(name)
	data, err := site.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("cannot read the pin of site %s: %w", name, err)
	}
	var p Pin
	if err := json.Unmarshal(data, &p); err != nil || len(p.FileSHA256) != 2*sha256.Size {
		return nil, fmt.Errorf("cannot read the pin of site %s: %s is not a pin sitectl wrote", name, path)
	}
	return &p, nil
}

// Pinned returns the site's pin when it holds for data, the content of the
// site file as it is now, and the last good copy it pins the site to;
// (nil, nil, nil) when the site is not pinned (no pin, or the file changed
// since). A pin whose copy is gone or unusable holds nothing: the site
// starts from its file.
func (st Store) Pinned(name string, data []byte) (*Pin, *site.Site, error) {
	p, err := st.ReadPin(name)
	if err != nil || !p.Matches(data) || p.Undone {
		return nil, nil, err
	}
	good, err := st.ReadLastGood(name)
	if err != nil || good == nil {
		return nil, nil, err
	}
	return p, good, nil
}

// Pin makes good (the content of the site file the site ran before) its
// last good copy again, and pins the site to it while its file holds
// failed (the content that failed to start): both atomically, and in that
// order, so that a pin never holds with the failed version as its copy.
func (st Store) Pin(s *site.Site, good, failed []byte, reason string, uid int, now time.Time) error {
	if err := st.siteDir(s.Name); err != nil {
		return err
	}
	if err := atomicfile.MkdirAll(st.paths().PinDir(), DirMode); err != nil {
		return fmt.Errorf("cannot pin site %s to its last good version: %w", s.Name, err)
	}
	if err := atomicfile.Write(st.paths().LastGoodFile(s.Name), good, 0o600); err != nil {
		return fmt.Errorf("cannot put back the last good copy of the site file of %s: %w", s.Name, err)
	}
	data, err := json.MarshalIndent(Pin{FileSHA256: FileHash(failed), Since: now.UTC(), Reason: reason, UID: uid}, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.Write(st.paths().PinFile(s.Name), append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("cannot pin site %s to its last good version: %w", s.Name, err)
	}
	return nil
}

// PinnedNames are the sites that have a pin, from one read of PinDir; a
// directory that cannot be read has none (nor can their copies be).
func (st Store) PinnedNames() map[string]bool {
	names, _ := entryNames(st.paths().PinDir(), ".json")
	return names
}

// Undo marks the site's pin undone (Pin.Undone), atomically.
func (st Store) Undo(name string) error {
	p, err := st.ReadPin(name)
	if err != nil || p == nil {
		return err
	}
	p.Undone = true
	data, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.Write(st.paths().PinFile(name), append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("cannot undo the pin of site %s: %w", name, err)
	}
	return nil
}

// Unpin removes the site's pin, durably; it reports whether there was one.
func (st Store) Unpin(name string) (bool, error) {
	err := removeMarker(st.paths().PinFile(name))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("cannot unpin site %s: %w", name, err)
	}
	return true, nil
}
