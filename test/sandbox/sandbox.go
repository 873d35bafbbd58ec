package sandbox

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// ErrHostNotSupported is wrapped by the errors Boot returns when this
// machine cannot run a sandbox at all (not root, missing binaries, no
// cgroup2 hierarchy).
var ErrHostNotSupported = errors.New("this host cannot run a systemd sandbox")

// Options configure Boot. The zero value is usable.
type Options struct {
	// Name is a short label used in cgroup and directory names and in log
	// lines. Characters other than letters, digits, '.', '_' and '-' are
	// replaced. Default "sandbox".
	Name string
	// BootTimeout bounds the time from starting systemd to "running".
	// Default 60s. The context passed to Boot bounds it too.
	BootTimeout time.Duration
	// Log, if set, receives progress lines (booting, running after,
	// powered off).
	Log io.Writer
	// Unit is the unit systemd boots into. Default "multi-user.target".
	Unit string
	// KeepHostUnits keeps the host's unit enablement (the *.wants and
	// *.requires links under /etc/systemd/system, and SysV init scripts)
	// visible inside. By default they are hidden so the sandbox starts only
	// what the distribution's static units pull in; see the package doc.
	KeepHostUnits bool
	// NetNS, if set, gives the sandbox a network namespace of its own,
	// joined to the host's by a veth pair with the given addresses (see
	// NetNS). By default the sandbox shares the host's network.
	NetNS *NetNS
	// Seed, if set, is a tar archive on the host that is unpacked into the
	// sandbox's root (the overlay's upper layer) before systemd starts:
	// files that must be in place at boot, such as a thousand site files
	// and the generator that turns them into units. The archive is read
	// as root; its paths are relative to /.
	Seed string

	// systemd overrides the systemd binary; for this package's tests.
	systemd string
}

// Sandbox is a running systemd in its own namespaces. Its methods may be
// called from several goroutines.
type Sandbox struct {
	name      string
	id        string
	logf      func(format string, args ...any)
	cgroupDir string // <cgroup2 root>/sitectl-sandbox-<id>
	workDir   string // /var/tmp/sitectl-sandbox-<id>
	nsenter   string
	pid       int    // host pid of the sandbox's systemd
	pidNS     string // its PID namespace, as in readlink /proc/PID/ns/pid
	outer     *exec.Cmd
	exited    chan struct{} // closed once the unshare process has been reaped
	waitErr   error         // valid after exited is closed
	console   *console
	closing   atomic.Bool
	closeOnce sync.Once
	closeErr  error
	// What start created, so teardown never removes anything it did not.
	createdWork, createdCgroup, createdLink bool
	// Own network namespace (Options.NetNS): the host end of the veth
	// pair and the sandbox's address.
	netns  *NetNS
	hostIf string
	addr   netip.Addr
}

// commandEnv is the complete environment of commands run inside.
var commandEnv = []string{
	"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
	"LANG=C.UTF-8",
	"SYSTEMD_PAGER=",
	"SYSTEMD_COLORS=0",
}

// outerEnv is the complete environment of unshare, the setup script and
// the sandbox's systemd. Nothing of the test's environment (NOTIFY_SOCKET,
// LISTEN_FDS, ...) must leak into PID 1.
var outerEnv = []string{
	"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
	"container=sitectl-test",
	"SYSTEMD_COLORS=0",
}

var (
	ownerPID   = os.Getpid()
	ownerStart = func() uint64 { _, t, _ := procStat(os.Getpid()); return t }()
	reapOnce   sync.Once
	unsafeName = regexp.MustCompile(`[^A-Za-z0-9._-]+`)
)

// live is the registry of sandboxes that have not been closed yet.
var live = struct {
	sync.Mutex
	m map[*Sandbox]struct{}
}{m: map[*Sandbox]struct{}{}}

func sanitizeName(name string) string {
	name = strings.Trim(unsafeName.ReplaceAllString(name, "_"), "._-")
	if len(name) > 40 {
		// Keep the end: subtest names share their beginning.
		name = strings.TrimLeft(name[len(name)-40:], "._-")
	}
	if name == "" {
		name = "sandbox"
	}
	return name
}

