// Package scripts_test runs the deb maintainer scripts with the commands they
// call replaced by ones that only log, on a host where systemd runs (as root,
// in a mount namespace of its own with /run/systemd/system made up), so that
// what each script does to the host can be read from the log.
package scripts_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// logged are the commands the scripts call that act on the system: each is
// replaced by one that logs its name and arguments.
var logged = []string{"systemctl", "deb-systemd-helper", "deb-systemd-invoke",
	"systemd-sysusers", "systemd-tmpfiles", "rm", "rmdir", "sitectl"}

// runScript runs the deb script name with args, DPKG_ROOT set to dpkgRoot
// (unset when ""), on a host where systemd runs, and returns the commands
// it called, one a line.
func runScript(t *testing.T, name, dpkgRoot string, args ...string) []string {
	t.Helper()
	lines, _ := runScriptWith(t, nil, name, dpkgRoot, args...)
	return lines
}

// runScriptWith is runScript with some of the logging stand-ins replaced by
// the shell scripts of fakes (by command name). It returns the commands
// logged and what the script printed.
func runScriptWith(t *testing.T, fakes map[string]string, name, dpkgRoot string, args ...string) ([]string, string) {
	t.Helper()
	return runScriptEnv(t, fakes, nil, "deb", name, dpkgRoot, args...)
}

