//go:build integration

package integration

// Tests of the Ansible role packaging/ansible/roles/sitectl and the playbooks
// in packaging/ansible/playbooks: Debian's real ansible-playbook runs on this
// machine (the controller) against sandbox hosts reached over SSH. Each host
// is a sandbox in a network namespace of its own (sandbox.Options.NetNS),
// joined to this machine by a veth pair on a 10.213.N.0/30 network, with
// Debian's sshd started inside. The role installs the .deb that
// packaging/build makes.
//
// packaging/ansible/test installs what they need (ansible, ansible-lint,
// openssh-server, openssh-client) and runs them:
//
//	go test -tags integration -count=1 -v -run TestAnsible ./test/integration/

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sitectl/sitectl/internal/loadgen"
	"github.com/sitectl/sitectl/test/sandbox"
)

// ansibleDebEnv and ansibleRPMEnv name packages to install instead of
// building them.
const (
	ansibleDebEnv = "SITECTL_ANSIBLE_DEB"
	ansibleRPMEnv = "SITECTL_ANSIBLE_RPM"
)

const ansibleHowTo = "run packaging/ansible/test, which installs ansible, ansible-lint, openssh-server, openssh-client, " +
	"rpm, dnf and python3-dnf and runs these tests"

var ansiblePackageBuild struct {
	sync.Once
	deb, rpm string
	err      error
}

// ansibleDeb returns the .deb the role installs: $SITECTL_ANSIBLE_DEB, or
// 0.1.0 built once per test binary with packaging/build.
func ansibleDeb(t *testing.T) string { return ansiblePackage(t, ansibleDebEnv, ".deb") }

// ansibleRPM returns the .rpm the role installs on the Red Hat path:
// $SITECTL_ANSIBLE_RPM, or the rpm of the same build.
func ansibleRPM(t *testing.T) string { return ansiblePackage(t, ansibleRPMEnv, ".rpm") }

// ansiblePackage returns $env, or the package with the extension ext of
// 0.1.0, built once per test binary with packaging/build into the binaries'
// directory (removed when the tests end).
func ansiblePackage(t *testing.T, env, ext string) string {
	t.Helper()
	if p := os.Getenv(env); p != "" {
		if !filepath.IsAbs(p) {
			t.Fatalf("%s=%q is not an absolute path", env, p)
		}
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("%s: %v", env, err)
		}
		return p
	}
	b := &ansiblePackageBuild
	b.Do(func() {
		dist := filepath.Join(bin, "ansible-dist")
		cmd := exec.Command("../../packaging/build", "0.1.0")
		cmd.Env = append(os.Environ(), "SITECTL_DIST="+dist)
		out, err := cmd.Output()
		if err != nil {
			var stderr []byte
			if ee, ok := err.(*exec.ExitError); ok {
				stderr = ee.Stderr
			}
			b.err = fmt.Errorf("packaging/build 0.1.0: %v\n%s%s", err, out, stderr)
			return
		}
		for _, f := range strings.Fields(string(out)) {
			switch {
			case strings.HasSuffix(f, ".deb"):
				b.deb = f
			case strings.HasSuffix(f, ".rpm"):
				b.rpm = f
			}
		}
		if b.deb == "" || b.rpm == "" {
			b.err = fmt.Errorf("packaging/build 0.1.0 did not print a .deb and an .rpm:\n%s", out)
		}
	})
	if b.err != nil {
		t.Fatalf("building the package the role installs (or set %s): %v", env, b.err)
	}
	if ext == ".rpm" {
		return b.rpm
	}
	return b.deb
}

// ansibleFleet is a controller directory and the sandbox hosts it manages.
type ansibleFleet struct {
	t     *testing.T
	ctx   context.Context
	dir   string // /var/tmp/sitectl-ansible-*: key, known_hosts, ansible.cfg, inventory, ansible's home
	hosts []*ansibleHost
	runs  int
}

// ansibleHost is one managed host: a sandbox with its own address.
type ansibleHost struct {
	*host
	name string // inventory name: h1, h2, ...
	addr string // 10.213.N.2
}

type ansibleLogWriter struct{ t *testing.T }

func (w ansibleLogWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// newAnsibleFleet boots n hosts, each in its own network namespace with
// sshd running and a throwaway key authorized for root, and writes the
// controller's configuration and inventory (group sitectl_fleet).
func newAnsibleFleet(t *testing.T, n int) *ansibleFleet {
	t.Helper()
	for _, tool := range []string{"ansible-playbook", "ssh", "ssh-keygen", "/usr/sbin/sshd"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is missing: %s", tool, ansibleHowTo)
		}
	}
	for _, key := range []string{"/etc/ssh/ssh_host_ed25519_key", "/etc/ssh/ssh_host_rsa_key"} {
		if _, err := os.Stat(key); err != nil {
			t.Fatalf("the host key %s is missing (the sandboxes' sshd uses this machine's keys, which openssh-server's installation makes): %s", key, ansibleHowTo)
		}
	}
	// Every run of ansible-playbook is bounded by the test's own deadline
	// (go test -timeout), less a minute to clean up: on a busy machine one
	// run may take minutes, and a fixed bound would fail a slow but
	// working test.
	deadline, ok := t.Deadline()
	if !ok {
		deadline = time.Now().Add(2 * time.Hour)
	}
	ctx, cancel := context.WithDeadline(context.Background(), deadline.Add(-time.Minute))
	t.Cleanup(cancel)
	dir, err := os.MkdirTemp("/var/tmp", "sitectl-ansible-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	f := &ansibleFleet{t: t, ctx: ctx, dir: dir}
	for _, d := range []string{"home", "cp", "tmp"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	key := filepath.Join(dir, "id_ed25519")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "sitectl-ansible-test", "-f", key).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v\n%s", err, out)
	}
	pub, err := os.ReadFile(key + ".pub")
	if err != nil {
		t.Fatal(err)
	}

	next := 101
	for i := 1; i <= n; i++ {
		sb, addr := f.bootHost(ctx, fmt.Sprintf("ansible-h%d", i), &next)
		h := &ansibleHost{host: &host{t: t, sb: sb, ctx: ctx}, name: fmt.Sprintf("h%d", i), addr: addr}
		h.writeFile("/root/.ssh/authorized_keys", string(pub), 0o600)
		h.run("chmod", "0700", "/root/.ssh")
		h.run("systemctl", "start", "ssh.service")
		f.hosts = append(f.hosts, h)
	}
	// Ansible keeps one SSH connection per host open (ControlPersist); end
	// those masters before the hosts go away (cleanups run last first).
	t.Cleanup(f.closeSSHMasters)
	for _, h := range f.hosts {
		deadline := time.Now().Add(30 * time.Second)
		for {
			c, err := net.DialTimeout("tcp", net.JoinHostPort(h.addr, "22"), time.Second)
			if err == nil {
				c.Close()
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("sshd of %s does not answer at %s:22: %v\n%s", h.name, h.addr, err,
					h.sb.Journal(ctx, "-u", "ssh.service", "-n", "30"))
			}
			time.Sleep(100 * time.Millisecond)
		}
	}

	repo, _ := filepath.Abs("../..")
	cfg := fmt.Sprintf(`[defaults]
roles_path = %[2]s/packaging/ansible/roles
host_key_checking = False
retry_files_enabled = False
forks = 5
timeout = 30
nocolor = True
local_tmp = %[1]s/tmp
interpreter_python = /usr/bin/python3

[ssh_connection]
pipelining = True
control_path_dir = %[1]s/cp
ssh_args = -o ControlMaster=auto -o ControlPersist=300s -o StrictHostKeyChecking=no -o UserKnownHostsFile=%[1]s/known_hosts
`, dir, repo)
	var inv strings.Builder
	inv.WriteString("[sitectl_fleet]\n")
	for _, h := range f.hosts {
		fmt.Fprintf(&inv, "%s ansible_host=%s\n", h.name, h.addr)
	}
	fmt.Fprintf(&inv, `
[sitectl_fleet:vars]
ansible_user=root
ansible_python_interpreter=/usr/bin/python3
ansible_ssh_private_key_file=%s
`, key)
	for name, content := range map[string]string{"ansible.cfg": cfg, "inventory": inv.String()} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

// bootHost boots a sandbox on the first free 10.213.N.0/30 network from
// *next on, and returns it with its address.
func (f *ansibleFleet) bootHost(ctx context.Context, name string, next *int) (*sandbox.Sandbox, string) {
	t := f.t
	t.Helper()
	for ; *next < 255; *next++ {
		prefix := fmt.Sprintf("10.213.%d.0/30", *next)
		if used, err := sandbox.HostPrefixInUse(prefix); err != nil {
			t.Fatal(err)
		} else if used {
			continue
		}
		nn := &sandbox.NetNS{HostAddr: fmt.Sprintf("10.213.%d.1/30", *next), Addr: fmt.Sprintf("10.213.%d.2/30", *next)}
		bctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		sb, err := sandbox.Boot(bctx, sandbox.Options{Name: name, Log: ansibleLogWriter{t}, NetNS: nn})
		cancel()
		if err != nil && strings.Contains(err.Error(), "already has an address") {
			continue // taken meanwhile by someone else's sandbox
		}
		if err != nil {
			t.Fatalf("booting %s: %v", name, err)
		}
		*next++
		t.Cleanup(func() {
			if t.Failed() {
				jctx, jcancel := context.WithTimeout(context.Background(), 15*time.Second)
				t.Logf("journal of %s (last 60 lines):\n%s", name, sb.Journal(jctx, "-n", "60"))
				jcancel()
			}
			if err := sb.Close(); err != nil {
				t.Errorf("closing %s: %v", name, err)
			}
		})
		return sb, sb.Addr().String()
	}
	t.Fatal("no free 10.213.N.0/30 network for a test host")
	return nil, ""
}

// closeSSHMasters ends the SSH connections ansible kept open: the ssh
// processes of this fleet's control directory.
func (f *ansibleFleet) closeSSHMasters() {
	cp := filepath.Join(f.dir, "cp")
	for _, h := range f.hosts {
		cmd := exec.Command("ssh", "-o", "ControlPath="+cp+"/%C", "-O", "exit", "-l", "root", h.addr)
		_ = cmd.Run()
	}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil || !strings.Contains(string(b), cp) {
			continue
		}
		if comm, _ := os.ReadFile("/proc/" + e.Name() + "/comm"); strings.TrimSpace(string(comm)) == "ssh" {
			_ = syscall.Kill(pid, syscall.SIGTERM)
		}
	}
}

