package main

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

// ScaleOptions configure the scale benchmark.
type ScaleOptions struct {
	Sites    []int // ascending; sites are added to one sandbox step by step
	Reps     int   // runs of each timing
	ModeReps int   // switches to maintenance and back
	Log      func(format string, args ...any)
}

// ScaleResult is what was measured with N sites installed, their sockets
// listening and no app running.
type ScaleResult struct {
	N         int    `json:"n"`
	PortRange string `json:"port_range"`
	// FirstDaemonReload is the daemon-reload that loaded the new sites.
	FirstDaemonReload Millis `json:"first_daemon_reload_ms"`
	// SocketStart is `systemctl start --all 'site-*.socket'` after it.
	SocketStart      Millis        `json:"socket_start_ms"`
	ListeningSockets int           `json:"listening_sockets"`
	GeneratorDryrun  DurationStats `json:"generator_dryrun"`
	GeneratorWrite   DurationStats `json:"generator_write"`
	DaemonReload     DurationStats `json:"daemon_reload"`
	SitectlList      DurationStats `json:"sitectl_list_json"`
	SystemctlList    DurationStats `json:"systemctl_list_units"`
	ListedUnits      int           `json:"systemctl_listed_units"`
	ModeSite         string        `json:"mode_site"`
	ModeMaintenance  DurationStats `json:"mode_to_maintenance"`
	ModeNormal       DurationStats `json:"mode_to_normal"`
	Memory           Memory        `json:"memory"`
}

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
	// TCP sockets in use (/proc/net/sockstat, "TCP: inuse"; the network
	// namespace is the host's) and, per socket, the object sizes of the slab
	// caches one listening socket that systemd watches takes (KernelObjects).
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

// scaleSiteName is the name of site i of the scale benchmark.
func scaleSiteName(i int) string { return fmt.Sprintf("site-%04d", i) }

// modeSiteIndex is the site whose mode is switched with n sites: site-0042
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

