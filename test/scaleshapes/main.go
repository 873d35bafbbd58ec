// Command scaleshapes measures how long systemd takes to reload when it
// holds N units of a given shape: plain socket + service pairs with and
// without the constructs sitectl's units use, and sitectl's own units. It
// is how docs/scale.md found why daemon-reload grew with the square of the
// number of sites, and its tables are made with it.
//
//	go run ./test/scaleshapes -n 3000 sockets sockets,slices=64 sitectl
//
// Each shape (an argument) gets a sandbox of its own (test/sandbox, with its
// own network namespace so that any port is free) with N units installed
// and loaded by a first daemon-reload. Then every sandbox reloads -reps
// times, the sandboxes taking turns (A, B, C, A, B, C, ...) so that other
// work on the machine hits all shapes alike. For each reload it reports the
// wall time and the CPU time of the sandbox's systemd (user + system, from
// /proc/PID/stat), which hardly moves when the machine is busy. A shape is
// words separated by commas:
//
//	sockets    N pairs x-NNNNN.socket (ListenStream=127.0.0.1:PORT) and
//	           x-NNNNN.service (ExecStart=/bin/true), each socket wanted by
//	           sockets.target (the default)
//	none       the same pairs, referenced by nothing (systemd never loads them)
//	target     the sockets wanted by sites.target, which sockets.target wants
//	listen     start all sockets after the first reload
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
	n     = flag.Int("n", 1000, "units of each kind (pairs, sites)")
	reps  = flag.Int("reps", 3, "repeated reloads of each shape")
	perf  = flag.String("perf", "", "after the reloads, profile one more reload of each shape with perf into `PREFIX`-I.data")
	power = flag.Bool("poweroff", false, "at the end, time each sandbox's poweroff")
	hold  = flag.Duration("hold", 0, "after the reloads, keep the sandboxes up this long (their systemd's host pid is logged) to time other commands in them with nsenter")
)

// shape is one kind of unit set.
type shape struct {
	spec                                   string
	wanted                                 string // none, sockets, target
	listen, afterNet, path, noDef, sitectl bool
	slices                                 int
	bin                                    string
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
		case "afternet":
			sh.afterNet = true
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
type file struct{ path, content, link string }

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
		fs = append(fs, file{path: dir + name + ".socket", content: su + fmt.Sprintf("[Socket]\nListenStream=127.0.0.1:%d\n", 10000+i) + sl})
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
			hdrs = append(hdrs, &tar.Header{Name: name, Mode: 0o644, Size: int64(len(f.content)), Typeflag: tar.TypeReg, ModTime: time.Now()})
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
	loaded       string
	walls, cpus  []time.Duration
	rss          string
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

func setup(ctx context.Context, i int, sh shape, nn *sandbox.NetNS, bin string) (*box, error) {
	sb, err := sandbox.Boot(ctx, sandbox.Options{Name: fmt.Sprintf("shapes%d", i), NetNS: nn})
	if err != nil {
		return nil, err
	}
	b := &box{sh: sh, sb: sb}
	if sh.sitectl {
		if sh.bin != "" {
			bin = sh.bin
		}
		for _, f := range [][2]string{{"sitectl", "/usr/bin/sitectl"}, {"sitectl-generator", "/usr/lib/systemd/system-generators/sitectl-generator"}, {"webapp", "/usr/local/bin/webapp"}} {
			if err := sb.CopyFile(ctx, filepath.Join(bin, f[0]), f[1], 0o755); err != nil {
				return nil, err
			}
		}
	}
	data, err := tarOf(sh.files())
	if err != nil {
		return nil, err
	}
	tp := filepath.Join(os.TempDir(), fmt.Sprintf("scaleshapes-%d-%d.tar", os.Getpid(), i))
	if err := os.WriteFile(tp, data, 0o600); err != nil {
		return nil, err
	}
	defer os.Remove(tp)
	if err := sb.CopyFile(ctx, tp, "/root/units.tar", 0o600); err != nil {
		return nil, err
	}
	if _, err := b.run(ctx, "sh", "-c", "mkdir -p /run/trig && tar -C / -xf /root/units.tar"); err != nil {
		return nil, err
	}
	if b.first, _, err = b.timed(ctx, reload...); err != nil {
		return nil, err
	}
	if sh.listen {
		pat := "x-*.socket"
		if sh.sitectl {
			pat = "site-*.socket"
		}
		if b.start, _, err = b.timed(ctx, "systemctl", "start", "--all", pat); err != nil {
			return nil, err
		}
	}
	out, err := b.run(ctx, "sh", "-c", "systemctl list-units --all --no-legend --plain | wc -l; systemctl list-units --state=listening --no-legend --plain | wc -l")
	if err != nil {
		return nil, err
	}
	b.loaded = strings.Join(strings.Fields(out), "/")
	logf("%s: first reload %.1f s, socket start %.1f s, units loaded/listening %s", sh.spec, b.first.Seconds(), b.start.Seconds(), b.loaded)
	return b, nil
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
				return fmt.Errorf("%s: %w", b.sh.spec, err)
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
		fmt.Printf("n=%d shape=%s first_reload_s=%.1f socket_start_s=%.1f units_loaded/listening=%s reload_s=%s median=%.1f systemd_cpu_s=%s median=%.1f systemd_rss=%s\n",
			*n, b.sh.spec, b.first.Seconds(), b.start.Seconds(), b.loaded, secs(b.walls), median(b.walls).Seconds(), secs(b.cpus), median(b.cpus).Seconds(), b.rss)
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