// ansibleRecap is one host's line of PLAY RECAP.
type ansibleRecap struct {
	OK, Changed, Unreachable, Failed, Skipped int
}

var recapLine = regexp.MustCompile(`(?m)^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)\s+skipped=(\d+)`)

func parseRecap(out string) map[string]ansibleRecap {
	m := map[string]ansibleRecap{}
	_, tail, ok := strings.Cut(out, "PLAY RECAP")
	if !ok {
		return m
	}
	for _, s := range recapLine.FindAllStringSubmatch(tail, -1) {
		n := func(i int) int { v, _ := strconv.Atoi(s[i]); return v }
		m[s[1]] = ansibleRecap{OK: n(2), Changed: n(3), Unreachable: n(4), Failed: n(5), Skipped: n(6)}
	}
	return m
}

// ansibleRun is the outcome of one ansible-playbook run.
type ansibleRun struct {
	out   string
	code  int
	recap map[string]ansibleRecap
}

// playbook runs ansible-playbook on the fleet's inventory with the given
// extra variables (written to a JSON file) and arguments.
func (f *ansibleFleet) playbook(what, playbook string, vars map[string]any, args ...string) ansibleRun {
	t := f.t
	t.Helper()
	f.runs++
	varsFile := filepath.Join(f.dir, fmt.Sprintf("vars-%d.json", f.runs))
	b, err := json.MarshalIndent(vars, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(varsFile, b, 0o600); err != nil {
		t.Fatal(err)
	}
	argv := append([]string{"-i", filepath.Join(f.dir, "inventory"), "-e", "@" + varsFile}, args...)
	argv = append(argv, playbook)
	cmd := exec.CommandContext(f.ctx, "ansible-playbook", argv...)
	cmd.Dir = f.dir
	env := []string{
		"ANSIBLE_CONFIG=" + filepath.Join(f.dir, "ansible.cfg"),
		"ANSIBLE_HOST_KEY_CHECKING=False",
		"ANSIBLE_NOCOLOR=1",
		"ANSIBLE_FORCE_COLOR=0",
		"HOME=" + filepath.Join(f.dir, "home"),
		"LANG=C.UTF-8",
	}
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PATH=") {
			env = append(env, kv)
		}
	}
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	start := time.Now()
	out, err := cmd.CombinedOutput()
	r := ansibleRun{out: string(out), recap: parseRecap(string(out))}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		t.Fatalf("ansible-playbook (%s): %v\n%s", what, err, out)
	}
	recap := r.out
	if i := strings.LastIndex(recap, "PLAY RECAP"); i >= 0 {
		recap = recap[i:]
	}
	t.Logf("ansible-playbook %s (%s): exit %d after %.1fs\n%s", strings.Join(args, " "), what, r.code, time.Since(start).Seconds(), strings.TrimSpace(recap))
	return r
}

// mustPass fails the test unless the run passed on every host; it logs the
// whole output when it did not.
func (r ansibleRun) mustPass(t *testing.T, what string) {
	t.Helper()
	failed := r.code != 0
	for _, rc := range r.recap {
		if rc.Failed > 0 || rc.Unreachable > 0 {
			failed = true
		}
	}
	if failed || len(r.recap) == 0 {
		t.Fatalf("%s: ansible-playbook failed (exit %d):\n%s", what, r.code, r.out)
	}
}

func (r ansibleRun) changed() int {
	n := 0
	for _, rc := range r.recap {
		n += rc.Changed
	}
	return n
}

