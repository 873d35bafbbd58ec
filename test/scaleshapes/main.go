// Command scaleshapes measures how long systemd takes to reload, and to
// start the sockets, when it holds N units of a given shape: plain socket
// + service pairs with and without the constructs sitectl's units use, and
// sitectl's own units. It is how docs/scale.md found why daemon-reload
// and starting the sockets grew with the square of the number of sites,
// and its tables are made with it.
//
//	go run ./test/scaleshapes -n 3000 sockets sockets,slices=64 sitectl
//	go run ./test/scaleshapes -n 4000 -reps 0 -perfstart /var/tmp/p sitectl,listen sockets,listen,slices=256,unix
//
// Each shape (an argument) gets a sandbox of its own (test/sandbox, with its
// own network namespace so that any port is free) with N units installed
// and loaded by a first daemon-reload. The sandboxes boot side by side.
// Then, one sandbox after the other so that they do not compete, the
// shapes with listen start their sockets, timed: the wall time and the CPU
// time of the sandbox's systemd, of everything in the sandbox (systemd,
// the helper it forks for each TCP socket, dbus-daemon, ...), of systemctl
// (with what it ran) and of the sandbox's dbus-daemon, and systemd's VmRSS
// after; -perfstart profiles systemd meanwhile. Then every sandbox reloads
// -reps times, the sandboxes taking turns (A, B, C, A, B, C, ...) so that
// other work on the machine hits all shapes alike. For each reload it
// reports the wall time and the CPU time of the sandbox's systemd (user +
// system, from /proc/PID/stat), which hardly moves when the machine is
// busy. A shape is words separated by commas:
//
//	sockets    N pairs x-NNNNN.socket (ListenStream=127.0.0.1:PORT) and
//	           x-NNNNN.service (ExecStart=/bin/true), each socket wanted by
//	           sockets.target (the default)
//	none       the same pairs, referenced by nothing (systemd never loads them)
//	target     the sockets wanted by sites.target, which sockets.target wants
//	listen     start all sockets after the first reload, with one
//	           systemctl start --all 'x-*.socket' (or 'site-*.socket')
//	listen=noblock
//	           the same with --no-block, then poll systemd's NJobs until
//	           no job is left
//	listen=batchK
//	           K sockets per systemctl start, one call after the other
//	           (each batch's milliseconds are logged)
//	unix       the sockets listen on /run/x/x-NNNNN.sock instead of TCP
//	afternet   each service After=network.target
//	path       a .path unit (PathChanged=, wanted by paths.target) and a
//	           oneshot service for each pair, as sitectl's reload_trigger
//	nodefdeps  DefaultDependencies=no on sockets and services
//	slices=K   the pair's units in bk-(i mod K).slice under bk.slice instead
//	           of system.slice; slices=-1: all in bk.slice
//	sitectl    N site files for sitectl (the Go test app, one TCP listener
//	           each); sitectl and its generator from this repository, or
//	bin=DIR    from DIR (sitectl, sitectl-generator, webapp), e.g. an older
//	           build
//	nosyscallfilter
//	           sitectl's units, their services' SystemCallFilter= reset by
//	           a drop-in for site-.service: a diagnosis of what the
//	           filters cost systemd, not a shape to deploy
//
// With -boot, each shape's sandbox instead boots with the files (and
// sitectl) already in place, one after the other, and the tool reports
// the boot's wall time and when sockets.target, basic.target and
// multi-user.target were reached.
//
// A reload that systemd did not carry out although systemctl exited 0
// (sandbox.CheckReloaded: too few open files for PID 1, for example) is
// logged and counted as failed, not timed, and the other shapes go on.
//
// It needs root. systemctl daemon-reload gives up after 3 minutes while
// systemd goes on reloading; the tool then waits until systemd answers
// again and counts the whole time.
package main

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sitectl/sitectl/test/sandbox"
)

