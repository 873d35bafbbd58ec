package activation

import (
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// listenFDsStart is the first file descriptor systemd passes (SD_LISTEN_FDS_START).
const listenFDsStart = 3

// UnknownName is the name given to a passed file descriptor for which
// LISTEN_FDNAMES provides no name. systemd uses the same placeholder.
const UnknownName = "unknown"

// ErrNotActivated is matched (with errors.Is) by the errors returned when the
// process did not receive sockets from systemd: LISTEN_FDS is unset or zero,
// or the variables were meant for another process.
var ErrNotActivated = errors.New("not socket-activated")

// passedFD is one descriptor announced by the LISTEN_* variables.
type passedFD struct {
	fd   int
	name string
}

// readListenEnv parses LISTEN_PID, LISTEN_FDS and LISTEN_FDNAMES. It returns
// the announced descriptors, or an error that explains why there are none:
// one wrapping ErrNotActivated unless LISTEN_FDS counts descriptors that
// were not passed (not open, or opened by this process). It does not
// change the descriptors.
func readListenEnv() ([]passedFD, error) {
	fdsVar, ok := os.LookupEnv("LISTEN_FDS")
	if !ok {
		return nil, fmt.Errorf("%w (LISTEN_FDS is not set)", ErrNotActivated)
	}
	pidVar, ok := os.LookupEnv("LISTEN_PID")
	if !ok {
		return nil, fmt.Errorf("%w (LISTEN_FDS is set but LISTEN_PID is not)", ErrNotActivated)
	}
	pid, err := strconv.Atoi(pidVar)
	if err != nil || pid <= 0 {
		return nil, fmt.Errorf("%w (LISTEN_PID=%q is not a process ID)", ErrNotActivated, pidVar)
	}
	if pid != os.Getpid() {
		return nil, fmt.Errorf("%w (LISTEN_PID=%d names another process, this is pid %d: the variables were inherited, not meant for us)",
			ErrNotActivated, pid, os.Getpid())
	}
	n, err := strconv.Atoi(fdsVar)
	if err != nil || n < 0 {
		return nil, fmt.Errorf("%w (LISTEN_FDS=%q is not a descriptor count)", ErrNotActivated, fdsVar)
	}
	if n == 0 {
		return nil, fmt.Errorf("%w (LISTEN_FDS=0: the socket unit passed no sockets)", ErrNotActivated)
	}
	if n > math.MaxInt32-listenFDsStart {
		return nil, fmt.Errorf("%w (LISTEN_FDS=%q is not a descriptor count)", ErrNotActivated, fdsVar)
	}
	if err := checkInherited(n); err != nil {
		return nil, err
	}
	return namedFDs(n)
}

// namedFDs are the n passed descriptors with their names from
// LISTEN_FDNAMES ([UnknownName] for one without).
func namedFDs(n int) ([]passedFD, error) {
	var names []string
	if v := os.Getenv("LISTEN_FDNAMES"); v != "" {
		names = strings.Split(v, ":")
	}
	// As sd_listen_fds_with_names: names for another number of
	// descriptors than were passed cannot say which name is whose, and a
	// listener taken by the wrong name serves the wrong thing (a private
	// listener as the public one).
	if names != nil && len(names) != n {
		return nil, fmt.Errorf("activation: LISTEN_FDNAMES names %d descriptors (%q) but LISTEN_FDS passes %d: which name belongs to which descriptor is unknown, so none is used",
			len(names), firstLine(os.Getenv("LISTEN_FDNAMES")), n)
	}
	fds := make([]passedFD, n)
	for i := range fds {
		name := UnknownName
		if names != nil && names[i] != "" {
			name = names[i]
		}
		fds[i] = passedFD{fd: listenFDsStart + i, name: name}
	}
	return fds, nil
}

// checkInherited checks that each of the n descriptors from fd 3 came
// from the process that started this one. Such a descriptor survived the
// exec, so it is not close-on-exec until this package marks it; one that
// is was opened by this process since it started (the Go runtime keeps
// its own open right above the passed ones: the cgroup files it reads the
// CPU limit from, its poller's), and LISTEN_FDS counts
// more descriptors than were passed. Taking it for a socket from systemd
// would close it, and the runtime with it. Nothing is changed.
func checkInherited(n int) error {
	// The descriptors are numbered from 3 without a gap: if the last one
	// is not open, the count is wrong, and none of them is touched (the
	// ones below may be this process's own, and the count may be huge).
	if last := listenFDsStart + n - 1; !fdOpen(last) {
		return fmt.Errorf("activation: LISTEN_FDS=%d announces fds %d to %d, but fd %d is not open in this process: "+
			"the count does not match the descriptors passed", n, listenFDsStart, last, last)
	}
	filesTaken.mu.Lock()
	defer filesTaken.mu.Unlock()
	for fd := listenFDsStart; fd < listenFDsStart+n; fd++ {
		flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
		switch {
		case errors.Is(err, unix.EBADF):
			return fmt.Errorf("activation: LISTEN_FDS=%d announces fds %d to %d, but fd %d is not open in this process: "+
				"the count does not match the descriptors passed", n, listenFDsStart, listenFDsStart+n-1, fd)
		case err == nil && flags&unix.FD_CLOEXEC != 0 && !filesTaken.fds[fd]:
			return fmt.Errorf("activation: LISTEN_FDS=%d announces fds %d to %d, but fd %d was not passed to this process "+
				"(it is close-on-exec: this process opened it, or other code already took the passed descriptors): "+
				"the count does not match the descriptors passed", n, listenFDsStart, listenFDsStart+n-1, fd)
		}
	}
	return nil
}

// filesTaken holds the descriptors [Files] marked close-on-exec, which
// are still the passed ones when it is called again.
var filesTaken struct {
	mu  sync.Mutex
	fds map[int]bool
}

// fdOpen reports whether fd is an open descriptor of this process.
func fdOpen(fd int) bool {
	_, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
	return !errors.Is(err, unix.EBADF)
}

func unsetListenEnv() {
	os.Unsetenv("LISTEN_PID")
	os.Unsetenv("LISTEN_FDS")
	os.Unsetenv("LISTEN_FDNAMES")
}

// Files returns the file descriptors systemd passed to this process, in
// order, as *os.File values whose Name is the descriptor's
// FileDescriptorName (or [UnknownName]). It returns nil if LISTEN_PID is not
// this process's ID or LISTEN_FDS is unset, zero, malformed or counts
// descriptors that are not open or that this process opened itself (more
// than were passed), or if LISTEN_FDNAMES names another number of
// descriptors than LISTEN_FDS passes. Every returned descriptor is marked
// close-on-exec, so programs this process starts do not inherit it.
//
// If unsetEnv is true, LISTEN_PID, LISTEN_FDS and LISTEN_FDNAMES are removed
// from the environment (whether or not they were valid), so that child
// processes and later calls do not see them.
//
// Files is the low-level layer of this package. Each call wraps the same
// descriptor numbers in new *os.File values, and closing one of them closes
// the descriptor for all, so a program should call it once, normally with
// unsetEnv set to true. Files does not cooperate with [Listeners]: use one
// or the other (Listeners fails after Files(false) took the descriptors).
func Files(unsetEnv bool) []*os.File {
	if unsetEnv {
		defer unsetListenEnv()
	}
	fds, err := readListenEnv()
	if err != nil {
		return nil
	}
	filesTaken.mu.Lock()
	defer filesTaken.mu.Unlock()
	if filesTaken.fds == nil {
		filesTaken.fds = map[int]bool{}
	}
	files := make([]*os.File, len(fds))
	for i, p := range fds {
		unix.CloseOnExec(p.fd)
		filesTaken.fds[p.fd] = true
		files[i] = os.NewFile(uintptr(p.fd), p.name)
	}
	return files
}

// activated holds the result of taking the listeners from the environment.
// The descriptors can be consumed only once per process, so the first
// successful or failed attempt is remembered.
var activated struct {
	mu        sync.Mutex
	done      bool
	listeners map[string][]net.Listener
	passed    []passedFD // what systemd announced, for error messages
	err       error
}

// Listeners returns the stream listeners systemd passed to this process,
// grouped by their FileDescriptorName. Descriptors that share a name (a
// socket unit with several ListenStream= lines) are returned under that name
// in the order systemd passed them.
//
// The first call takes the descriptors from the environment and unsets
// LISTEN_PID, LISTEN_FDS and LISTEN_FDNAMES; later calls return the same
// listeners (the map itself is a fresh copy). Closing a listener, as [Serve]
// does when it returns, closes it for every caller.
//
// If the process was not socket-activated, the error matches
// [ErrNotActivated] and explains how to opt in to binding addresses. If any
// passed descriptor is not a listening stream socket, Listeners returns an
// error naming the descriptor and closes all of them.
func Listeners() (map[string][]net.Listener, error) {
	m, err := takeListeners()
	if errors.Is(err, ErrNotActivated) {
		return nil, notActivatedError(err, nil)
	}
	return m, err
}

// takeListeners is Listeners without the explanation added to
// ErrNotActivated errors.
func takeListeners() (map[string][]net.Listener, error) {
	activated.mu.Lock()
	defer activated.mu.Unlock()
	if !activated.done {
		fds, err := readListenEnv()
		if err != nil {
			if _, ok := os.LookupEnv("LISTEN_FDS"); !ok {
				// Nothing was consumed; the environment is left as is.
				return nil, err
			}
			// The variables are present but not usable by us: drop them
			// so they do not leak to our children, and remember why.
			unsetListenEnv()
			activated.done = true
			activated.err = err
			return nil, err
		}
		unsetListenEnv()
		activated.done = true
		activated.passed = fds
		if activated.err = takenByFiles(fds); activated.err == nil {
			activated.listeners, activated.err = listenersFromFDs(fds)
		}
	}
	if activated.err != nil {
		return nil, activated.err
	}
	m := make(map[string][]net.Listener, len(activated.listeners))
	for name, ls := range activated.listeners {
		m[name] = slices.Clone(ls)
	}
	return m, nil
}

// takenByFiles refuses descriptors that [Files] returned: the listeners
// would close them under the program's *os.File values, whose Close or
// finalizer would then close whatever reused the number.
func takenByFiles(fds []passedFD) error {
	filesTaken.mu.Lock()
	defer filesTaken.mu.Unlock()
	for _, p := range fds {
		if filesTaken.fds[p.fd] {
			return fmt.Errorf("activation: fd %d (%q) was already returned by activation.Files, which owns it now: "+
				"a program takes its sockets with Files or with Listeners, not both", p.fd, p.name)
		}
	}
	return nil
}

// notActivatedError explains an ErrNotActivated cause to an operator.
func notActivatedError(cause error, expected []string) error {
	unit := "a systemd .socket unit (FileDescriptorName= names each socket)"
	what := "this process has no sockets from systemd"
	if len(expected) > 0 {
		noun := "listener"
		if len(expected) > 1 {
			noun = "listeners"
		}
		what = fmt.Sprintf("expected socket-activated %s %s, but this process has no sockets from systemd", noun, quoteList(expected))
		unit = "a systemd .socket unit with FileDescriptorName=" + expected[0]
		if len(expected) > 1 {
			unit = "systemd .socket units whose FileDescriptorName= values are these names"
		}
	}
	return fmt.Errorf("activation: %s: %w; start it through %s, "+
		"or, for local development, have the program bind addresses itself "+
		"(activation.ListenersOrBind, for example behind a --listen flag)", what, cause, unit)
}

// listenersFromFDs validates every descriptor and converts it to a
// net.Listener. On error every descriptor and listener is closed.
func listenersFromFDs(fds []passedFD) (map[string][]net.Listener, error) {
	m := make(map[string][]net.Listener)
	var firstErr error
	for _, p := range fds {
		unix.CloseOnExec(p.fd)
		if firstErr != nil {
			unix.Close(p.fd)
			continue
		}
		if err := checkListeningStream(p); err != nil {
			firstErr = err
			unix.Close(p.fd)
			continue
		}
		f := os.NewFile(uintptr(p.fd), p.name)
		l, err := net.FileListener(f) // duplicates the descriptor
		f.Close()
		if err != nil {
			firstErr = fmt.Errorf("activation: fd %d (%q): cannot use it as a listener: %w", p.fd, p.name, err)
			continue
		}
		m[p.name] = append(m[p.name], l)
	}
	if firstErr != nil {
		for _, ls := range m {
			for _, l := range ls {
				l.Close()
			}
		}
		return nil, firstErr
	}
	return m, nil
}

func checkListeningStream(p passedFD) error {
	typ, err := unix.GetsockoptInt(p.fd, unix.SOL_SOCKET, unix.SO_TYPE)
	switch {
	case errors.Is(err, unix.ENOTSOCK):
		return fmt.Errorf("activation: fd %d (%q) passed by systemd is not a socket "+
			"(a FIFO or special file?); only ListenStream= sockets can be served", p.fd, p.name)
	case errors.Is(err, unix.EBADF):
		return fmt.Errorf("activation: fd %d (%q) announced by LISTEN_FDS is not open in this process", p.fd, p.name)
	case err != nil:
		return fmt.Errorf("activation: fd %d (%q): cannot inspect socket: %w", p.fd, p.name, err)
	}
	if typ != unix.SOCK_STREAM {
		return fmt.Errorf("activation: fd %d (%q) passed by systemd is a %s socket, not a stream socket; "+
			"only ListenStream= sockets can be served", p.fd, p.name, sockTypeName(typ))
	}
	acc, err := unix.GetsockoptInt(p.fd, unix.SOL_SOCKET, unix.SO_ACCEPTCONN)
	if err != nil {
		return fmt.Errorf("activation: fd %d (%q): cannot inspect socket: %w", p.fd, p.name, err)
	}
	if acc == 0 {
		return fmt.Errorf("activation: fd %d (%q) passed by systemd is a stream socket that is not listening "+
			"(with Accept=yes systemd passes single connections, not listeners; use Accept=no)", p.fd, p.name)
	}
	return nil
}

func sockTypeName(typ int) string {
	switch typ {
	case unix.SOCK_DGRAM:
		return "datagram"
	case unix.SOCK_SEQPACKET:
		return "seqpacket"
	case unix.SOCK_RAW:
		return "raw"
	}
	return "type " + strconv.Itoa(typ)
}

// Listener returns the socket-activated listeners named name (the
// FileDescriptorName= of the socket unit). Its error names the missing
// listener and lists the names systemd did pass.
func Listener(name string) ([]net.Listener, error) {
	m, err := Require(name)
	if err != nil {
		return nil, err
	}
	return m[name], nil
}

// Require returns all socket-activated listeners, like [Listeners], but
// fails unless there is at least one listener for every name in names. Its
// error names every missing listener and lists the names systemd passed.
func Require(names ...string) (map[string][]net.Listener, error) {
	m, err := takeListeners()
	if errors.Is(err, ErrNotActivated) {
		return nil, notActivatedError(err, names)
	}
	if err != nil {
		return nil, err
	}
	if err := missingError(m, names); err != nil {
		return nil, err
	}
	return m, nil
}

func missingError(m map[string][]net.Listener, names []string) error {
	var missing []string
	for _, n := range names {
		if len(m[n]) == 0 && !slices.Contains(missing, n) {
			missing = append(missing, n)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	activated.mu.Lock()
	passed := activated.passed
	activated.mu.Unlock()
	var got []string
	for _, p := range passed {
		got = append(got, fmt.Sprintf("%q (fd %d)", p.name, p.fd))
	}
	noun := "listener"
	if len(missing) > 1 {
		noun = "listeners"
	}
	return fmt.Errorf("activation: no socket-activated %s named %s; systemd passed %s; "+
		"set FileDescriptorName= in the .socket unit to the expected name",
		noun, quoteList(missing), strings.Join(got, ", "))
}

func quoteList(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = strconv.Quote(n)
	}
	return strings.Join(q, ", ")
}

// ListenersOrBind is the explicit opt-in for running without systemd, for
// example during local development. addrs maps each listener name the
// program expects to the addresses to bind for it when the process was not
// socket-activated. An address is either a TCP "host:port" (host may be
// empty for all interfaces) or an absolute unix socket path; an address
// starting with "@" is a unix socket in the abstract namespace.
//
// If the process was socket-activated, the activated listeners are returned
// instead (all of them, including names not in addrs) and the addresses are
// ignored; it is then an error if a name in addrs has no activated listener,
// so a misspelt FileDescriptorName= does not go unnoticed. Otherwise every
// address is bound, and if one fails those already bound are closed.
func ListenersOrBind(addrs map[string][]string) (map[string][]net.Listener, error) {
	names := make([]string, 0, len(addrs))
	for name := range addrs {
		names = append(names, name)
	}
	sort.Strings(names)
	m, err := Require(names...)
	if err == nil || !errors.Is(err, ErrNotActivated) || len(names) == 0 {
		return m, err
	}
	m = make(map[string][]net.Listener, len(addrs))
	closeAll := func() {
		for _, ls := range m {
			for _, l := range ls {
				l.Close()
			}
		}
	}
	for _, name := range names {
		if len(addrs[name]) == 0 {
			closeAll()
			return nil, fmt.Errorf("activation: no address to bind for listener %q", name)
		}
		for _, addr := range addrs[name] {
			l, err := bind(addr)
			if err != nil {
				closeAll()
				return nil, fmt.Errorf("activation: not socket-activated, and binding %q for listener %q failed: %w", addr, name, err)
			}
			m[name] = append(m[name], l)
		}
	}
	return m, nil
}

func bind(addr string) (net.Listener, error) {
	if strings.HasPrefix(addr, "/") || strings.HasPrefix(addr, "@") {
		return net.Listen("unix", addr)
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return nil, fmt.Errorf("want a TCP host:port or an absolute unix socket path: %w", err)
	}
	return net.Listen("tcp", addr)
}
