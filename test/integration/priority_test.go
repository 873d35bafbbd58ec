//go:build integration

package integration

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

// Issue 16.3: an overlapped reload starts its new generation at idle
// priority, so that its cold start (a second of CPU importing the app in
// each gunicorn worker here) takes no CPU its neighbours want, and root's
// side of ExecReload= promotes the generation, master and workers, to
// normal priority once it is ready: it serves at normal priority. With
// start_priority = "normal" nothing starts idle. Idle priority is an
// autogroup at nice 19 with SCHED_BATCH and a 100 us slice where the
// kernel groups tasks by session (the unit's cgroup has no cpu controller,
// as on this project's hosts), SCHED_IDLE in a cpu cgroup.
func TestOverlapStartsIdleAndIsPromoted(t *testing.T) {
	for _, c := range []struct {
		name  string
		extra string
		idle  bool
	}{
		{"idle", "", true},
		{"normal", "start_priority = \"normal\"\n", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			port := freePort(t)
			h := newHost(t, map[string]string{"ov": gunicornSite(port, "handoff = \"overlap\"\n"+c.extra+
				"environment = { WSGI_IMPORT_CPU_SECONDS = \"1\" }\n[probe]\npath = \"/\"\ntimeout = \"10s\"\n")})
			h.run("systemctl", "start", "site-ov.socket")
			url := fmt.Sprintf("http://127.0.0.1:%d/", port)
			getReply(t, url)
			first := h.cgroupProcs("site-ov.service")
			for _, p := range first {
				if pol := h.policy(p); pol != "0" {
					t.Fatalf("pid %s of the first generation has policy %s, want 0 (SCHED_OTHER)", p, pol)
				}
			}

			// Every 20 ms, the policy of every process in the unit, while
			// the reload runs.
			cg := "/sys/fs/cgroup" + h.show("site-ov.service", "ControlGroup")["ControlGroup"]
			idlePolicy, idleSlice := "3", "100000" // SCHED_BATCH, 100 us
			if slices.Contains(strings.Fields(h.run("cat", cg+"/cgroup.controllers")), "cpu") {
				idlePolicy, idleSlice = "5", "" // SCHED_IDLE
			}
			h.run("touch", "/run/watch-policies")
			seen := make(chan string, 1)
			go func() {
				out, _ := h.try("sh", "-c", `while [ -e /run/watch-policies ]; do
  for p in $(cat `+cg+`/cgroup.procs); do
    # Root's side of the reload (ExecReload=+) runs in the unit's cgroup
    # and yields on its own (TestChangeCommandsYield).
    { tr '\0' ' ' < /proc/$p/cmdline; } 2>/dev/null | grep -q -- ' --reload' && continue
    echo "$p $(awk '/^policy/{print $3}' /proc/$p/sched 2>/dev/null) $(awk '{print $3}' /proc/$p/autogroup 2>/dev/null) $(awk '/^se.slice/{print $3}' /proc/$p/sched 2>/dev/null)"
  done
  sleep 0.02
done`)
				seen <- out
			}()
			h.run("sitectl", "reload", "ov")
			h.run("rm", "/run/watch-policies")
			watched := <-seen

			// Under SCHED_IDLE in an autogroup at nice 0, a generation
			// (a session of its own) still takes a whole group's share
			// from its neighbours: an idle start has its autogroup at
			// nice 19 too (idleGroup: the new generation's pids seen so).
			var idle, idleGroup []string
			for _, l := range strings.Split(strings.TrimSpace(watched), "\n") {
				f := strings.Fields(l)
				if len(f) >= 2 && f[1] != "0" && f[1] != idlePolicy {
					t.Errorf("pid %s was seen with policy %s, want 0 or %s: %q", f[0], f[1], idlePolicy, l)
				}
				if len(f) >= 2 && f[1] == idlePolicy && (idleSlice == "" || len(f) == 4 && f[3] == idleSlice) && !slices.Contains(idle, f[0]) {
					idle = append(idle, f[0])
				}
				// The first generation drains in one (drainPriority).
				if len(f) >= 3 && f[2] == "19" && !slices.Contains(idleGroup, f[0]) && !slices.Contains(first, f[0]) {
					idleGroup = append(idleGroup, f[0])
				}
			}
			if c.idle && len(idleGroup) == 0 {
				t.Fatalf("no process of the new generation was seen in an autogroup at nice 19; seen:\n%s", watched)
			}
			if !c.idle && len(idleGroup) > 0 {
				t.Fatalf("start_priority = \"normal\", but pids %v ran in an autogroup at nice 19", idleGroup)
			}
			if c.idle && len(idle) == 0 {
				t.Fatalf("no process of the new generation was seen with policy %s, slice %q; seen:\n%s", idlePolicy, idleSlice, watched)
			}
			if !c.idle && len(idle) > 0 {
				t.Fatalf("start_priority = \"normal\", but pids %v ran with policy %s", idle, idlePolicy)
			}
			for _, p := range idle {
				if slices.Contains(first, p) {
					t.Errorf("pid %s of the serving generation was at idle priority", p)
				}
			}
			serving := getReply(t, url)
			for _, p := range h.cgroupProcs("site-ov.service") {
				if pol := h.policy(p); pol != "" && pol != "0" {
					t.Errorf("after the reload pid %s (serving: master %d) has policy %s, want 0", p, serving.PPID, pol)
				}
				if out, err := h.try("awk", "{print $3}", "/proc/"+p+"/autogroup"); err == nil && strings.TrimSpace(out) != "0" {
					t.Errorf("after the reload pid %s (serving: master %d) is in an autogroup at nice %s, want 0", p, serving.PPID, strings.TrimSpace(out))
				}
			}
			journal := h.run("journalctl", "-u", "site-ov.service", "--no-pager", "-o", "cat")
			// Promoted once ready, or, on a host so busy that idle
			// priority gets no CPU for a while, by the launcher's
			// failsafe (PromoteAfter): either way, promoted.
			promoted := strings.Contains(journal, "generation 2 promoted since it is ready") ||
				strings.Contains(journal, "generation 2 promoted since it is still starting after")
			if c.idle && !strings.Contains(journal, "their autogroup to nice 0") {
				t.Errorf("the journal does not say generation 2's autogroup went back to nice 0:\n%s", journal)
			}
			if c.idle && !promoted {
				t.Errorf("the journal does not say generation 2 was promoted:\n%s", journal)
			}
			if !c.idle && (promoted || strings.Contains(journal, "at idle priority")) {
				t.Errorf("start_priority = \"normal\", but the journal says:\n%s", journal)
			}
			t.Logf("%d processes of generation 2 seen with policy %s; the journal:\n%s", len(idle), idlePolicy, grepLines(journal, "generation 2"))
		})
	}
}