// preflight returns the paths of the tools Boot needs, or an error naming
// what is missing.
func preflight(systemd string) (unshare, nsenter, bash, cgRoot string, err error) {
	if os.Geteuid() != 0 {
		return "", "", "", "", fmt.Errorf("%w: must run as root (euid is %d): the sandbox mounts file systems, creates namespaces and cgroups", ErrHostNotSupported, os.Geteuid())
	}
	var missing []string
	look := func(name string) string {
		p, err := exec.LookPath(name)
		if err != nil {
			for _, dir := range []string{"/usr/bin", "/bin", "/usr/sbin", "/sbin"} {
				if fi, err := os.Stat(filepath.Join(dir, name)); err == nil && fi.Mode().IsRegular() {
					return filepath.Join(dir, name)
				}
			}
			missing = append(missing, name)
		}
		return p
	}
	unshare, nsenter, bash = look("unshare"), look("nsenter"), look("bash")
	for _, tool := range []string{"mount", "umount", "pivot_root", "systemctl", "journalctl"} {
		look(tool)
	}
	if fi, err := os.Stat(systemd); err != nil || !fi.Mode().IsRegular() || fi.Mode()&0o111 == 0 {
		missing = append(missing, systemd)
	}
	if len(missing) > 0 {
		return "", "", "", "", fmt.Errorf("%w: missing %s (install util-linux, bash and systemd)", ErrHostNotSupported, strings.Join(missing, ", "))
	}
	cgRoot, err = cgroup2Root()
	if err != nil {
		return "", "", "", "", err
	}
	return unshare, nsenter, bash, cgRoot, nil
}

// logfFor turns Options.Log into a line logger. For the writer New installs,
// it logs through t.Logf so that lines carry a useful source position.
func logfFor(w io.Writer) func(format string, args ...any) {
	switch w := w.(type) {
	case nil:
		return func(string, ...any) {}
	case tLogWriter:
		return func(format string, args ...any) {
			w.t.Helper()
			w.t.Logf(format, args...)
		}
	default:
		return func(format string, args ...any) {
			fmt.Fprintf(w, format+"\n", args...)
		}
	}
}