var (
	n         = flag.Int("n", 1000, "units of each kind (pairs, sites)")
	reps      = flag.Int("reps", 3, "repeated reloads of each shape")
	perf      = flag.String("perf", "", "after the reloads, profile one more reload of each shape with perf into `PREFIX`-I.data")
	power     = flag.Bool("poweroff", false, "at the end, time each sandbox's poweroff")
	preStart  = flag.String("prestart", "", "before each shape's sockets start, run `COMMAND` on the host (sh -c, the sandbox's systemd host pid as $1), e.g. to change its memory's layout for a diagnosis")
	perfStart = flag.String("perfstart", "", "profile each shape's systemd with perf while its sockets start, into `PREFIX`-start-I.data")
	boot      = flag.Bool("boot", false, "boot each shape's sandbox with its files already in place, one after the other, and time the boot instead of loading the files with a daemon-reload")
	hold      = flag.Duration("hold", 0, "after the reloads, keep the sandboxes up this long (their systemd's host pid is logged) to time other commands in them with nsenter")
)

// shape is one kind of unit set.
type shape struct {
	spec                                   string
	wanted                                 string // none, sockets, target
	listen, afterNet, path, noDef, sitectl bool
	unix, noFilter                         bool
	slices                                 int
	bin                                    string
	// how the sockets are started: "" (one systemctl start --all PAT),
	// "noblock" (the same with --no-block, then wait until no job is
	// left), or "batchK" (K units per systemctl start, one call after
	// the other)
	startHow string
	batch    int
}

func parseShape(s string) (shape, error) {
	sh := shape{spec: s, wanted: "sockets"}
	for _, f := range strings.Split(s, ",") {
		k, v, _ := strings.Cut(f, "=")
		switch k {
		case "none", "sockets", "target":
			sh.wanted = k
		case "listen":
			sh.listen = true
			switch {
			case v == "" || v == "noblock":
				sh.startHow = v
			case strings.HasPrefix(v, "batch"):
				k, err := strconv.Atoi(strings.TrimPrefix(v, "batch"))
				if err != nil || k <= 0 {
					return sh, fmt.Errorf("shape %s: listen=%q is not batchK", s, v)
				}
				sh.startHow, sh.batch = v, k
			default:
				return sh, fmt.Errorf("shape %s: listen=%q: want noblock or batchK", s, v)
			}
		case "afternet":
			sh.afterNet = true
		case "unix":
			sh.unix = true
		case "nosyscallfilter":
			sh.sitectl, sh.noFilter = true, true
		case "path":
			sh.path = true
		case "nodefdeps":
			sh.noDef = true
		case "sitectl":
			sh.sitectl = true
		case "bin":
			sh.sitectl, sh.bin = true, v
		case "slices":
			k, err := strconv.Atoi(v)
			if err != nil || k == 0 {
				return sh, fmt.Errorf("shape %s: slices=%q is not a number of slices", s, v)
			}
			sh.slices = k
		default:
			return sh, fmt.Errorf("shape %s: unknown word %q", s, f)
		}
	}
	return sh, nil
}

// file is one file of a shape: content, or a symlink.
type file struct {
	path, content, link string
	mode                int64 // 0: 0644
}

