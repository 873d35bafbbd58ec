package sitecheck

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/sitectl/sitectl/internal/procfs"
	"github.com/sitectl/sitectl/internal/site"
	"github.com/sitectl/sitectl/internal/units"
	"golang.org/x/sys/unix"
)

// Start is what a service starts with, as far as Startable checks it.
type Start struct {
	// Program is the program the start runs; "" when the start runs
	// none of the site's (a mode that sitectl serves itself).
	Program string
	// User and Group are looked up unless "", numeric, or made up at
	// each start (DynamicUser=).
	User, Group string
	// WorkingDirectory is checked unless "" or "~".
	WorkingDirectory string
	// Credentials are the files systemd reads for the app
	// (LoadCredential=); relative ones are not files.
	Credentials []string
	// Paths are the paths systemd builds the unit's mount namespace with
	// that must exist (ReadWritePaths= and the like without their "-"
	// prefix).
	Paths []Needed
	// SupplementaryGroups are looked up as Group is.
	SupplementaryGroups []string
	// EnvironmentFiles are those systemd must read (no "-" prefix).
	EnvironmentFiles []string
	// Commands are the programs the start runs besides the app's that
	// must succeed (ExecStartPre=, ExecStartPost= without "-").
	Commands []Command
	// RunAs is the user the app and the Commands AsUser run as, whose
	// access to the programs, the working directory, the page and the
	// static directory is checked; nil: not checked (root, or one whose
	// capabilities override the files' permissions).
	RunAs *RunAs
	// Hidden are the host's paths the unit hides from its processes
	// (units.Hides): the program, working directory, page or static
	// directory under one is not there for them. Not checked when
	// MountsOver: a mount of the unit's own may put it back.
	Hidden []units.Hidden
	// Page and StaticDir are a maintenance mode's page file and static
	// directory, which the maintenance server opens as it starts ("":
	// none).
	Page, StaticDir string
	// NoExecPaths are the unit's NoExecPaths=: mounted noexec in its
	// namespace. MountsOver: the unit mounts something of its own over
	// the host's (ExecPaths=, BindPaths=, TemporaryFileSystem=), so a
	// program's mount there may not be the host's, and the host's
	// noexec mounts are no reason.
	NoExecPaths []string
	MountsOver  bool
}

// Needed is a path a start needs, and the setting that names it
// (ReadWritePaths=, BindPaths=, ...).
type Needed struct {
	Setting, Path string
}

// Command is a program a start runs besides the app's, the setting that
// names it (ExecStartPre=, ExecStartPost=), and whether it runs as the
// unit's user (no "+", "!" or "!!" prefix).
type Command struct {
	Setting, Path string
	AsUser        bool
}