func defaultSystemd() string {
	for _, p := range []string{"/usr/lib/systemd/systemd", "/lib/systemd/systemd"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return "/usr/lib/systemd/systemd"
}

// Boot starts a sandbox and returns once `systemctl is-system-running`
// inside reports "running". If it reports "degraded" (or anything else
// final), or systemd dies, or the timeout passes, Boot tears the sandbox
// down and returns an error carrying the diagnostics (failed units, journal
// tail, console and setup output). ctx bounds only the boot; the sandbox
// lives until Close.
func Boot(ctx context.Context, opts Options) (*Sandbox, error) {
	if opts.BootTimeout <= 0 {
		opts.BootTimeout = 60 * time.Second
	}
	if opts.Unit == "" {
		opts.Unit = "multi-user.target"
	}
	if opts.systemd == "" {
		opts.systemd = defaultSystemd()
	}
	name := sanitizeName(opts.Name)
	logf := logfFor(opts.Log)
	unshare, nsenter, bash, cgRoot, err := preflight(opts.systemd)
	if err != nil {
		return nil, fmt.Errorf("sandbox %s: %w", name, err)
	}
	if opts.NetNS != nil {
		if _, _, err := opts.NetNS.parse(); err != nil {
			return nil, fmt.Errorf("sandbox %s: %w", name, err)
		}
		if _, err := exec.LookPath("ip"); err != nil {
			return nil, fmt.Errorf("sandbox %s: %w: Options.NetNS needs ip (install iproute2)", name, ErrHostNotSupported)
		}
	}
	reapOnce.Do(func() {
		if err := ReapStale(opts.Log); err != nil {
			logf("sandbox: cleaning up stale sandboxes: %v", err)
		}
	})

	var rnd [3]byte
	_, _ = rand.Read(rnd[:])
	id := fmt.Sprintf("%d-%s-%s", ownerPID, hex.EncodeToString(rnd[:]), name)
	s := &Sandbox{
		name:      name,
		id:        id,
		logf:      logf,
		cgroupDir: filepath.Join(cgRoot, namePrefix+id),
		workDir:   filepath.Join(workBase, namePrefix+id),
		nsenter:   nsenter,
		exited:    make(chan struct{}),
		netns:     opts.NetNS,
		hostIf:    "sitectl" + hex.EncodeToString(rnd[:]),
	}
	s.logf("booting sandbox %s (cgroup %s, work dir %s)", name, s.cgroupDir, s.workDir)
	start := time.Now()
	if err := s.start(unshare, bash, opts); err != nil {
		s.Close()
		return nil, fmt.Errorf("sandbox %s: %w", name, err)
	}
	bctx, cancel := context.WithTimeout(ctx, opts.BootTimeout)
	defer cancel()
	if err := s.waitRunning(bctx, opts.BootTimeout); err != nil {
		s.Close()
		return nil, fmt.Errorf("sandbox %s: %w", name, err)
	}
	s.logf("sandbox %s running after %.1fs (systemd is host pid %d)", name, time.Since(start).Seconds(), s.pid)
	return s, nil
}

// start creates the work dir and cgroups and starts unshare + setup script
// + systemd; it returns once the sandbox's PID 1 exists.
func (s *Sandbox) start(unshare, bash string, opts Options) error {
	// Work dir first, with the owner record, so that ReapStale never sees a
	// cgroup of ours without knowing who owns it.
	if err := os.Mkdir(s.workDir, 0o700); err != nil {
		return fmt.Errorf("creating work dir: %w", err)
	}
	s.createdWork = true
	if err := os.Mkdir(filepath.Join(s.workDir, "ns"), 0o700); err != nil {
		return fmt.Errorf("creating work dir: %w", err)
	}
	owner := fmt.Sprintf("%d %d\n", ownerPID, ownerStart)
	if err := os.WriteFile(filepath.Join(s.workDir, "owner"), []byte(owner), 0o600); err != nil {
		return fmt.Errorf("writing owner record: %w", err)
	}
	nsCg := filepath.Join(s.cgroupDir, "ns")
	if err := os.Mkdir(s.cgroupDir, 0o755); err != nil {
		return fmt.Errorf("creating cgroup: %w", err)
	}
	s.createdCgroup = true
	for _, d := range []string{nsCg, filepath.Join(s.cgroupDir, "supervisor")} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return fmt.Errorf("creating cgroup: %w", err)
		}
	}
	enableControllers(s.cgroupDir)

	consolePath := "-"
	if c, err := openConsole(filepath.Join(s.workDir, "console.log")); err != nil {
		s.logf("sandbox %s: no console capture: %v", s.name, err)
	} else {
		s.console = c
		consolePath = c.path
	}

	out, err := os.OpenFile(filepath.Join(s.workDir, "setup.log"), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("creating setup log: %w", err)
	}
	defer out.Close() // the child has its own copy
	cgfd, err := os.Open(nsCg)
	if err != nil {
		return fmt.Errorf("opening cgroup: %w", err)
	}
	defer cgfd.Close()
	keep := "0"
	if opts.KeepHostUnits {
		keep = "1"
	}
	seed := "-"
	if opts.Seed != "" {
		abs, err := filepath.Abs(opts.Seed)
		if err != nil {
			return fmt.Errorf("seed archive: %w", err)
		}
		if _, err := os.Stat(abs); err != nil {
			return fmt.Errorf("seed archive: %w", err)
		}
		seed = abs
	}
	// The script lives in the work dir (not /tmp, and not on the command
	// line where it would clutter ps).
	script := filepath.Join(s.workDir, "setup.sh")
	if err := os.WriteFile(script, []byte(innerScript), 0o600); err != nil {
		return fmt.Errorf("writing setup script: %w", err)
	}
	uargs := []string{"--pid", "--fork", "--mount", "--cgroup", "--uts", "--ipc"}
	if s.netns != nil {
		uargs = append(uargs, "--net")
	}
	uargs = append(uargs, "--propagation", "private", "--kill-child",
		bash, script, s.workDir, consolePath, opts.systemd, opts.Unit, keep, seed)
	cmd := exec.Command(unshare, uargs...)
	cmd.Env = outerEnv
	cmd.Dir = "/"
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{
		// Pdeathsig fires when the *thread* that forked dies, so the
		// process is started and waited for on a dedicated locked thread.
		Pdeathsig: syscall.SIGKILL,
		// Its own process group: a terminal's ^C goes to the test only,
		// which then shuts the sandbox down in order (HandleSignals).
		Setpgid: true,
		// Born inside the sandbox cgroup, so unshare(CLONE_NEWCGROUP)
		// makes it the namespace root.
		UseCgroupFD: true,
		CgroupFD:    int(cgfd.Fd()),
	}
	s.outer = cmd
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// Never unlocked: the thread exits with this goroutine, after the
		// child is gone.
		if err := cmd.Start(); err != nil {
			started <- err
			close(s.exited)
			return
		}
		started <- nil
		s.waitErr = cmd.Wait()
		close(s.exited)
	}()
	if err := <-started; err != nil {
		return fmt.Errorf("starting %s: %w", unshare, err)
	}
	register(s)

	// Find the sandbox's PID 1 (unshare's only child).
	deadline := time.Now().Add(10 * time.Second)
	for {
		if kids := childrenOf(cmd.Process.Pid); len(kids) > 0 {
			s.pid = kids[0]
			break
		}
		select {
		case <-s.exited:
			return s.diedError("the sandbox setup exited before creating its init process")
		case <-time.After(5 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("unshare (pid %d) did not fork the sandbox init within 10s", cmd.Process.Pid)
		}
	}
	// unshare is done with its cgroup: park it in "supervisor" so the
	// namespace root holds only sandbox processes (needed on pure cgroup2
	// hosts to delegate controllers).
	if err := os.WriteFile(filepath.Join(s.cgroupDir, "supervisor", "cgroup.procs"),
		[]byte(strconv.Itoa(cmd.Process.Pid)), 0); err != nil {
		s.logf("sandbox %s: could not move unshare to the supervisor cgroup: %v", s.name, err)
	}
	if s.netns != nil {
		if err := s.setupNet(); err != nil {
			return fmt.Errorf("setting up the sandbox's network namespace: %w", err)
		}
	}
	return nil
}

