package main

import (
	"context"
	"os"
	"os/exec"
	"runtime"
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
