package main

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sitectl/sitectl/internal/modes"
	"github.com/sitectl/sitectl/internal/site"
	"github.com/sitectl/sitectl/internal/sitecache"
	"github.com/sitectl/sitectl/test/sandbox"
)

// ScaleOptions configure the scale benchmark.
type ScaleOptions struct {
	Sites    []int // ascending; sites are added to one sandbox step by step
	Reps     int   // runs of each timing
	ModeReps int   // switches to maintenance and back
	// Boot also boots a second sandbox with each step's sites in place and
	// times the boot and the poweroff.
	Boot bool
	// Floor times the repeated reload before the sockets start beside two
	// more sandboxes: the same units without sitectl, and plain pairs
	// (FloorResult).
	Floor bool
	// BootLog receives the other sandboxes' progress lines.
	BootLog io.Writer
	// floorNet is the first 10.213.N.0/30 the floor's sandboxes may use
	// (runScale sets it).
	floorNet int
	// Bin and Root are the built binaries and the repository, for the boot
	// sandbox.
	Bin, Root string
	Log       func(format string, args ...any)
}

// ScaleResult is what was measured with N sites installed, their sockets
// listening and no app running.
type ScaleResult struct {
	N int `json:"n"`
	// Listen says where the sites listen: 127.0.0.1 ports in the sandbox's
	// own network namespace.
	Listen string `json:"listen"`
	// FirstDaemonReload is the daemon-reload that loaded the new sites.
	FirstDaemonReload Millis `json:"first_daemon_reload_ms"`
	// SocketStart is `systemctl start --all 'site-*.socket'` after it.
	SocketStart      Millis        `json:"socket_start_ms"`
	ListeningSockets int           `json:"listening_sockets"`
	GeneratorDryrun  DurationStats `json:"generator_dryrun"`
	GeneratorWrite   DurationStats `json:"generator_write"`
	// The CPU time of the commands themselves (TimeResult.CPUNanos).
	GeneratorWriteCPU  DurationStats `json:"generator_write_cpu"`
	SitectlListTextCPU DurationStats `json:"sitectl_list_cpu"`
	SitectlListCPU     DurationStats `json:"sitectl_list_json_cpu"`
	SystemctlListCPU   DurationStats `json:"systemctl_list_units_cpu"`
	StatusOneCPU       DurationStats `json:"sitectl_status_one_cpu"`
	// The listings again once every site has the state directory of a
	// site that has run (stateForAll), as on a host whose sites have all
	// run.
	SitectlListStated        DurationStats `json:"sitectl_list_stated"`
	SitectlListStatedCPU     DurationStats `json:"sitectl_list_stated_cpu"`
	SitectlListJSONStated    DurationStats `json:"sitectl_list_json_stated"`
	SitectlListJSONStatedCPU DurationStats `json:"sitectl_list_json_stated_cpu"`
	// StatedRestarted: every site's state had a state file too (as one
	// restart with sitectl leaves), and one list ran before the timed ones.
	// Earlier runs (before 1 December 2026, night) gave the sites only
	// their mode file.
	StatedRestarted bool `json:"stated_restarted,omitempty"`
	// DaemonReloadIdle is the repeated daemon-reload with the sites
	// loaded and none of their sockets started yet.
	DaemonReloadIdle    DurationStats `json:"daemon_reload_not_listening"`
	DaemonReloadIdleCPU DurationStats `json:"daemon_reload_not_listening_pid1_cpu"`
	// Floor is systemd's cost of the same reload without sitectl, timed
	// alternately with DaemonReloadIdle (absent from runs before 5
	// December 2026, or with -scale-floor=false).
	Floor *FloorResult `json:"floor,omitempty"`
	// FloorListening is the same with every site's socket listening in
	// all three sandboxes, after everything else of the step (absent from
	// runs before 7 December 2026).
	FloorListening *FloorResult `json:"floor_listening,omitempty"`
	// DaemonReload is the repeated daemon-reload with every site's
	// socket listening. Reloads systemd ignored are failures.
	DaemonReload DurationStats `json:"daemon_reload"`
	// DaemonReloadCPU is the CPU time (user + system) the sandbox's
	// systemd spent in each of those reloads, from /proc/PID/stat: unlike
	// the wall time it hardly moves when other work shares the machine.
	DaemonReloadCPU DurationStats `json:"daemon_reload_pid1_cpu"`
	SitectlListText DurationStats `json:"sitectl_list"`
	SitectlList     DurationStats `json:"sitectl_list_json"`
	SystemctlList   DurationStats `json:"systemctl_list_units"`
	ListedUnits     int           `json:"systemctl_listed_units"`
	// StatusOne is `sitectl status SITE` of one site (ModeSite).
	StatusOne       DurationStats `json:"sitectl_status_one"`
	ModeSite        string        `json:"mode_site"`
	ModeMaintenance DurationStats `json:"mode_to_maintenance"`
	ModeNormal      DurationStats `json:"mode_to_normal"`
	Memory          Memory        `json:"memory"`
	Boot            *BootResult   `json:"boot,omitempty"`
}