// policy is a process's scheduling policy (0 SCHED_OTHER, 3 SCHED_BATCH,
// 5 SCHED_IDLE);
// "" once it exited.
func (h *host) policy(pid string) string {
	out, err := h.try("awk", "/^policy/{print $3}", "/proc/"+pid+"/sched")
	if err != nil { // exited meanwhile: a draining process
		return ""
	}
	return strings.TrimSpace(out)
}

// The commands of a change yield (launcher.Yield): `sitectl reload` runs
// under SCHED_IDLE until its verification has gone on for half a second
// (here: while it watches the new generation settle), then at normal
// priority;
// root's side of the reload (`sitectl launch SITE --reload`, ExecReload=+),
// a session of its own, at an idle start's priority in an autogroup at
// nice 19. With SITECTL_PRIORITY=normal the command keeps its priority.
func TestChangeCommandsYield(t *testing.T) {
	port := freePort(t)
	// settle_time: the verification, at normal priority, lasts seconds,
	// so that the watch below sees it.
	h := newHost(t, map[string]string{"ov": gunicornSite(port, "handoff = \"overlap\"\nsettle_time = \"5s\"\n"+
		"environment = { WSGI_IMPORT_CPU_SECONDS = \"1\" }\n[probe]\npath = \"/\"\ntimeout = \"10s\"\n")})
	h.run("systemctl", "start", "site-ov.socket")
	getReply(t, fmt.Sprintf("http://127.0.0.1:%d/", port))
	cg := "/sys/fs/cgroup" + h.show("site-ov.service", "ControlGroup")["ControlGroup"]
	rootPolicy := "3" // SCHED_BATCH, as an idle start outside a cpu cgroup
	if slices.Contains(strings.Fields(h.run("cat", cg+"/cgroup.controllers")), "cpu") {
		rootPolicy = "5"
	}
	for _, normal := range []bool{false, true} {
		// Every 20 ms: each sitectl process's policy, autogroup nice
		// value and command line.
		h.run("touch", "/run/watch-sitectl")
		seen := make(chan string, 1)
		go func() {
			out, _ := h.try("sh", "-c", `while [ -e /run/watch-sitectl ]; do
  for p in $(pgrep -x sitectl); do echo "$(awk '/^policy/{print $3}' /proc/$p/sched 2>/dev/null) $(awk '{print $3}' /proc/$p/autogroup 2>/dev/null) $(tr '\0' ' ' < /proc/$p/cmdline 2>/dev/null)"; done
  sleep 0.02
done`)
			seen <- out
		}()
		argv := []string{"sitectl", "reload", "ov"}
		if normal {
			argv = append([]string{"env", "SITECTL_PRIORITY=normal"}, argv...)
		}
		h.run(argv[0], argv[1:]...)
		h.run("rm", "/run/watch-sitectl")
		var cli, root []string // "policy autogroup", in the order seen
		for _, l := range strings.Split(strings.TrimSpace(<-seen), "\n") {
			f := strings.Fields(l)
			if len(f) < 4 {
				continue
			}
			switch {
			case slices.Contains(f, "launch") && slices.Contains(f, "--reload"):
				root = append(root, f[0]+" "+f[1])
			case f[len(f)-2] == "reload" && f[len(f)-1] == "ov":
				cli = append(cli, f[0])
			}
		}
		idle := slices.Index(cli, "5")
		if normal {
			if idle >= 0 {
				t.Errorf("SITECTL_PRIORITY=normal, but sitectl reload was seen under SCHED_IDLE: %v", cli)
			}
			continue
		}
		if idle < 0 {
			t.Errorf("sitectl reload was never seen under SCHED_IDLE (5): %v", cli)
		} else if !slices.Contains(cli[idle:], "0") {
			t.Errorf("sitectl reload did not take its priority back while it verified the reload: %v", cli)
		}
		if !slices.Contains(root, rootPolicy+" 19") {
			t.Errorf("root's side of the reload was never seen with policy %s in an autogroup at nice 19: %v", rootPolicy, root)
		}
		t.Logf("sitectl reload: %v; root's side: %v", cli, root)
	}
}
