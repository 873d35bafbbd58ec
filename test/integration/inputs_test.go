//go:build integration

package integration

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sitectl/sitectl/internal/site"
	"github.com/sitectl/sitectl/internal/unitfile"
)

// Issues 12.2 and 13.8: whatever lies in the site directory next to a valid
// site (a FIFO named a.toml, a symlink to /dev/zero, a 2 MiB file, a
// directory named dir.toml, a dangling symlink, a symlink loop), the
// generator finishes on daemon-reload, the valid site's units exist and
// serve, and every path that reads a site file refuses each entry promptly
// with FILE: reason: sitectl check (exit 2), the state service, sitectl list
// and status, and the Ansible role's validate step.
//
// `timeout` only keeps a hang from stalling the suite; nothing here depends
// on how fast anything is. The pipe comes first everywhere: before the fix,
// every reader blocked on it, and the test stops there rather than going on
// to read /dev/zero.
func TestHostileEntriesInTheSiteDirectory(t *testing.T) {
	port, portNew := freePort(t), freePort(t)
	h := newHost(t, nil)
	d := "/etc/sitectl/sites"
	h.writeSite("good", goSite(port, ""))
	h.run("mkfifo", d+"/a.toml")
	h.run("ln", "-s", "/dev/zero", d+"/zero.toml")
	h.run("mkdir", d+"/dir.toml")
	h.run("sh", "-c", "head -c 2097152 /dev/zero | tr '\\0' '#' > "+d+"/big.toml")
	h.run("ln", "-s", "nowhere.toml", d+"/dangling.toml")
	h.run("ln", "-s", "loop.toml", d+"/loop.toml")
	reasons := []struct{ file, reason string }{ // in the order the readers meet them
		{"a.toml", "is a named pipe (FIFO), not a regular file"},
		{"big.toml", "is 2097152 bytes long; a site file may have at most 65536 (64 KiB)"},
		{"dangling.toml", "cannot read the file: no such file or directory"},
		{"dir.toml", "is a directory, not a regular file"},
		{"loop.toml", "cannot read the file: too many levels of symbolic links"},
		{"zero.toml", "is a symlink to /dev/zero, which is a character device, not a regular file"},
	}

	since := h.logMark()
	if _, stderr, code := h.result("timeout", "120", "systemctl", "daemon-reload"); code != 0 {
		t.Fatalf("daemon-reload with a FIFO in the site directory: exit %d %s", code, stderr)
	}
	h.run("systemctl", "start", "site-good.socket")
	if r := getReply(t, fmt.Sprintf("http://127.0.0.1:%d/", port)); r.Site != "good" {
		t.Errorf("the valid site next to them: %+v", r)
	}
	// The generator logs to the journal once journald runs, to the kernel
	// log before (see TestGeneratorLogsEveryMistakeToTheJournal). The
	// kernel takes 10 lines at a time from it: there, the first file's
	// lines, a pointer to sitectl check for the rest, the summary. Only
	// what was logged since the mark counts (see logMark).
	journal := h.generatorLog(since, "_TRANSPORT=journal")
	logged := h.generatorLog(since)
	wants := []string{
		"sitectl-generator[", d + "/a.toml:1:1: " + reasons[0].reason, d + "/a.toml: site skipped: no units generated for it",
		"generated units for 1 sites from " + d + " (6 skipped)",
	}
	if !strings.Contains(journal, wants[1]) {
		wants = append(wants, "more lines about skipped sites not logged: sitectl check "+d+"/*.toml shows every mistake")
	}
	for _, want := range wants {
		if !strings.Contains(logged, want) {
			t.Errorf("neither the journal nor the kernel log has %q", want)
		}
	}
	// The kernel names a writer whose lines it dropped by its command
	// name, which it cuts to 15 characters.
	kernel := h.run("journalctl", "--no-pager", "-o", "short", "--since", since, "_TRANSPORT=kernel")
	if dropped := grepLines(grepLines(kernel, "sitectl-generat"), "suppressed"); dropped != "" {
		t.Errorf("the kernel dropped lines of the generator:\n%s", dropped)
	}

	for _, r := range reasons {
		_, stderr, code := h.result("timeout", "30", "sitectl", "check", d+"/"+r.file)
		if code != 2 || !strings.Contains(stderr, d+"/"+r.file+":1:1: "+r.reason) {
			t.Fatalf("sitectl check %s: exit %d (want 2), stderr %q (want %s)", r.file, code, stderr, r.reason)
		}
	}
	// A file the caller may not read.
	h.writeFile("/srv/secret.toml", goSite(portNew, ""), 0o600)
	_, stderr, code := h.result("timeout", "30", "setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "sitectl", "check", "/srv/secret.toml")
	if code != 2 || !strings.Contains(stderr, "/srv/secret.toml:1:1: cannot read the file: permission denied") {
		t.Errorf("an unreadable file: exit %d, %q", code, stderr)
	}
	// Loading one site for a verb.
	_, stderr, code = h.result("timeout", "30", "sitectl", "restart", "a")
	if code != 2 || !strings.Contains(stderr, "cannot read site a: "+d+"/a.toml: is a named pipe") {
		t.Errorf("sitectl restart a: exit %d, %q", code, stderr)
	}
	// status shows such a site, with why its file is not one; it does not
	// run (exit 3).
	out, _, code := h.result("timeout", "30", "sitectl", "status", "a")
	if code != 3 || !strings.Contains(out, "invalid") || !strings.Contains(out, d+"/a.toml:1:1: is a named pipe") {
		t.Errorf("sitectl status a: exit %d\n%s", code, out)
	}
	out, stderr, code = h.result("timeout", "30", "sitectl", "list")
	if code != 0 || !strings.Contains(out, "good") || !strings.Contains(stderr, "warning: "+d+"/zero.toml:1:1: is a symlink to /dev/zero") {
		t.Errorf("sitectl list: exit %d\n%s\n%s", code, out, stderr)
	}

	// The state service reads the site a deployer names.
	stateService(h)
	for _, r := range []struct{ site, reason string }{{"a", reasons[0].reason}, {"zero", reasons[5].reason}} {
		reply := h.run("timeout", "60", "python3", "-c", stateRequest, `{"verb":"history","site":"`+r.site+`"}`)
		if !strings.Contains(reply, d+"/"+r.site+".toml: "+r.reason) {
			t.Errorf("state service, site %s: %s", r.site, reply)
		}
	}

	// The Ansible role's validate step (sitectl check --name NEW TMPFILE)
	// reads the site directory too, for listener collisions.
	roles, err := filepath.Abs("../../packaging/ansible/roles")
	if err != nil {
		t.Fatal(err)
	}
	h.writeFile("/root/play.yml", fmt.Sprintf(`- hosts: localhost
  connection: local
  gather_facts: false
  vars:
    sitectl_package: ""
    sitectl_start_sockets: false
    sitectl_restart_changed: false
    sitectl_sites:
      - name: newsite
        content: |
          exec = ["/usr/local/bin/webapp"]
          readiness = "notify"
          [[listen]]
          address = "127.0.0.1:%d"
  roles: [sitectl]
`, portNew), 0o644)
	out, stderr, code = h.result("timeout", "300", "env", "HOME=/root", "ANSIBLE_ROLES_PATH="+roles, "ANSIBLE_NOCOLOR=1",
		"ANSIBLE_LOCALHOST_WARNING=False", "ANSIBLE_INVENTORY_UNPARSED_WARNING=False", "ansible-playbook", "-i", "localhost,", "/root/play.yml")
	if code != 0 || !strings.Contains(out, "failed=0") {
		t.Fatalf("the role with hostile entries in the site directory: exit %d\n%s\n%s", code, out, stderr)
	}
	if p := h.show("site-newsite.socket", "LoadState"); p["LoadState"] != "loaded" {
		t.Errorf("the site the role wrote: %v", p)
	}
}

// stateService installs and starts sitectl's state service and its dialer
// as packaged.
func stateService(h *host) {
	h.t.Helper()
	for _, u := range []string{"sitectl-state.socket", "sitectl-state.service", "sitectl-dial.socket", "sitectl-dial.service"} {
		h.install("../../packaging/systemd/"+u, "/etc/systemd/system/"+u, 0o644)
	}
	h.run("groupadd", "--system", "sitectl-deploy")
	h.run("mkdir", "-p", "/var/lib/sitectl")
	h.run("systemctl", "daemon-reload")
	h.run("systemctl", "start", "sitectl-state.socket")
}

// stateRequest sends the state service the request in argv[1] (JSON) and
// prints every line of the answer; it fails if the answer does not end
// within 30 s.
const stateRequest = `
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(30)
s.connect("/run/sitectl/state.sock")
s.sendall(sys.argv[1].encode() + b"\n")
print(s.makefile(errors="replace").read())
`

// Issues 13.9 and 13.10 on the real systemd: a description ending in a
// backslash (which swallowed the next unit line) and an IPv6 zone (whose %
// systemd expanded) are refused by check and skipped by the generator; and
// values full of what a unit's syntax could bend (%, $, ;, quotes,
// backslashes, a tab, control characters) reach systemd and the app exactly
// as the site file says.
func TestUnitValuesArriveAsWritten(t *testing.T) {
	port, portSlash, portZone := freePort(t), freePort(t), freePort(t)
	h := newHost(t, nil)
	slash := "description = 'Karl\\'\n" + goSite(portSlash, "")
	zone := strings.Replace(goSite(portZone, ""), "127.0.0.1:", "[fe80::1%lo]:", 1)
	for _, c := range []struct{ name, src, want string }{
		{"slash", slash, "/root/slash.toml:1:15: description ends in a backslash, which systemd reads as \"continued on the next line\""},
		{"zone", zone, "/root/zone.toml:6:11: listen address \"[fe80::1%lo]:" + fmt.Sprint(portZone) + "\" has an IPv6 zone (%lo)"},
	} {
		h.writeFile("/root/"+c.name+".toml", c.src, 0o644)
		if _, stderr, code := h.result("sitectl", "check", "/root/"+c.name+".toml"); code != 2 || !strings.Contains(stderr, c.want) {
			t.Errorf("sitectl check %s: exit %d, %q; want exit 2 and %s", c.name, code, stderr, c.want)
		}
		h.writeSite(c.name, c.src)
	}

	const script = `export ARGS="$(printf '[%s]' "$@")"; exec /usr/local/bin/webapp`
	args := []string{";", "a;b", `\;`, "$HOME", "${PATH}", "$$", "%n", "%%l", "'", `"`, `end\`, "", "tab\there", "ünï"}
	desc := `100% "real" %n %%l a\b C:\\`
	env := map[string]string{"ESC": "\x1b[2J\x01", "PCT": `100% %n $HOME ${X} "q" \ end\`, "SEMI": "a; b"}
	var quoted []string
	for _, a := range append([]string{"/bin/sh", "-c", script, "sh"}, args...) {
		quoted = append(quoted, tomlString(a))
	}
	src := fmt.Sprintf("description = %s\nexec = [%s]\nreadiness = \"notify\"\n[environment]\n", tomlString(desc), strings.Join(quoted, ", "))
	for k, v := range env {
		src += k + " = " + tomlString(v) + "\n"
	}
	src += fmt.Sprintf("[[listen]]\naddress = \"127.0.0.1:%d\"\n", port)
	h.writeSite("odd", src)
	if out, err := h.try("sitectl", "check", "/etc/sitectl/sites/odd.toml"); err != nil {
		t.Fatalf("sitectl check odd: %v\n%s", err, out)
	}
	h.run("systemctl", "daemon-reload")

	for _, u := range []string{"site-slash.service", "site-zone.socket"} {
		if p := h.show(u, "LoadState"); p["LoadState"] != "not-found" {
			t.Errorf("%s was generated: %v", u, p)
		}
	}
	p := h.show("site-odd.service", "Description", "Documentation")
	if p["Description"] != desc || p["Documentation"] != `"man:sitectl(1)"` {
		t.Errorf("systemd read Description=%q Documentation=%q, want %q and man:sitectl(1)", p["Description"], p["Documentation"], desc)
	}
	h.run("systemctl", "start", "site-odd.socket")
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	if r := getReply(t, url); r.Site != "odd" {
		t.Fatalf("site odd: %+v", r)
	}
	want := ""
	for _, a := range args {
		want += "[" + a + "]"
	}
	if _, got := get(t, url+"env?name=ARGS"); got != want {
		t.Errorf("the app's arguments:\ngot  %q\nwant %q", got, want)
	}
	for k, v := range env {
		if _, got := get(t, url+"env?name="+k); got != v {
			t.Errorf("the app's %s = %q, want %q", k, got, v)
		}
	}
}

// tomlString writes s as a TOML basic string.
func tomlString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// Issue 13.11: the limits package unitfile enforces are systemd's and
// Linux's own, measured here at the boundary on raw units; and a site file
// at sitectl's limit passes check, loads and serves, while one byte more
// is refused by check (exit 2) and skipped by the generator.
func TestUnitLimitsAtTheBoundary(t *testing.T) {
	h := newHost(t, nil)
	// A line of exactly MaxLine bytes: /bin/true and words of at most
	// MaxArg bytes each, so that the command can also run.
	line := "ExecStart=/bin/true"
	for len(line) < unitfile.MaxLine {
		line += " " + strings.Repeat("x", min(unitfile.MaxArg, unitfile.MaxLine-len(line)-1))
	}
	raw := map[string]string{ // unit → body
		"line-max.service":  "[Service]\nType=oneshot\n" + line + "\n",
		"line-over.service": "[Service]\nType=oneshot\n" + line + "x\n",
		"arg-max.service":   "[Service]\nType=oneshot\nExecStart=/bin/true " + strings.Repeat("x", unitfile.MaxArg) + "\n",
		"arg-over.service":  "[Service]\nType=oneshot\nExecStart=/bin/true " + strings.Repeat("x", unitfile.MaxArg+1) + "\n",
		"env-max.service":   "[Service]\nType=oneshot\nEnvironment=A=" + strings.Repeat("x", unitfile.MaxArg-2) + "\nExecStart=/bin/true\n",
		"env-over.service":  "[Service]\nType=oneshot\nEnvironment=A=" + strings.Repeat("x", unitfile.MaxArg-1) + "\nExecStart=/bin/true\n",
	}
	for u, body := range raw {
		h.writeFile("/etc/systemd/system/"+u, body, 0o644)
	}
	h.run("systemctl", "daemon-reload")
	for _, u := range []string{"line-max", "arg-max", "env-max"} {
		if _, err := h.try("systemctl", "start", u+".service"); err != nil {
			t.Errorf("%s at the limit: %v %v", u, err, h.show(u+".service", "LoadState", "LoadError", "Result", "ExecMainStatus"))
		}
	}
	if p := h.show("line-over.service", "LoadState", "LoadError"); p["LoadState"] != "error" || !strings.Contains(p["LoadError"], "No buffer space available") {
		t.Errorf("a line of %d bytes: %v", unitfile.MaxLine+1, p)
	}
	for _, u := range []string{"arg-over", "env-over"} {
		h.try("systemctl", "start", u+".service")
		if p := h.show(u+".service", "Result", "ExecMainStatus"); p["ExecMainStatus"] != "203" {
			t.Errorf("%s, one byte over: %v, want exit status 203/EXEC (E2BIG)", u, p)
		}
	}

	// sitectl's limit: a site file of site.MaxFileSize bytes, one long
	// argument of the app's, passes check, loads and serves; one byte more
	// is refused by check and skipped by the generator. The file's bound
	// keeps every site within the limits above (an argument, the
	// ExecStart= line, the bytes of exec), which site files once reached.
	shExec := []string{"/bin/sh", "-c", "exec /usr/local/bin/webapp", "sh"}
	siteOf := func(port int, arg string) string {
		var q []string
		for _, a := range append(append([]string{}, shExec...), arg) {
			q = append(q, tomlString(a))
		}
		return "exec = [" + strings.Join(q, ",") + "]\nreadiness = \"notify\"\n" + fmt.Sprintf("[[listen]]\naddress = \"127.0.0.1:%d\"\n", port)
	}
	port := freePort(t)
	largest := siteOf(port, strings.Repeat("x", site.MaxFileSize-len(siteOf(port, ""))))
	if len(largest) != site.MaxFileSize {
		t.Fatalf("the largest site file is %d bytes", len(largest))
	}
	h.writeSite("max-file", largest)
	h.writeSite("over-file", siteOf(port, strings.Repeat("x", site.MaxFileSize-len(siteOf(port, ""))+1)))
	if _, stderr, code := h.result("sitectl", "check", "/etc/sitectl/sites/max-file.toml"); code != 0 {
		t.Errorf("check max-file: exit %d %s", code, stderr)
	}
	if _, stderr, code := h.result("sitectl", "check", "/etc/sitectl/sites/over-file.toml"); code != 2 || !strings.Contains(stderr, "a site file may have at most 65536") {
		t.Errorf("check over-file: exit %d %.300s; want exit 2 and the file's bound", code, stderr)
	}
	h.run("systemctl", "daemon-reload")
	if p := h.show("site-over-file.service", "LoadState"); p["LoadState"] != "not-found" {
		t.Errorf("over-file was generated: %v", p)
	}
	h.run("systemctl", "start", "site-max-file.socket")
	if r := getReply(t, fmt.Sprintf("http://127.0.0.1:%d/", port)); r.Site != "max-file" {
		t.Errorf("max-file: %+v", r)
	}
}

// Issues 13.12 and 13.13 on the real systemd: non-positive and sub-second
// timeouts, and bad site names given to any verb (the internal ones that
// run as root included), exit 2 before anything happens: no state written,
// no job, no process stopped.
func TestBadNamesAndTimeoutsChangeNothing(t *testing.T) {
	port := freePort(t)
	h := newHost(t, map[string]string{"karl": goSite(port, modeSites)})
	h.run("systemctl", "start", "site-karl.socket")
	getReply(t, fmt.Sprintf("http://127.0.0.1:%d/", port))
	snapshot := func() string {
		return h.run("sh", "-c", "cd /var/lib/sitectl && find . -type f | sort | xargs sha256sum")
	}
	before, inv := snapshot(), h.show("site-karl.service", "InvocationID")["InvocationID"]

	for _, verb := range [][]string{{"mode", "karl", "read-only"}, {"restart", "karl"}, {"reload", "karl"}, {"rollback", "karl"}} {
		for _, d := range []string{"-1s", "0", "0s", "1ns", "999ms", "24h0m1s", "500000h"} {
			_, stderr, code := h.result("sitectl", append(verb, "--timeout", d)...)
			if code != 2 || !strings.Contains(stderr, `invalid argument "`+d+`" for "--timeout" flag`) {
				t.Errorf("sitectl %s --timeout %s: exit %d, %q", strings.Join(verb, " "), d, code, stderr)
			}
		}
	}
	for _, args := range [][]string{
		{"launch", "../x", "--", "/bin/true"}, {"launch", "../x", "--reload"}, {"prepare", "../x"},
		{"touched", "../x"}, {"cleanup", "../x"}, {"history", "../x"}, {"status", "karl", "../x"},
		{"mode", "karl", "../x"}, {"launch", "x.service", "--", "/bin/true"}, {"cleanup", ""},
	} {
		_, stderr, code := h.result("sitectl", args...)
		if code != 2 || !strings.Contains(stderr, "nothing was done") {
			t.Errorf("sitectl %q: exit %d, %q", args, code, stderr)
		}
	}
	// cleanup stops what else runs in its cgroup: with a bad name it must
	// not, even as root inside a unit. The sleep is its neighbour.
	out := h.run("systemd-run", "--quiet", "--wait", "--pipe", "--unit=neighbour", "sh", "-c",
		`sleep 300 & sitectl cleanup ../x; echo "rc=$?"; kill -0 $! && echo "neighbour alive"; kill $!`)
	if !strings.Contains(out, "rc=2") || !strings.Contains(out, "neighbour alive") {
		t.Errorf("sitectl cleanup ../x in a unit with a neighbour: %q", out)
	}
	// Nor with a good name anywhere but its site's unit: another unit, or
	// root's shell.
	out = h.run("systemd-run", "--quiet", "--wait", "--pipe", "--unit=neighbour2", "sh", "-c",
		`sleep 300 & sitectl cleanup karl 2>&1; echo "rc=$?"; kill -0 $! && echo "neighbour alive"; kill $!`)
	if !strings.Contains(out, "rc=2") || !strings.Contains(out, "neighbour alive") || !strings.Contains(out, "runs only as the ExecStopPost= of site-karl.service") {
		t.Errorf("sitectl cleanup karl in another unit with a neighbour: %q", out)
	}

	if after := snapshot(); after != before {
		t.Errorf("state changed:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if got := h.show("site-karl.service", "InvocationID")["InvocationID"]; got != inv {
		t.Errorf("the service was restarted")
	}
	if jobs := h.run("systemctl", "list-jobs", "--no-legend"); strings.TrimSpace(jobs) != "" {
		t.Errorf("jobs queued: %s", jobs)
	}
	// A timeout above the floor is accepted, and the verb does its work.
	if _, code, stderr := h.mode("karl", "read-only", "--timeout", "30s"); code != 0 {
		t.Errorf("sitectl mode with --timeout 30s: exit %d %s", code, stderr)
	}
}

// Issue 13.14 on the real systemd: check finds the collisions the kernel
// would refuse at bind time: an IPv4-mapped address against its IPv4
// address, and a unix socket reached through a symlinked directory against
// its real path; the generator skips the second site and the first keeps
// serving. [::] is bound dual-stack, as the check assumes.
func TestListenerCollisionsFound(t *testing.T) {
	port, portDual := freePort(t), freePort(t)
	h := newHost(t, nil)
	h.run("mkdir", "-p", "/srv/real")
	h.run("ln", "-s", "/srv/real", "/srv/link")
	h.writeSite("four", goSite(port, ""))
	h.writeSite("sock", "exec = [\"/usr/local/bin/webapp\"]\nreadiness = \"notify\"\n[[listen]]\npath = \"/srv/real/app.sock\"\n")
	h.writeSite("dual", strings.Replace(goSite(portDual, ""), "127.0.0.1:", "[::]:", 1))
	h.run("systemctl", "daemon-reload")
	cases := []struct{ name, src, want string }{
		{"mapped", strings.Replace(goSite(port, ""), "127.0.0.1:", "[::ffff:127.0.0.1]:", 1),
			fmt.Sprintf("/root/mapped.toml:6:11: listener [::ffff:127.0.0.1]:%d collides with listener 127.0.0.1:%d at /etc/sitectl/sites/four.toml:6:11 of site four", port, port)},
		{"viasymlink", "exec = [\"/usr/local/bin/webapp\"]\n[[listen]]\npath = \"/srv/link/app.sock\"\n",
			"/root/viasymlink.toml:3:8: listener /srv/link/app.sock (/srv/real/app.sock once symlinks are resolved) collides with listener /srv/real/app.sock at /etc/sitectl/sites/sock.toml:4:8 of site sock"},
		{"v4wild", strings.Replace(goSite(portDual, ""), "127.0.0.1:", "0.0.0.0:", 1),
			fmt.Sprintf("/root/v4wild.toml:6:11: listener 0.0.0.0:%d collides with listener [::]:%d", portDual, portDual)},
	}
	for _, c := range cases {
		h.writeFile("/root/"+c.name+".toml", c.src, 0o644)
		if _, stderr, code := h.result("sitectl", "check", "/root/"+c.name+".toml"); code != 2 || !strings.Contains(stderr, c.want) {
			t.Errorf("sitectl check %s: exit %d %q\nwant exit 2 and %s", c.name, code, stderr, c.want)
		}
		h.writeSite("z"+c.name, c.src) // after the installed site by name: the later one is skipped
	}
	h.run("systemctl", "daemon-reload")
	for _, c := range cases {
		if p := h.show("site-z"+c.name+".socket", "LoadState"); p["LoadState"] != "not-found" {
			t.Errorf("site z%s was generated: %v", c.name, p)
		}
	}
	h.run("systemctl", "start", "site-four.socket", "site-sock.socket", "site-dual.socket")
	if r := getReply(t, fmt.Sprintf("http://127.0.0.1:%d/", port)); r.Site != "four" {
		t.Errorf("site four: %+v", r)
	}
	if p := h.show("site-dual.socket", "BindIPv6Only", "ActiveState"); p["BindIPv6Only"] != "both" || p["ActiveState"] != "active" {
		t.Errorf("the [::] socket: %v", p)
	}
	// Dual-stack indeed: IPv4 reaches the [::] listener.
	if r := getReply(t, fmt.Sprintf("http://127.0.0.1:%d/", portDual)); r.Site != "dual" {
		t.Errorf("site dual over IPv4: %+v", r)
	}
}

// systemd deletes whatever is at a unix listener's path when the bind
// finds it taken, and binds again: a site file whose listener points at
// another site's file (or /etc/passwd, or a daemon's socket left a
// symlink) is refused by check and skipped by the generator, and the file
// is still there after a daemon-reload and a start of every socket.
func TestListenerOntoAFileDeletesNothing(t *testing.T) {
	h := newHost(t, map[string]string{"blog": goSite(freePort(t), "")})
	h.writeFile("/srv/keep.txt", "precious\n", 0o644)
	h.writeSite("shop", "exec = [\"/usr/local/bin/webapp\"]\n[[listen]]\npath = \"/srv/keep.txt\"\n")
	out, err := h.try("sitectl", "check", "/etc/sitectl/sites/shop.toml")
	if err == nil || !strings.Contains(out, "/etc/sitectl/sites/shop.toml:3:8: listener /srv/keep.txt: /srv/keep.txt is a regular file, not a socket") {
		t.Errorf("sitectl check of a listener onto a file: %v\n%s", err, out)
	}
	h.run("systemctl", "daemon-reload")
	h.try("systemctl", "start", "sockets.target", "site-shop.socket")
	if got := h.run("cat", "/srv/keep.txt"); got != "precious\n" {
		t.Errorf("the file a listener pointed at is now %q", got)
	}
	if st := h.show("site-shop.socket", "LoadState")["LoadState"]; st != "not-found" {
		t.Errorf("the generator gave the site a socket unit: %s", st)
	}
	if st := h.show("site-blog.socket", "ActiveState")["ActiveState"]; st != "active" {
		t.Errorf("the other site's socket is %s", st)
	}
}