// ansibleGet asks a site from the controller: status and body.
func ansibleGet(url string) (int, string, error) {
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// ansibleSite is a gunicorn site of the WSGI test app on all addresses of
// the host's own namespace.
func ansibleSite(port int, extra string) string {
	return strings.Replace(gunicornSite(port, extra), `address = "127.0.0.1:`, `address = "0.0.0.0:`, 1)
}

// invocation returns the InvocationID of a unit: it changes with every start.
func (h *ansibleHost) invocation(unit string) string {
	h.t.Helper()
	return h.show(unit, "InvocationID")["InvocationID"]
}

// TestAnsibleRoleIdempotent applies the role to one host over SSH: the
// first run changes things, the second nothing; a check run reports a
// change without making it (same file bytes, no restart) and shows the
// diff; a real run restarts only the site whose file changed; a bad file is
// refused by `sitectl check` and never lands; a mode switch reports changed
// once; a removed site's units and file go.
// wsgiFleetOfOne is a fleet of one host with the WSGI test app in
// /srv/wsgi, and the .deb the role installs.
func wsgiFleetOfOne(t *testing.T) (deb string, f *ansibleFleet, h *ansibleHost) {
	t.Helper()
	deb = ansibleDeb(t)
	f = newAnsibleFleet(t, 1)
	h = f.hosts[0]
	wsgi, err := os.ReadFile("../apps/wsgi/app.py")
	if err != nil {
		t.Fatal(err)
	}
	h.writeFile("/srv/wsgi/app.py", string(wsgi), 0o644)
	return deb, f, h
}

func TestAnsibleRoleIdempotent(t *testing.T) {
	deb, f, h := wsgiFleetOfOne(t)
	if _, err := h.try("dpkg-query", "-W", "sitectl"); err == nil {
		t.Fatalf("sitectl is installed on the machine the sandboxes overlay; the test needs one without it")
	}

	playbook := filepath.Join(f.dir, "role.yml")
	template := filepath.Join(f.dir, "api.toml.j2")
	files := map[string]string{
		playbook: "- name: Apply the sitectl role\n  hosts: sitectl_fleet\n  gather_facts: false\n  roles:\n    - role: sitectl\n",
		// A template with a variable of the play.
		template: ansibleSite(8002, `description = "api, {{ api_workers }} workers"`),
	}
	for p, c := range files {
		if err := os.WriteFile(p, []byte(c), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	web := ansibleSite(8001, `description = "web"`)
	vars := func(webContent string, extra map[string]any) map[string]any {
		v := map[string]any{
			"sitectl_package": deb,
			"api_workers":     2,
			"sitectl_sites": []map[string]any{
				{"name": "web", "content": webContent},
				{"name": "api", "src": template},
			},
		}
		for k, x := range extra {
			v[k] = x
		}
		return v
	}
	webURL := "http://" + h.addr + ":8001/"
	apiURL := "http://" + h.addr + ":8002/"
	serves := func(url string, status int) string {
		t.Helper()
		var code int
		var body string
		var err error
		for i := 0; i < 50; i++ {
			if code, body, err = ansibleGet(url); err == nil && code == status {
				return body
			}
			time.Sleep(200 * time.Millisecond)
		}
		t.Fatalf("GET %s: %d %v %q, want status %d", url, code, err, body, status)
		return ""
	}
	siteFile := func(name string) string {
		t.Helper()
		b, err := h.sb.ReadFile(h.ctx, "/etc/sitectl/sites/"+name+".toml")
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}

	// 0. A check run on the fresh host reports what it would do and does
	// none of it.
	r := f.playbook("check mode, fresh host", playbook, vars(web, nil), "--check", "--diff")
	r.mustPass(t, "check mode, fresh host")
	if r.changed() == 0 || !strings.Contains(r.out, "A real run would start site-web.socket") || !strings.Contains(r.out, "A real run would start site-api.socket") {
		t.Errorf("the check run on a fresh host reported no change, or not the sites it would start:\n%s", r.out)
	}
	for _, p := range []string{"/usr/bin/sitectl", "/etc/sitectl/sites/web.toml", "/var/cache/sitectl-ansible"} {
		if _, err := h.try("test", "!", "-e", p); err != nil {
			t.Errorf("the check run on a fresh host created %s", p)
		}
	}

	// 1. First run: installs the package, writes both files, reloads
	// systemd and starts both sockets.
	r = f.playbook("first run", playbook, vars(web, nil))
	r.mustPass(t, "first run")
	if r.changed() == 0 {
		t.Errorf("the first run changed nothing")
	}
	if v := strings.TrimSpace(h.run("dpkg-query", "-W", "-f", "${Version}", "sitectl")); v != "0.1.0" {
		t.Errorf("installed sitectl version %q, want 0.1.0", v)
	}
	if got := siteFile("web"); got != web {
		t.Errorf("web.toml on the host:\n%s\nwant:\n%s", got, web)
	}
	if got := siteFile("api"); !strings.Contains(got, `description = "api, 2 workers"`) {
		t.Errorf("api.toml was not rendered from its template:\n%s", got)
	}
	for _, u := range []string{"site-web.socket", "site-api.socket"} {
		if st := h.show(u, "ActiveState")["ActiveState"]; st != "active" {
			t.Errorf("%s is %s after the first run, want active", u, st)
		}
	}
	serves(webURL, 200)
	serves(apiURL, 200)

	// 2. Second run: nothing to do.
	r = f.playbook("second run", playbook, vars(web, nil))
	r.mustPass(t, "second run")
	if rc := r.recap[h.name]; rc.Changed != 0 {
		t.Errorf("the second run changed %d things, want 0:\n%s", rc.Changed, r.out)
	}

	// 3. A bad site file never lands. Check mode says so too (copy and
	// template never run their validate in check mode), and both name the
	// site and its file, not a temporary file of Ansible.
	webID := h.invocation("site-web.service")
	bad := strings.Replace(web, "/usr/bin/gunicorn", "gunicorn", 1)
	refused := func(what string, r ansibleRun) {
		t.Helper()
		if r.code == 0 || r.recap[h.name].Failed == 0 {
			t.Errorf("%s: a site file sitectl check refuses did not fail the run (exit %d):\n%s", what, r.code, r.out)
		}
		// Ansible prints the message as JSON: quotes come escaped.
		for _, want := range []string{"site web: sitectl check refuses /etc/sitectl/sites/web.toml",
			`/etc/sitectl/sites/web.toml:1:9: exec: the program \"gunicorn\" is not an absolute path`} {
			if !strings.Contains(r.out, want) {
				t.Errorf("%s: the failed run does not say %q:\n%s", what, want, r.out)
			}
		}
		for _, unwanted := range []string{"ansible-tmp", "ansible-moduletmp", "would start or restart", "would restart"} {
			if strings.Contains(r.out, unwanted) {
				t.Errorf("%s: the failed run says %q:\n%s", what, unwanted, r.out)
			}
		}
		if got := siteFile("web"); got != web {
			t.Errorf("%s: the refused file landed:\n%s", what, got)
		}
		if id := h.invocation("site-web.service"); id != webID {
			t.Errorf("%s: the refused file restarted site-web.service", what)
		}
	}
	refused("bad file, check mode", f.playbook("bad file, check mode", playbook, vars(bad, nil), "--check", "--diff"))
	refused("bad file", f.playbook("bad file", playbook, vars(bad, nil)))
	// A template is checked as rendered, in check mode too.
	badTemplate := filepath.Join(f.dir, "bad.toml.j2")
	if err := os.WriteFile(badTemplate, []byte(strings.Replace(ansibleSite(8003, ""), "/usr/bin/gunicorn", "{{ 'gunicorn' }}", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	withBadTemplate := vars(web, nil)
	withBadTemplate["sitectl_sites"] = []map[string]any{{"name": "web", "content": web}, {"name": "api", "src": template}, {"name": "shop", "src": badTemplate}}
	r = f.playbook("bad template, check mode", playbook, withBadTemplate, "--check")
	if r.code == 0 || !strings.Contains(r.out, `/etc/sitectl/sites/shop.toml:1:9: exec: the program \"gunicorn\" is not an absolute path`) {
		t.Errorf("check mode did not refuse a template that renders a bad site file (exit %d):\n%s", r.code, r.out)
	}

	// 4. A change of web's file in check and diff mode: reported with its
	// diff, not made.
	webID, apiID := h.invocation("site-web.service"), h.invocation("site-api.service")
	if webID == "" || apiID == "" {
		t.Fatalf("the services are not running: web %q api %q", webID, apiID)
	}
	web2 := ansibleSite(8001, `description = "web, changed by ansible"`)
	r = f.playbook("check mode", playbook, vars(web2, nil), "--check", "--diff")
	r.mustPass(t, "check mode")
	t.Logf("--check --diff with a changed site file:\n%s", r.out)
	if r.recap[h.name].Changed == 0 {
		t.Errorf("the check run reported no change for a changed site file:\n%s", r.out)
	}
	predicted := r.recap[h.name].Changed
	for _, want := range []string{`-description = "web"`, `+description = "web, changed by ansible"`, "/etc/sitectl/sites/web.toml"} {
		if !strings.Contains(r.out, want) {
			t.Errorf("the --check --diff output does not show %q:\n%s", want, r.out)
		}
	}
	if got := siteFile("web"); got != web {
		t.Errorf("the check run changed web.toml on the host:\n%s", got)
	}
	if id := h.invocation("site-web.service"); id != webID {
		t.Errorf("the check run restarted site-web.service (InvocationID %s → %s)", webID, id)
	}
	if id := h.invocation("site-api.service"); id != apiID {
		t.Errorf("the check run restarted site-api.service (InvocationID %s → %s)", apiID, id)
	}

	// 5. The same change for real: only web is restarted.
	r = f.playbook("change web", playbook, vars(web2, nil), "--diff")
	r.mustPass(t, "change web")
	if n := r.recap[h.name].Changed; n == 0 || n != predicted {
		t.Errorf("the run with a changed site file reports changed=%d, check mode predicted %d:\n%s", n, predicted, r.out)
	}
	if got := siteFile("web"); got != web2 {
		t.Errorf("web.toml after the change:\n%s", got)
	}
	if id := h.invocation("site-web.service"); id == webID || id == "" {
		t.Errorf("site-web.service was not restarted after its file changed (InvocationID %s → %s)", webID, id)
	}
	if id := h.invocation("site-api.service"); id != apiID {
		t.Errorf("site-api.service was restarted although its file did not change (InvocationID %s → %s)", apiID, id)
	}
	if d := h.show("site-web.service", "Description")["Description"]; !strings.Contains(d, "changed by ansible") {
		t.Errorf("site-web.service runs with the old unit (Description %q)", d)
	}
	serves(webURL, 200)
	r = f.playbook("after the change", playbook, vars(web2, nil))
	r.mustPass(t, "after the change")
	if rc := r.recap[h.name]; rc.Changed != 0 {
		t.Errorf("the run after the change changed %d things, want 0:\n%s", rc.Changed, r.out)
	}

	// 5b. systemd answers a daemon-reload it gave up on (here: PID 1's
	// open-file limit just above what it holds) as done. The run fails
	// with the reason and restarts nothing with the old units; once the
	// limit is back, the next run reloads and restarts web, although its
	// file landed in the failed run.
	webID = h.invocation("site-web.service")
	web3 := ansibleSite(8001, `description = "web, changed by ansible again"`)
	soft, hard := h.pid1NoFile()
	t.Cleanup(func() { _, _ = h.try("prlimit", "--pid", "1", fmt.Sprintf("--nofile=%d:%d", soft, hard)) })
	held := strings.Count(h.run("ls", "/proc/1/fd"), "\n")
	h.run("prlimit", "--pid", "1", fmt.Sprintf("--nofile=%d:%d", held+3, hard))
	r = f.playbook("change web, reload ignored", playbook, vars(web3, nil))
	h.run("prlimit", "--pid", "1", fmt.Sprintf("--nofile=%d:%d", soft, hard))
	if r.code == 0 || !strings.Contains(r.out, "systemd answered the daemon-reload but has not loaded the files of web") {
		t.Errorf("a daemon-reload systemd ignored did not fail the run with the reason (exit %d):\n%s", r.code, r.out)
	}
	if id := h.invocation("site-web.service"); id != webID {
		t.Errorf("web was restarted with its old units after the ignored reload")
	}
	r = f.playbook("change web, retried", playbook, vars(web3, nil))
	r.mustPass(t, "change web, retried")
	if id := h.invocation("site-web.service"); id == webID || id == "" {
		t.Errorf("the retry did not restart web (InvocationID %s → %s):\n%s", webID, id, r.out)
	}
	if d := h.show("site-web.service", "Description")["Description"]; !strings.Contains(d, "changed by ansible again") {
		t.Errorf("after the retry site-web.service runs with the old unit (Description %q)", d)
	}
	serves(webURL, 200)
	web2 = web3
	webID = h.invocation("site-web.service")

	// 5c. api moves to another port while its service is idle (stopped,
	// its socket listening). The daemon-reload closes the socket unit's
	// socket, and the site listened on nothing; the role now restarts a
	// changed site whose sockets were lost, which opens the new port.
	h.run("systemctl", "stop", "site-api.service")
	moved := filepath.Join(f.dir, "api-moved.toml.j2")
	if err := os.WriteFile(moved, []byte(ansibleSite(8004, `description = "api, {{ api_workers }} workers"`)), 0o600); err != nil {
		t.Fatal(err)
	}
	template = moved // from here on, api is on 8004
	r = f.playbook("move api", playbook, vars(web2, nil))
	r.mustPass(t, "move api")
	serves("http://"+h.addr+":8004/", 200)
	if c, err := net.DialTimeout("tcp", h.addr+":8002", time.Second); err == nil {
		c.Close()
		t.Errorf("api's old port still takes connections after the move")
	}
	if out, err := h.try("sitectl", "status", "api"); err != nil || strings.Contains(out, "no socket") {
		t.Errorf("sitectl status api after the move: %v\n%s", err, out)
	}
	if id := h.invocation("site-web.service"); id != webID {
		t.Errorf("moving api restarted web")
	}

	// 5d. A site taken out of service stays out when its file changes:
	// the role neither starts its socket nor restarts it (it started the
	// socket of every changed site, and the first request started the
	// app). sitectl enable brings it back.
	h.run("sitectl", "disable", "api")
	disabled := filepath.Join(f.dir, "api-disabled.toml.j2")
	if err := os.WriteFile(disabled, []byte(ansibleSite(8004, `description = "api out of service, {{ api_workers }} workers"`)), 0o600); err != nil {
		t.Fatal(err)
	}
	template = disabled
	r = f.playbook("change api out of service", playbook, vars(web2, nil))
	r.mustPass(t, "change api out of service")
	if d := h.show("site-api.service", "Description")["Description"]; !strings.Contains(d, "api out of service") {
		t.Errorf("the changed file of api was not applied (Description %q)", d)
	}
	for _, u := range []string{"site-api.socket", "site-api.service"} {
		if st := h.show(u, "ActiveState")["ActiveState"]; st != "inactive" {
			t.Errorf("%s of the site out of service after the role changed its file: %s\n%s", u, st, r.out)
		}
	}
	h.run("sitectl", "enable", "api")
	serves("http://"+h.addr+":8004/", 200)

	// 6. A mode switch, with a change of the site's file in the same run:
	// check mode reports both without switching; the real run restarts
	// web once, by the switch (the handlers leave its restart to it), with
	// its new file; the next run changes nothing.
	maint := map[string]any{"sitectl_mode": map[string]any{"site": "web", "mode": "maintenance"}}
	web4 := ansibleSite(8001, `description = "web, changed with its mode"`)
	r = f.playbook("mode, check mode", playbook, vars(web4, maint), "--check")
	r.mustPass(t, "mode, check mode")
	if r.recap[h.name].Changed != 2 || !strings.Contains(r.out, "would switch web from normal to maintenance") ||
		strings.Contains(r.out, "A real run would restart web") {
		t.Errorf("check mode does not report the file's change and the one mode switch (changed=2), or predicts a restart of web too:\n%s", r.out)
	}
	if id := h.invocation("site-web.service"); id != webID {
		t.Errorf("the check run switched the mode (InvocationID %s → %s)", webID, id)
	}
	serves(webURL, 200)
	changes := func() int { return strings.Count(h.run("sitectl", "history", "--json", "web"), `"kind"`) }
	before := changes()
	r = f.playbook("mode", playbook, vars(web4, maint))
	r.mustPass(t, "mode")
	if r.recap[h.name].Changed != 2 {
		t.Errorf("changing web's file and switching it to maintenance: changed=%d, want 2:\n%s", r.recap[h.name].Changed, r.out)
	}
	if n := changes() - before; n != 1 {
		t.Errorf("changing web's file and switching it to maintenance restarted it %d times, want once (sitectl history web):\n%s\n%s", n, h.run("sitectl", "history", "web"), r.out)
	}
	if d := h.show("site-web.service", "Description")["Description"]; !strings.Contains(d, "changed with its mode") {
		t.Errorf("after the switch site-web.service runs with the old unit (Description %q)", d)
	}
	serves(webURL, 503)
	web2 = web4
	r = f.playbook("mode again", playbook, vars(web2, maint))
	r.mustPass(t, "mode again")
	if rc := r.recap[h.name]; rc.Changed != 0 {
		t.Errorf("switching to the mode the site runs in: changed=%d, want 0:\n%s", rc.Changed, r.out)
	}
	r = f.playbook("unknown mode", playbook, vars(web2, map[string]any{"sitectl_mode": map[string]any{"site": "web", "mode": "nosuch"}}))
	if r.code == 0 || !strings.Contains(r.out, "exited 3 (the site or mode does not exist)") {
		t.Errorf("a switch to a mode the site does not have did not fail with sitectl's reason (exit %d):\n%s", r.code, r.out)
	}

	// 7. Removing api: its units stop, its file goes; web is untouched.
	webID = h.invocation("site-web.service")
	gone := vars(web2, nil)
	gone["sitectl_sites"] = []map[string]any{{"name": "web", "content": web2}, {"name": "api", "state": "absent"}}
	r = f.playbook("remove api", playbook, gone, "--diff")
	r.mustPass(t, "remove api")
	if r.recap[h.name].Changed == 0 {
		t.Errorf("removing a site changed nothing")
	}
	if _, err := h.try("test", "!", "-e", "/etc/sitectl/sites/api.toml"); err != nil {
		t.Errorf("api.toml is still there")
	}
	if p := h.show("site-api.socket", "LoadState", "ActiveState"); p["ActiveState"] == "active" {
		t.Errorf("site-api.socket after the removal: %v", p)
	}
	for _, port := range []string{"8002", "8004"} {
		if c, err := net.DialTimeout("tcp", h.addr+":"+port, time.Second); err == nil {
			c.Close()
			t.Errorf("something still listens on api's port %s after the removal", port)
		}
	}
	if id := h.invocation("site-web.service"); id != webID {
		t.Errorf("removing api restarted web")
	}
	if _, err := h.try("test", "!", "-e", "/var/lib/sitectl/sites/api"); err != nil {
		t.Errorf("the state of api survived its removal, so an api added back would start in its old mode")
	}
	r = f.playbook("remove api again", playbook, gone)
	r.mustPass(t, "remove api again")
	if rc := r.recap[h.name]; rc.Changed != 0 {
		t.Errorf("removing a removed site: changed=%d, want 0:\n%s", rc.Changed, r.out)
	}
	if st := strings.TrimSpace(h.run("systemctl", "is-system-running")); st != "running" {
		t.Errorf("the host is %s after the runs:\n%s", st, h.run("systemctl", "--failed", "--no-legend"))
	}
}

// fleetRelease is a WSGI app that answers with its release name, or one that
// cannot be loaded.
func fleetRelease(name string, broken bool) string {
	if broken {
		return "raise RuntimeError(\"release " + name + " is broken\")\n"
	}
	return fmt.Sprintf(`def application(environ, start_response):
    body = b"%s"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
`, name)
}

// TestAnsibleFleetRollingRelease: three hosts serve a gunicorn site with
// handoff = "overlap" under load while playbooks/roll-release.yml rolls r2
// across them one at a time: no request fails, every host serves r2. Then a
// roll to r3, which is broken on the second host: the play stops there, the
// third host is never touched, and still no request fails anywhere.
func TestAnsibleFleetRollingRelease(t *testing.T) {
	deb := ansibleDeb(t)
	f := newAnsibleFleet(t, 3)
	const port = 8000
	site := `exec = ["/usr/bin/gunicorn", "--workers", "2", "app:application"]
workdir = "/srv/app/current"
server = "gunicorn"
handoff = "overlap"
drain_timeout = "10s"
[probe]
path = "/"
[[listen]]
address = "0.0.0.0:8000"
`
	for i, h := range f.hosts {
		h.writeFile("/srv/app/releases/r1/app.py", fleetRelease("r1", false), 0o644)
		h.writeFile("/srv/app/releases/r3/app.py", fleetRelease("r3", i == 1), 0o644)
		h.run("ln", "-s", "/srv/app/releases/r1", "/srv/app/current")
	}
	r2 := filepath.Join(f.dir, "release-r2")
	if err := os.MkdirAll(r2, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(r2, "app.py"), []byte(fleetRelease("r2", false)), 0o644); err != nil {
		t.Fatal(err)
	}
	repo, _ := filepath.Abs("../..")
	playbooks := filepath.Join(repo, "packaging/ansible/playbooks")

	r := f.playbook("provision", filepath.Join(playbooks, "sites.yml"), map[string]any{
		"sitectl_package": deb,
		"sitectl_sites":   []map[string]any{{"name": "app", "content": site}},
	})
	r.mustPass(t, "provision")
	url := func(h *ansibleHost) string { return fmt.Sprintf("http://%s:%d/", h.addr, port) }
	release := func(h *ansibleHost) string {
		t.Helper()
		code, body, err := ansibleGet(url(h))
		if err != nil || code != 200 {
			t.Fatalf("%s: GET %s: %d %v %q", h.name, url(h), code, err, body)
		}
		return body
	}
	link := func(h *ansibleHost) string {
		return strings.TrimSpace(h.run("readlink", "/srv/app/current"))
	}
	for _, h := range f.hosts {
		if got := release(h); got != "r1" {
			t.Fatalf("%s serves %q before the roll, want r1", h.name, got)
		}
	}

	// Load on every host from here to the end.
	const rate = 50
	lctx, stopLoad := context.WithCancel(f.ctx)
	defer stopLoad()
	results := make([]chan []loadgen.Result, len(f.hosts))
	for i, h := range f.hosts {
		results[i] = make(chan []loadgen.Result, 1)
		go func() {
			results[i] <- loadgen.Run(lctx, loadgen.Config{URL: url(h), Rate: rate, Duration: 8 * time.Minute})
		}()
	}
	time.Sleep(2 * time.Second)
	roll := func(what string, vars map[string]any, args ...string) ansibleRun {
		t.Helper()
		v := map[string]any{"roll_site": "app", "roll_port": port, "roll_releases_dir": "/srv/app/releases", "roll_link": "/srv/app/current"}
		for k, x := range vars {
			v[k] = x
		}
		return f.playbook(what, filepath.Join(playbooks, "roll-release.yml"), v, args...)
	}

	// The roll of r2 in check and diff mode shows each link's switch and
	// switches, uploads and reloads nothing.
	r = roll("roll r2, check mode", map[string]any{"roll_release": "r2", "roll_release_src": r2}, "--check", "--diff")
	r.mustPass(t, "roll r2, check mode")
	if n := strings.Count(r.out, `+    "src": "/srv/app/releases/r2"`); n != len(f.hosts) {
		t.Errorf("the check run shows the link's switch %d times, want once per host:\n%s", n, r.out)
	}
	for _, h := range f.hosts {
		if got, l := release(h), link(h); got != "r1" || l != "/srv/app/releases/r1" {
			t.Errorf("%s after the check run: serves %q, current → %s; want r1 and r1", h.name, got, l)
		}
		if _, err := h.try("test", "!", "-e", "/srv/app/releases/r2"); err != nil {
			t.Errorf("%s: the check run uploaded r2", h.name)
		}
	}

	// Roll r2, uploaded from the controller.
	r = roll("roll r2", map[string]any{"roll_release": "r2", "roll_release_src": r2})
	r.mustPass(t, "roll r2")
	t.Logf("roll r2:\n%s", r.out)
	for _, h := range f.hosts {
		if rc := r.recap[h.name]; rc.Changed == 0 {
			t.Errorf("the roll of r2 changed nothing on %s", h.name)
		}
		if got := release(h); got != "r2" {
			t.Errorf("%s serves %q after the roll of r2", h.name, got)
		}
		if got := link(h); got != "/srv/app/releases/r2" {
			t.Errorf("%s: current → %s after the roll of r2", h.name, got)
		}
	}
	// One host at a time: each host's switch ended before the next began.
	if order := rollOrder(r.out, "sitectl : Point the link at the release"); strings.Join(order, ",") != "h1,h2,h3" {
		t.Errorf("the release was switched in the order %v, want h1,h2,h3 one at a time", order)
	}
	h3Gen := f.hosts[2].show("site-app.service", "MainPID", "InvocationID")

	// Roll r3, which host 2 cannot load: its reload fails (sitectl rolls
	// back, the old generation serves on), the play stops, host 3 is never
	// touched.
	time.Sleep(time.Second)
	// A run before died between moving h1's link and its reload (a lost
	// connection, Ctrl-C): the link points at r3, r2 serves. The role
	// decided by the link alone and reported h1 done; it now asks what
	// serves (served_release), and reloads h1.
	f.hosts[0].run("ln", "-sfn", "/srv/app/releases/r3", "/srv/app/current")
	if got := release(f.hosts[0]); got != "r2" {
		t.Fatalf("the premise: h1 serves %q with its link moved and no reload, want r2", got)
	}
	r = roll("roll r3, broken on h2", map[string]any{"roll_release": "r3"})
	t.Logf("roll r3:\n%s", r.out)
	if r.code == 0 {
		t.Errorf("the roll of a release that is broken on h2 passed")
	}
	if rc := r.recap["h2"]; rc.Failed == 0 {
		t.Errorf("h2 did not fail: %+v", rc)
	}
	if !strings.Contains(r.out, "exited 4") {
		t.Errorf("the failure does not carry sitectl's exit 4 and reason")
	}
	if rc, ok := r.recap["h3"]; ok && rc.OK+rc.Changed+rc.Failed > 0 {
		t.Errorf("h3 was touched after h2 failed: %+v", rc)
	}
	if strings.Contains(r.out, "[h3]") {
		t.Errorf("the output shows tasks on h3, which must not be touched")
	}
	if got := release(f.hosts[0]); got != "r3" {
		t.Errorf("h1 serves %q after the roll of r3, want r3", got)
	}
	if got := release(f.hosts[1]); got != "r2" {
		t.Errorf("h2 serves %q after its failed reload, want r2 (its old generation)", got)
	}
	if got := link(f.hosts[1]); got != "/srv/app/releases/r2" {
		t.Errorf("h2: current → %s after the failed reload, want it back on r2", got)
	}
	if got := release(f.hosts[2]); got != "r2" {
		t.Errorf("h3 serves %q, want r2 (never touched)", got)
	}
	if got := link(f.hosts[2]); got != "/srv/app/releases/r2" {
		t.Errorf("h3: current → %s, want r2 (never touched)", got)
	}
	if now := f.hosts[2].show("site-app.service", "MainPID", "InvocationID"); now["MainPID"] != h3Gen["MainPID"] || now["InvocationID"] != h3Gen["InvocationID"] {
		t.Errorf("h3's service changed: %v → %v", h3Gen, now)
	}

	time.Sleep(time.Second)
	stopLoad()
	for i, h := range f.hosts {
		res := <-results[i]
		s := loadgen.Summarize(res)
		t.Logf("%s: load at %d req/s through both rolls: %v", h.name, rate, s)
		for _, fl := range loadgen.Failures(res)[:min(5, s.Failed)] {
			t.Errorf("%s: failed at %s: %s %s", h.name, fl.Start.Format("15:04:05.000"), fl.Outcome, fl.Detail)
		}
		if s.Failed != 0 {
			t.Errorf("%s: %d of %d requests failed", h.name, s.Failed, s.Requests)
		}
		if s.Requests < 20*rate {
			t.Errorf("%s: only %d requests were sent", h.name, s.Requests)
		}
	}

	// A mode rolled the same way (without load: maintenance answers 503).
	r = roll("roll maintenance", map[string]any{"roll_mode": "maintenance", "roll_health_status": 503, "roll_health_contains": ""})
	r.mustPass(t, "roll maintenance")
	for _, h := range f.hosts {
		if rc := r.recap[h.name]; rc.Changed != 1 {
			t.Errorf("the roll of maintenance on %s: changed=%d, want 1 (the switch)", h.name, rc.Changed)
		}
		if code, _, err := ansibleGet(url(h)); err != nil || code != 503 {
			t.Errorf("%s after the roll of maintenance: %d %v, want 503", h.name, code, err)
		}
	}
}

// rollOrder returns the hosts of the result lines ("changed: [h1]") of the
// task with this name, in the order they appear.
func rollOrder(out, task string) []string {
	var order []string
	for _, block := range strings.Split(out, "\nTASK [")[1:] {
		if !strings.Contains(strings.SplitN(block, "\n", 2)[0], task) {
			continue
		}
		for _, m := range regexp.MustCompile(`(?m)^(?:ok|changed|failed|fatal): \[(\w+)\]`).FindAllStringSubmatch(block, -1) {
			order = append(order, m[1])
		}
	}
	return order
}

// rpmBase builds a package that provides what an RPM distribution's own
// packages give sitectl's rpm (systemd, /bin/sh): on a Debian host the rpm
// database starts empty, so dnf would refuse sitectl's rpm for its
// requirements, as it would on a Red Hat host without systemd.
func rpmBase(t *testing.T, dir string) string {
	t.Helper()
	spec := filepath.Join(dir, "base.spec")
	if err := os.WriteFile(spec, []byte(`Name: sitectl-test-rpm-base
Version: 1
Release: 1
Summary: Stands in for the systemd and shell of an RPM distribution
License: MIT
BuildArch: noarch
Provides: systemd = 252
Provides: /bin/sh
%description
On a Debian host, provides in the rpm database what Debian's packages provide.
%files
`), 0o600); err != nil {
		t.Fatal(err)
	}
	top := filepath.Join(dir, "rpmbuild")
	if out, err := exec.Command("rpmbuild", "--define", "_topdir "+top, "-bb", spec).CombinedOutput(); err != nil {
		t.Fatalf("rpmbuild: %v\n%s", err, out)
	}
	p := filepath.Join(top, "RPMS", "noarch", "sitectl-test-rpm-base-1-1.noarch.rpm")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("rpmbuild made no %s: %v", p, err)
	}
	return p
}

// TestAnsibleRoleRedHat applies the role's Red Hat path to one host: the
// .rpm is copied from the controller and installed with Ansible's dnf
// module, by Debian's dnf into the host's rpm database, and its scriptlets
// run on the host's booted systemd. Check mode installs nothing; the real
// run installs the package, applies the preset policy to the state socket
// without starting it (as %systemd_post does), and starts the site; a
// second run changes nothing. What Debian cannot show: the facts of a real
// Red Hat host choosing dnf by themselves (sitectl_package_manager is set
// here), and its own systemd and polkit packages.
func TestAnsibleRoleRedHat(t *testing.T) {
	for _, tool := range []string{"rpm", "rpmbuild", "dnf"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is missing: %s", tool, ansibleHowTo)
		}
	}
	// The interpreter the inventory gives Ansible on the hosts.
	if out, err := exec.Command("/usr/bin/python3", "-c", "import dnf").CombinedOutput(); err != nil {
		t.Fatalf("python3-dnf is missing (%v: %s): %s", err, out, ansibleHowTo)
	}
	rpmPath := ansibleRPM(t)
	f := newAnsibleFleet(t, 1)
	h := f.hosts[0]
	if _, err := h.try("rpm", "-q", "sitectl"); err == nil {
		t.Fatalf("sitectl is in the rpm database of the machine the sandboxes overlay; the test needs one without it")
	}
	h.install(rpmBase(t, f.dir), "/root/sitectl-test-rpm-base.rpm", 0o644)
	h.run("rpm", "-i", "/root/sitectl-test-rpm-base.rpm")
	// A preset policy that enables the state socket: the package applies
	// it (the socket is enabled) and starts nothing (it stays inactive).
	h.writeFile("/etc/systemd/system-preset/10-sitectl-test.preset", "enable sitectl-state.socket\n", 0o644)
	wsgi, err := os.ReadFile("../apps/wsgi/app.py")
	if err != nil {
		t.Fatal(err)
	}
	h.writeFile("/srv/wsgi/app.py", string(wsgi), 0o644)

	playbook := filepath.Join(f.dir, "role.yml")
	if err := os.WriteFile(playbook, []byte("- name: Apply the sitectl role\n  hosts: sitectl_fleet\n  gather_facts: false\n  roles:\n    - role: sitectl\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	vars := map[string]any{
		"sitectl_package":         rpmPath,
		"sitectl_package_manager": "dnf",
		"sitectl_sites":           []map[string]any{{"name": "web", "content": ansibleSite(8001, `description = "web on the Red Hat path"`)}},
	}

	r := f.playbook("check mode, fresh host", playbook, vars, "--check", "--diff")
	r.mustPass(t, "check mode, fresh host")
	if r.changed() == 0 {
		t.Errorf("the check run on a fresh host reported no change:\n%s", r.out)
	}
	if out, err := h.try("rpm", "-q", "sitectl"); err == nil {
		t.Errorf("the check run installed sitectl: %s", out)
	}

	r = f.playbook("first run", playbook, vars)
	r.mustPass(t, "first run")
	if q := strings.TrimSpace(h.run("rpm", "-q", "--qf", "%{NAME}-%{VERSION}-%{RELEASE}", "sitectl")); q != "sitectl-0.1.0-1" {
		t.Errorf("rpm -q sitectl: %q, want sitectl-0.1.0-1", q)
	}
	if !strings.Contains(r.out, "Install sitectl with dnf") {
		t.Errorf("the run did not install with dnf:\n%s", r.out)
	}
	if _, err := h.try("dpkg-query", "-W", "sitectl"); err == nil {
		t.Errorf("dpkg knows sitectl: the role installed it with apt")
	}
	if v := h.run("sitectl", "--version"); !strings.Contains(v, "0.1.0") {
		t.Errorf("sitectl --version: %q", v)
	}
	if st := strings.TrimSpace(h.run("systemctl", "is-enabled", "sitectl-state.socket")); st != "enabled" {
		t.Errorf("sitectl-state.socket is %s after the install, want enabled by the preset policy", st)
	}
	if st := h.show("sitectl-state.socket", "ActiveState")["ActiveState"]; st != "inactive" {
		t.Errorf("the rpm's %%post started sitectl-state.socket (%s): %%systemd_post starts nothing", st)
	}
	if _, err := h.try("getent", "group", "sitectl-deploy"); err != nil {
		t.Errorf("the rpm's %%post did not create the group sitectl-deploy")
	}
	if st := h.show("site-web.socket", "ActiveState")["ActiveState"]; st != "active" {
		t.Errorf("site-web.socket is %s after the first run", st)
	}
	url := "http://" + h.addr + ":8001/"
	var code int
	for i := 0; i < 50 && code != 200; i++ {
		code, _, _ = ansibleGet(url)
		if code != 200 {
			time.Sleep(200 * time.Millisecond)
		}
	}
	if code != 200 {
		t.Errorf("GET %s: %d, want 200", url, code)
	}

	r = f.playbook("second run", playbook, vars)
	r.mustPass(t, "second run")
	if rc := r.recap[h.name]; rc.Changed != 0 {
		t.Errorf("the second run changed %d things, want 0:\n%s", rc.Changed, r.out)
	}
}

// TestAnsibleChangedSiteAndReleaseSwitchOnce: one run of the role that both
// changes a site's file and rolls it to a new release starts one new
// generation of the app, not a restart for the file and a reload for the
// release: the reload, which restarts fully since the file's units changed
// (a new main PID), and serves the new release with the new units. Check
// mode predicts that one reload and as many changes. A run that changes
// only one of them switches the site once too, and a second identical run
// changes nothing.
func TestAnsibleChangedSiteAndReleaseSwitchOnce(t *testing.T) {
	deb := ansibleDeb(t)
	f := newAnsibleFleet(t, 1)
	h := f.hosts[0]
	for _, r := range []string{"r1", "r2", "r3"} {
		h.writeFile("/srv/app/releases/"+r+"/app.py", fleetRelease(r, false), 0o644)
	}
	h.run("ln", "-s", "/srv/app/releases/r1", "/srv/app/current")
	site := func(description string) string {
		return `exec = ["/usr/bin/gunicorn", "--workers", "2", "app:application"]
workdir = "/srv/app/current"
server = "gunicorn"
handoff = "overlap"
drain_timeout = "10s"
description = "` + description + `"
[probe]
path = "/"
[[listen]]
address = "0.0.0.0:8000"
`
	}
	playbook := filepath.Join(f.dir, "role.yml")
	if err := os.WriteFile(playbook, []byte("- name: Apply the sitectl role\n  hosts: sitectl_fleet\n  gather_facts: false\n  roles:\n    - role: sitectl\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	vars := func(description, release string) map[string]any {
		return map[string]any{
			"sitectl_package": deb,
			"sitectl_sites":   []map[string]any{{"name": "app", "content": site(description)}},
			"sitectl_release": map[string]any{"site": "app", "path": "/srv/app/releases/" + release, "link": "/srv/app/current"},
		}
	}
	url := "http://" + h.addr + ":8000/"
	serves := func(want string) {
		t.Helper()
		var code int
		var body string
		var err error
		for i := 0; i < 50; i++ {
			if code, body, err = ansibleGet(url); err == nil && code == 200 && body == want {
				return
			}
			time.Sleep(200 * time.Millisecond)
		}
		t.Fatalf("GET %s: %d %v %q, want 200 %q", url, code, err, body, want)
	}
	switches := func() int { return strings.Count(h.run("sitectl", "history", "--json", "app"), `"kind"`) }

	r := f.playbook("provision", playbook, vars("app", "r1"))
	r.mustPass(t, "provision")
	serves("r1") // starts the service: from here on the site runs

	// Both change: check mode predicts one reload, no restart.
	pid := h.show("site-app.service", "MainPID")["MainPID"]
	before := switches()
	r = f.playbook("file and release, check mode", playbook, vars("app, changed", "r2"), "--check")
	r.mustPass(t, "file and release, check mode")
	if !strings.Contains(r.out, "A real run would reload app onto /srv/app/releases/r2") || strings.Contains(r.out, "A real run would restart app") {
		t.Errorf("check mode does not predict the one reload of app, or predicts a restart besides it:\n%s", r.out)
	}
	predicted := r.recap[h.name].Changed
	if n := switches() - before; n != 0 {
		t.Errorf("the check run switched app %d times", n)
	}
	r = f.playbook("file and release", playbook, vars("app, changed", "r2"))
	r.mustPass(t, "file and release")
	if n := switches() - before; n != 1 {
		t.Errorf("changing app's file and rolling it to r2 switched it %d times, want once (sitectl history app):\n%s\n%s", n, h.run("sitectl", "history", "app"), r.out)
	}
	if n := r.recap[h.name].Changed; n != predicted {
		t.Errorf("the run reports changed=%d, check mode predicted %d:\n%s", n, predicted, r.out)
	}
	serves("r2")
	if d := h.show("site-app.service", "Description")["Description"]; !strings.Contains(d, "app, changed") {
		t.Errorf("after the run site-app.service runs with the old unit (Description %q)", d)
	}
	if now := h.show("site-app.service", "MainPID")["MainPID"]; now == pid {
		t.Errorf("the file's new units need a full restart, but app's main PID is still %s (a handover inside the old unit)", pid)
	}

	r = f.playbook("file and release again", playbook, vars("app, changed", "r2"))
	r.mustPass(t, "file and release again")
	if n := r.recap[h.name].Changed; n != 0 {
		t.Errorf("the same run again: changed=%d, want 0:\n%s", n, r.out)
	}

	// Only the release, then only the file: once each.
	for _, c := range []struct{ what, description, release, serves string }{
		{"release only", "app, changed", "r3", "r3"},
		{"file only", "app, changed again", "r3", "r3"},
	} {
		before = switches()
		r = f.playbook(c.what+", check mode", playbook, vars(c.description, c.release), "--check")
		r.mustPass(t, c.what+", check mode")
		predicted = r.recap[h.name].Changed
		r = f.playbook(c.what, playbook, vars(c.description, c.release))
		r.mustPass(t, c.what)
		if n := switches() - before; n != 1 {
			t.Errorf("%s: app was switched %d times, want once (sitectl history app):\n%s\n%s", c.what, n, h.run("sitectl", "history", "app"), r.out)
		}
		if n := r.recap[h.name].Changed; n != predicted {
			t.Errorf("%s: the run reports changed=%d, check mode predicted %d:\n%s", c.what, n, predicted, r.out)
		}
		serves(c.serves)
	}
}

// TestAnsibleCheckModePredictsLostSocketsAndRemovals: a check run reports
// changed exactly when the real run changes something, and says what it
// would do, in two cases it missed. An idle site (its socket listens, its
// service has not started) whose listener changes loses its socket at the
// real run's daemon-reload, which check mode does not do, and the real run
// restarts it. A site removed after its file went (by hand, or a run cut
// short after removing it) still has units and state for sitectl remove to
// stop and forget. Each real run reports what its check run predicted, and
// a second check run after it reports nothing.
func TestAnsibleCheckModePredictsLostSocketsAndRemovals(t *testing.T) {
	deb, f, h := wsgiFleetOfOne(t)
	playbook := filepath.Join(f.dir, "role.yml")
	if err := os.WriteFile(playbook, []byte("- name: Apply the sitectl role\n  hosts: sitectl_fleet\n  gather_facts: false\n  roles:\n    - role: sitectl\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	vars := func(sites ...map[string]any) map[string]any {
		return map[string]any{"sitectl_package": deb, "sitectl_sites": sites}
	}
	web := map[string]any{"name": "web", "content": ansibleSite(8001, `description = "web"`)}
	api := func(port int) map[string]any {
		return map[string]any{"name": "api", "content": ansibleSite(port, `description = "api"`)}
	}
	// check runs the play in check mode, then for real: the real run must
	// report as many changes as predicted, and a check run after it none.
	check := func(what string, v map[string]any, want ...string) ansibleRun {
		t.Helper()
		c := f.playbook(what+", check mode", playbook, v, "--check")
		c.mustPass(t, what+", check mode")
		for _, w := range want {
			if !strings.Contains(c.out, w) {
				t.Errorf("%s: the check run does not say %q:\n%s", what, w, c.out)
			}
		}
		r := f.playbook(what, playbook, v)
		r.mustPass(t, what)
		if p, n := c.recap[h.name].Changed, r.recap[h.name].Changed; p != n || n == 0 {
			t.Errorf("%s: check mode predicted changed=%d, the real run reports changed=%d (want equal, not 0):\ncheck run:\n%s\nreal run:\n%s", what, p, n, c.out, r.out)
		}
		again := f.playbook(what+", check mode after it", playbook, v, "--check")
		again.mustPass(t, what+", check mode after it")
		if n := again.recap[h.name].Changed; n != 0 {
			t.Errorf("%s: a check run after the real one reports changed=%d, want 0:\n%s", what, n, again.out)
		}
		return r
	}

	r := f.playbook("provision", playbook, vars(web, api(8002)))
	r.mustPass(t, "provision")
	// Both sites are idle: their sockets listen, no request came yet.
	for _, u := range []string{"site-web.service", "site-api.service"} {
		if st := h.show(u, "ActiveState")["ActiveState"]; st != "inactive" {
			t.Fatalf("%s is %s after the provision, want inactive (idle)", u, st)
		}
	}

	// api moves to 8004 while idle: the real run restarts it (its socket
	// on 8002 is closed at the daemon-reload), and check mode says so.
	check("move idle api", vars(web, api(8004)), "A real run would restart api")
	if code, _, err := ansibleGet("http://" + h.addr + ":8004/"); err != nil || code != 200 {
		t.Errorf("api does not serve on 8004 after the move: %d %v", code, err)
	}
	// A change of an idle site that keeps its listeners restarts nothing.
	quiet := map[string]any{"name": "api", "content": ansibleSite(8004, `description = "api, quiet"`)}
	r = check("change idle api, same listeners", vars(web, quiet))
	if strings.Contains(r.out, "sitectl restart") {
		t.Errorf("a change of an idle site that keeps its listeners restarted it:\n%s", r.out)
	}

	// web's file is removed by hand: its units and state are still there,
	// for the role's removal to stop and forget.
	h.run("rm", "/etc/sitectl/sites/web.toml")
	check("remove web, its file gone", vars(map[string]any{"name": "web", "state": "absent"}, quiet), "A real run would remove web")
	if _, err := h.try("test", "!", "-e", "/var/lib/sitectl/sites/web"); err != nil {
		t.Errorf("the state of web survived its removal")
	}
	// api removed the role's way, its file there: the file and the
	// removal, predicted and made alike.
	check("remove api", vars(map[string]any{"name": "web", "state": "absent"}, map[string]any{"name": "api", "state": "absent"}), "A real run would remove api")
	if p := h.show("site-api.socket", "ActiveState"); p["ActiveState"] == "active" {
		t.Errorf("site-api.socket after the removal: %v", p)
	}
}
