//go:build integration

package integration

// Tests of the role's entry points that need no host: ansible-playbook runs
// them on this machine (connection local) against a stand-in sitectl on
// PATH, on links and directories in the test's temporary directory only.

import (
	"os"
	"os/exec"
	"path/filepath"
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
