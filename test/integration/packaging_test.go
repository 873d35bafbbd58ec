//go:build integration

package integration

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sitectl/sitectl/internal/loadgen"
	"github.com/sitectl/sitectl/test/sandbox"
)

// The two .deb files TestPackageLifecycle installs, the second an upgrade of
// the first. packaging/test sets them to the packages it built and linted.
const (
	debV1Env = "SITECTL_DEB_V1"
	debV2Env = "SITECTL_DEB_V2"
)

const packageTestHowTo = "run packaging/test (builds two versions, lints them, and runs this test), " +
	"or set " + debV1Env + " and " + debV2Env + " to the absolute paths of two .deb files of packaging/build, the second newer: " +
	"packaging/build 0.1.0 && packaging/build 0.1.1 && " +
	debV1Env + "=$PWD/dist/sitectl_0.1.0_amd64.deb " + debV2Env + "=$PWD/dist/sitectl_0.1.1_amd64.deb " +
	"go test -tags integration -run TestPackage ./test/integration/"

// packageDebs returns the two .deb files to test: those named by the
// environment, or, when neither is set (the whole suite, test/run), two
// versions built now with packaging/build.
func packageDebs(t *testing.T) (v1, v2 string) {
	t.Helper()
	v1, v2 = os.Getenv(debV1Env), os.Getenv(debV2Env)
	switch {
	case v1 != "" && v2 != "":
		for _, f := range []string{v1, v2} {
			if !filepath.IsAbs(f) {
				t.Fatalf("%q is not an absolute path (go test runs in the package's directory); %s", f, packageTestHowTo)
			}
			if _, err := os.Stat(f); err != nil {
				t.Fatalf("package to test: %v; %s", err, packageTestHowTo)
			}
		}
		return v1, v2
	case v1 != "" || v2 != "":
		t.Fatalf("only one of %s and %s is set; %s", debV1Env, debV2Env, packageTestHowTo)
	}
	dir, err := os.MkdirTemp("/var/tmp", "sitectl-it-pkg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	build := func(version string) string {
		cmd := exec.Command("../../packaging/build", version)
		cmd.Env = append(os.Environ(), "SITECTL_DIST="+dir)
		out, err := cmd.Output()
		if err != nil {
			var stderr []byte
			if ee, ok := err.(*exec.ExitError); ok {
				stderr = ee.Stderr
			}
			t.Fatalf("%s and %s are not set, and building the packages failed: packaging/build %s: %v\n%s%s\n%s",
				debV1Env, debV2Env, version, err, out, stderr, packageTestHowTo)
		}
		for _, line := range strings.Fields(string(out)) {
			if strings.HasSuffix(line, ".deb") {
				return line
			}
		}
		t.Fatalf("packaging/build %s printed no .deb:\n%s\n%s", version, out, packageTestHowTo)
		return ""
	}
	t.Logf("%s and %s are not set: building 0.1.0 and 0.1.1 with packaging/build", debV1Env, debV2Env)
	return build("0.1.0"), build("0.1.1")
}

