package main

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/sitectl/sitectl/test/sandbox"
)

// systemd's floor for a repeated daemon-reload (issue 16.1): what the same
// reload costs systemd without sitectl, timed side by side with sitectl's.

// FloorResult is the repeated daemon-reload of two more sandboxes, each
// with as many units as the step's sites have, timed alternately with the
// scale sandbox's own: reload i of each comes before reload i+1 of any, so
// that the machine's moments hit the three alike. The same sockets listen
// in all three: in ScaleResult.Floor, before the step's new sockets start,
// those of the sites of the steps before (an active unit costs a reload
// more than one that never started); in ScaleResult.FloorListening, after
// the scale sandbox was measured, every site's.
type FloorResult struct {
	// Sitectl is the scale sandbox's reloads in this alternation. In
	// ScaleResult.Floor they are ScaleResult.DaemonReloadIdle (and absent
	// from runs before 7 December 2026); in FloorListening they come after
	// ScaleResult.DaemonReload, which is timed alone.
	Sitectl    DurationStats `json:"sitectl_sites"`
	SitectlCPU DurationStats `json:"sitectl_sites_pid1_cpu"`
	// Same: the units sitectl's generator wrote for the step's sites, byte
	// for byte, which a generator of the sandbox copies into place at
	// every reload (`cp -a`: floorGenerator), in a sandbox that has no
	// site file (sitectl's generator writes nothing there): systemd's cost
	// for these units coming from a generator, as sitectl's do (systemd
	// removes a generator's last output at every reload), without
	// sitectl's work.
	Same    DurationStats `json:"same_units"`
	SameCPU DurationStats `json:"same_units_pid1_cpu"`
	// Plain: the same names, slices and listeners, each socket reduced to
	// Description=, ListenStream= and Slice= and each service to
	// Description=, ExecStart=/bin/true and Slice=, copied into place in
	// the same way: a plain socket and service pair per site, what any two
	// units per site cost.
	Plain    DurationStats `json:"plain_pairs"`
	PlainCPU DurationStats `json:"plain_pairs_pid1_cpu"`
	// Units is how many unit files each of the two has (sockets, services
	// and slices; not the links).
	Units int `json:"units"`
	// Listening is how many of the sites' sockets listened in each of the
	// three.
	Listening int `json:"listening"`
}

// floorUnits reads what sitectl's generator writes for the sites of h (run
// by hand into a scratch directory, as systemd runs it) as a tar archive.
func floorUnits(ctx context.Context, h *host) ([]byte, error) {
	const dir = "/run/sitectl-bench-floor"
	script := "rm -rf " + dir + " && mkdir " + dir +
		" && SYSTEMD_LOG_TARGET=console /usr/lib/systemd/system-generators/sitectl-generator " + dir + " >&2" +
		" && tar -C " + dir + " -cf - . && rm -rf " + dir
	cmd := h.sb.Command(ctx, "sh", "-c", script)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("the generator's units for the floor: %w: %s", err, strings.TrimSpace(errb.String()))
	}
	return out.Bytes(), nil
}

// floorTars makes, from the generator's units (a tar archive of its output
// directory), the archives of the units that the two floor sandboxes'
// generators copy into place: the units as they are, and the plain pairs. It
// returns how many unit files each has.
func floorTars(generated []byte) (same, plain []byte, units int, err error) {
	st, pt := newTar(), newTar()
	tr := tar.NewReader(bytes.NewReader(generated))
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, nil, 0, fmt.Errorf("the generator's units: %w", err)
		}
		name := strings.TrimPrefix(hdr.Name, "./")
		switch hdr.Typeflag {
		case tar.TypeDir:
			if name == "" {
				continue
			}
			name = strings.TrimSuffix(name, "/")
			if err := st.dir(name); err != nil {
				return nil, nil, 0, err
			}
			if err := pt.dir(name); err != nil {
				return nil, nil, 0, err
			}
		case tar.TypeSymlink:
			if err := st.link(name, hdr.Linkname); err != nil {
				return nil, nil, 0, err
			}
			if err := pt.link(name, hdr.Linkname); err != nil {
				return nil, nil, 0, err
			}
		case tar.TypeReg:
			data, err := io.ReadAll(io.LimitReader(tr, 1<<20))
			if err != nil {
				return nil, nil, 0, err
			}
			if err := st.add(name, data, 0o644); err != nil {
				return nil, nil, 0, err
			}
			reduced, err := plainUnit(name, data)
			if err != nil {
				return nil, nil, 0, err
			}
			if err := pt.add(name, reduced, 0o644); err != nil {
				return nil, nil, 0, err
			}
			units++
		default:
			return nil, nil, 0, fmt.Errorf("the generator's units: %s is neither a file, a directory nor a link", name)
		}
	}
	if units == 0 {
		return nil, nil, 0, errors.New("the generator wrote no unit")
	}
	if same, err = st.bytes(); err != nil {
		return nil, nil, 0, err
	}
	if plain, err = pt.bytes(); err != nil {
		return nil, nil, 0, err
	}
	return same, plain, units, nil
}