// waitRunning waits for PID 1 to become systemd and for the boot to finish.
func (s *Sandbox) waitRunning(ctx context.Context, timeout time.Duration) error {
	for procComm(s.pid) != "systemd" {
		select {
		case <-s.exited:
			return s.diedError("the sandbox exited during setup, before systemd started")
		case <-ctx.Done():
			return s.timeoutError(ctx, timeout, "setup did not exec systemd")
		case <-time.After(5 * time.Millisecond):
		}
	}
	s.pidNS, _ = os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", s.pid))
	last := ""
	for {
		select {
		case <-s.exited:
			return s.diedError("systemd exited during boot")
		default:
		}
		if ctx.Err() != nil {
			return s.timeoutError(ctx, timeout, "last state: "+last)
		}
		out, _ := s.Command(ctx, "systemctl", "is-system-running", "--wait").CombinedOutput()
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		state := strings.TrimSpace(lines[len(lines)-1])
		last = strings.TrimSpace(string(out))
		switch state {
		case "running":
			return nil
		case "initializing", "starting":
			// Only without --wait or when interrupted; ask again.
		case "degraded", "maintenance", "stopping":
			return s.bootFailedError(state)
		default:
			// Typically "offline" or "Failed to connect to bus" while
			// systemd is still setting up /run/systemd; retry shortly.
			select {
			case <-s.exited:
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
}

func (s *Sandbox) diedError(what string) error {
	<-s.exited
	status := "unknown status"
	if s.waitErr != nil {
		status = s.waitErr.Error()
	} else if s.outer.ProcessState != nil {
		status = s.outer.ProcessState.String()
	}
	return fmt.Errorf("%s (%s)%s", what, status, s.setupDiagnostics())
}

func (s *Sandbox) timeoutError(ctx context.Context, timeout time.Duration, detail string) error {
	d := ""
	if procComm(s.pid) == "systemd" {
		// Only then: before pivot_root, nsenter -r would land in the
		// host's root file system.
		d = s.runtimeDiagnostics()
	}
	return fmt.Errorf("systemd did not finish booting within %v (%s): %w%s%s", timeout, detail, context.Cause(ctx), d, s.setupDiagnostics())
}

func (s *Sandbox) bootFailedError(state string) error {
	return fmt.Errorf("systemd finished booting but the system is %q, not \"running\"%s%s", state, s.runtimeDiagnostics(), s.setupDiagnostics())
}

// runtimeDiagnostics asks the running systemd what went wrong.
func (s *Sandbox) runtimeDiagnostics() string {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	var b strings.Builder
	if out, err := s.Command(ctx, "systemctl", "--failed", "--no-legend", "--full").CombinedOutput(); err == nil || len(out) > 0 {
		failed := strings.TrimRight(string(out), "\n")
		if failed == "" {
			failed = "(no failed units)"
		}
		fmt.Fprintf(&b, "\n--- systemctl --failed:\n%s", failed)
	}
	if out, err := s.Command(ctx, "systemctl", "list-jobs", "--no-legend", "--full").CombinedOutput(); err == nil && len(bytes.TrimSpace(out)) > 0 {
		fmt.Fprintf(&b, "\n--- systemctl list-jobs:\n%s", strings.TrimRight(string(out), "\n"))
	}
	fmt.Fprintf(&b, "\n--- journal (last 50 lines):\n%s", strings.TrimRight(s.Journal(ctx, "-n", "50"), "\n"))
	return b.String()
}

// setupDiagnostics returns the setup script's output and the console tail.
func (s *Sandbox) setupDiagnostics() string {
	var b strings.Builder
	if out := tailFile(filepath.Join(s.workDir, "setup.log"), 40); out != "" {
		fmt.Fprintf(&b, "\n--- setup output:\n%s", out)
	}
	if out := tailFile(filepath.Join(s.workDir, "console.log"), 40); out != "" {
		fmt.Fprintf(&b, "\n--- console (last 40 lines):\n%s", out)
	}
	return b.String()
}

func tailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.TrimSpace(strings.Join(lines, "\n"))
}

// PID returns the host pid of the sandbox's systemd (PID 1 inside).
func (s *Sandbox) PID() int { return s.pid }

// Name returns the sanitized label of the sandbox.
func (s *Sandbox) Name() string { return s.name }

// CgroupPath returns the host path of the sandbox's cgroup directory.
func (s *Sandbox) CgroupPath() string { return s.cgroupDir }

// WorkDir returns the host work dir (setup.log, console.log live here).
func (s *Sandbox) WorkDir() string { return s.workDir }

// Console returns what systemd has printed on its console so far.
func (s *Sandbox) Console() string {
	b, _ := os.ReadFile(filepath.Join(s.workDir, "console.log"))
	return string(b)
}

// Command returns a command that runs name inside the sandbox through
// nsenter, in all its namespaces and its root, with exactly the environment
// PATH, LANG=C.UTF-8, SYSTEMD_PAGER= and SYSTEMD_COLORS=0. The command runs
// in its own process group; when ctx is done everything in that group but
// nsenter is killed (nsenter then reaps it and exits). Commands started after
// Close fail; commands still running at Close are killed.
//
// The process is not in the sandbox's cgroup (it stays in the caller's), so
// use systemd-run for anything that should outlive the command.
func (s *Sandbox) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	nsArgs := []string{"-t", strconv.Itoa(s.pid), "-m", "-p", "-C", "-u", "-i", "-r", "-w"}
	if s.netns != nil {
		nsArgs = append(nsArgs, "-n")
	}
	nsArgs = append(nsArgs, "--", name)
	cmd := exec.CommandContext(ctx, s.nsenter, append(nsArgs, args...)...)
	cmd.Env = append([]string(nil), commandEnv...)
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		// nsenter forks the real command into the sandbox's PID
		// namespace and does not forward signals. Kill the command's
		// process group but not nsenter itself: nsenter must reap its
		// child. An orphan whose parent is outside the namespace is
		// reparented to the host's init, and the namespace cannot finish
		// dying until that init reaps the zombie, which on this kind of
		// host can take seconds. nsenter then exits by the same signal.
		if killGroupExceptLeader(cmd.Process.Pid) == 0 {
			return cmd.Process.Kill()
		}
		return nil
	}
	// Do not hang on a background process that inherited stdout.
	cmd.WaitDelay = 5 * time.Second
	if s.closing.Load() {
		cmd.Err = fmt.Errorf("sandbox %s is closed", s.name)
	} else if s.pid == 0 {
		cmd.Err = fmt.Errorf("sandbox %s has no running systemd", s.name)
	}
	return cmd
}