func (sh shape) files() []file {
	var fs []file
	if sh.sitectl {
		for i := 0; i < *n; i++ {
			c := fmt.Sprintf("exec = [\"/usr/local/bin/webapp\"]\nreadiness = \"notify\"\ndrain_timeout = \"10s\"\n\n[[listen]]\naddress = \"127.0.0.1:%d\"\n", 10000+i)
			if sh.path {
				c = fmt.Sprintf("reload_trigger = \"/run/trig/s-%05d\"\n", i) + c
			}
			fs = append(fs, file{path: fmt.Sprintf("/etc/sitectl/sites/s-%05d.toml", i), content: c})
		}
		if sh.noFilter {
			fs = append(fs, file{path: "/etc/systemd/system/site-.service.d/nofilter.conf", content: "[Service]\nSystemCallFilter=\n"})
		}
		return fs
	}
	dir := "/etc/systemd/system/"
	for i := 0; i < *n; i++ {
		name := fmt.Sprintf("x-%05d", i)
		su := "[Unit]\nDescription=s " + name + "\n"
		vu := "[Unit]\nDescription=v " + name + "\n"
		if sh.noDef {
			su += "DefaultDependencies=no\n"
			vu += "DefaultDependencies=no\n"
		}
		if sh.afterNet {
			vu += "After=network.target\n"
		}
		sl := ""
		switch {
		case sh.slices > 0:
			sl = fmt.Sprintf("Slice=bk-%04d.slice\n", i%sh.slices)
		case sh.slices < 0:
			sl = "Slice=bk.slice\n"
		}
		addr := fmt.Sprintf("127.0.0.1:%d", 10000+i)
		if sh.unix {
			addr = "/run/x/" + name + ".sock"
		}
		fs = append(fs, file{path: dir + name + ".socket", content: su + "[Socket]\nListenStream=" + addr + "\n" + sl})
		fs = append(fs, file{path: dir + name + ".service", content: vu + "[Service]\nExecStart=/bin/true\n" + sl})
		switch sh.wanted {
		case "sockets":
			fs = append(fs, file{path: dir + "sockets.target.wants/" + name + ".socket", link: "../" + name + ".socket"})
		case "target":
			fs = append(fs, file{path: dir + "sites.target.wants/" + name + ".socket", link: "../" + name + ".socket"})
		}
		if sh.path {
			fs = append(fs, file{path: dir + name + "-reload.path", content: "[Unit]\nDescription=p\n[Path]\nPathChanged=/run/trig/" + name + "\nUnit=" + name + "-reload.service\n"})
			fs = append(fs, file{path: dir + name + "-reload.service", content: "[Unit]\nDescription=r\n[Service]\nType=oneshot\nExecStart=/bin/true\n" + sl})
			fs = append(fs, file{path: dir + "paths.target.wants/" + name + "-reload.path", link: "../" + name + "-reload.path"})
		}
	}
	if sh.wanted == "target" {
		fs = append(fs, file{path: dir + "sites.target", content: "[Unit]\nDescription=sites\n"})
		fs = append(fs, file{path: dir + "sockets.target.wants/sites.target", link: "../sites.target"})
	}
	return fs
}

func tarOf(fs []file) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dirs := map[string]bool{}
	for _, f := range fs {
		var hdrs []*tar.Header
		if d := strings.TrimPrefix(filepath.Dir(f.path), "/"); !dirs[d] {
			dirs[d] = true
			hdrs = append(hdrs, &tar.Header{Name: d + "/", Mode: 0o755, Typeflag: tar.TypeDir, ModTime: time.Now()})
		}
		name := strings.TrimPrefix(f.path, "/")
		if f.link != "" {
			hdrs = append(hdrs, &tar.Header{Name: name, Linkname: f.link, Typeflag: tar.TypeSymlink, Mode: 0o777, ModTime: time.Now()})
		} else {
			mode := f.mode
			if mode == 0 {
				mode = 0o644
			}
			hdrs = append(hdrs, &tar.Header{Name: name, Mode: mode, Size: int64(len(f.content)), Typeflag: tar.TypeReg, ModTime: time.Now()})
		}
		for _, h := range hdrs {
			if err := tw.WriteHeader(h); err != nil {
				return nil, err
			}
		}
		if f.link == "" {
			if _, err := tw.Write([]byte(f.content)); err != nil {
				return nil, err
			}
		}
	}
	err := tw.Close()
	return buf.Bytes(), err
}

func main() {
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: go run ./test/scaleshapes [flags] SHAPE...   (as root; see the package doc)\n\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() == 0 {
		flag.Usage()
		os.Exit(2)
	}
	if err := run(flag.Args()); err != nil {
		fmt.Fprintln(os.Stderr, "scaleshapes: error:", err)
		sandbox.CloseAll()
		os.Exit(1)
	}
}

func logf(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "%s %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, a...))
}

// box is one shape's sandbox and what was measured in it.
type box struct {
	sh           shape
	sb           *sandbox.Sandbox
	first, start time.Duration
	// systemd's, the starting command's and dbus-daemon's CPU time
	// while the sockets started
	startCPU, startClient, startBus time.Duration
	// the CPU time of everything in the sandbox (systemd, the helpers it
	// forks to bind each socket, dbus-daemon, ...; not systemctl, which
	// runs in the caller's cgroup), and systemd's VmRSS after the start
	startAll time.Duration
	startRSS string
	// with -boot: the boot's wall time, and when targets were reached
	boot        time.Duration
	bootAt      string
	loaded      string
	walls, cpus []time.Duration
	// reloads systemd did not carry out (sandbox.CheckReloaded), the
	// first one's reason
	failed    int
	firstFail string
	rss       string
}