// Startable says why a service started so would fail before the app
// runs: a program (its own or one run before it), user, group, working
// directory, credential file, environment file or path of its sandbox
// that does not exist, a program or working directory that the user
// it runs as may not run or enter (a directory on the way that the user
// may not search, by the owner, group and mode of each), or a program
// the kernel would not run for anyone (not an ELF binary nor a #! script
// nor one a binfmt_misc handler takes; on a noexec mount).
// A restart stops the old process first, and its rollback restarts the
// same unit, so such a start takes the site down; sitectl refuses it
// instead. Only what is sure counts: a path that cannot be checked (a
// directory sitectl may not search) or a name the host may resolve
// from elsewhere than its files (LDAP, say) is no reason, so that a doubt
// never stops a restart that would work.
func Startable(h Host, st Start) []string {
	var out []string
	id, _ := h.identity(st.RunAs)
	ns := namespace{noExec: st.NoExecPaths, unsure: st.MountsOver}
	var hidden []units.Hidden
	if !st.MountsOver {
		hidden = st.Hidden
	}
	if st.Program != "" {
		if msg, sure := h.programProblem(st.Program, id, ns); msg != "" && sure {
			out = append(out, fmt.Sprintf("the program %s %s", st.Program, msg))
		} else if msg := h.hiddenProblem(st.Program, "the program", hidden, "the start would fail"); msg != "" {
			out = append(out, msg)
		}
	}
	wd := st.WorkingDirectory
	if wd == "~" {
		wd = ""
	}
	for _, msg := range []string{h.accountProblem("passwd", st.User), h.accountProblem("group", st.Group), h.workdirProblem(st.WorkingDirectory, id), h.hiddenProblem(wd, "the working directory", hidden, "the start would fail with 200/CHDIR")} {
		if msg != "" {
			out = append(out, msg)
		}
	}
	for _, c := range st.Credentials {
		if strings.HasPrefix(c, "/") {
			if _, err := h.Stat(c); notExist(err) {
				out = append(out, fmt.Sprintf("the credential file %s does not exist: the start would fail with 243/CREDENTIALS", c))
			}
		}
	}
	for _, g := range st.SupplementaryGroups {
		if msg := h.accountProblem("group", g); msg != "" {
			out = append(out, "SupplementaryGroups=: "+msg)
		}
	}
	for _, c := range st.Commands {
		as := id
		if !c.AsUser {
			as = nil
		}
		// systemd runs these itself: 203/EXEC when it cannot.
		if msg, sure := h.runnable(c.Path, as, ns, "the start would fail with 203/EXEC", maxInterpreters); msg != "" && sure {
			out = append(out, fmt.Sprintf("the program %s (%s) %s", c.Path, c.Setting, msg))
		}
	}
	for _, f := range st.EnvironmentFiles {
		if strings.HasPrefix(f, "/") {
			if _, err := h.Stat(f); notExist(err) {
				out = append(out, fmt.Sprintf("the environment file %s (EnvironmentFile=) does not exist: systemd would not start the unit (result: resources)", f))
			}
		}
	}
	if msg := h.pageProblem(st.Page, id, hidden); msg != "" {
		out = append(out, msg)
	}
	if msg := h.staticDirProblem(st.StaticDir, id, hidden); msg != "" {
		out = append(out, msg)
	}
	for _, p := range st.Paths {
		if !strings.HasPrefix(p.Path, "/") {
			continue
		}
		if _, err := h.Stat(p.Path); notExist(err) {
			out = append(out, fmt.Sprintf("the path %s (%s) does not exist: systemd could not set up the unit's mount namespace, and the start would fail with 226/NAMESPACE", p.Path, p.Setting))
		} else if msg := h.replacedProblem(p, hidden); msg != "" {
			out = append(out, msg)
		}
	}
	return out
}

// replacedProblem says that path p, which the unit's mount namespace is
// built with (ReadWritePaths= and the like, not a bind mount's source,
// which is the host's), lies under a directory the unit replaces with
// an empty one of its own (PrivateTmp=): it is not there when systemd
// looks for it, whatever the host has. "" otherwise.
func (h Host) replacedProblem(p Needed, hidden []units.Hidden) string {
	if strings.HasPrefix(p.Setting, "Bind") {
		return ""
	}
	var fresh []units.Hidden
	for _, hd := range hidden {
		if strings.HasPrefix(hd.Directive, "PrivateTmp=") {
			fresh = append(fresh, hd)
		}
	}
	hd, ok := h.under(p.Path, fresh)
	if !ok {
		return ""
	}
	return fmt.Sprintf("the path %s (%s) lies under %s, which the unit replaces with an empty one of its own (%s): systemd could not find it as it sets up the unit's mount namespace, and the start would fail with 226/NAMESPACE; the app may write its own %s anyway", p.Path, p.Setting, hd.Path, hd.Directive, hd.Path)
}

// Missing tells whether a user (db "passwd") or group (db "group") surely
// does not exist on the host: not "", not a number, and not known to NSS.
func (h Host) Missing(db, name string) bool {
	return h.accountProblem(db, name) != ""
}