// runScriptEnv is runScriptWith of packaging's kind's (deb, rpm) script
// with env added to the script's environment.
func runScriptEnv(t *testing.T, fakes map[string]string, env []string, kind, name, dpkgRoot string, args ...string) ([]string, string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: the scripts run where /run/systemd/system exists, in a mount namespace of their own")
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("needs unshare (util-linux)")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	log := filepath.Join(dir, "log")
	for _, c := range logged {
		fake := "#!/bin/sh\necho \"" + c + " $*\" >>\"$SCRIPT_LOG\"\n" + fakes[c]
		if err := os.WriteFile(filepath.Join(bin, c), []byte(fake), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	script, err := filepath.Abs(filepath.Join(kind, name))
	if err != nil {
		t.Fatal(err)
	}
	// A tmpfs on /run in a private mount namespace: systemd "runs" for
	// the script, and nothing of the host's /run is touched.
	cmd := exec.Command("unshare", "--mount", "--propagation", "private", "sh", "-c",
		`mount -t tmpfs sitectl-test /run && mkdir -p /run/systemd/system && exec sh "$@"`, "sh", script)
	cmd.Args = append(cmd.Args, args...)
	cmd.Env = append([]string{"PATH=" + bin + ":/usr/sbin:/usr/bin:/sbin:/bin", "SCRIPT_LOG=" + log}, env...)
	if dpkgRoot != "" {
		cmd.Env = append(cmd.Env, "DPKG_ROOT="+dpkgRoot)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	data, err := os.ReadFile(log)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSpace(string(data)), "\n"), string(out)
}

// A package installed into another root with scripts that run outside it
// (dpkg --root --force-script-chrootless: DPKG_ROOT is that root, as
// mmdebstrap's chrootless mode does) must not act on the host's systemd,
// nor on the host's files: purging sitectl from an image being built must
// not delete the host's /var/lib/sitectl, nor stop, restart or reload the
// host's units. debhelper's scripts skip systemctl and deb-systemd-invoke
// when DPKG_ROOT is set, for the same reason.
func TestDebScriptsKeepToDpkgRoot(t *testing.T) {
	root := t.TempDir()
	for _, run := range []struct {
		script string
		args   []string
	}{
		{"postinst", []string{"configure", ""}},
		{"postinst", []string{"configure", "0.1.0"}},
		{"prerm", []string{"remove"}},
		{"postrm", []string{"remove"}},
		{"postrm", []string{"purge"}},
	} {
		for _, line := range runScript(t, run.script, root, run.args...) {
			what := run.script + " " + strings.Join(run.args, " ")
			cmd, rest, _ := strings.Cut(line, " ")
			switch cmd {
			case "systemctl", "deb-systemd-invoke":
				t.Errorf("%s with DPKG_ROOT=%s acts on the host's systemd: %s", what, root, line)
			case "systemd-sysusers", "systemd-tmpfiles":
				if !strings.Contains(rest, "--root="+root) {
					t.Errorf("%s with DPKG_ROOT=%s runs %q without --root", what, root, line)
				}
			case "rm", "rmdir":
				path := rest[strings.LastIndex(rest, " ")+1:]
				if !strings.HasPrefix(path, root+"/") {
					t.Errorf("%s with DPKG_ROOT=%s removes the host's %s: %s", what, root, path, line)
				}
			}
		}
	}
	purge := strings.Join(runScript(t, "postrm", root, "purge"), "\n")
	if !strings.Contains(purge, "rm -rf "+root+"/var/lib/sitectl") {
		t.Errorf("postrm purge with DPKG_ROOT=%s does not remove the state under it:\n%s", root, purge)
	}
}

// Without DPKG_ROOT, on a host where systemd runs, the scripts reload
// systemd and start, restart or stop the state socket, and purge removes
// the state of this host.
func TestDebScriptsActOnTheRunningSystemd(t *testing.T) {
	for _, want := range []struct {
		script string
		args   []string
		lines  []string
	}{
		{"postinst", []string{"configure", ""}, []string{"systemctl --system daemon-reload", "deb-systemd-invoke start sitectl-state.socket"}},
		{"postinst", []string{"configure", "0.1.0"}, []string{"systemctl --system daemon-reload", "deb-systemd-invoke restart sitectl-state.socket"}},
		{"prerm", []string{"remove"}, []string{"deb-systemd-invoke stop sitectl-state.socket"}},
		{"postrm", []string{"remove"}, []string{"systemctl --system daemon-reload"}},
		{"postrm", []string{"purge"}, []string{"rm -rf /var/lib/sitectl", "rmdir /etc/sitectl/sites", "rmdir /etc/sitectl"}},
	} {
		got := runScript(t, want.script, "", want.args...)
		for _, l := range want.lines {
			found := false
			for _, g := range got {
				found = found || g == l
			}
			if !found {
				t.Errorf("%s %s does not run %q; it runs:\n%s", want.script, strings.Join(want.args, " "), l, strings.Join(got, "\n"))
			}
		}
	}
}

// The daemon-reload of an install or upgrade is what makes the new
// generator write every site's units. When systemctl fails, or systemd
// answers the reload but does not do it (PID 1 short of descriptors with
// thousands of sites, docs/scale.md: /run/systemd/generator is then the
// same directory), the sites keep the previous version's units: the
// script says so, rather than let the upgrade look done. It still exits 0,
// as debhelper's scripts do: a failed configure would not bring the units
// back either.
func TestDebPostinstReportsAReloadNotDone(t *testing.T) {
	// systemd ran its generators before the upgrade.
	const generatorsRan = "mkdir -p /run/systemd/generator\n"
	for _, c := range []struct {
		what      string
		systemctl string
		warn      string // "" when the reload was done
	}{
		{"a reload done", "/bin/rm -rf /run/systemd/generator && mkdir /run/systemd/generator\n", ""},
		{"a reload that failed", "echo 'Failed to reload daemon: Connection timed out' >&2; exit 1\n", "daemon-reload failed"},
		{"a reload answered, not done", "exit 0\n", "did not run its generators"},
	} {
		fakes := map[string]string{
			"systemd-sysusers": generatorsRan,
			"systemctl":        "[ \"$1 $2\" = \"--system daemon-reload\" ] || exit 0\n" + c.systemctl,
		}
		for _, args := range [][]string{{"configure", ""}, {"configure", "0.1.0"}} {
			_, out := runScriptWith(t, fakes, "postinst", "", args...)
			switch {
			case c.warn == "" && strings.Contains(out, "sitectl:"):
				t.Errorf("postinst %s, %s: it warns:\n%s", strings.Join(args, " "), c.what, out)
			case c.warn != "" && !strings.Contains(out, c.warn):
				t.Errorf("postinst %s, %s: it does not say %q, only:\n%s", strings.Join(args, " "), c.what, c.warn, out)
			case c.warn != "" && !strings.Contains(out, "systemctl daemon-reload"):
				t.Errorf("postinst %s, %s: it does not say what to run:\n%s", strings.Join(args, " "), c.what, out)
			}
		}
	}
}

// An upgrade whose checks refuse a site file that the last version
// accepted leaves that site on its last good copy, or, when the copy is
// refused too, without units from the reload on: the site serves on until
// it stops, and a reboot loses it. postinst and %post say so, with the
// mistakes, at the upgrade, and stay quiet when every file passes or
// there is none.
func TestPostinstSaysWhichSiteFilesThisVersionRefuses(t *testing.T) {
	const mistake = "/etc/sitectl/sites/shop.toml:3:1: credentials.key: refused"
	for _, c := range []struct {
		what    string
		files   []string
		sitectl string
		warn    bool
	}{
		{"no site files", nil, "exit 1\n", false},
		{"files that pass", []string{"shop.toml", "blog.toml"}, "exit 0\n", false},
		{"a file refused", []string{"shop.toml", "blog.toml"}, "echo '" + mistake + "' >&2; exit 2\n", true},
	} {
		sites := t.TempDir()
		for _, f := range c.files {
			if err := os.WriteFile(filepath.Join(sites, f), nil, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		fakes := map[string]string{"sitectl": c.sitectl}
		env := []string{"SITECTL_CONFIG_DIR=" + sites}
		for _, run := range []struct {
			kind, script string
			args         []string
		}{
			{"deb", "postinst", []string{"configure", "0.1.0"}},
			{"rpm", "post", []string{"2"}},
		} {
			lines, out := runScriptEnv(t, fakes, env, run.kind, run.script, "", run.args...)
			what := run.kind + " " + run.script + ", " + c.what
			checked := false
			for _, l := range lines {
				if strings.HasPrefix(l, "sitectl check ") {
					checked = true
					if want := "sitectl check " + filepath.Join(sites, "blog.toml") + " " + filepath.Join(sites, "shop.toml"); l != want {
						t.Errorf("%s: ran %q, want %q", what, l, want)
					}
				}
			}
			if checked != (len(c.files) > 0) {
				t.Errorf("%s: checked the site files: %v", what, checked)
			}
			if c.warn != strings.Contains(out, "finds mistakes in site files") || c.warn != strings.Contains(out, mistake) {
				t.Errorf("%s: warn %v, but it printed:\n%s", what, c.warn, out)
			}
		}
	}
}

// A site file that is a symlink to nowhere (its target deleted or not yet
// deployed) is a file the generator refuses, and the first in the
// directory must not make the scripts take the directory for an empty
// one: they checked none of the files then.
func TestPostinstChecksWhenTheFirstSiteFileIsABrokenLink(t *testing.T) {
	sites := t.TempDir()
	if err := os.Symlink(filepath.Join(sites, "gone"), filepath.Join(sites, "a.toml")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(sites, "shop.toml"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	const mistake = "a.toml:1:1: cannot be read"
	fakes := map[string]string{"sitectl": "echo '" + mistake + "' >&2; exit 2\n"}
	for _, run := range []struct {
		kind, script string
		args         []string
	}{
		{"deb", "postinst", []string{"configure", "0.1.0"}},
		{"rpm", "post", []string{"2"}},
	} {
		lines, out := runScriptEnv(t, fakes, []string{"SITECTL_CONFIG_DIR=" + sites}, run.kind, run.script, "", run.args...)
		want := "sitectl check " + filepath.Join(sites, "a.toml") + " " + filepath.Join(sites, "shop.toml")
		if !slices.Contains(lines, want) || !strings.Contains(out, mistake) {
			t.Errorf("%s %s: ran %q, printed:\n%s\nwant %q and its mistakes", run.kind, run.script, lines, out, want)
		}
	}
}