func (b *box) run(ctx context.Context, argv ...string) (string, error) {
	out, err := b.sb.Run(ctx, argv[0], argv[1:]...)
	if err != nil {
		return out, fmt.Errorf("%s: %w", b.sh.spec, err)
	}
	return out, nil
}

// reload is daemon-reload that waits past systemctl's 3-minute timeout:
// when systemctl gives up, systemd is still reloading; wait until it
// answers again.
var reload = []string{"sh", "-c", "systemctl daemon-reload 2>/dev/null || until systemctl show -P Version >/dev/null 2>&1; do :; done"}

// timed runs a command inside and returns its wall time and the CPU time
// systemd spent meanwhile.
func (b *box) timed(ctx context.Context, argv ...string) (wall, cpu time.Duration, err error) {
	c0, err := procCPU(b.sb.PID())
	if err != nil {
		return 0, 0, err
	}
	t0 := time.Now()
	if _, err := b.run(ctx, argv...); err != nil {
		return 0, 0, err
	}
	wall = time.Since(t0)
	c1, err := procCPU(b.sb.PID())
	return wall, c1 - c0, err
}

// freeNet returns the first 10.213.N.0/30 from first on that no host
// interface uses, and N.
func freeNet(first int) (*sandbox.NetNS, int, error) {
	for k := first; k < 255; k++ {
		used, err := sandbox.HostPrefixInUse(fmt.Sprintf("10.213.%d.0/30", k))
		if err != nil {
			return nil, 0, err
		}
		if !used {
			return &sandbox.NetNS{HostAddr: fmt.Sprintf("10.213.%d.1/30", k), Addr: fmt.Sprintf("10.213.%d.2/30", k)}, k, nil
		}
	}
	return nil, 0, errors.New("no free 10.213.N.0/30 network")
}

// sitectlBins are the programs a sitectl shape installs, and where.
var sitectlBins = [][2]string{{"sitectl", "/usr/bin/sitectl"}, {"sitectl-generator", "/usr/lib/systemd/system-generators/sitectl-generator"}, {"webapp", "/usr/local/bin/webapp"}}

func setup(ctx context.Context, i int, sh shape, nn *sandbox.NetNS, bin string) (*box, error) {
	if sh.bin != "" {
		bin = sh.bin
	}
	fs := sh.files()
	if *boot && sh.sitectl {
		for _, f := range sitectlBins {
			data, err := os.ReadFile(filepath.Join(bin, f[0]))
			if err != nil {
				return nil, err
			}
			fs = append(fs, file{path: f[1], content: string(data), mode: 0o755})
		}
	}
	data, err := tarOf(fs)
	if err != nil {
		return nil, err
	}
	tp := filepath.Join(os.TempDir(), fmt.Sprintf("scaleshapes-%d-%d.tar", os.Getpid(), i))
	if err := os.WriteFile(tp, data, 0o600); err != nil {
		return nil, err
	}
	defer os.Remove(tp)
	if *boot {
		return bootBox(ctx, i, sh, nn, tp)
	}
	sb, err := sandbox.Boot(ctx, sandbox.Options{Name: fmt.Sprintf("shapes%d", i), NetNS: nn})
	if err != nil {
		return nil, err
	}
	b := &box{sh: sh, sb: sb}
	if sh.sitectl {
		for _, f := range sitectlBins {
			if err := sb.CopyFile(ctx, filepath.Join(bin, f[0]), f[1], 0o755); err != nil {
				return nil, err
			}
		}
	}
	if err := sb.CopyFile(ctx, tp, "/root/units.tar", 0o600); err != nil {
		return nil, err
	}
	if _, err := b.run(ctx, "sh", "-c", "mkdir -p /run/trig && tar -C / -xf /root/units.tar"); err != nil {
		return nil, err
	}
	if b.first, _, err = b.timed(ctx, reload...); err != nil {
		return nil, err
	}
	logf("%s: first reload %.1f s", sh.spec, b.first.Seconds())
	return b, nil
}

