package generator

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"

	"github.com/sitectl/sitectl/internal/site"
	"github.com/sitectl/sitectl/internal/units"
)

// SourceChanged tells whether the site file source has other content than
// the unit file fragment says it was generated from (units.ParseStamp):
// systemd, which compares modification times only, takes a site file put
// in place with its old time kept (cp -p, rsync -a, tar x) for one it
// loaded. Units from a last good copy (source is the copy) name the site
// file they stand in for and what it was then (units.ParseStandIn): that
// file is compared instead, so that a fix of it is a change, although the
// copy stays as it was. A unit with neither (written by an older sitectl)
// is not found changed: systemd's answer stands. A file that is gone has
// changed, as systemd says of one. It reads at most units.StampWithin
// bytes of the unit file and site.MaxFileSize of the site file. It is
// control.Manager's SourceChanged.
func SourceChanged(fragment, source string) (bool, error) {
	head, err := readHead(fragment, units.StampWithin)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil // gone since systemd loaded it: systemd's answer
	}
	if err != nil {
		return false, fmt.Errorf("cannot read the unit file %s: %w", fragment, err)
	}
	stamp, ok := units.ParseStamp(head)
	if !ok {
		if source, stamp, ok = units.ParseStandIn(head); !ok {
			return false, nil
		}
	}
	data, err := site.ReadFile(source)
	if errors.Is(err, fs.ErrNotExist) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	return site.Digest(data) != stamp, nil
}

// readHead reads the first n bytes of a file, or all of a shorter one. A
// FIFO put in its place must not block the reader (O_NONBLOCK), nor a
// device never end (n bounds the read).
func readHead(path string, n int) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	buf := make([]byte, n)
	k, err := io.ReadFull(f, buf)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return buf[:k], nil
}
