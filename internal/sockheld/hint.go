package sockheld

import (
	"bytes"
	"io"
	"os"
	"slices"
	"strconv"
	"syscall"

	"github.com/sitectl/sitectl/internal/atomicfile"
)

// A hint says which of PID 1's open files were a site's listening sockets
// the last time they were looked for: the check reads those links first,
// and the rest of PID 1's open files only when they no longer are. With
// 10,000 sites PID 1 holds over 10,000 open files, and reading one link
// costs 5–7 µs here: a site whose socket came late in that list cost a
// restart or `sitectl status SITE` up to 70 ms more than one whose socket
// came first. A socket keeps its number until its socket unit closes it,
// so the hint is right until the socket unit restarts or the host
// reboots; a wrong or unreadable hint only costs the full read it saves,
// as every number in it is checked against the sockets sought.
//
// This file owns the hint's format: the numbers, in decimal, separated
// by spaces, and a newline.

// maxHintFDs bounds how many numbers a hint holds, and maxHintSize what
// is read of its file.
const (
	maxHintFDs  = 64
	maxHintSize = maxHintFDs * 11 // up to 10 digits and a space each
)

// maxFD bounds a number in a hint: what Linux allows a process at most
// (fs.nr_open), so that no number read is taken for something else.
const maxFD = 1 << 30

// encodeHint is the content of a hint file for fds.
func encodeHint(fds []int) []byte {
	var b []byte
	for i, fd := range fds[:min(len(fds), maxHintFDs)] {
		if i > 0 {
			b = append(b, ' ')
		}
		b = strconv.AppendInt(b, int64(fd), 10)
	}
	return append(b, '\n')
}

// decodeHint reads a hint file's content; anything but a valid hint is
// no hint.
func decodeHint(data []byte) []int {
	line, ok := bytes.CutSuffix(data, []byte("\n"))
	if !ok || len(line) == 0 {
		return nil
	}
	var fds []int
	for _, f := range bytes.Split(line, []byte(" ")) {
		n, ok := parseUint(f, 10)
		if !ok || n >= maxFD || len(fds) == maxHintFDs {
			return nil
		}
		fds = append(fds, int(n))
	}
	return fds
}

// readHint reads the hint file at path ("": none); a file that is missing,
// unreadable, too large, not a regular file or not a hint gives none. It
// is opened without blocking: opening a named pipe for reading would wait
// for a writer, and the check with it.
func readHint(path string) []int {
	if path == "" {
		return nil
	}
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	if err != nil {
		return nil
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return nil
	}
	data, err := io.ReadAll(io.LimitReader(f, maxHintSize+1))
	if err != nil || len(data) > maxHintSize {
		return nil
	}
	return decodeHint(data)
}

// writeHint replaces the hint file at path with fds, in order, when they
// differ from what it held. It is a cache: failing to write it (no state directory
// yet, a caller that may not write there) changes nothing but the next
// check's cost, so the error is dropped.
func writeHint(path string, old, fds []int) {
	slices.Sort(fds)
	if path == "" || len(fds) == 0 || slices.Equal(old, fds) {
		return
	}
	_ = atomicfile.Write(path, encodeHint(fds), 0o600)
}