// bootBox boots a sandbox with the shape's files (and sitectl) in place
// and records how long the boot took and when sockets.target, basic.target
// and multi-user.target were reached, in seconds after systemd started.
func bootBox(ctx context.Context, i int, sh shape, nn *sandbox.NetNS, seed string) (*box, error) {
	t0 := time.Now()
	sb, err := sandbox.Boot(ctx, sandbox.Options{Name: fmt.Sprintf("shapes%d", i), NetNS: nn, Seed: seed, BootTimeout: 30 * time.Minute})
	if err != nil {
		return nil, err
	}
	b := &box{sh: sh, sb: sb, boot: time.Since(t0)}
	var f []string
	for _, q := range [][]string{
		{"-P", "UserspaceTimestampMonotonic"}, {"-P", "FinishTimestampMonotonic"},
		{"-P", "ActiveEnterTimestampMonotonic", "sockets.target"},
		{"-P", "ActiveEnterTimestampMonotonic", "basic.target"},
		{"-P", "ActiveEnterTimestampMonotonic", "multi-user.target"},
	} {
		o, err := b.run(ctx, append([]string{"systemctl", "show"}, q...)...)
		if err != nil {
			return nil, err
		}
		f = append(f, strings.TrimSpace(o))
	}
	var us []float64
	for _, v := range f {
		x, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return nil, fmt.Errorf("%s: timestamps %q", sh.spec, f)
		}
		us = append(us, x)
	}
	if len(us) != 5 {
		return nil, fmt.Errorf("%s: timestamps %q", sh.spec, f)
	}
	rel := func(x float64) float64 { return (x - us[0]) / 1e6 }
	b.bootAt = fmt.Sprintf("sockets.target:%.1f,basic.target:%.1f,multi-user.target:%.1f,finished:%.1f", rel(us[2]), rel(us[3]), rel(us[4]), rel(us[1]))
	logf("%s: boot %.1f s; reached, in s after systemd started: %s (load %s)", sh.spec, b.boot.Seconds(), b.bootAt, loadavg())
	return b, nil
}

// startCommand is the shell command that starts the box's sockets.
func (b *box) startCommand() string {
	pat := "x-*.socket"
	if b.sh.sitectl {
		pat = "site-*.socket"
	}
	switch b.sh.startHow {
	case "noblock":
		// NJobs is one number: polling it costs systemd little, unlike
		// listing the jobs.
		return "systemctl start --no-block --all '" + pat + "' && until [ \"$(systemctl show -P NJobs)\" = 0 ]; do sleep 0.2; done"
	case "":
		return "systemctl start --all '" + pat + "'"
	}
	// Each batch logs its milliseconds, which the tool logs.
	return fmt.Sprintf("systemctl list-units --all --no-legend --plain '%s' | cut -d' ' -f1 | xargs -r -n %d sh -c 't=$(date +%%s%%N); systemctl start \"$@\" && echo $(( ($(date +%%s%%N) - t) / 1000000 ))' sh", pat, b.sh.batch)
}