// accountProblem says that a user (db "passwd") or group (db "group")
// surely does not exist, or "".
func (h Host) accountProblem(db, name string) string {
	if name == "" || numeric(name) || h.LookupName == nil {
		return ""
	}
	if found, err := h.LookupName(db, name); err != nil || found {
		return ""
	}
	if db == "group" {
		return fmt.Sprintf("group %q does not exist on this host: the start would fail with 216/GROUP", name)
	}
	return fmt.Sprintf("user %q does not exist on this host: the start would fail with 217/USER", name)
}

// workdirProblem says that a working directory surely is not one, or
// that user id (nil: not checked) surely may not enter it, or "".
func (h Host) workdirProblem(wd string, id *identity) string {
	if wd == "~" {
		return ""
	}
	if msg := h.pathProblem(wd, "the working directory", true, "the start would fail with 200/CHDIR"); msg != "" {
		return msg
	}
	// systemd enters it as the user, after it changed to the user.
	if why := h.blocked(id, wd); why != "" {
		return fmt.Sprintf("the working directory %s %s%s: %s: the start would fail with 200/CHDIR", wd, cannotEnter, id.who(), why)
	}
	return ""
}

// pageProblem says that a maintenance mode's page file surely cannot be
// served, or "": the maintenance server reads it as it starts, as user id
// (nil: not checked) and without the paths hidden, and does not start
// without it.
func (h Host) pageProblem(page string, id *identity, hidden []units.Hidden) string {
	const what, then = "the maintenance page", "the maintenance server would not start"
	if msg := h.pathProblem(page, what, false, then); msg != "" || page == "" {
		return msg
	}
	if fi, err := h.Stat(page); err == nil && fi.Size() > site.MaxPageSize {
		return fmt.Sprintf("the maintenance page %s is %d bytes long, and a maintenance page may have at most %d bytes (1 MiB): %s", page, fi.Size(), site.MaxPageSize, then)
	}
	return h.reachProblem(page, what, id, hidden, then)
}

// staticDirProblem is pageProblem for a maintenance mode's static_dir,
// which the server opens (reads) as it starts.
func (h Host) staticDirProblem(dir string, id *identity, hidden []units.Hidden) string {
	const what, then = "the static_dir", "the maintenance server would not start"
	if msg := h.pathProblem(dir, what, true, then); msg != "" || dir == "" {
		return msg
	}
	return h.reachProblem(dir, what, id, hidden, then)
}

// reachProblem says that path p, named what, which a service's process
// reads, is hidden from it or that user id may not read it, and then
// what, or "".
func (h Host) reachProblem(p, what string, id *identity, hidden []units.Hidden, then string) string {
	if msg := h.hiddenProblem(p, what, hidden, then); msg != "" {
		return msg
	}
	if why := h.unreadable(id, p); why != "" {
		return fmt.Sprintf("%s %s %s%s: %s: %s", what, p, cannotRead, id.who(), why, then)
	}
	return ""
}

// hiddenProblem says that path p, named what, lies under a path the
// unit hides from its processes, and then what, or "".
func (h Host) hiddenProblem(p, what string, hidden []units.Hidden, then string) string {
	if p == "" {
		return ""
	}
	if hd, ok := h.under(p, hidden); ok {
		return fmt.Sprintf("%s %s lies under %s, which the site's unit hides from its processes (%s): %s", what, p, hd.Path, hd.Directive, then)
	}
	return ""
}

// pathProblem says that path, named what, surely does not exist or is
// not a directory (dir) or a regular file (!dir), and then what, or ""
// when path is "".
func (h Host) pathProblem(path, what string, dir bool, then string) string {
	if path == "" {
		return ""
	}
	fi, err := h.Stat(path)
	switch {
	case notExist(err):
		return fmt.Sprintf("%s %s does not exist: %s", what, path, then)
	case err == nil && dir && !fi.IsDir():
		return fmt.Sprintf("%s %s is not a directory: %s", what, path, then)
	case err == nil && !dir && !fi.Mode().IsRegular():
		return fmt.Sprintf("%s %s is not a regular file: %s", what, path, then)
	}
	return ""
}

