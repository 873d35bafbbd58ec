package main

import (
	"context"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// Machine describes where the benchmark ran.
type Machine struct {
	Nproc       string `json:"nproc"`
	CPU         string `json:"cpu"`
	Free        string `json:"free_h"`
	Kernel      string `json:"kernel"`
	OS          string `json:"os"`
	Systemd     string `json:"systemd"`
	Gunicorn    string `json:"gunicorn"`
	UWSGI       string `json:"uwsgi,omitempty"`
	Python      string `json:"python"`
	Go          string `json:"go"`
	Gnuplot     string `json:"gnuplot"`
	LoadAtStart string `json:"loadavg_at_start"`
	LoadAtEnd   string `json:"loadavg_at_end"`
}

func cmdOut(ctx context.Context, name string, args ...string) string {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil && len(out) == 0 {
		return "(" + name + ": " + err.Error() + ")"
	}
	return strings.TrimRight(string(out), " \n")
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return strings.TrimSpace(l)
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

func describeMachine(ctx context.Context) Machine {
	m := Machine{
		Nproc:       cmdOut(ctx, "nproc"),
		Free:        strings.Trim(cmdOut(ctx, "free", "-h"), "\n"),
		Kernel:      cmdOut(ctx, "uname", "-srm"),
		Systemd:     firstLine(cmdOut(ctx, "systemctl", "--version")),
		Gunicorn:    firstLine(cmdOut(ctx, "gunicorn", "--version")),
		UWSGI:       firstLine(cmdOut(ctx, "uwsgi", "--version")),
		Python:      firstLine(cmdOut(ctx, "python3", "--version")),
		Go:          firstLine(cmdOut(ctx, "go", "version")),
		Gnuplot:     firstLine(cmdOut(ctx, "gnuplot", "--version")),
		LoadAtStart: loadavg(),
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if m.CPU == "" {
		m.CPU = runtime.GOARCH
	}
	if b, err := os.ReadFile("/etc/os-release"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "PRETTY_NAME="); ok {
				m.OS = strings.Trim(v, `"`)
			}
		}
	}
	if b, err := os.ReadFile("/etc/debian_version"); err == nil {
		m.OS += " (debian_version " + strings.TrimSpace(string(b)) + ")"
	}
	return m
}

// cpuTimes are the jiffies of all CPUs from /proc/stat: total and idle
// (idle + iowait).
type cpuTimes struct{ total, idle uint64 }

func readCPUTimes() cpuTimes {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return cpuTimes{}
	}
	return parseCPUTimes(string(b))
}

func parseCPUTimes(text string) cpuTimes {
	var t cpuTimes
	line, _, _ := strings.Cut(text, "\n")
	f := strings.Fields(line)
	if len(f) < 6 || f[0] != "cpu" {
		return t
	}
	for i, v := range f[1:] {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			continue
		}
		if i >= 7 { // guest and guest_nice are already counted in user and nice
			break
		}
		t.total += n
		if i == 3 || i == 4 {
			t.idle += n
		}
	}
	return t
}

// busyPercent is the share of CPU time that was not idle between a and b,
// on all CPUs, in percent: this program, the sandbox, and everything else
// running on the machine.
func busyPercent(a, b cpuTimes) float64 {
	dt := b.total - a.total
	if b.total <= a.total {
		return 0
	}
	return 100 * (1 - float64(b.idle-a.idle)/float64(dt))
}