// startSockets starts the box's sockets (one box at a time, so that the
// boxes do not compete), profiling systemd meanwhile into perfOut if it is
// not empty. It records the wall time and the CPU time of the sandbox's
// systemd, of the starting command (systemctl and what it ran), and of the
// sandbox's dbus-daemon (its cgroup's).
func (b *box) startSockets(ctx context.Context, perfOut string) error {
	if *preStart != "" {
		out, err := exec.CommandContext(ctx, "sh", "-c", *preStart, "sh", strconv.Itoa(b.sb.PID())).CombinedOutput()
		logf("%s: -prestart: %s", b.sh.spec, strings.TrimSpace(string(out)))
		if err != nil {
			return fmt.Errorf("%s: -prestart: %w", b.sh.spec, err)
		}
	}
	var p *exec.Cmd
	if perfOut != "" {
		p = exec.Command("perf", "record", "-F", "99", "--call-graph", "dwarf,8192", "-p", strconv.Itoa(b.sb.PID()), "-o", perfOut)
		if err := p.Start(); err != nil {
			return err
		}
		time.Sleep(500 * time.Millisecond)
	}
	busCPU := filepath.Join(b.sb.CgroupPath(), "ns", "system.slice", "dbus.service", "cpu.stat")
	c0, err := procCPU(b.sb.PID())
	if err != nil {
		return err
	}
	allCPU := filepath.Join(b.sb.CgroupPath(), "ns", "cpu.stat")
	d0, a0 := cgroupCPU(busCPU), cgroupCPU(allCPU)
	t0 := time.Now()
	cmd := b.sb.Command(ctx, "sh", "-c", b.startCommand())
	out, err := cmd.CombinedOutput()
	b.start = time.Since(t0)
	if p != nil {
		p.Process.Signal(os.Interrupt)
		p.Wait()
	}
	if err != nil && !(errors.Is(err, exec.ErrWaitDelay) && cmd.ProcessState.Success()) {
		return fmt.Errorf("%s: starting the sockets: %w\n%s", b.sh.spec, err, out)
	}
	if b.sh.batch > 0 {
		logf("%s: each batch (ms): %s", b.sh.spec, strings.Join(strings.Fields(string(out)), " "))
	}
	c1, err := procCPU(b.sb.PID())
	if err != nil {
		return err
	}
	b.startCPU = c1 - c0
	b.startBus = cgroupCPU(busCPU) - d0
	b.startAll = cgroupCPU(allCPU) - a0
	b.startRSS = rss(b.sb.PID())
	// nsenter's rusage includes every descendant it waited for.
	b.startClient = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	logf("%s: socket start %.1f s; CPU: systemd %.1f s, all of the sandbox %.1f s, systemctl %.1f s, dbus-daemon %.1f s; systemd's VmRSS %s (load %s)", b.sh.spec,
		b.start.Seconds(), b.startCPU.Seconds(), b.startAll.Seconds(), b.startClient.Seconds(), b.startBus.Seconds(), b.startRSS, loadavg())
	return nil
}

// cgroupCPU is a cgroup's usage_usec from its cpu.stat (0 if unreadable).
func cgroupCPU(path string) time.Duration {
	data, _ := os.ReadFile(path)
	for _, l := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(l, "usage_usec "); ok {
			us, _ := strconv.ParseInt(v, 10, 64)
			return time.Duration(us) * time.Microsecond
		}
	}
	return 0
}

// build builds sitectl, its generator and the Go test app of this
// repository.
func build() (string, error) {
	dir, err := os.MkdirTemp("/var/tmp", "scaleshapes-bin-")
	if err != nil {
		return "", err
	}
	for _, pkg := range []string{"./cmd/sitectl", "./cmd/sitectl-generator", "./test/apps/webapp"} {
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, filepath.Base(pkg)), pkg)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			return dir, fmt.Errorf("building %s: %w\n%s", pkg, err, out)
		}
	}
	return dir, nil
}