// programProblem says what is wrong with the program path, run as user
// id (nil: not checked), or "", and whether that is sure. A script's
// interpreter (its #! line) must be there too: a virtualenv whose Python
// went with an upgrade fails the same way.
func (h Host) programProblem(p string, id *identity, ns namespace) (msg string, sure bool) {
	return h.runnable(p, id, ns, "the start would fail", maxInterpreters)
}

// maxInterpreters is how many #! lines deep the kernel follows (its
// binfmt recursion limit).
const maxInterpreters = 4

// runnable says what is wrong with program p, run as user id (nil: not
// checked) in a unit's mount namespace ns, ending in then, or "", and
// whether that is sure; depth is how many #! lines it still follows.
func (h Host) runnable(p string, id *identity, ns namespace, then string, depth int) (msg string, sure bool) {
	fi, err := h.Stat(p)
	switch {
	case notExist(err):
		return "does not exist on this host: " + then, true
	case err != nil:
		// A directory on the way that the user may not search is sure
		// all the same (one that the host as any user sees it, Public,
		// does not look into).
		if why := h.blocked(id, p); why != "" {
			return fmt.Sprintf("%s%s: %s: %s", cannotRun, id.who(), why, then), true
		}
		return fmt.Sprintf("cannot be checked: %v", err), false
	case !fi.Mode().IsRegular():
		return "is not a regular file: " + then, true
	case fi.Mode().Perm()&0o111 == 0:
		return fmt.Sprintf("is not executable (mode %04o): %s", fi.Mode().Perm(), then), true
	}
	if why := h.blocked(id, p); why != "" {
		return fmt.Sprintf("%s%s: %s: %s", cannotRun, id.who(), why, then), true
	}
	if why := h.noExec(p, ns); why != "" {
		return why + ": " + then, true
	}
	// Only a script anyone may read: one that the site's user may not
	// read fails anyway, and root's reading of another (through a
	// release symlink a deployer points elsewhere) must not show a
	// deployer its first line.
	if fi.Mode().Perm()&0o004 == 0 {
		return "", true
	}
	head, err := h.head(p)
	if err != nil {
		return "", true
	}
	if msg := h.formatProblem(p, head); msg != "" {
		return msg + ": " + then, true
	}
	interp, arg := interpreterOf(head)
	switch {
	case strings.HasSuffix(interp, "\r"):
		if _, err := h.Stat(interp); !notExist(err) {
			break // an interpreter whose name ends so, strange as it is
		}
		return fmt.Sprintf("has a #! line that ends with a carriage return (the file has Windows line endings): the kernel looks for the interpreter %q, which does not exist, and the start would fail with 203/EXEC", interp), true
	case strings.HasSuffix(arg, "\r"):
		// Most interpreters fail on such an argument, but that is
		// theirs to say.
		return fmt.Sprintf("has a #! line that ends with a carriage return (the file has Windows line endings): the kernel passes %q to %s as its argument", arg, interp), false
	}
	if interp == "" || depth == 0 {
		return "", true
	}
	if msg, sure := h.runnable(interp, id, ns, then, depth-1); msg != "" {
		return fmt.Sprintf("runs %s (its #! line), which %s", interp, msg), sure
	}
	return "", true
}

// head is the start of the file p that the kernel reads to tell its
// format and #! line; an error when it is not read (ReadHead nil: not
// read at all).
func (h Host) head(p string) ([]byte, error) {
	if h.ReadHead == nil {
		return nil, errors.New("not read")
	}
	return h.ReadHead(p, shebangMax)
}

// interpreterOf reads the #! line of a file that starts with head as the
// kernel does: the interpreter's path, "" when it is not an absolute one
// (not a script, or a relative path, which the kernel looks up from the
// working directory), and its one optional argument. The kernel splits
// the line at the first space or tab, and strips only spaces and tabs
// from its ends: a carriage return at its end (a file with Windows line
// endings) stays, at the end of the argument, or of the path when there
// is no argument.
func interpreterOf(head []byte) (path, arg string) {
	if !bytes.HasPrefix(head, []byte("#!")) {
		return "", ""
	}
	line, _, _ := bytes.Cut(head[2:], []byte("\n"))
	path = strings.Trim(string(line), " \t")
	if i := strings.IndexAny(path, " \t"); i >= 0 {
		path, arg = path[:i], strings.TrimLeft(path[i+1:], " \t")
	}
	if !strings.HasPrefix(path, "/") {
		return "", ""
	}
	return path, arg
}