func quoteArgs(name string, args []string) string {
	parts := make([]string, 0, len(args)+1)
	for _, a := range append([]string{name}, args...) {
		if a == "" || strings.ContainsAny(a, " \t\n\"'\\$`;&|<>(){}*?[]#~") {
			a = strconv.Quote(a)
		}
		parts = append(parts, a)
	}
	return strings.Join(parts, " ")
}

// runErr wraps a command failure for an operator.
func (s *Sandbox) runErr(name string, args []string, err error, output []byte) error {
	out := strings.TrimRight(string(output), "\n")
	if out == "" {
		return fmt.Errorf("sandbox %s: %s: %w (no output)", s.name, quoteArgs(name, args), err)
	}
	return fmt.Errorf("sandbox %s: %s: %w; output:\n%s", s.name, quoteArgs(name, args), err, out)
}

// waitOK treats ErrWaitDelay after a successful exit as success: the
// command itself worked, it only left a background process holding its
// output open.
func waitOK(cmd *exec.Cmd, err error) bool {
	return err == nil || (errors.Is(err, exec.ErrWaitDelay) && cmd.ProcessState != nil && cmd.ProcessState.Success())
}

// Run runs a command inside and returns its combined output. A non-zero
// exit is an error that wraps the *exec.ExitError and includes the output.
func (s *Sandbox) Run(ctx context.Context, name string, args ...string) (string, error) {
	cmd := s.Command(ctx, name, args...)
	out, err := cmd.CombinedOutput()
	if !waitOK(cmd, err) {
		return string(out), s.runErr(name, args, err, out)
	}
	return string(out), nil
}