func run(specs []string) error {
	var shapes []shape
	needBin := false
	for _, s := range specs {
		sh, err := parseShape(s)
		if err != nil {
			return err
		}
		shapes = append(shapes, sh)
		needBin = needBin || (sh.sitectl && sh.bin == "")
	}
	var bin string
	if needBin {
		var err error
		bin, err = build()
		defer os.RemoveAll(bin)
		if err != nil {
			return err
		}
	}
	sandbox.HandleSignals()
	defer sandbox.CloseAll()
	ctx := context.Background()
	boxes := make([]*box, len(shapes))
	errs := make([]error, len(shapes))
	var wg sync.WaitGroup
	next := 170
	for i, sh := range shapes {
		nn, k, err := freeNet(next)
		if err != nil {
			return err
		}
		next = k + 1
		if *boot {
			// Boots compete for the CPUs: one after the other.
			boxes[i], errs[i] = setup(ctx, i, sh, nn, bin)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			boxes[i], errs[i] = setup(ctx, i, sh, nn, bin)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	for i, b := range boxes {
		if b.sh.listen {
			po := ""
			if *perfStart != "" {
				po = fmt.Sprintf("%s-start-%d.data", *perfStart, i)
			}
			if err := b.startSockets(ctx, po); err != nil {
				return err
			}
		}
		out, err := b.run(ctx, "sh", "-c", "systemctl list-units --all --no-legend --plain | wc -l; systemctl list-units --state=listening --no-legend --plain | wc -l")
		if err != nil {
			return err
		}
		b.loaded = strings.Join(strings.Fields(out), "/")
		logf("%s: units loaded/listening %s", b.sh.spec, b.loaded)
	}
	for r := 0; r < *reps; r++ {
		for _, b := range boxes {
			mark, err := b.sb.ReloadMark()
			if err != nil {
				return err
			}
			wall, cpu, err := b.timed(ctx, reload...)
			if err != nil {
				return err
			}
			if err := b.sb.CheckReloaded(mark); err != nil {
				// Counted and shown, not fatal: whether the other
				// shapes fail the same way is the point of a comparison.
				if b.failed++; b.failed == 1 {
					b.firstFail = err.Error()
				}
				logf("%s: daemon-reload failed after %.1f s: %v", b.sh.spec, wall.Seconds(), err)
				continue
			}
			b.walls, b.cpus = append(b.walls, wall), append(b.cpus, cpu)
			logf("%s: daemon-reload %.1f s, systemd's CPU %.1f s (load %s)", b.sh.spec, wall.Seconds(), cpu.Seconds(), loadavg())
		}
	}
	if *hold > 0 {
		for _, b := range boxes {
			logf("%s: holding the sandbox for %s; its systemd is host pid %d", b.sh.spec, *hold, b.sb.PID())
		}
		time.Sleep(*hold)
	}
	for i, b := range boxes {
		b.rss = rss(b.sb.PID())
		if *perf != "" {
			if err := profile(ctx, b, fmt.Sprintf("%s-%d.data", *perf, i)); err != nil {
				return err
			}
		}
	}
	for _, b := range boxes {
		fmt.Printf("n=%d shape=%s first_reload_s=%.1f socket_start_s=%.1f start_cpu_s=systemd:%.1f,sandbox:%.1f,systemctl:%.1f,dbus:%.1f units_loaded/listening=%s reload_s=%s median=%.1f systemd_cpu_s=%s median=%.1f systemd_rss=%s\n",
			*n, b.sh.spec, b.first.Seconds(), b.start.Seconds(), b.startCPU.Seconds(), b.startAll.Seconds(), b.startClient.Seconds(), b.startBus.Seconds(), b.loaded, secs(b.walls), median(b.walls).Seconds(), secs(b.cpus), median(b.cpus).Seconds(), b.rss)
		if b.failed > 0 {
			fmt.Printf("n=%d shape=%s failed_reloads=%d of %d first_failure=%q\n", *n, b.sh.spec, b.failed, *reps, b.firstFail)
		}
	}
	if *power {
		for _, b := range boxes {
			t0 := time.Now()
			if err := b.sb.Close(); err != nil {
				return err
			}
			logf("%s: poweroff and cleanup %.1f s (the sandbox kills what is left after 20 s)", b.sh.spec, time.Since(t0).Seconds())
		}
	}
	return nil
}

// profile records one reload of the box's systemd with perf.
func profile(ctx context.Context, b *box, out string) error {
	p := exec.Command("perf", "record", "-F", "199", "--call-graph", "dwarf,16384", "-p", strconv.Itoa(b.sb.PID()), "-o", out)
	if err := p.Start(); err != nil {
		return err
	}
	time.Sleep(500 * time.Millisecond)
	wall, cpu, err := b.timed(ctx, reload...)
	p.Process.Signal(os.Interrupt)
	p.Wait()
	if err != nil {
		return err
	}
	logf("%s: profiled reload %.1f s, CPU %.1f s, into %s", b.sh.spec, wall.Seconds(), cpu.Seconds(), out)
	return nil
}

func secs(ds []time.Duration) string {
	var s []string
	for _, d := range ds {
		s = append(s, fmt.Sprintf("%.1f", d.Seconds()))
	}
	return strings.Join(s, ",")
}

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	c := slices.Clone(ds)
	slices.Sort(c)
	if len(c)%2 == 1 {
		return c[len(c)/2]
	}
	return (c[len(c)/2-1] + c[len(c)/2]) / 2
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); len(f) > 0 {
		return f[0]
	}
	return "?"
}

// procCPU is the user + system time of a process (USER_HZ is 100).
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %q", pid, s)
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: %q", pid, s)
	}
	return time.Duration(u+st) * 10 * time.Millisecond, nil
}

func rss(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			return strings.Join(strings.Fields(v), " ")
		}
	}
	return "?"
}