// shebangMax is how much of a #! line the kernel reads (BINPRM_BUF_SIZE).
const shebangMax = 256

// readHead reads the first n bytes of a file, or fewer if it is shorter.
func readHead(path string, n int) ([]byte, error) {
	// The path is first opened without reading (O_PATH: opening a device
	// may do something, a FIFO would block), and read only when what was
	// opened is a regular file: what was statted before may have been
	// swapped since.
	fd, err := unix.Open(path, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, &fs.PathError{Op: "stat", Path: path, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	f, err := os.OpenFile(fmt.Sprintf("/proc/self/fd/%d", fd), os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readFull(f, n)
}

// readFull reads the first n bytes of r, or fewer if it is shorter.
func readFull(f io.Reader, n int) ([]byte, error) {
	buf := make([]byte, n)
	k, err := io.ReadFull(f, buf)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return buf[:k], nil
}

// notExist: the path surely does not exist (a component of it that is a
// file counts too).
func notExist(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}

func numeric(name string) bool {
	return name != "" && strings.Trim(name, "0123456789") == ""
}

// errUnsure: the host may know a name from a source sitectl does not read.
var errUnsure = errors.New("the host may know it from another source")

// accountsLimit bounds the reads of /etc/passwd, /etc/group and
// /etc/nsswitch.conf; a larger file leaves the name unknown.
const accountsLimit = 16 << 20

// lookupName tells whether the host knows a user (db "passwd") or group
// (db "group") of that name. Its file is read first: that is every site
// user on most hosts, and costs no process. A name not there is looked
// up as systemd would, through NSS (getent), but only believed missing
// when NSS reads nothing but the files and systemd's own records: a
// network directory that cannot be reached from here (sitectl's state
// service has no network) also answers "not found".
func lookupName(db, name string) (bool, error) {
	data, err := procfs.ReadBounded("/etc/"+db, accountsLimit)
	if err != nil {
		return false, err
	}
	if hasEntry(data, name) {
		return true, nil
	}
	conf, err := procfs.ReadBounded("/etc/nsswitch.conf", accountsLimit)
	if err != nil {
		return false, err
	}
	if !localSources(conf, db) {
		return false, errUnsure
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err = exec.CommandContext(ctx, "getent", "--", db, name).Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return true, nil
	case errors.As(err, &ee) && ee.ExitCode() == 2: // getent: not found
		return false, nil
	}
	return false, err
}

// hasEntry tells whether a passwd or group file has an entry name.
func hasEntry(data []byte, name string) bool {
	prefix := []byte(name + ":")
	for line := range bytes.SplitSeq(data, []byte("\n")) {
		if bytes.HasPrefix(line, prefix) {
			return true
		}
	}
	return false
}

// localSources tells whether nsswitch.conf has NSS look db up only in
// the files and systemd's records (nss-systemd: systemd's dynamic users
// and userdb records, which getent reaches without a network).
func localSources(conf []byte, db string) bool {
	sc := bufio.NewScanner(bytes.NewReader(conf))
	sc.Buffer(nil, accountsLimit)
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		key, sources, ok := strings.Cut(line, ":")
		if !ok || strings.TrimSpace(key) != db {
			continue
		}
		for _, w := range strings.Fields(sources) {
			if strings.HasPrefix(w, "[") {
				continue // an action, such as [NOTFOUND=return]
			}
			if !slices.Contains([]string{"files", "systemd"}, w) {
				return false
			}
		}
		return true
	}
	return false // no line: glibc's default, which may be compat (NIS)
}
