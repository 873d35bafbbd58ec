// Command demo shows sitectl on a real systemd in under a minute: it builds
// sitectl, boots a throwaway systemd in new namespaces (nothing on this host
// changes), installs an example site, sends it 100 requests a second without
// keep-alive, restarts the site three times in the middle, and shows that no
// request was lost. It needs root.
//
//	go run ./test/demo
package main

import (
	"context"
	_ "embed"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/sitectl/sitectl/internal/loadgen"
	"github.com/sitectl/sitectl/test/sandbox"
)

//go:embed hello.toml
var siteFile string

const url = "http://127.0.0.1:18380/"

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "demo: error:", err)
		sandbox.CloseAll()
		os.Exit(1)
	}
}

func step(format string, args ...any) { fmt.Printf("==> "+format+"\n", args...) }

func run() error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("the demo boots its own systemd in new namespaces and needs root")
	}
	sandbox.HandleSignals()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	step("building sitectl, its generator and the demo app")
	dir, err := os.MkdirTemp("/var/tmp", "sitectl-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	for _, pkg := range []string{"./cmd/sitectl", "./cmd/sitectl-generator", "./test/apps/webapp"} {
		cmd := exec.CommandContext(ctx, "go", "build", "-o", filepath.Join(dir, filepath.Base(pkg)), pkg)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("building %s: %w\n%s", pkg, err, out)
		}
	}

	step("booting a throwaway systemd (PID 1 of new namespaces, on an overlay of /)")
	start := time.Now()
	sb, err := sandbox.Boot(ctx, sandbox.Options{Name: "demo"})
	if err != nil {
		return err
	}
	defer sb.Close()
	fmt.Printf("    systemd is running after %s\n", time.Since(start).Round(100*time.Millisecond))

	step("installing sitectl and the site file /etc/sitectl/sites/hello.toml")
	for _, f := range [][2]string{
		{"sitectl", "/usr/bin/sitectl"},
		{"sitectl-generator", "/usr/lib/systemd/system-generators/sitectl-generator"},
		{"webapp", "/usr/local/bin/webapp"},
	} {
		if err := sb.CopyFile(ctx, filepath.Join(dir, f[0]), f[1], 0o755); err != nil {
			return err
		}
	}
	if err := sb.WriteFile(ctx, "/etc/sitectl/sites/hello.toml", []byte(siteFile), 0o644); err != nil {
		return err
	}
	sh := func(args ...string) (string, error) {
		fmt.Printf("    # %s\n", strings.Join(args, " "))
		return sb.Run(ctx, args[0], args[1:]...)
	}
	if out, err := sh("sitectl", "check", "/etc/sitectl/sites/hello.toml"); err != nil {
		return fmt.Errorf("%w\n%s", err, out)
	}
	if _, err := sh("systemctl", "daemon-reload"); err != nil {
		return err
	}
	out, err := sh("systemctl", "list-unit-files", "site-*", "--no-legend")
	if err != nil {
		return err
	}
	fmt.Print(indent(out))
	if _, err := sh("systemctl", "start", "site-hello.socket"); err != nil {
		return err
	}

	step("sending 100 requests/s (no keep-alive) for 8 s; restarting the site 3 times meanwhile")
	done := make(chan []loadgen.Result)
	go func() { done <- loadgen.Run(ctx, loadgen.Config{URL: url, Rate: 100, Duration: 8 * time.Second}) }()
	for i := 1; i <= 3; i++ {
		time.Sleep(2 * time.Second)
		t0 := time.Now()
		if out, err := sh("systemctl", "restart", "site-hello.service"); err != nil {
			return fmt.Errorf("%w\n%s", err, out)
		}
		pid, _ := sb.Run(ctx, "systemctl", "show", "-p", "MainPID", "--value", "site-hello.service")
		fmt.Printf("    restart %d took %s, new main PID %s\n", i, time.Since(t0).Round(time.Millisecond), strings.TrimSpace(pid))
	}
	res := <-done
	s := loadgen.Summarize(res)

	step("result")
	fmt.Printf("    %s\n", s)
	status, _ := sb.Run(ctx, "systemctl", "status", "--no-pager", "--lines=0", "site-hello.service")
	fmt.Print(indent(status))
	if s.Failed > 0 {
		return fmt.Errorf("%d of %d requests failed", s.Failed, s.Requests)
	}
	fmt.Printf("\nAll %d requests succeeded across 3 restarts: systemd held the socket, so\n"+
		"connections made during a restart waited in the backlog instead of being refused.\n", s.Requests)
	step("powering the sandbox off")
	return nil
}

func indent(s string) string {
	var b strings.Builder
	for _, l := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		b.WriteString("    " + l + "\n")
	}
	return b.String()
}