// plainUnit reduces one generated unit to a plain pair's directives: a
// socket keeps its description, listeners and slice; a service gets its
// description, its slice and ExecStart=/bin/true; anything else (the
// slices) stays as it is.
func plainUnit(name string, data []byte) ([]byte, error) {
	var keep func(key string) bool
	var add string
	switch filepath.Ext(name) {
	case ".socket":
		keep = func(k string) bool { return k == "Description" || k == "ListenStream" || k == "Slice" }
	case ".service":
		keep = func(k string) bool { return k == "Description" || k == "Slice" }
		add = "ExecStart=/bin/true\n"
	default:
		return data, nil
	}
	var b bytes.Buffer
	sc := bufio.NewScanner(bytes.NewReader(data))
	kept := 0
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "[") {
			b.WriteString(line + "\n")
			if line == "[Service]" {
				b.WriteString(add)
			}
			continue
		}
		if k, _, ok := strings.Cut(line, "="); ok && keep(k) {
			b.WriteString(line + "\n")
			kept++
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if kept < 2 {
		return nil, fmt.Errorf("%s: no description or slice to keep in a plain pair", name)
	}
	return b.Bytes(), nil
}

// floorUnitsDir is where a floor sandbox keeps its units, which
// floorGenerator copies into place at every daemon-reload.
const floorUnitsDir = "/usr/local/lib/sitectl-bench-floor"

// floorGenerator is the generator of a floor sandbox: it copies the units
// into systemd's "normal" generator directory, as a generator that knows
// its output costs nothing to work out would.
const floorGenerator = "#!/bin/sh\nexec cp -a " + floorUnitsDir + "/. \"$1\"/\n"

// bootFloor boots a sandbox without site files, in a network namespace of
// its own, unpacks units (a tar archive) for floorGenerator, loads them
// with one daemon-reload, as the scale sandbox loads a step's sites, and
// starts the sockets of sites [0, listening), as the scale sandbox
// started them.
func bootFloor(ctx context.Context, name string, units []byte, listening int, o ScaleOptions, workDir string, log io.Writer) (*host, error) {
	nn, _, err := freeNetNS(o.floorNet)
	if err != nil {
		return nil, err
	}
	h, err := bootHostWith(ctx, sandbox.Options{Name: name, Log: log, NetNS: nn}, o.Bin, o.Root)
	if err != nil {
		return nil, err
	}
	tarPath := filepath.Join(workDir, name+".tar")
	if err := os.WriteFile(tarPath, units, 0o600); err != nil {
		h.Close()
		return nil, err
	}
	defer os.Remove(tarPath)
	if err := h.sb.CopyFile(ctx, tarPath, "/root/floor.tar", 0o600); err != nil {
		h.Close()
		return nil, err
	}
	if out, err := h.run(ctx, "sh", "-c", "mkdir -p "+floorUnitsDir+" && tar -C "+floorUnitsDir+" -xf /root/floor.tar"); err != nil {
		h.Close()
		return nil, fmt.Errorf("%s: %w: %s", name, err, out)
	}
	if err := h.sb.WriteFile(ctx, "/etc/systemd/system-generators/sitectl-bench-floor", []byte(floorGenerator), 0o755); err != nil {
		h.Close()
		return nil, err
	}
	var first reloadTimes
	if err := first.add(ctx, h); err != nil {
		h.Close()
		return nil, err
	}
	if len(first.failed) > 0 {
		h.Close()
		return nil, fmt.Errorf("%s: the daemon-reload that loads the units: %s", name, first.failed[0])
	}
	if listening > 0 {
		start := fmt.Sprintf("seq -f 'site-%%05g' 0 %d | sed 's/.*/site-&.socket/' | xargs systemctl start", listening-1)
		if out, err := h.run(ctx, "sh", "-c", start); err != nil {
			h.Close()
			return nil, fmt.Errorf("%s: starting the sockets of the first %d sites: %w: %s", name, listening, err, out)
		}
	}
	return h, nil
}