// The .deb's whole life on a booted systemd with a site under load: install,
// upgrade with an edited conffile, remove, purge. The upgrade must neither
// restart the running site nor fail one request, the edited conffile must
// survive it, removal must take the site's units away (leaving the running
// app alone: a package script never stops a site), and purge must leave
// nothing of sitectl but the operator's site files and the system group.
func TestPackageLifecycle(t *testing.T) {
	debV1, debV2 := packageDebs(t)

	// A host without sitectl: newHost would copy the binaries in.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	t.Cleanup(cancel)
	h := &host{t: t, sb: sandbox.New(t, sandbox.Options{Name: "packaging"}), ctx: ctx}
	if out, err := h.try("dpkg-query", "-W", "sitectl"); err == nil {
		t.Fatalf("sitectl is already installed on the machine the sandbox overlays (the test needs a machine without it):\n%s", out)
	}
	for _, p := range []string{"/usr/bin/sitectl", "/etc/sitectl", "/var/lib/sitectl"} {
		if _, err := h.try("test", "!", "-e", p); err != nil {
			t.Fatalf("%s exists before the package is installed: the test needs a machine without sitectl", p)
		}
	}
	h.install(filepath.Join(bin, "webapp"), "/usr/local/bin/webapp", 0o755)
	h.install(debV1, "/root/pkg/v1.deb", 0o644)
	h.install(debV2, "/root/pkg/v2.deb", 0o644)
	ver1 := strings.TrimSpace(h.run("dpkg-deb", "-f", "/root/pkg/v1.deb", "Version"))
	ver2 := strings.TrimSpace(h.run("dpkg-deb", "-f", "/root/pkg/v2.deb", "Version"))
	if _, err := h.try("dpkg", "--compare-versions", ver2, "gt", ver1); err != nil {
		t.Fatalf("%s (%s) is not newer than %s (%s); %s", debV2, ver2, debV1, ver1, packageTestHowTo)
	}
	t.Logf("installing %s, then upgrading to %s", ver1, ver2)

	// Install: the scripts create the group and the state directory and
	// reload systemd.
	out := h.run("dpkg", "-i", "/root/pkg/v1.deb")
	t.Logf("dpkg -i %s:\n%s", ver1, out)
	if got := h.installedVersion(); got != ver1 {
		t.Fatalf("installed version %q, want %q", got, ver1)
	}
	if v := h.run("sitectl", "--version"); !strings.Contains(v, ver1) {
		t.Errorf("sitectl --version says %q, want %s", strings.TrimSpace(v), ver1)
	}
	if _, err := h.try("getent", "group", "sitectl-deploy"); err != nil {
		t.Errorf("the group sitectl-deploy was not created: %v", err)
	}
	for _, d := range []string{"/var/lib/sitectl", "/var/lib/sitectl/sites", "/etc/sitectl/sites"} {
		if st := strings.TrimSpace(h.run("stat", "-c", "%F %a %U:%G", d)); st != "directory 755 root:root" {
			t.Errorf("%s: %s, want a directory 755 root:root", d, st)
		}
	}
	if _, err := h.try("sitectl", "check", "--name", "example", "/usr/share/doc/sitectl/examples/example.toml"); err != nil {
		t.Errorf("the packaged example site file does not pass sitectl check: %v", err)
	}
	// The manual: commands in section 1, the site file in 5, the generator
	// and the verbs the units run in 8.
	for _, p := range []string{"/usr/share/man/man1/sitectl.1.gz", "/usr/share/man/man1/sitectl-mode.1.gz",
		"/usr/share/man/man5/sitectl.toml.5.gz", "/usr/share/man/man8/sitectl-generator.8.gz",
		"/usr/share/man/man8/sitectl-launch.8.gz"} {
		if _, err := h.try("test", "-f", p); err != nil {
			t.Errorf("the package has no %s", p)
		}
	}
	if _, err := h.try("test", "!", "-e", "/usr/share/man/man1/sitectl-launch.1.gz"); err != nil {
		t.Errorf("the package has a section-1 page for the internal verb launch")
	}
	if out := h.run("ls", "-A", "/etc/sitectl/sites"); strings.TrimSpace(out) != "" {
		t.Errorf("the package put site files in place: %s", out)
	}
	h.run("sh", "-c", "echo '# edited by the operator' >> /etc/sitectl/README")

	// A site, started by its first request, then under load.
	port := freePort(t)
	h.writeSite("web", goSite(port, ""))
	h.run("systemctl", "daemon-reload")
	h.run("systemctl", "start", "site-web.socket")
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	pid := getReply(t, url).PID
	mainPID := h.show("site-web.service", "MainPID")["MainPID"]
	if mainPID != fmt.Sprint(pid) {
		t.Fatalf("the app answered from pid %d, but the service's main PID is %s", pid, mainPID)
	}

	lctx, stopLoad := context.WithCancel(ctx)
	done := make(chan []loadgen.Result)
	go func() { done <- loadgen.Run(lctx, loadgen.Config{URL: url, Rate: 100, Duration: 3 * time.Minute}) }()
	time.Sleep(time.Second)
	start := time.Now()
	out = h.run("dpkg", "-i", "/root/pkg/v2.deb")
	upgradeTook := time.Since(start)
	time.Sleep(time.Second)
	stopLoad()
	res := <-done
	t.Logf("dpkg -i %s (upgrade, %.1fs):\n%s", ver2, upgradeTook.Seconds(), out)

	s := loadgen.Summarize(res)
	t.Logf("site during the upgrade at 100 req/s: %v", s)
	if s.Failed != 0 {
		for _, f := range loadgen.Failures(res)[:min(5, s.Failed)] {
			t.Logf("failed at %s: %s %s", f.Start.Format("15:04:05.000"), f.Outcome, f.Detail)
		}
		t.Errorf("%d of %d requests failed across the upgrade", s.Failed, s.Requests)
	}
	if s.Requests < 150 {
		t.Errorf("only %d requests were sent across the upgrade", s.Requests)
	}
	if got := h.installedVersion(); got != ver2 {
		t.Errorf("after the upgrade the installed version is %q, want %q", got, ver2)
	}
	if v := h.run("sitectl", "--version"); !strings.Contains(v, ver2) {
		t.Errorf("after the upgrade sitectl --version says %q, want %s", strings.TrimSpace(v), ver2)
	}
	p := h.show("site-web.service", "MainPID", "NRestarts", "ActiveState", "NeedDaemonReload")
	if p["MainPID"] != mainPID || p["NRestarts"] != "0" || p["ActiveState"] != "active" {
		t.Errorf("the upgrade touched the running site: main PID %s → %s, restarts %s, state %s",
			mainPID, p["MainPID"], p["NRestarts"], p["ActiveState"])
	}
	if p["NeedDaemonReload"] != "no" {
		t.Errorf("after the upgrade systemd was not reloaded: NeedDaemonReload=%s", p["NeedDaemonReload"])
	}
	if readme := h.run("cat", "/etc/sitectl/README"); !strings.Contains(readme, "# edited by the operator") {
		t.Errorf("the edited conffile /etc/sitectl/README did not survive the upgrade:\n%s", readme)
	}
	if _, err := h.try("sh", "-c", "ls /etc/sitectl/README.dpkg-* 2>/dev/null | grep -q ."); err == nil {
		t.Errorf("the upgrade left conffile copies: %s", h.run("sh", "-c", "ls /etc/sitectl/"))
	}

	// Remove: the generator goes, daemon-reload takes the site's units away;
	// the running app is left alone.
	out = h.run("dpkg", "-r", "sitectl")
	t.Logf("dpkg -r:\n%s", out)
	for _, f := range []string{"/usr/bin/sitectl", "/usr/lib/systemd/system-generators/sitectl-generator"} {
		if _, err := h.try("test", "!", "-e", f); err != nil {
			t.Errorf("%s is still there after dpkg -r", f)
		}
	}
	// (list-unit-files exits 1 when nothing matches.)
	if out, _ := h.try("systemctl", "list-unit-files", "site-*", "--no-legend"); strings.Contains(out, "site-web") {
		t.Errorf("the site's unit files are still there after removal:\n%s", out)
	}
	if _, err := h.try("sh", "-c", "ls /run/systemd/generator/site-web* 2>/dev/null | grep -q ."); err == nil {
		t.Errorf("generated units are left in /run/systemd/generator after removal")
	}
	p = h.show("site-web.service", "LoadState", "ActiveState", "MainPID")
	if p["LoadState"] != "not-found" {
		t.Errorf("after removal site-web.service is %s, want not-found", p["LoadState"])
	}
	if p["ActiveState"] != "active" || p["MainPID"] != mainPID {
		t.Errorf("removing the package stopped or restarted the running site: %v (main PID was %s)", p, mainPID)
	}
	if h.run("cat", "/etc/sitectl/sites/web.toml") != goSite(port, "") {
		t.Errorf("removal changed the operator's site file")
	}
	// The operator stops the orphaned site; then nothing of it is left.
	h.run("systemctl", "stop", "site-web.socket", "site-web.service")
	h.try("systemctl", "reset-failed", "site-web.socket", "site-web.service")
	if out, _ := h.try("systemctl", "list-units", "--all", "--no-legend", "site-*"); strings.TrimSpace(out) != "" {
		t.Errorf("site units remain after removal, stop and reset-failed:\n%s", out)
	}
	if _, err := h.try("test", "-d", "/var/lib/sitectl/sites/web"); err != nil {
		t.Errorf("removal (not purge) deleted the site's state in /var/lib/sitectl")
	}

	// Purge: state and the conffile go; the operator's site file stays.
	out = h.run("dpkg", "-P", "sitectl")
	t.Logf("dpkg -P:\n%s", out)
	h.assertNoSitectl()
	if h.run("cat", "/etc/sitectl/sites/web.toml") != goSite(port, "") {
		t.Errorf("purge changed or removed the operator's site file")
	}
	if _, err := h.try("test", "!", "-e", "/etc/sitectl/README"); err != nil {
		t.Errorf("purge left the conffile /etc/sitectl/README")
	}
	if _, err := h.try("getent", "group", "sitectl-deploy"); err == nil {
		t.Logf("the group sitectl-deploy remains after purge, as Debian leaves system groups")
	}

	// Install again after the purge, without site files, and purge: then
	// /etc/sitectl goes too.
	h.run("rm", "/etc/sitectl/sites/web.toml")
	h.run("dpkg", "-i", "/root/pkg/v2.deb")
	if got := h.installedVersion(); got != ver2 {
		t.Errorf("reinstalling after purge: installed version %q, want %q", got, ver2)
	}
	if _, err := h.try("test", "-d", "/var/lib/sitectl/sites"); err != nil {
		t.Errorf("reinstalling after purge did not recreate /var/lib/sitectl/sites")
	}
	h.run("dpkg", "-P", "sitectl")
	h.assertNoSitectl()
	if _, err := h.try("test", "!", "-e", "/etc/sitectl"); err != nil {
		t.Errorf("purge without site files left /etc/sitectl: %s", h.run("find", "/etc/sitectl"))
	}
	if st := h.run("systemctl", "is-system-running"); strings.TrimSpace(st) != "running" {
		t.Errorf("system state after the package's life: %s", st)
	}
}