// BootResult is a boot of a fresh sandbox with the step's sites in place
// before systemd starts: the generator, loading the units and starting all
// their sockets, then its poweroff.
type BootResult struct {
	// Wall is from starting the sandbox to `systemctl is-system-running`
	// saying running, as the harness saw it (includes the sandbox's own
	// setup, about 0.3 s).
	Wall Millis `json:"wall_ms"`
	// Userspace is systemd's own FinishTimestamp - UserspaceTimestamp (what
	// "Startup finished in" reports), Generators and UnitsLoad parts of it.
	Userspace  Millis `json:"userspace_ms"`
	Generators Millis `json:"generators_ms"`
	UnitsLoad  Millis `json:"units_load_ms"`
	Listening  int    `json:"listening_sockets"`
	PID1RSSKiB int64  `json:"pid1_rss_kib"`
	// Poweroff is from asking systemd to power off (SIGRTMIN+4) until its
	// PID 1 exited; PoweroffTimedOut when it had not after poweroffTimeout.
	Poweroff         Millis `json:"poweroff_ms"`
	PoweroffTimedOut bool   `json:"poweroff_timed_out"`
	// LastSocket times `sitectl status SITE` with every site listening.
	LastSocket *LastSocketStatus `json:"last_socket_status,omitempty"`
}

// LastSocketStatus times `sitectl status SITE` on the booted host, every
// socket listening, of the site whose socket is the last of PID 1's open
// files (the worst case for reading them to tell whether systemd holds
// it), after one `sitectl restart` gave the site its state: with the hint
// of where systemd holds its socket (package sockheld), and without it
// (removed before each run, untimed), alternating.
type LastSocketStatus struct {
	Site      string        `json:"site"`
	FD        int           `json:"fd"`
	OpenFiles int           `json:"pid1_open_files"`
	Hinted    DurationStats `json:"hinted"`
	Unhinted  DurationStats `json:"unhinted"`
}

// lastSocketRuns is how many times each is timed.
const lastSocketRuns = 10

// Memory is the cost of N idle socket-activated sites.
type Memory struct {
	// The sandbox's systemd (PID 1), VmRSS and RssAnon from
	// /proc/PID/status, before any site and now.
	PID1RSSBaseKiB  int64   `json:"pid1_rss_base_kib"`
	PID1RSSKiB      int64   `json:"pid1_rss_kib"`
	PID1AnonBaseKiB int64   `json:"pid1_anon_base_kib"`
	PID1AnonKiB     int64   `json:"pid1_anon_kib"`
	PerSitePID1KiB  float64 `json:"per_site_pid1_rss_kib"`
	// Kernel objects of the listening sockets, estimated: the growth of
	// TCP sockets in use (/proc/net/sockstat of the sandbox's network
	// namespace, "TCP: inuse") and, per socket, the object sizes of the
	// slab caches one listening socket that systemd watches takes
	// (KernelObjects).
	TCPInUseDelta        int            `json:"tcp_inuse_delta"`
	KernelObjects        map[string]int `json:"kernel_objects_bytes"`
	KernelPerSocketBytes int            `json:"kernel_per_socket_bytes"`
	KernelSocketBytes    int64          `json:"kernel_socket_bytes"` // sites × KernelPerSocketBytes
	PerSiteKernelBytes   float64        `json:"per_site_kernel_bytes"`
	// SlabGrowthBytes is the measured growth of the TCP and
	// sock_inode_cache slab caches (active objects × object size), a
	// cross-check: host-wide, and SLUB's active counts are approximate.
	SlabGrowthBytes       int64   `json:"slab_growth_bytes"`
	GeneratedFiles        int     `json:"generated_files"`
	GeneratedBytes        int64   `json:"generated_bytes"`
	GeneratedTmpfsBytes   int64   `json:"generated_tmpfs_bytes"` // whole 4 KiB pages
	PerSiteGeneratedBytes float64 `json:"per_site_generated_tmpfs_bytes"`
}

// scaleBasePort is the first site's port. The sandboxes of the scale
// benchmark have network namespaces of their own, so any port is free there.
const scaleBasePort = 10000

// poweroffTimeout bounds the wait for a boot sandbox's poweroff.
const poweroffTimeout = 10 * time.Minute

// scaleSiteName is the name of site i of the scale benchmark.
func scaleSiteName(i int) string { return fmt.Sprintf("site-%05d", i) }

// modeSiteIndex is the site whose mode is switched with n sites: site-00042
// when there is one, else the last.
func modeSiteIndex(n int) int { return min(42, n-1) }

func scaleSiteFile(port int) string {
	return fmt.Sprintf(`exec = ["/usr/local/bin/webapp"]
readiness = "notify"
drain_timeout = "10s"

[[listen]]
address = "127.0.0.1:%d"
`, port)
}

// freeNetNS returns a network namespace for a sandbox on the first
// 10.213.N.0/30 (N from first) that no host interface uses.
func freeNetNS(first int) (*sandbox.NetNS, int, error) {
	for n := first; n < 255; n++ {
		used, err := sandbox.HostPrefixInUse(fmt.Sprintf("10.213.%d.0/30", n))
		if err != nil {
			return nil, 0, err
		}
		if !used {
			return &sandbox.NetNS{HostAddr: fmt.Sprintf("10.213.%d.1/30", n), Addr: fmt.Sprintf("10.213.%d.2/30", n)}, n, nil
		}
	}
	return nil, 0, errors.New("no free 10.213.N.0/30 network on the host for the scale sandboxes")
}

// slabInfo is /proc/slabinfo: active objects and object size per cache.
type slabInfo map[string][2]int64