// listeningSites counts the sites' sockets that listen in h.
func listeningSites(ctx context.Context, h *host) (int, error) {
	return h.count(ctx, "systemctl list-units --state=listening --no-legend --plain 'site-*.socket' | wc -l")
}

// reloadsBesideFloor times the repeated daemon-reload of the scale sandbox
// h, whose step's sites are loaded and whose first listening sites' sockets
// listen, alternately with the two floor sandboxes (FloorResult), booted
// for it with as many sockets listening and closed after it, reps times
// each.
func reloadsBesideFloor(ctx context.Context, h *host, o ScaleOptions, listening int, workDir string, log io.Writer) (*FloorResult, error) {
	generated, err := floorUnits(ctx, h)
	if err != nil {
		return nil, err
	}
	sameTar, plainTar, units, err := floorTars(generated)
	if err != nil {
		return nil, err
	}
	same, err := bootFloor(ctx, "bench-floor-same", sameTar, listening, o, workDir, log)
	if err != nil {
		return nil, err
	}
	defer same.Close()
	plain, err := bootFloor(ctx, "bench-floor-plain", plainTar, listening, o, workDir, log)
	if err != nil {
		return nil, err
	}
	defer plain.Close()
	// Each must have loaded as many units as the scale sandbox has of its
	// sites, and listen on as many of their sockets, or the comparison
	// compares nothing.
	const loaded = "systemctl list-units --all --no-legend --plain 'site-*' | wc -l"
	want, err := h.count(ctx, loaded)
	if err != nil {
		return nil, err
	}
	for _, x := range []*host{h, same, plain} {
		got, err := x.count(ctx, loaded)
		if err != nil {
			return nil, err
		}
		if got != want {
			return nil, fmt.Errorf("%s loaded %d of the sites' units, the scale sandbox %d", x.sb.Name(), got, want)
		}
		if got, err = listeningSites(ctx, x); err != nil {
			return nil, err
		}
		if got != listening {
			return nil, fmt.Errorf("%s: %d of the sites' sockets listen, want %d", x.sb.Name(), got, listening)
		}
	}
	var sitectl, sameT, plainT reloadTimes
	for i := 0; i < o.Reps; i++ {
		for _, x := range []struct {
			h  *host
			rt *reloadTimes
		}{{h, &sitectl}, {same, &sameT}, {plain, &plainT}} {
			if err := x.rt.add(ctx, x.h); err != nil {
				return nil, err
			}
		}
	}
	f := &FloorResult{Units: units, Listening: listening}
	f.Sitectl, f.SitectlCPU = sitectl.stats()
	f.Same, f.SameCPU = sameT.stats()
	f.Plain, f.PlainCPU = plainT.stats()
	o.Log("  repeated daemon-reload, %d sockets listening: sitectl's sites %s, the same units without sitectl %s, plain pairs %s",
		listening, reloadText(f.Sitectl, f.SitectlCPU, "systemd's CPU"), reloadText(f.Same, f.SameCPU, "systemd's CPU"), reloadText(f.Plain, f.PlainCPU, "systemd's CPU"))
	if f.Plain.Failed > 0 {
		o.Log("  without sitectl, the first failure: %s", f.Plain.Error)
	}
	if err := same.Close(); err != nil {
		return f, err
	}
	return f, plain.Close()
}
