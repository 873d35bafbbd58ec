package probe

import (
	"context"
	"fmt"
	"net"
	"strconv"

	"golang.org/x/sys/unix"
)

// dialUnixSocket connects to the unix socket at path without following a
// symlink there. The directory that holds a site's socket is often the
// site's own (its user may write it): the app can put a symlink in the
// socket's place, to a socket only root may reach or to another site's,
// and root's probe (sitectl's, the state service's) would send its
// request there and take that answer for the site's. The path is opened
// as a file (O_PATH, O_NOFOLLOW), must be a socket, and is connected to
// through that open file, so it cannot be swapped in between.
func dialUnixSocket(ctx context.Context, path string) (net.Conn, error) {
	fd, err := unix.Open(path, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &net.OpError{Op: "dial", Net: "unix", Err: fmt.Errorf("%s: %w", path, err)}
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, &net.OpError{Op: "dial", Net: "unix", Err: fmt.Errorf("%s: %w", path, err)}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFSOCK {
		what := "not a socket"
		if st.Mode&unix.S_IFMT == unix.S_IFLNK {
			what = "a symlink, not the site's socket: sitectl does not follow it"
		}
		return nil, &net.OpError{Op: "dial", Net: "unix", Err: fmt.Errorf("%s is %s", path, what)}
	}
	return (&net.Dialer{}).DialContext(ctx, "unix", "/proc/self/fd/"+strconv.Itoa(fd))
}