const writeScript = `set -eu
p=$1 mode=$2
d=$(dirname -- "$p")
mkdir -p -- "$d"
t=$(mktemp -- "$d/.sitectl-write.XXXXXX")
trap 'rm -f -- "$t"' EXIT
cat > "$t"
chmod -- "$mode" "$t"
mv -f -- "$t" "$p"
trap - EXIT
`

func chmodMode(mode os.FileMode) string {
	v := uint32(mode.Perm())
	if mode&os.ModeSetuid != 0 {
		v |= 0o4000
	}
	if mode&os.ModeSetgid != 0 {
		v |= 0o2000
	}
	if mode&os.ModeSticky != 0 {
		v |= 0o1000
	}
	return fmt.Sprintf("%04o", v)
}

func (s *Sandbox) writeFrom(ctx context.Context, path string, r io.Reader, mode os.FileMode) error {
	if !filepath.IsAbs(path) {
		return fmt.Errorf("sandbox %s: write %s: path inside the sandbox must be absolute", s.name, path)
	}
	args := []string{"-c", writeScript, "sitectl-write", path, chmodMode(mode)}
	cmd := s.Command(ctx, "sh", args...)
	cmd.Stdin = r
	out, err := cmd.CombinedOutput()
	if !waitOK(cmd, err) {
		return fmt.Errorf("sandbox %s: writing %s: %w", s.name, path, s.runErr("sh", []string{"-c", "<write script>", path}, err, out))
	}
	return nil
}

// WriteFile writes data to path inside the sandbox, creating parent
// directories. The file is written to a temporary name in the same directory
// and renamed into place, so readers never see a partial file.
func (s *Sandbox) WriteFile(ctx context.Context, path string, data []byte, mode os.FileMode) error {
	return s.writeFrom(ctx, path, bytes.NewReader(data), mode)
}

