//go:build integration

package integration

// Tests of the role's entry points that need no host: ansible-playbook runs
// them on this machine (connection local) against a stand-in sitectl on
// PATH, on links and directories in the test's temporary directory only.

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// ansibleLocal runs a playbook of the role on localhost with the stand-in
// sitectl of dir/bin first on PATH.
func ansibleLocal(t *testing.T, dir, playbook string, args ...string) (string, error) {
	t.Helper()
	if _, err := exec.LookPath("ansible-playbook"); err != nil {
		t.Skipf("no ansible-playbook: %s", ansibleHowTo)
	}
	repo, _ := filepath.Abs("../..")
	pb := filepath.Join(dir, "play.yml")
	if err := os.WriteFile(pb, []byte(playbook), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("ansible-playbook", append([]string{"-c", "local", "-i", "localhost,",
		"-e", "ansible_python_interpreter=/usr/bin/python3", pb}, args...)...)
	cmd.Env = append(os.Environ(),
		"PATH="+filepath.Join(dir, "bin")+":"+os.Getenv("PATH"),
		"ANSIBLE_ROLES_PATH="+filepath.Join(repo, "packaging/ansible/roles"),
		"ANSIBLE_NOCOLOR=1", "ANSIBLE_LOCAL_TEMP="+filepath.Join(dir, "tmp"),
		"ANSIBLE_REMOTE_TEMP="+filepath.Join(dir, "tmp"))
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// A roll cut short between moving the link and the reload left the link at
// the new release while the old one serves. When the next run's reload of
// it fails (sitectl exits 4: the old generation serves on), the link must go
// back to the release that serves, not stay at the one that failed, which
// the site's next start would run; and the message must not say the link
// points "again" at the release that failed.
func TestAnsibleReleaseFailedAfterCutShortRunPointsTheLinkBack(t *testing.T) {
	for _, below := range []string{"", "/app"} {
		t.Run("workdir link"+below, func(t *testing.T) {
			dir := t.TempDir()
			for _, d := range []string{"bin", "tmp", "releases/r2" + below, "releases/r3" + below} {
				if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			link := filepath.Join(dir, "current")
			r2, r3 := filepath.Join(dir, "releases/r2"), filepath.Join(dir, "releases/r3")
			if err := os.Symlink(r3, link); err != nil {
				t.Fatal(err)
			}
			// r2 serves; a reload onto r3 is rolled back, exit 4.
			fake := `#!/bin/sh
case "$1" in
status) printf '[{"site":"app","mode":"normal","release":"%s` + below + `","served_release":"` + r2 + below + `"}]\n' "$(readlink -f ` + link + `)"; exit 0;;
reload) echo '{"site":"app","changed":false,"result":"rolled-back","reason":"the new generation did not come up"}'; exit 4;;
esac
exit 2
`
			if err := os.WriteFile(filepath.Join(dir, "bin/sitectl"), []byte(fake), 0o755); err != nil {
				t.Fatal(err)
			}
			out, err := ansibleLocal(t, dir, `- hosts: localhost
  gather_facts: false
  tasks:
    - ansible.builtin.include_role:
        name: sitectl
        tasks_from: release.yml
      vars:
        sitectl_release: {site: app, path: `+r3+`, link: `+link+`}
`)
			if err == nil {
				t.Fatalf("the run passed after a failed reload:\n%s", out)
			}
			if !strings.Contains(out, "exited 4") {
				t.Errorf("the failure does not carry sitectl's exit 4:\n%s", out)
			}
			if got, _ := os.Readlink(link); got != r2 {
				t.Errorf("current → %s after the failed reload, want %s (the release that serves)\n%s", got, r2, out)
			}
			if strings.Contains(out, "points at "+r3+" again") {
				t.Errorf("the message says the link points again at the release that failed:\n%s", out)
			}
		})
	}
}

// A site listed twice (an entry with state absent added while the old one
// stays) is refused before anything is done: otherwise each run writes its
// file, then removes it and stops the site, and the next run starts it
// again. The run is in check mode: on this machine it must change nothing.
func TestAnsibleSiteListedTwiceIsRefused(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{"bin", "tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	out, err := ansibleLocal(t, dir, `- hosts: localhost
  gather_facts: false
  roles:
    - role: sitectl
      vars:
        sitectl_package: ""
        sitectl_sites:
          - {name: shop, content: "exec = [\"/bin/true\"]\n"}
          - {name: blog, content: "exec = [\"/bin/true\"]\n"}
          - {name: shop, state: absent}
`, "--check")
	if err == nil {
		t.Fatalf("a site listed twice passed:\n%s", out)
	}
	if !strings.Contains(out, "TASK [sitectl : Check the list of sites]") || !strings.Contains(out, "listed 2 times") {
		t.Errorf("the run was not refused by the check of the list, saying the site is listed twice:\n%s", out)
	}
	if strings.Contains(out, "TASK [sitectl : Sort the sites") {
		t.Errorf("the run went on after the check of the list:\n%s", out)
	}
}

// A site file's content may hold secrets (a mode's environment): the role
// never shows it, with -v either, where each loop's item is printed with
// its result. The run is in check mode, with a stand-in systemctl, so that
// it changes nothing on this machine; sitectl is not installed here, and
// the site with a bad name shows what a refused entry prints.
func TestAnsibleSiteContentIsNotLogged(t *testing.T) {
	const secret = "S3cretPassw0rd"
	dir := t.TempDir()
	for _, d := range []string{"bin", "tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	systemctl := "#!/bin/sh\nfor u in \"$@\"; do case $u in site-*) printf 'Id=%s\\nLoadState=loaded\\nNeedDaemonReload=no\\n\\n' \"$u\";; esac; done\n"
	if err := os.WriteFile(filepath.Join(dir, "bin/systemctl"), []byte(systemctl), 0o755); err != nil {
		t.Fatal(err)
	}
	play := func(name string) string {
		return `- hosts: localhost
  gather_facts: false
  roles:
    - role: sitectl
      vars:
        sitectl_package: ""
        sitectl_sites:
          - name: ` + name + `
            content: |
              exec = ["/bin/true"]
              [modes.normal.environment]
              DATABASE_URL = "postgres://app:` + secret + `@db/app"
          - {name: old, content: "` + secret + `", state: absent}
`
	}
	out, err := ansibleLocal(t, dir, play("web"), "--check", "-v")
	if err != nil {
		t.Fatalf("the check run failed: %v\n%s", err, out)
	}
	if strings.Contains(out, secret) {
		t.Errorf("the run shows the content of a site file:\n%s", out)
	}
	out, err = ansibleLocal(t, dir, play("Web"), "--check")
	if err == nil || !strings.Contains(out, "this one is Web") {
		t.Fatalf("a bad name was not refused: %v\n%s", err, out)
	}
	if strings.Contains(out, secret) {
		t.Errorf("the refusal of a site's name shows the content of its file:\n%s", out)
	}
}

// ansibleStandIns writes a stand-in sitectl and systemctl into dir/bin.
// Each logs its arguments, a line a call, to dir/calls. sitectl status
// answers with status[SITE] (a site not there: exit 4, no output), mode
// with modeOut and exit modeRC, restart and reload with a change; systemctl
// shows every site unit loaded, current and active.
func ansibleStandIns(t *testing.T, dir string, status map[string]string, modeOut string, modeRC int) {
	t.Helper()
	for _, d := range []string{"bin", "tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	calls := filepath.Join(dir, "calls")
	var cases strings.Builder
	for site, st := range status {
		fmt.Fprintf(&cases, "%s) printf '%%s\\n' '%s'; exit 0;;\n", site, st)
	}
	sitectl := `#!/bin/sh
echo "sitectl $*" >> ` + calls + `
case "$1" in
status) case "$3" in
` + cases.String() + `esac; exit 4;;
mode) printf '%s\n' '` + modeOut + `'; exit ` + strconv.Itoa(modeRC) + `;;
restart|reload) echo '{"changed":true,"result":"ok"}'; exit 0;;
esac
exit 2
`
	systemctl := `#!/bin/sh
echo "systemctl $*" >> ` + calls + `
for u in "$@"; do case $u in site-*) printf 'Id=%s\nLoadState=loaded\nNeedDaemonReload=no\nActiveState=active\n\n' "$u";; esac; done
`
	for name, s := range map[string]string{"sitectl": sitectl, "systemctl": systemctl} {
		if err := os.WriteFile(filepath.Join(dir, "bin", name), []byte(s), 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

// ansibleCalls returns the calls of the stand-ins since the last one, and
// forgets them.
func ansibleCalls(t *testing.T, dir string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "calls"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	_ = os.Remove(filepath.Join(dir, "calls"))
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}

// ansibleStatus is a `sitectl status --json` answer for one site.
func ansibleStatus(site, mode, active, served string) string {
	return fmt.Sprintf(`[{"site":"%s","mode":"%s","active_state":"%s","served_mode":"%s","served_differs":[],"pending":null,"out_of_service":null,"sockets_lost":[],"sockets":[{"unit":"site-%s.socket","active_state":"active"}]}]`,
		site, mode, active, served, site)
}

var recapChanged = regexp.MustCompile(`localhost\s+:\s+ok=\d+\s+changed=(\d+)`)

func localChanged(t *testing.T, out string) int {
	t.Helper()
	m := recapChanged.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no PLAY RECAP in:\n%s", out)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// The handlers that follow a changed site file restart the site; a mode
// switch of that site in the same run (sitectl_mode, which main.yml runs
// after the handlers) restarted it a second time. The switch alone applies
// the new units: the site is restarted once, by it. Check mode predicts
// the same (a switch of web and a restart of api, as many changes as the
// real run reports), running nothing but sitectl status.
func TestAnsibleChangedSiteSwitchedIntoAModeRestartsOnce(t *testing.T) {
	const play = `- hosts: localhost
  gather_facts: false
  vars:
    sitectl_mode: {site: web, mode: maintenance}
    sitectl_changed_sites: [web, api]
    sitectl_binary: {stat: {exists: true}}
  tasks:
    - ansible.builtin.include_role: {name: sitectl, tasks_from: restart.yml}
    - ansible.builtin.include_role: {name: sitectl, tasks_from: mode.yml}
`
	status := map[string]string{"web": ansibleStatus("web", "normal", "active", "normal"), "api": ansibleStatus("api", "normal", "active", "normal")}
	dir := t.TempDir()
	ansibleStandIns(t, dir, status, `{"site":"web","changed":true,"result":"ok"}`, 0)

	out, err := ansibleLocal(t, dir, play)
	if err != nil {
		t.Fatalf("the run failed: %v\n%s", err, out)
	}
	calls := ansibleCalls(t, dir)
	var web, api []string
	for _, c := range calls {
		switch {
		case strings.HasPrefix(c, "sitectl restart") || strings.HasPrefix(c, "sitectl mode"):
			if strings.HasSuffix(c, " web") || strings.HasSuffix(c, " web maintenance") {
				web = append(web, c)
			} else {
				api = append(api, c)
			}
		}
	}
	if len(web) != 1 || !strings.HasPrefix(web[0], "sitectl mode") {
		t.Errorf("web, changed and switched into a mode, was restarted by %q, want once by sitectl mode; calls:\n%s", web, strings.Join(calls, "\n"))
	}
	if len(api) != 1 || !strings.HasPrefix(api[0], "sitectl restart") {
		t.Errorf("api, changed, was restarted by %q, want once by sitectl restart", api)
	}
	real := localChanged(t, out)

	out, err = ansibleLocal(t, dir, play, "--check")
	if err != nil {
		t.Fatalf("the check run failed: %v\n%s", err, out)
	}
	for _, c := range ansibleCalls(t, dir) {
		if !strings.HasPrefix(c, "sitectl status") {
			t.Errorf("the check run ran %q", c)
		}
	}
	for _, want := range []string{"A real run would restart api", "A real run would switch web from normal to maintenance"} {
		if !strings.Contains(out, want) {
			t.Errorf("the check run does not say %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "A real run would restart web") {
		t.Errorf("the check run predicts a restart of web besides its switch:\n%s", out)
	}
	if n := localChanged(t, out); n != real {
		t.Errorf("the check run reports changed=%d, the real run changed=%d", n, real)
	}

	// A switch that does nothing (no such mode, exit 3) leaves the changed
	// file to a restart: it is applied once, and the run fails with the
	// switch's reason.
	ansibleStandIns(t, dir, status, `{"site":"web","changed":false,"reason":"site web has no mode \"maintenance\""}`, 3)
	out, err = ansibleLocal(t, dir, play)
	if err == nil || !strings.Contains(out, "exited 3") || !strings.Contains(out, "its changed site file was applied by sitectl restart") {
		t.Errorf("a refused switch: %v\n%s", err, out)
	}
	n := 0
	for _, c := range ansibleCalls(t, dir) {
		if c == "sitectl restart --json --timeout 2m web" {
			n++
		}
	}
	if n != 1 {
		t.Errorf("after a refused switch web was restarted %d times, want 1", n)
	}
}

// Check mode predicts a mode switch as sitectl decides it: a site recorded
// in the mode is switched (started) when its service does not run, and is
// left alone only when it runs the mode. A site out of service is refused,
// as the real run's sitectl refuses it.
func TestAnsibleModeCheckModePredictsTheSwitch(t *testing.T) {
	const play = `- hosts: localhost
  gather_facts: false
  tasks:
    - ansible.builtin.include_role: {name: sitectl, tasks_from: mode.yml}
      vars:
        sitectl_mode: {site: web, mode: maintenance}
`
	for _, c := range []struct {
		name, status string
		changed      int
		fails        string
	}{
		{"idle in the mode", ansibleStatus("web", "maintenance", "inactive", ""), 1, ""},
		{"running another mode's process", ansibleStatus("web", "maintenance", "active", "normal"), 1, ""},
		{"running the mode", ansibleStatus("web", "maintenance", "active", "maintenance"), 0, ""},
		{"in another mode", ansibleStatus("web", "normal", "active", "normal"), 1, ""},
		{"out of service", strings.Replace(ansibleStatus("web", "maintenance", "inactive", ""), `"out_of_service":null`, `"out_of_service":"2024-06-01T10:00:00Z"`, 1), 0, "taken out of service"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			ansibleStandIns(t, dir, map[string]string{"web": c.status}, `{}`, 0)
			out, err := ansibleLocal(t, dir, play, "--check")
			if c.fails != "" {
				if err == nil || !strings.Contains(out, c.fails) {
					t.Errorf("check mode did not fail saying %q: %v\n%s", c.fails, err, out)
				}
				return
			}
			if err != nil {
				t.Fatalf("the check run failed: %v\n%s", err, out)
			}
			if n := localChanged(t, out); n != c.changed {
				t.Errorf("check mode reports changed=%d, want %d:\n%s", n, c.changed, out)
			}
			for _, call := range ansibleCalls(t, dir) {
				if !strings.HasPrefix(call, "sitectl status") {
					t.Errorf("the check run ran %q", call)
				}
			}
		})
	}
}

// Check mode reports the reload a real run makes when the link already
// points at the release: forced, or after a run cut short between moving
// the link and its reload (another release serves).
func TestAnsibleReleaseCheckModePredictsTheReload(t *testing.T) {
	for _, c := range []struct {
		name, served, force string
		changed             int
	}{
		{"cut short", "r2", "false", 1},
		{"forced", "r3", "true", 1},
		{"done", "r3", "false", 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			for _, d := range []string{"releases/r2", "releases/r3"} {
				if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			link, r3 := filepath.Join(dir, "current"), filepath.Join(dir, "releases/r3")
			if err := os.Symlink(r3, link); err != nil {
				t.Fatal(err)
			}
			st := `[{"site":"app","mode":"normal","release":"` + r3 + `","served_release":"` + filepath.Join(dir, "releases", c.served) + `"}]`
			ansibleStandIns(t, dir, map[string]string{"app": st}, `{}`, 0)
			out, err := ansibleLocal(t, dir, `- hosts: localhost
  gather_facts: false
  tasks:
    - ansible.builtin.include_role: {name: sitectl, tasks_from: release.yml}
      vars:
        sitectl_release: {site: app, path: `+r3+`, link: `+link+`, force: `+c.force+`}
`, "--check")
			if err != nil {
				t.Fatalf("the check run failed: %v\n%s", err, out)
			}
			if n := localChanged(t, out); n != c.changed {
				t.Errorf("check mode reports changed=%d, want %d (a real run reloads: %v):\n%s", n, c.changed, c.changed > 0, out)
			}
			for _, call := range ansibleCalls(t, dir) {
				if !strings.HasPrefix(call, "sitectl status") {
					t.Errorf("the check run ran %q", call)
				}
			}
		})
	}
}

// The handlers that follow a changed site file restart the site; a release
// switch of that site in the same run (sitectl_release, which main.yml runs
// after the handlers) then reloaded it onto the release: two new
// generations where one does. The reload alone applies the file (sitectl
// reload restarts fully when the file's units changed): the site is
// switched once, by it. Check mode predicts the same, running nothing but
// sitectl status; and a reload that is rolled back leaves the file to one
// restart, on the release that serves.
func TestAnsibleChangedSiteRolledToAReleaseSwitchesOnce(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{"releases/r2", "releases/r3"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	link, r2, r3 := filepath.Join(dir, "current"), filepath.Join(dir, "releases/r2"), filepath.Join(dir, "releases/r3")
	if err := os.Symlink(r2, link); err != nil {
		t.Fatal(err)
	}
	// main.yml's order: the plan of the release, the handlers, the switch.
	play := `- hosts: localhost
  gather_facts: false
  vars:
    sitectl_release: {site: web, path: ` + r3 + `, link: ` + link + `}
    sitectl_changed_sites: [web, api]
    sitectl_binary: {stat: {exists: true}}
  tasks:
    - ansible.builtin.include_role: {name: sitectl, tasks_from: release_plan.yml}
    - ansible.builtin.include_role: {name: sitectl, tasks_from: restart.yml}
    - ansible.builtin.include_role: {name: sitectl, tasks_from: release.yml}
`
	status := map[string]string{"web": ansibleStatus("web", "normal", "active", "normal"), "api": ansibleStatus("api", "normal", "active", "normal")}
	switches := func(calls []string) (web, api []string) {
		for _, c := range calls {
			if !strings.HasPrefix(c, "sitectl restart") && !strings.HasPrefix(c, "sitectl reload") && !strings.HasPrefix(c, "sitectl mode") {
				continue
			}
			if strings.HasSuffix(c, " web") {
				web = append(web, c)
			} else {
				api = append(api, c)
			}
		}
		return web, api
	}

	ansibleStandIns(t, dir, status, `{}`, 0)
	out, err := ansibleLocal(t, dir, play, "--check")
	if err != nil {
		t.Fatalf("the check run failed: %v\n%s", err, out)
	}
	for _, c := range ansibleCalls(t, dir) {
		if !strings.HasPrefix(c, "sitectl status") {
			t.Errorf("the check run ran %q", c)
		}
	}
	for _, want := range []string{"A real run would restart api", "A real run would reload web onto " + r3} {
		if !strings.Contains(out, want) {
			t.Errorf("the check run does not say %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "A real run would restart web") {
		t.Errorf("the check run predicts a restart of web besides its reload:\n%s", out)
	}
	predicted := localChanged(t, out)

	out, err = ansibleLocal(t, dir, play)
	if err != nil {
		t.Fatalf("the run failed: %v\n%s", err, out)
	}
	calls := ansibleCalls(t, dir)
	web, api := switches(calls)
	if len(web) != 1 || !strings.HasPrefix(web[0], "sitectl reload") {
		t.Errorf("web, changed and rolled to a release, was switched by %q, want once by sitectl reload; calls:\n%s", web, strings.Join(calls, "\n"))
	}
	if len(api) != 1 || !strings.HasPrefix(api[0], "sitectl restart") {
		t.Errorf("api, changed, was switched by %q, want once by sitectl restart", api)
	}
	if got, _ := os.Readlink(link); got != r3 {
		t.Errorf("current → %s after the run, want %s", got, r3)
	}
	if n := localChanged(t, out); n != predicted {
		t.Errorf("the run reports changed=%d, the check run predicted %d:\n%s", n, predicted, out)
	}

	// A reload that is rolled back (exit 4) has not applied the file: the
	// link goes back to r2 and web is restarted with its file there, once,
	// and the run fails with the reload's reason.
	if err := os.Remove(link); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(r2, link); err != nil {
		t.Fatal(err)
	}
	ansibleStandIns(t, dir, status, `{}`, 0)
	fake := filepath.Join(dir, "bin/sitectl")
	b, err := os.ReadFile(fake)
	if err != nil {
		t.Fatal(err)
	}
	rolledBack := strings.Replace(string(b), "restart|reload)", `reload) echo '{"site":"web","changed":false,"result":"rolled-back","reason":"the new generation did not come up"}'; exit 4;;
restart)`, 1)
	if err := os.WriteFile(fake, []byte(rolledBack), 0o755); err != nil {
		t.Fatal(err)
	}
	out, err = ansibleLocal(t, dir, play)
	if err == nil || !strings.Contains(out, "exited 4") || !strings.Contains(out, "its changed site file was applied by sitectl restart") {
		t.Errorf("a rolled back reload: %v\n%s", err, out)
	}
	calls = ansibleCalls(t, dir)
	web, _ = switches(calls)
	if len(web) != 2 || !strings.HasPrefix(web[0], "sitectl reload") || !strings.HasPrefix(web[1], "sitectl restart") {
		t.Errorf("after a rolled back reload web was switched by %q, want its reload, then one restart; calls:\n%s", web, strings.Join(calls, "\n"))
	}
	if got, _ := os.Readlink(link); got != r2 {
		t.Errorf("current → %s after the rolled back reload, want %s", got, r2)
	}
}