// installedVersion is the installed version of the sitectl package, or "".
func (h *host) installedVersion() string {
	h.t.Helper()
	out, err := h.try("dpkg-query", "-W", "-f", "${db:Status-Abbrev}${Version}", "sitectl")
	if err != nil || !strings.HasPrefix(out, "ii ") {
		return ""
	}
	return strings.TrimSpace(strings.TrimPrefix(out, "ii "))
}

// assertNoSitectl checks that nothing the package installed or created is
// left (but the group and the operator's site files, which are not checked).
func (h *host) assertNoSitectl() {
	h.t.Helper()
	if out, err := h.try("dpkg", "-L", "sitectl"); err == nil {
		h.t.Errorf("dpkg -L sitectl still lists files after purge:\n%s", out)
	}
	if out, err := h.try("dpkg-query", "-W", "-f", "${db:Status-Abbrev}", "sitectl"); err == nil && strings.TrimSpace(out) != "" && !strings.HasPrefix(out, "un") {
		h.t.Errorf("dpkg still knows sitectl after purge: %q", out)
	}
	for _, p := range []string{
		"/usr/bin/sitectl",
		"/usr/lib/systemd/system-generators/sitectl-generator",
		"/usr/lib/sysusers.d/sitectl.conf",
		"/usr/lib/tmpfiles.d/sitectl.conf",
		"/usr/share/polkit-1/rules.d/50-sitectl.rules",
		"/usr/share/man/man1/sitectl.1.gz",
		"/usr/share/man/man5/sitectl.toml.5.gz",
		"/usr/share/man/man8/sitectl-generator.8.gz",
		"/usr/share/bash-completion/completions/sitectl",
		"/usr/share/zsh/vendor-completions/_sitectl",
		"/usr/share/fish/vendor_completions.d/sitectl.fish",
		"/usr/share/doc/sitectl",
		"/usr/share/lintian/overrides/sitectl",
		"/var/lib/sitectl",
		"/etc/sitectl/README",
	} {
		if _, err := h.try("test", "!", "-e", p); err != nil {
			h.t.Errorf("%s is still there after purge", p)
		}
	}
}
