package modes

import (
	"errors"
	"fmt"
	"io/fs"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/sitectl/sitectl/internal/site"
)

// readUpTo reads at most n bytes of the regular file at path, with its
// identity (modification time and all) from the same open file.
//
// It uses the system calls themselves: os.Open on Linux tries to add every
// file to the network poller (fcntl twice, epoll_ctl, which fails for a
// regular file, fcntl twice more), six calls to open a file of a few
// hundred bytes, and list reads two of them for each of 10,000 sites. Here
// it is open, fstat, read and close. The file is opened non-blocking so
// that a FIFO or a device put in its place neither blocks nor is read.
func readUpTo(path string, n int64) ([]byte, site.FileID, error) {
	var fd int
	err := retryEINTR(func() (err error) {
		fd, err = syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
		return err
	})
	if err != nil {
		return nil, site.FileID{}, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	defer syscall.Close(fd)
	var st unix.Stat_t
	if err := retryEINTR(func() error { return unix.Fstat(fd, &st) }); err != nil {
		return nil, site.FileID{}, &fs.PathError{Op: "stat", Path: path, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, site.FileID{}, fmt.Errorf("%s is not a regular file", path)
	}
	id := site.FileIDOf(&st)
	// One byte more than the file's size: a read that fills less than it
	// asked for is the end of a regular file, no further read needed (one
	// that fills it all: the file grew since, read on, up to n).
	buf := make([]byte, 0, max(min(st.Size+1, n), 64))
	for int64(len(buf)) < n {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		want := buf[len(buf):min(int64(cap(buf)), n)]
		var got int
		err := retryEINTR(func() (err error) {
			got, err = syscall.Read(fd, want)
			return err
		})
		if err != nil {
			return nil, site.FileID{}, &fs.PathError{Op: "read", Path: path, Err: err}
		}
		buf = buf[:len(buf)+got]
		// A short read that reached the size fstat gave is the end; one
		// that did not (a read cut short) reads on.
		if got == 0 || got < len(want) && int64(len(buf)) >= st.Size {
			break
		}
	}
	return buf, id, nil
}

func retryEINTR(f func() error) error {
	for {
		if err := f(); !errors.Is(err, syscall.EINTR) {
			return err
		}
	}
}