// CopyFile copies the host file hostPath to sandboxPath inside, like
// WriteFile. This is how files from t.TempDir() (under the host's /tmp,
// which the sandbox cannot see) get in.
func (s *Sandbox) CopyFile(ctx context.Context, hostPath, sandboxPath string, mode os.FileMode) error {
	f, err := os.Open(hostPath)
	if err != nil {
		return fmt.Errorf("sandbox %s: copying into the sandbox: %w", s.name, err)
	}
	defer f.Close()
	return s.writeFrom(ctx, sandboxPath, f, mode)
}

// ReadFile returns the contents of path inside the sandbox.
func (s *Sandbox) ReadFile(ctx context.Context, path string) ([]byte, error) {
	var stdout, stderr bytes.Buffer
	cmd := s.Command(ctx, "cat", "--", path)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); !waitOK(cmd, err) {
		if msg := strings.TrimSpace(stderr.String()); msg != "" {
			return nil, fmt.Errorf("sandbox %s: reading %s: %w: %s", s.name, path, err, msg)
		}
		return nil, fmt.Errorf("sandbox %s: reading %s: %w", s.name, path, err)
	}
	return stdout.Bytes(), nil
}

// Journal returns `journalctl --no-pager -o short-monotonic args...` from
// inside, best effort (errors are appended to the text), for diagnostics.
func (s *Sandbox) Journal(ctx context.Context, args ...string) string {
	out, err := s.Command(ctx, "journalctl", append([]string{"--no-pager", "-o", "short-monotonic"}, args...)...).CombinedOutput()
	if err != nil {
		return fmt.Sprintf("%s\n(journalctl: %v)", out, err)
	}
	return string(out)
}

// Close powers the sandbox off, waits up to 20s for its systemd to exit
// (then kills everything in its cgroup), removes its cgroups depth-first and
// its host work dir. It is idempotent, safe on a nil *Sandbox, and safe to
// call concurrently.
func (s *Sandbox) Close() error {
	if s == nil {
		return nil
	}
	s.closeOnce.Do(func() { s.closeErr = s.teardown() })
	return s.closeErr
}

// Closed reports whether Close has been called (or Boot gave up).
func (s *Sandbox) Closed() bool { return s.closing.Load() }

func (s *Sandbox) isExited() bool {
	select {
	case <-s.exited:
		return true
	default:
		return false
	}
}

// sigPoweroff is SIGRTMIN+4, which asks systemd for poweroff.target.
// glibc's (and so systemd's) SIGRTMIN is 34.
const sigPoweroff = syscall.Signal(34 + 4)