func readSlabInfo() (slabInfo, error) {
	b, err := os.ReadFile("/proc/slabinfo")
	if err != nil {
		return nil, err
	}
	return parseSlabInfo(string(b)), nil
}

func parseSlabInfo(text string) slabInfo {
	si := slabInfo{}
	for _, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		if len(f) < 4 || strings.HasPrefix(f[0], "#") {
			continue
		}
		active, err1 := strconv.ParseInt(f[1], 10, 64)
		size, err2 := strconv.ParseInt(f[3], 10, 64)
		if err1 == nil && err2 == nil {
			si[f[0]] = [2]int64{active, size}
		}
	}
	return si
}

// bytes returns active objects × object size of the named caches.
func (si slabInfo) bytes(names ...string) int64 {
	var total int64
	for _, n := range names {
		total += si[n][0] * si[n][1]
	}
	return total
}

// socketSlabs grow with every listening TCP socket.
var socketSlabs = []string{"TCP", "sock_inode_cache"}

// perSocketCaches are the slab objects one listening TCP socket held open
// by systemd takes: the socket, its inode, its open file, its dentry, and
// the epoll item systemd watches it with.
var perSocketCaches = []string{"TCP", "sock_inode_cache", "filp", "dentry", "eventpoll_epi"}

// tcpInUse reads "TCP: inuse N" from /proc/net/sockstat of the sandbox's
// network namespace.
func (h *host) tcpInUse(ctx context.Context) (int, error) {
	out, err := h.run(ctx, "cat", "/proc/net/sockstat")
	if err != nil {
		return 0, err
	}
	return parseTCPInUse(out)
}

func parseTCPInUse(text string) (int, error) {
	for _, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		if len(f) >= 3 && f[0] == "TCP:" && f[1] == "inuse" {
			return strconv.Atoi(f[2])
		}
	}
	return 0, fmt.Errorf("no \"TCP: inuse\" in /proc/net/sockstat")
}

// tarWriter builds a tar archive in memory.
type tarWriter struct {
	buf bytes.Buffer
	tw  *tar.Writer
}

func newTar() *tarWriter {
	t := &tarWriter{}
	t.tw = tar.NewWriter(&t.buf)
	return t
}

func (t *tarWriter) add(name string, data []byte, mode int64) error {
	hdr := &tar.Header{Name: name, Mode: mode, Size: int64(len(data)), ModTime: time.Now(), Typeflag: tar.TypeReg}
	if err := t.tw.WriteHeader(hdr); err != nil {
		return err
	}
	_, err := t.tw.Write(data)
	return err
}

func (t *tarWriter) dir(name string) error {
	return t.tw.WriteHeader(&tar.Header{Name: name + "/", Mode: 0o755, ModTime: time.Now(), Typeflag: tar.TypeDir})
}

func (t *tarWriter) link(name, target string) error {
	return t.tw.WriteHeader(&tar.Header{Name: name, Linkname: target, Mode: 0o777, ModTime: time.Now(), Typeflag: tar.TypeSymlink})
}

func (t *tarWriter) bytes() ([]byte, error) {
	if err := t.tw.Close(); err != nil {
		return nil, err
	}
	return t.buf.Bytes(), nil
}