// findPortRange returns the first port of n consecutive TCP ports on
// 127.0.0.1 below the ephemeral range (so test processes asking the kernel
// for a free port never collide with them) that nothing listens on now.
func findPortRange(n int) (int, error) {
	for base := 21000; base+n <= 32000; base += 1000 {
		free := true
		for p := base; p < base+n && free; p++ {
			l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
			if err != nil {
				free = false
				break
			}
			l.Close()
		}
		if free {
			return base, nil
		}
	}
	return 0, fmt.Errorf("no %d consecutive free TCP ports between 21000 and 32000 on 127.0.0.1", n)
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

// tcpInUse reads "TCP: inuse N" from /proc/net/sockstat.
func tcpInUse() (int, error) {
	b, err := os.ReadFile("/proc/net/sockstat")
	if err != nil {
		return 0, err
	}
	return parseTCPInUse(string(b))
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

// siteTar packs the site files of sites [from, to) into a tar archive.
func siteTar(from, to, basePort int) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for i := from; i < to; i++ {
		data := []byte(scaleSiteFile(basePort + i))
		hdr := &tar.Header{Name: scaleSiteName(i) + ".toml", Mode: 0o644, Size: int64(len(data)), ModTime: time.Now(), Typeflag: tar.TypeReg}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, err
		}
		if _, err := tw.Write(data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// runScale adds sites to a fresh sandbox step by step and measures at each
// step.
func runScale(ctx context.Context, h *host, o ScaleOptions, workDir string) ([]*ScaleResult, error) {
	if len(o.Sites) == 0 {
		return nil, nil
	}
	maxN := o.Sites[len(o.Sites)-1]
	base, err := findPortRange(maxN)
	if err != nil {
		return nil, err
	}
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
	rss0, anon0, err := h.pid1Memory()
	if err != nil {
		return nil, err
	}
	slab0, err := readSlabInfo()
	if err != nil {
		return nil, err
	}
	tcp0, err := tcpInUse()
	if err != nil {
		return nil, err
	}
	o.Log("scale: baseline: systemd VmRSS %d KiB (RssAnon %d KiB); ports %d-%d", rss0, anon0, base, base+maxN-1)

	var out []*ScaleResult
	have := 0
	for _, n := range o.Sites {
		r := &ScaleResult{N: n, PortRange: fmt.Sprintf("%d-%d", base, base+n-1)}
		o.Log("scale: %d sites", n)
		data, err := siteTar(have, n, base)
		if err != nil {
			return out, err
		}
		tarPath := workDir + "/sites.tar"
		if err := os.WriteFile(tarPath, data, 0o600); err != nil {
			return out, err
		}
		if err := h.sb.CopyFile(ctx, tarPath, "/root/sites.tar", 0o600); err != nil {
			return out, err
		}
		if _, err := run("tar", "-C", "/etc/sitectl/sites", "-xf", "/root/sites.tar"); err != nil {
			return out, err
		}
		have = n

		// The reload that loads them, then their sockets.
		tr, err := h.timeit(ctx, TimeSpec{Runs: 1, Commands: []TimedCmd{
			{Argv: []string{"systemctl", "daemon-reload"}},
			{Argv: []string{"systemctl", "start", "--all", "site-*.socket"}},
		}})
		if err != nil {
			return out, err
		}
		for i := range tr.Nanos {
			if e := tr.Errors[i][0]; e != "" {
				return out, errors.New(e)
			}
		}
		r.FirstDaemonReload, r.SocketStart = Millis(tr.Nanos[0][0]), Millis(tr.Nanos[1][0])
		lst, err := run("sh", "-c", "systemctl list-units --state=listening --no-legend --plain 'site-*.socket' | wc -l")
		if err != nil {
			return out, err
		}
		r.ListeningSockets, _ = strconv.Atoi(strings.TrimSpace(lst))
		if r.ListeningSockets != n {
			return out, fmt.Errorf("%d sites, but %d site sockets are listening", n, r.ListeningSockets)
		}

		// Memory, before anything else runs.
		time.Sleep(time.Second)
		m := &r.Memory
		m.PID1RSSBaseKiB, m.PID1AnonBaseKiB = rss0, anon0
		if m.PID1RSSKiB, m.PID1AnonKiB, err = h.pid1Memory(); err != nil {
			return out, err
		}
		m.PerSitePID1KiB = float64(m.PID1RSSKiB-rss0) / float64(n)
		slab, err := readSlabInfo()
		if err != nil {
			return out, err
		}
		tcp, err := tcpInUse()
		if err != nil {
			return out, err
		}
		m.TCPInUseDelta = tcp - tcp0
		m.SlabGrowthBytes = slab.bytes(socketSlabs...) - slab0.bytes(socketSlabs...)
		m.KernelObjects = map[string]int{}
		for _, c := range perSocketCaches {
			if sz := slab[c][1]; sz > 0 {
				m.KernelObjects[c] = int(sz)
				m.KernelPerSocketBytes += int(sz)
			}
		}
		m.KernelSocketBytes = int64(n) * int64(m.KernelPerSocketBytes)
		m.PerSiteKernelBytes = float64(m.KernelPerSocketBytes)
		sizes, err := run("sh", "-c", "find /run/systemd/generator -maxdepth 1 -type f -name 'site-*' -printf '%s\\n'")
		if err != nil {
			return out, err
		}
		for _, f := range strings.Fields(sizes) {
			sz, _ := strconv.ParseInt(f, 10, 64)
			m.GeneratedFiles++
			m.GeneratedBytes += sz
			m.GeneratedTmpfsBytes += (sz + 4095) / 4096 * 4096
		}
		m.PerSiteGeneratedBytes = float64(m.GeneratedTmpfsBytes) / float64(n)

		// The generator alone: printing (--dryrun) and writing into an
		// empty directory on a tmpfs, as under systemd.
		tr, err = h.timeit(ctx, TimeSpec{Runs: o.Reps, Commands: []TimedCmd{
			{Argv: []string{"/usr/lib/systemd/system-generators/sitectl-generator", "--dryrun"}},
			{
				Argv:   []string{"/usr/lib/systemd/system-generators/sitectl-generator", "/run/sitectl-bench-gen"},
				Before: [][]string{{"rm", "-rf", "/run/sitectl-bench-gen"}, {"mkdir", "/run/sitectl-bench-gen"}},
				Env:    []string{"SYSTEMD_LOG_TARGET=console"},
			},
		}})
		if err != nil {
			return out, err
		}
		r.GeneratorDryrun, r.GeneratorWrite = tr.Stats(0, false), tr.Stats(1, false)

		tr, err = h.timeit(ctx, TimeSpec{Runs: o.Reps, Commands: []TimedCmd{{Argv: []string{"systemctl", "daemon-reload"}}}})
		if err != nil {
			return out, err
		}
		r.DaemonReload = tr.Stats(0, false)

		tr, err = h.timeit(ctx, TimeSpec{Runs: o.Reps, Commands: []TimedCmd{
			{Argv: []string{"sitectl", "list", "--json"}},
			{Argv: []string{"systemctl", "list-units", "--all", "--no-pager", "site-*"}},
		}})
		if err != nil {
			return out, err
		}
		r.SitectlList, r.SystemctlList = tr.Stats(0, false), tr.Stats(1, false)
		lu, err := run("sh", "-c", "systemctl list-units --all --no-legend --plain 'site-*' | wc -l")
		if err != nil {
			return out, err
		}
		r.ListedUnits, _ = strconv.Atoi(strings.TrimSpace(lu))

		// One site's mode, there and back.
		r.ModeSite = scaleSiteName(modeSiteIndex(n))
		tr, err = h.timeit(ctx, TimeSpec{Runs: o.ModeReps, Commands: []TimedCmd{
			{Argv: []string{"sitectl", "mode", r.ModeSite, "maintenance"}},
			{Argv: []string{"sitectl", "mode", r.ModeSite, "normal"}},
		}})
		if err != nil {
			return out, err
		}
		r.ModeMaintenance, r.ModeNormal = tr.Stats(0, false), tr.Stats(1, false)
		if _, err := run("systemctl", "stop", "site-"+r.ModeSite+".service"); err != nil {
			return out, err
		}
		o.Log("  generator %.1f ms (dry run %.1f ms), daemon-reload %.0f ms, sitectl list --json %.1f ms vs systemctl list-units %.1f ms, mode switch %.0f/%.0f ms, systemd +%.1f KiB/site",
			r.GeneratorWrite.Median.MS(), r.GeneratorDryrun.Median.MS(), r.DaemonReload.Median.MS(), r.SitectlList.Median.MS(), r.SystemctlList.Median.MS(),
			r.ModeMaintenance.Median.MS(), r.ModeNormal.Median.MS(), m.PerSitePID1KiB)
		for what, d := range map[string]DurationStats{"generator": r.GeneratorWrite, "generator --dryrun": r.GeneratorDryrun,
			"daemon-reload": r.DaemonReload, "sitectl list --json": r.SitectlList, "systemctl list-units": r.SystemctlList,
			"mode to maintenance": r.ModeMaintenance, "mode to normal": r.ModeNormal} {
			if d.Failed > 0 {
				o.Log("  %s failed in %d of %d runs: %s", what, d.Failed, d.Failed+d.Runs, d.Error)
			}
		}
		out = append(out, r)
	}
	return out, nil
}