func (s *Sandbox) teardown() error {
	start := time.Now()
	var errs []error
	how := "cleaned up (systemd was not running)"
	// From here on Command refuses to start anything new.
	s.closing.Store(true)
	if s.outer != nil && s.outer.Process != nil && !s.isExited() {
		how = "powered off"
		// Commands still running through nsenter would hang the
		// shutdown: systemd-shutdown SIGSTOPs every process in the
		// namespace before killing it, nsenter (outside, waiting with
		// WUNTRACED) then stops itself and never reaps its killed child,
		// and the namespace cannot die while that zombie exists. End
		// them first, and keep doing so while waiting.
		s.killForeign()
		// SIGRTMIN+4 is systemd's "start poweroff.target" request, what
		// machinectl poweroff sends to a container. Unlike systemctl
		// poweroff it needs neither D-Bus nor one more nsenter'ed process.
		timeout := 20 * time.Second
		switch comm := procComm(s.pid); {
		case s.pid != 0 && comm == "systemd":
			if err := syscall.Kill(s.pid, sigPoweroff); err != nil {
				s.logf("sandbox %s: asking systemd (pid %d) to power off: %v", s.name, s.pid, err)
			}
		case s.pid != 0 && strings.HasPrefix(comm, "systemd-shutdow"):
			// Already on its way down.
		default:
			// Still in the setup script, which would ignore the signal
			// (PID 1 of a namespace): nothing to shut down cleanly.
			timeout = 0
		}
		deadline := time.After(timeout)
		tick := time.NewTicker(250 * time.Millisecond)
	wait:
		for {
			select {
			case <-s.exited:
				break wait
			case <-tick.C:
				s.killForeign()
			case <-deadline:
				how = "killed"
				if timeout > 0 {
					how = "killed after poweroff timed out"
					s.logf("sandbox %s: still running %v after poweroff, killing it", s.name, timeout)
				}
				break wait
			}
		}
		tick.Stop()
	}
	// Whatever is left (everything, if poweroff timed out or never ran).
	// The namespace's cgroup first: unshare, parked in "supervisor",
	// survives to reap the sandbox's PID 1 and then exits by itself.
	// Killed together, PID 1 would be orphaned to the host's init and
	// linger as a zombie until that reaps it.
	if s.createdCgroup {
		if err := killCgroup(filepath.Join(s.cgroupDir, "ns"), 10*time.Second); err != nil {
			errs = append(errs, err)
		}
	}
	s.killForeign()
	if s.outer != nil && s.outer.Process != nil {
		select {
		case <-s.exited:
		case <-time.After(10 * time.Second):
			_ = s.outer.Process.Kill()
			errs = append(errs, fmt.Errorf("unshare (pid %d) did not exit after its cgroup was killed", s.outer.Process.Pid))
		}
	}
	if s.createdCgroup {
		if err := killCgroup(s.cgroupDir, 10*time.Second); err != nil {
			errs = append(errs, err)
		}
	}
	// systemd is reaped by unshare; if unshare died first, the kernel
	// reparented it to the host's init. Give that a moment.
	if s.pid != 0 {
		for i := 0; i < 100 && !processGone(s.pid); i++ {
			time.Sleep(10 * time.Millisecond)
		}
	}
	s.console.close()
	if err := s.removeLink(); err != nil {
		errs = append(errs, err)
	}
	if s.createdCgroup {
		if err := removeCgroupTree(s.cgroupDir, 5*time.Second); err != nil {
			errs = append(errs, err)
		}
	}
	if s.createdWork {
		if err := os.RemoveAll(s.workDir); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("removing work dir: %w", err))
		}
	}
	unregister(s)
	if err := errors.Join(errs...); err != nil {
		s.logf("sandbox %s: teardown incomplete: %v", s.name, err)
		return fmt.Errorf("sandbox %s: teardown: %w", s.name, err)
	}
	s.logf("sandbox %s %s after %.1fs", s.name, how, time.Since(start).Seconds())
	return nil
}

// killForeign kills the processes of the sandbox's PID namespace whose
// parent is outside it (the children nsenter forked for Command), other
// than PID 1, and resumes their parents in case systemd-shutdown's SIGSTOP
// made nsenter stop itself, so that nsenter reaps them.
func (s *Sandbox) killForeign() {
	if s.pidNS == "" {
		return
	}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == s.pid {
			continue
		}
		if ns, _ := os.Readlink("/proc/" + e.Name() + "/ns/pid"); ns != s.pidNS {
			continue
		}
		ppid := procPPID(pid)
		if ppid <= 0 {
			continue
		}
		if ns, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", ppid)); ns == s.pidNS {
			continue
		}
		_ = syscall.Kill(pid, syscall.SIGKILL)
		_ = syscall.Kill(pid, syscall.SIGCONT)
		_ = syscall.Kill(ppid, syscall.SIGCONT)
	}
}

func register(s *Sandbox) {
	live.Lock()
	live.m[s] = struct{}{}
	live.Unlock()
}

func unregister(s *Sandbox) {
	live.Lock()
	delete(live.m, s)
	live.Unlock()
}

// CloseAll closes every sandbox of this process that is still open, in
// parallel, and returns their errors joined.
func CloseAll() error {
	live.Lock()
	all := make([]*Sandbox, 0, len(live.m))
	for s := range live.m {
		all = append(all, s)
	}
	live.Unlock()
	errs := make([]error, len(all))
	var wg sync.WaitGroup
	for i, s := range all {
		wg.Go(func() { errs[i] = s.Close() })
	}
	wg.Wait()
	return errors.Join(errs...)
}