// siteTar packs the site files of sites [from, to) into a tar archive whose
// paths are prefixed with prefix (e.g. "etc/sitectl/sites/").
func siteTar(t *tarWriter, prefix string, from, to int) error {
	for i := from; i < to; i++ {
		if err := t.add(prefix+scaleSiteName(i)+".toml", []byte(scaleSiteFile(scaleBasePort+i)), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// runScale adds sites to a fresh sandbox step by step and measures at each
// step.
func runScale(ctx context.Context, o ScaleOptions, workDir string, log io.Writer) ([]*ScaleResult, error) {
	if len(o.Sites) == 0 {
		return nil, nil
	}
	if last := o.Sites[len(o.Sites)-1]; scaleBasePort+last > 65535 {
		return nil, fmt.Errorf("at most %d sites fit the ports from %d", 65535-scaleBasePort, scaleBasePort)
	}
	nn, netN, err := freeNetNS(160)
	if err != nil {
		return nil, err
	}
	h, err := bootHostWith(ctx, sandbox.Options{Name: "bench-scale", Log: log, NetNS: nn}, o.Bin, o.Root)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	o.floorNet = netN + 2
	run := func(argv ...string) (string, error) {
		out, err := h.run(ctx, argv...)
		if err != nil {
			return out, fmt.Errorf("%w: %s", err, out)
		}
		return out, nil
	}
	// The baseline: no site at all, after one daemon-reload.
	if _, err := run("mkdir", "-p", "/etc/sitectl/sites"); err != nil {
		return nil, err
	}
	if _, err := run("systemctl", "daemon-reload"); err != nil {
		return nil, err
	}
	time.Sleep(time.Second)
	base := baseline{}
	if base.rss, base.anon, err = h.pid1Memory(); err != nil {
		return nil, err
	}
	if base.slab, err = readSlabInfo(); err != nil {
		return nil, err
	}
	if base.tcp, err = h.tcpInUse(ctx); err != nil {
		return nil, err
	}
	o.Log("scale: baseline: systemd VmRSS %d KiB (RssAnon %d KiB)", base.rss, base.anon)

	var out []*ScaleResult
	have := 0
	for _, n := range o.Sites {
		o.Log("scale: %d sites", n)
		r, err := scaleStep(ctx, h, o, base, have, n, workDir)
		if r != nil {
			out = append(out, r)
		}
		if err != nil {
			return out, err
		}
		have = n
		if o.Boot {
			if r.Boot, err = bootWithSites(ctx, o, n, workDir, netN+1, log); err != nil {
				return out, err
			}
			b := r.Boot
			o.Log("  boot with %d sites: %.1f s to running (systemd: %.1f s userspace, generators %.0f ms, loading units %.0f ms), %d sockets listening; poweroff %.1f s",
				n, b.Wall.MS()/1000, b.Userspace.MS()/1000, b.Generators.MS(), b.UnitsLoad.MS(), b.Listening, b.Poweroff.MS()/1000)
			if l := b.LastSocket; l != nil {
				o.Log("  status of %s, whose socket is PID 1's file %d of %d: %.1f ms with its hint, %.1f ms without",
					l.Site, l.FD, l.OpenFiles, l.Hinted.Median.MS(), l.Unhinted.Median.MS())
			}
		}
	}
	if err := h.Close(); err != nil {
		return out, err
	}
	return out, nil
}

// baseline is the scale sandbox before any site.
type baseline struct {
	rss, anon int64
	slab      slabInfo
	tcp       int
}

// scaleStep adds sites [have, n) and measures.
func scaleStep(ctx context.Context, h *host, o ScaleOptions, base baseline, have, n int, workDir string) (*ScaleResult, error) {
	r := &ScaleResult{N: n, Listen: fmt.Sprintf("127.0.0.1:%d-%d", scaleBasePort, scaleBasePort+n-1)}
	t := newTar()
	if err := siteTar(t, "", have, n); err != nil {
		return nil, err
	}
	data, err := t.bytes()
	if err != nil {
		return nil, err
	}
	tarPath := filepath.Join(workDir, "sites.tar")
	if err := os.WriteFile(tarPath, data, 0o600); err != nil {
		return nil, err
	}
	if err := h.sb.CopyFile(ctx, tarPath, "/root/sites.tar", 0o600); err != nil {
		return nil, err
	}
	if out, err := h.run(ctx, "tar", "-C", "/etc/sitectl/sites", "-xf", "/root/sites.tar"); err != nil {
		return nil, fmt.Errorf("%w: %s", err, out)
	}

	// The reload that loads them, repeated reloads before any of their
	// sockets listens, then their sockets.
	mark, err := h.sb.ReloadMark()
	if err != nil {
		return nil, err
	}
	tr, err := h.timeit(ctx, TimeSpec{Runs: 1, Commands: []TimedCmd{{Argv: []string{"systemctl", "daemon-reload"}}}})
	if err != nil {
		return nil, err
	}
	if e := tr.Errors[0][0]; e != "" {
		return nil, errors.New(e)
	}
	if err := h.sb.CheckReloaded(mark); err != nil {
		return nil, fmt.Errorf("the daemon-reload that loads %d sites: %w", n, err)
	}
	r.FirstDaemonReload = Millis(tr.Nanos[0][0])
	if o.Floor {
		o.Log("  repeated daemon-reloads beside systemd's floor: the same units without sitectl, and plain pairs (two more sandboxes)")
		if r.Floor, err = reloadsBesideFloor(ctx, h, o, have, workDir, o.BootLog); err != nil {
			return nil, err
		}
		r.DaemonReloadIdle, r.DaemonReloadIdleCPU = r.Floor.Sitectl, r.Floor.SitectlCPU
	} else if r.DaemonReloadIdle, r.DaemonReloadIdleCPU, err = timeReloads(ctx, h, o.Reps); err != nil {
		return nil, err
	}
	tr, err = h.timeit(ctx, TimeSpec{Runs: 1, Commands: []TimedCmd{{Argv: []string{"systemctl", "start", "--all", "site-*.socket"}}}})
	if err != nil {
		return nil, err
	}
	if e := tr.Errors[0][0]; e != "" {
		return nil, errors.New(e)
	}
	r.SocketStart = Millis(tr.Nanos[0][0])
	if r.ListeningSockets, err = h.count(ctx, "systemctl list-units --state=listening --no-legend --plain 'site-*.socket' | wc -l"); err != nil {
		return nil, err
	}
	if r.ListeningSockets != n {
		return nil, fmt.Errorf("%d sites, but %d site sockets are listening", n, r.ListeningSockets)
	}
	if err := scaleMemory(ctx, h, r, base); err != nil {
		return nil, err
	}
	if err := scaleTimings(ctx, h, o, r, workDir); err != nil {
		return nil, err
	}
	o.Log("  generator %.1f ms (dry run %.1f ms), daemon-reload %.0f ms (systemd CPU %.0f ms), sitectl list %.1f ms, --json %.1f ms, systemctl list-units %.1f ms, status of one %.1f ms, mode switch %.0f/%.0f ms, systemd +%.1f KiB/site",
		r.GeneratorWrite.Median.MS(), r.GeneratorDryrun.Median.MS(), r.DaemonReload.Median.MS(), r.DaemonReloadCPU.Median.MS(),
		r.SitectlListText.Median.MS(), r.SitectlList.Median.MS(), r.SystemctlList.Median.MS(), r.StatusOne.Median.MS(),
		r.ModeMaintenance.Median.MS(), r.ModeNormal.Median.MS(), r.Memory.PerSitePID1KiB)
	for what, d := range map[string]DurationStats{"generator": r.GeneratorWrite, "generator --dryrun": r.GeneratorDryrun,
		"daemon-reload": r.DaemonReload, "sitectl list": r.SitectlListText, "sitectl list --json": r.SitectlList,
		"systemctl list-units": r.SystemctlList, "sitectl status": r.StatusOne,
		"mode to maintenance": r.ModeMaintenance, "mode to normal": r.ModeNormal} {
		if d.Failed > 0 {
			o.Log("  %s failed in %d of %d runs: %s", what, d.Failed, d.Failed+d.Runs, d.Error)
		}
	}
	if o.Floor {
		// The same comparison with every socket listening: whether what
		// a listening site adds to a reload, or a reload that fails, is
		// sitectl's or systemd's.
		o.Log("  repeated daemon-reloads with every socket listening, beside systemd's floor (two more sandboxes, %d sockets each)", n)
		if r.FloorListening, err = reloadsBesideFloor(ctx, h, o, n, workDir, o.BootLog); err != nil {
			return r, err
		}
	}
	return r, nil
}

// count runs a shell pipeline inside that prints a number.
func (h *host) count(ctx context.Context, pipeline string) (int, error) {
	out, err := h.run(ctx, "sh", "-c", pipeline)
	if err != nil {
		return 0, fmt.Errorf("%w: %s", err, out)
	}
	return strconv.Atoi(strings.TrimSpace(out))
}

// scaleMemory measures what the idle sites cost, before anything else runs.
func scaleMemory(ctx context.Context, h *host, r *ScaleResult, base baseline) error {
	time.Sleep(time.Second)
	m := &r.Memory
	m.PID1RSSBaseKiB, m.PID1AnonBaseKiB = base.rss, base.anon
	var err error
	if m.PID1RSSKiB, m.PID1AnonKiB, err = h.pid1Memory(); err != nil {
		return err
	}
	m.PerSitePID1KiB = float64(m.PID1RSSKiB-base.rss) / float64(r.N)
	slab, err := readSlabInfo()
	if err != nil {
		return err
	}
	tcp, err := h.tcpInUse(ctx)
	if err != nil {
		return err
	}
	m.TCPInUseDelta = tcp - base.tcp
	m.SlabGrowthBytes = slab.bytes(socketSlabs...) - base.slab.bytes(socketSlabs...)
	m.KernelObjects = map[string]int{}
	for _, c := range perSocketCaches {
		if sz := slab[c][1]; sz > 0 {
			m.KernelObjects[c] = int(sz)
			m.KernelPerSocketBytes += int(sz)
		}
	}
	m.KernelSocketBytes = int64(r.N) * int64(m.KernelPerSocketBytes)
	m.PerSiteKernelBytes = float64(m.KernelPerSocketBytes)
	sizes, err := h.run(ctx, "sh", "-c", "find /run/systemd/generator -maxdepth 1 -type f -name 'site-*' -printf '%s\\n'")
	if err != nil {
		return fmt.Errorf("%w: %s", err, sizes)
	}
	for _, f := range strings.Fields(sizes) {
		sz, _ := strconv.ParseInt(f, 10, 64)
		m.GeneratedFiles++
		m.GeneratedBytes += sz
		m.GeneratedTmpfsBytes += (sz + 4095) / 4096 * 4096
	}
	m.PerSiteGeneratedBytes = float64(m.GeneratedTmpfsBytes) / float64(r.N)
	return nil
}

// scaleTimings times the generator, daemon-reload, the listings, one
// site's status and one site's mode switch.
func scaleTimings(ctx context.Context, h *host, o ScaleOptions, r *ScaleResult, workDir string) error {
	// The generator alone: printing (--dryrun) and writing into an empty
	// directory on a tmpfs, as under systemd.
	tr, err := h.timeit(ctx, TimeSpec{Runs: o.Reps, Commands: []TimedCmd{
		{Argv: []string{"/usr/lib/systemd/system-generators/sitectl-generator", "--dryrun"}},
		{
			Argv:   []string{"/usr/lib/systemd/system-generators/sitectl-generator", "/run/sitectl-bench-gen"},
			Before: [][]string{{"rm", "-rf", "/run/sitectl-bench-gen"}, {"mkdir", "/run/sitectl-bench-gen"}},
			Env:    []string{"SYSTEMD_LOG_TARGET=console"},
		},
	}})
	if err != nil {
		return err
	}
	r.GeneratorDryrun, r.GeneratorWrite, r.GeneratorWriteCPU = tr.Stats(0, false), tr.Stats(1, false), tr.CPUStats(1)

	if r.DaemonReload, r.DaemonReloadCPU, err = timeReloads(ctx, h, o.Reps); err != nil {
		return err
	}

	r.ModeSite = scaleSiteName(modeSiteIndex(r.N))
	tr, err = h.timeit(ctx, TimeSpec{Runs: o.Reps, Commands: []TimedCmd{
		{Argv: []string{"sitectl", "list"}},
		{Argv: []string{"sitectl", "list", "--json"}},
		{Argv: []string{"systemctl", "list-units", "--all", "--no-pager", "site-*"}},
		{Argv: []string{"sitectl", "status", r.ModeSite}},
	}})
	if err != nil {
		return err
	}
	r.SitectlListText, r.SitectlList, r.SystemctlList, r.StatusOne = tr.Stats(0, false), tr.Stats(1, false), tr.Stats(2, false), tr.Stats(3, false)
	r.SitectlListTextCPU, r.SitectlListCPU, r.SystemctlListCPU, r.StatusOneCPU = tr.CPUStats(0), tr.CPUStats(1), tr.CPUStats(2), tr.CPUStats(3)
	if r.ListedUnits, err = h.count(ctx, "systemctl list-units --all --no-legend --plain 'site-*' | wc -l"); err != nil {
		return err
	}

	if err := stateForAll(ctx, h, r.N, workDir); err != nil {
		return err
	}
	// On a host, the states were written long before a list; here, just
	// now. A list records a file in its cache only once it has settled
	// (sitecache.Settle): wait for that, and let one list record them, as
	// the first list after any change does.
	select {
	case <-time.After(sitecache.Settle + time.Second):
	case <-ctx.Done():
		return ctx.Err()
	}
	if out, err := h.run(ctx, "sitectl", "list"); err != nil {
		return fmt.Errorf("%w: %s", err, out)
	}
	tr, err = h.timeit(ctx, TimeSpec{Runs: o.Reps, Commands: []TimedCmd{
		{Argv: []string{"sitectl", "list"}},
		{Argv: []string{"sitectl", "list", "--json"}},
	}})
	if err != nil {
		return err
	}
	r.SitectlListStated, r.SitectlListJSONStated = tr.Stats(0, false), tr.Stats(1, false)
	r.StatedRestarted = true
	r.SitectlListStatedCPU, r.SitectlListJSONStatedCPU = tr.CPUStats(0), tr.CPUStats(1)

	// One site's mode, there and back.
	tr, err = h.timeit(ctx, TimeSpec{Runs: o.ModeReps, Commands: []TimedCmd{
		{Argv: []string{"sitectl", "mode", r.ModeSite, "maintenance"}},
		{Argv: []string{"sitectl", "mode", r.ModeSite, "normal"}},
	}})
	if err != nil {
		return err
	}
	r.ModeMaintenance, r.ModeNormal = tr.Stats(0, false), tr.Stats(1, false)
	if out, err := h.run(ctx, "systemctl", "stop", "site-"+r.ModeSite+".service"); err != nil {
		return fmt.Errorf("%w: %s", err, out)
	}
	return nil
}

// stateForAll gives sites [0, n) the state directory of a site that has
// run and was restarted once with sitectl: the mode file of its default
// mode, exactly as `sitectl prepare` writes it (modes.EnvFile), and a state
// file with the restart in its history (modes.EncodeState), in one archive
// instead of n runs.
func stateForAll(ctx context.Context, h *host, n int, workDir string) error {
	t := newTar()
	restarted := time.Now().Add(-time.Hour).UTC()
	for i := 0; i < n; i++ {
		name := scaleSiteName(i)
		s, err := site.ParseNamed("/etc/sitectl/sites/"+name+".toml", name, []byte(scaleSiteFile(scaleBasePort+i)))
		if err != nil {
			return err
		}
		m, _ := s.Mode(s.DefaultMode)
		if err := t.dir(name); err != nil {
			return err
		}
		env, err := modes.EnvFile(s, m)
		if err != nil {
			return err
		}
		if err := t.add(name+"/mode.env", env, 0o644); err != nil {
			return err
		}
		if err := t.add(name+"/lock", nil, 0o644); err != nil {
			return err
		}
		state, err := modes.EncodeState(modes.State{History: []modes.Entry{{
			Time: restarted, Kind: "restart", From: s.DefaultMode, To: s.DefaultMode, Result: "ok"}}})
		if err != nil {
			return err
		}
		if err := t.add(name+"/state.json", state, 0o600); err != nil {
			return err
		}
	}
	data, err := t.bytes()
	if err != nil {
		return err
	}
	tarPath := filepath.Join(workDir, "state.tar")
	if err := os.WriteFile(tarPath, data, 0o600); err != nil {
		return err
	}
	defer os.Remove(tarPath)
	if err := h.sb.CopyFile(ctx, tarPath, "/root/state.tar", 0o600); err != nil {
		return err
	}
	// --skip-old-files: a site that already has state (the one whose mode
	// is switched) keeps it.
	if out, err := h.run(ctx, "sh", "-c", "mkdir -p /var/lib/sitectl/sites && tar -C /var/lib/sitectl/sites --skip-old-files -xf /root/state.tar"); err != nil {
		return fmt.Errorf("%w: %s", err, out)
	}
	return nil
}

// timeReloads runs daemon-reload reps times and returns the wall times and
// the CPU time the sandbox's systemd spent in each. A reload systemd
// answered without doing it counts as failed.
func timeReloads(ctx context.Context, h *host, reps int) (wall, cpu DurationStats, err error) {
	var rs reloadTimes
	for i := 0; i < reps; i++ {
		if err := rs.add(ctx, h); err != nil {
			return wall, cpu, err
		}
	}
	wall, cpu = rs.stats()
	return wall, cpu, nil
}

// reloadTimes collects timed daemon-reloads of one sandbox: the wall time
// and systemd's CPU of each that really reloaded, and the failures.
type reloadTimes struct {
	walls, cpus []time.Duration
	failed      []string
}

// add times one `systemctl daemon-reload` in h.
func (rs *reloadTimes) add(ctx context.Context, h *host) error {
	c0, err := procCPU(h.sb.PID())
	if err != nil {
		return err
	}
	mark, err := h.sb.ReloadMark()
	if err != nil {
		return err
	}
	tr, err := h.timeit(ctx, TimeSpec{Runs: 1, Commands: []TimedCmd{{Argv: []string{"systemctl", "daemon-reload"}}}})
	if err != nil {
		return err
	}
	c1, err := procCPU(h.sb.PID())
	if err != nil {
		return err
	}
	if e := tr.Errors[0][0]; e != "" {
		rs.failed = append(rs.failed, e)
		return nil
	}
	// systemctl's exit status is not enough: see CheckReloaded.
	if err := h.sb.CheckReloaded(mark); err != nil {
		rs.failed = append(rs.failed, err.Error())
		return nil
	}
	rs.walls = append(rs.walls, time.Duration(tr.Nanos[0][0]))
	rs.cpus = append(rs.cpus, c1-c0)
	return nil
}

// stats summarizes the wall times and systemd's CPU times, every value kept.
func (rs *reloadTimes) stats() (wall, cpu DurationStats) {
	wall, cpu = SummarizeDurations(rs.walls, true), SummarizeDurations(rs.cpus, true)
	if len(rs.failed) > 0 {
		wall.Failed, wall.Error = len(rs.failed), rs.failed[0]
		cpu.Failed, cpu.Error = len(rs.failed), rs.failed[0]
	}
	return wall, cpu
}

// procCPU is the user + system time of a process, from /proc/PID/stat.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseProcCPU(string(b))
}

// clockTicks is USER_HZ, the unit of the times in /proc/PID/stat; 100 on
// every Linux architecture Go supports.
const clockTicks = 100

func parseProcCPU(stat string) (time.Duration, error) {
	// The command name (field 2) may hold spaces; fields after it are
	// counted from the closing parenthesis. utime and stime are fields 14
	// and 15.
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("not a /proc/PID/stat line: %q", stat)
	}
	f := strings.Fields(stat[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("not a /proc/PID/stat line: %q", stat)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("not a /proc/PID/stat line: %q", stat)
	}
	return time.Duration(ut+st) * time.Second / clockTicks, nil
}

// bootWithSites boots a fresh sandbox with n sites, sitectl and its
// generator in place before systemd starts, waits until it runs (every
// socket listening), reads systemd's own boot timestamps and powers it off.
func bootWithSites(ctx context.Context, o ScaleOptions, n int, workDir string, firstNet int, log io.Writer) (*BootResult, error) {
	t := newTar()
	for _, d := range []string{"etc", "etc/sitectl", "etc/sitectl/sites"} {
		if err := t.dir(d); err != nil {
			return nil, err
		}
	}
	if err := siteTar(t, "etc/sitectl/sites/", 0, n); err != nil {
		return nil, err
	}
	for _, f := range [][2]string{
		{"sitectl", "usr/bin/sitectl"},
		{"sitectl-generator", "usr/lib/systemd/system-generators/sitectl-generator"},
		{"webapp", "usr/local/bin/webapp"},
	} {
		data, err := os.ReadFile(filepath.Join(o.Bin, f[0]))
		if err != nil {
			return nil, err
		}
		if err := t.add(f[1], data, 0o755); err != nil {
			return nil, err
		}
	}
	data, err := t.bytes()
	if err != nil {
		return nil, err
	}
	seed := filepath.Join(workDir, "boot-seed.tar")
	if err := os.WriteFile(seed, data, 0o600); err != nil {
		return nil, err
	}
	defer os.Remove(seed)
	nn, _, err := freeNetNS(firstNet)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	sb, err := sandbox.Boot(ctx, sandbox.Options{Name: "bench-boot", Log: log, NetNS: nn, Seed: seed, BootTimeout: 30 * time.Minute})
	if err != nil {
		return nil, err
	}
	defer sb.Close()
	b := &BootResult{Wall: Millis(time.Since(start))}
	h := &host{sb: sb}
	props, err := h.run(ctx, "systemctl", "show", "--property=UserspaceTimestampMonotonic,FinishTimestampMonotonic,"+
		"GeneratorsStartTimestampMonotonic,GeneratorsFinishTimestampMonotonic,UnitsLoadStartTimestampMonotonic,UnitsLoadFinishTimestampMonotonic")
	if err != nil {
		return nil, fmt.Errorf("%w: %s", err, props)
	}
	ts := parseMonotonic(props)
	b.Userspace = Millis(ts["FinishTimestampMonotonic"] - ts["UserspaceTimestampMonotonic"])
	b.Generators = Millis(ts["GeneratorsFinishTimestampMonotonic"] - ts["GeneratorsStartTimestampMonotonic"])
	b.UnitsLoad = Millis(ts["UnitsLoadFinishTimestampMonotonic"] - ts["UnitsLoadStartTimestampMonotonic"])
	if b.Listening, err = h.count(ctx, "systemctl list-units --state=listening --no-legend --plain 'site-*.socket' | wc -l"); err != nil {
		return nil, err
	}
	if b.Listening != n {
		return nil, fmt.Errorf("booted with %d sites, but %d site sockets are listening", n, b.Listening)
	}
	if b.PID1RSSKiB, _, err = h.pid1Memory(); err != nil {
		return nil, err
	}
	if err := sb.CopyFile(ctx, filepath.Join(o.Bin, "sitectl-bench"), helperPath, 0o755); err != nil {
		return nil, err
	}
	if b.LastSocket, err = timeLastSocketStatus(ctx, h, n); err != nil {
		return nil, err
	}
	b.Poweroff, b.PoweroffTimedOut, err = poweroff(sb.PID(), poweroffTimeout)
	if err != nil {
		return nil, err
	}
	return b, sb.Close()
}

// timeLastSocketStatus finds the site of n whose socket is PID 1's last
// open file and times its status (LastSocketStatus).
func timeLastSocketStatus(ctx context.Context, h *host, n int) (*LastSocketStatus, error) {
	listeners, err := h.run(ctx, "ss", "-Hltne")
	if err != nil {
		return nil, fmt.Errorf("%w: %s", err, listeners)
	}
	files, err := h.run(ctx, "find", "/proc/1/fd", "-mindepth", "1", "-printf", "%f %l\n")
	if err != nil {
		return nil, fmt.Errorf("%w: %s", err, files)
	}
	port, fd, open, err := lastHeldPort(listeners, files, scaleBasePort, scaleBasePort+n)
	if err != nil {
		return nil, err
	}
	r := &LastSocketStatus{Site: scaleSiteName(port - scaleBasePort), FD: fd, OpenFiles: open}
	if out, err := h.run(ctx, "sitectl", "restart", r.Site); err != nil {
		return nil, fmt.Errorf("%w: %s", err, out)
	}
	status := []string{"sitectl", "status", r.Site}
	tr, err := h.timeit(ctx, TimeSpec{Runs: lastSocketRuns, Commands: []TimedCmd{
		{Argv: status},
		{Argv: status, Before: [][]string{{"rm", "-f", "/var/lib/sitectl/sites/" + r.Site + "/held-fds"}}},
	}})
	if err != nil {
		return nil, err
	}
	r.Hinted, r.Unhinted = tr.Stats(0, true), tr.Stats(1, true)
	return r, nil
}

// lastHeldPort reads `ss -Hltne` (listeners) and `find /proc/1/fd -printf
// '%f %l\n'` (files) and returns the port in [from, to) whose listening
// socket is PID 1's highest-numbered open file, that file's number, and
// how many files PID 1 has open.
func lastHeldPort(listeners, files string, from, to int) (port, fd, open int, err error) {
	portOf := map[string]int{}
	for _, line := range strings.Split(listeners, "\n") {
		f := strings.Fields(line)
		if len(f) < 4 {
			continue
		}
		p, perr := strconv.Atoi(f[3][strings.LastIndexByte(f[3], ':')+1:])
		if perr != nil || p < from || p >= to {
			continue
		}
		for _, x := range f[4:] {
			if ino, ok := strings.CutPrefix(x, "ino:"); ok {
				portOf[ino] = p
			}
		}
	}
	fd = -1
	for _, line := range strings.Split(files, "\n") {
		name, target, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		open++
		n, nerr := strconv.Atoi(name)
		ino, isSocket := strings.CutPrefix(target, "socket:[")
		ino, closed := strings.CutSuffix(ino, "]")
		if nerr != nil || !isSocket || !closed || n <= fd {
			continue
		}
		if p, ok := portOf[ino]; ok {
			port, fd = p, n
		}
	}
	if fd < 0 {
		return 0, 0, open, fmt.Errorf("PID 1 holds none of the %d sockets listening on ports %d to %d", len(portOf), from, to-1)
	}
	return port, fd, open, nil
}

// procState is the state field of a /proc/PID/stat line.
func procState(stat string) string {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return ""
	}
	if f := strings.Fields(stat[i+1:]); len(f) > 0 {
		return f[0]
	}
	return ""
}

// parseMonotonic reads KEY=microseconds lines of `systemctl show`.
func parseMonotonic(props string) map[string]time.Duration {
	ts := map[string]time.Duration{}
	for _, line := range strings.Split(props, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), "=")
		if !ok {
			continue
		}
		if us, err := strconv.ParseInt(v, 10, 64); err == nil {
			ts[k] = time.Duration(us) * time.Microsecond
		}
	}
	return ts
}

// sigPoweroff is SIGRTMIN+4, systemd's poweroff request.
const sigPoweroff = syscall.Signal(34 + 4)

// poweroff asks the systemd with host pid pid to power off and waits until
// that process is gone (it execs systemd-shutdown once its units are
// stopped and freed, which then exits).
func poweroff(pid int, timeout time.Duration) (Millis, bool, error) {
	start := time.Now()
	if err := syscall.Kill(pid, sigPoweroff); err != nil {
		return 0, false, fmt.Errorf("asking systemd (pid %d) to power off: %w", pid, err)
	}
	for time.Since(start) < timeout {
		// Gone, or a zombie its parent (unshare) has not reaped yet.
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if errors.Is(err, os.ErrNotExist) || (err == nil && procState(string(b)) == "Z") {
			return Millis(time.Since(start)), false, nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return Millis(time.Since(start)), true, nil
}
