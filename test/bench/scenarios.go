package main

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// An App is one of the applications every handoff scenario runs.
type App struct {
	ID    string // short, used in unit and site names
	Title string
	// OwnPortUnit is a hand-written service for the app binding port
	// itself, with no socket unit: what an operator writes without sitectl.
	// args go at the end of the server's command line.
	OwnPortUnit func(site string, port int, args string) string
	// SiteFile is a sitectl site file for the app on port; extra goes
	// before the [[listen]] table.
	SiteFile func(port int, extra string) string
	// Process names the process that answered a request (one per
	// generation of the app), "" if the response does not say.
	Process func(header http.Header, body string) string
	// Worker names the very process that answered (a gunicorn or uWSGI
	// worker, whose master may outlive a reload), "" if the response does
	// not say: a switch is done once only processes answer that had not
	// answered before it.
	Worker func(header http.Header, body string) string
	// WSGI apps can be given a realistic import time and cost per request
	// (withLoad).
	WSGI bool
	// Env is the environment both the own-port unit and the site file give
	// the app (withLoad).
	Env []string
	// Settle is how long the harness waits after the app first answered
	// before the load starts (its other workers may still be importing).
	Settle time.Duration
}

// AppLoad makes the WSGI test app realistic: ImportCPU of CPU time to
// import (a cold start), RequestCPU per request.
type AppLoad struct {
	ImportCPU  time.Duration
	RequestCPU time.Duration
}

// withLoad returns the app with the load: for a WSGI app, the environment
// that asks test/apps/wsgi/app.py for it, and a title that says so.
func (a App) withLoad(l AppLoad) App {
	a.Settle = time.Second
	if !a.WSGI || (l.ImportCPU <= 0 && l.RequestCPU <= 0) {
		return a
	}
	a.Env = []string{
		"WSGI_IMPORT_CPU_SECONDS=" + formatFloat(l.ImportCPU.Seconds(), 3),
		"WSGI_REQUEST_CPU_MS=" + formatFloat(float64(l.RequestCPU)/float64(time.Millisecond), 3),
	}
	// gunicorn's workers import after the first one answers; uWSGI's master
	// imports before it forks them. Two workers on a shared machine.
	a.Settle = time.Second + 2*l.ImportCPU
	a.Title += fmt.Sprintf(", importing for %s of CPU, %s of CPU per request", l.ImportCPU, l.RequestCPU)
	return a
}

// Unit is the app's own-port unit with its environment.
func (a App) Unit(site string, port int, args string) string {
	u := a.OwnPortUnit(site, port, args)
	if len(a.Env) > 0 {
		u = strings.Replace(u, "[Service]\n", "[Service]\nEnvironment="+strings.Join(a.Env, " ")+"\n", 1)
	}
	return u
}

// Site is the app's site file with its environment.
func (a App) Site(port int, extra string) string {
	f := a.SiteFile(port, extra)
	if len(a.Env) == 0 {
		return f
	}
	var kv []string
	for _, e := range a.Env {
		k, v, _ := strings.Cut(e, "=")
		kv = append(kv, fmt.Sprintf("%s = %q", k, v))
	}
	return "environment = { " + strings.Join(kv, ", ") + " }\n" + f
}

// workerPID is the "pid" of the WSGI app's JSON answer: the worker that
// answered.
func workerPID(_ http.Header, body string) string {
	var r struct {
		PID int `json:"pid"`
	}
	if json.Unmarshal([]byte(body), &r) != nil || r.PID == 0 {
		return ""
	}
	return strconv.Itoa(r.PID)
}

// masterPID is the "ppid" of the WSGI app's JSON answer: gunicorn's or
// uWSGI's master, one per generation (its workers are its children).
func masterPID(_ http.Header, body string) string {
	var r struct {
		PPID int `json:"ppid"`
	}
	if json.Unmarshal([]byte(body), &r) != nil || r.PPID == 0 {
		return ""
	}
	return strconv.Itoa(r.PPID)
}

// Both own-port units drain like the sitectl sites do (10 s), stop the way
// sitectl's units stop (KillMode=mixed) and have sitectl's start limit (30
// starts in 10 s; systemd's default of 5 would fail quick runs), so that what
// differs from scenario 2 is who holds the listening socket, and the
// hardening and helper processes of sitectl's units.
var apps = []App{
	{
		ID:    "go",
		Title: "Go app (test/apps/webapp)",
		OwnPortUnit: func(site string, port int, args string) string {
			return fmt.Sprintf(`[Unit]
Description=sitectl benchmark: the Go test app binding its own port (no socket unit)
StartLimitIntervalSec=10s
StartLimitBurst=30

[Service]
Type=notify
Environment=SITE=%s SITE_MODE=normal SITE_DRAIN_TIMEOUT=10s
ExecStart=/usr/local/bin/webapp --listen 127.0.0.1:%d%s
KillMode=mixed
TimeoutStopSec=15
`, site, port, args)
		},
		SiteFile: func(port int, extra string) string {
			return fmt.Sprintf(`exec = ["/usr/local/bin/webapp"]
readiness = "notify"
drain_timeout = "10s"
%s
[[listen]]
address = "127.0.0.1:%d"
`, extra, port)
		},
		Process: func(h http.Header, _ string) string { return h.Get("X-Pid") },
		Worker:  func(h http.Header, _ string) string { return h.Get("X-Pid") },
	},
	{
		ID:    "gunicorn",
		Title: "gunicorn from Debian, 2 workers (test/apps/wsgi/app.py)",
		// As gunicorn's documentation deploys it (Type=notify, reload is
		// kill -HUP), with a pid file for the USR2 dance.
		OwnPortUnit: func(site string, port int, args string) string {
			return fmt.Sprintf(`[Unit]
Description=sitectl benchmark: gunicorn binding its own port (no socket unit)
StartLimitIntervalSec=10s
StartLimitBurst=30

[Service]
Type=notify
WorkingDirectory=/srv/wsgi
RuntimeDirectory=%[1]s
Environment=SITE=%[1]s SITE_MODE=normal
ExecStart=/usr/bin/gunicorn --workers 2 --graceful-timeout 10 --pid /run/%[1]s/gunicorn.pid --bind 127.0.0.1:%[2]d%[3]s app:application
ExecReload=/bin/kill -s HUP $MAINPID
KillMode=mixed
TimeoutStopSec=15
`, site, port, args)
		},
		SiteFile: func(port int, extra string) string {
			return fmt.Sprintf(`exec = ["/usr/bin/gunicorn", "--workers", "2", "app:application"]
workdir = "/srv/wsgi"
server = "gunicorn"
drain_timeout = "10s"
%s
[[listen]]
address = "127.0.0.1:%d"
`, extra, port)
		},
		Process: masterPID,
		Worker:  workerPID,
		WSGI:    true,
	},
	{
		ID:    "uwsgi",
		Title: "uWSGI from Debian, 2 workers (test/apps/wsgi/app.py)",
		// uWSGI 2.0 treats SIGTERM as a brutal reload: the hook makes it a
		// graceful stop, as sitectl's uwsgi preset does.
		OwnPortUnit: func(site string, port int, args string) string {
			return fmt.Sprintf(`[Unit]
Description=sitectl benchmark: uWSGI binding its own port (no socket unit)
StartLimitIntervalSec=10s
StartLimitBurst=30

[Service]
Type=notify
Environment=SITE=%s SITE_MODE=normal
Environment="UWSGI_HOOK_MASTER_START=unix_signal:15 gracefully_kill_them_all" UWSGI_WORKER_RELOAD_MERCY=10
ExecStart=/usr/bin/uwsgi --master --plugin python3 --http-socket 127.0.0.1:%d --wsgi-file /srv/wsgi/app.py --processes 2%s
KillMode=mixed
TimeoutStopSec=15
`, site, port, args)
		},
		SiteFile: func(port int, extra string) string {
			return fmt.Sprintf(`exec = ["/usr/bin/uwsgi", "--master", "--plugin", "python3", "--protocol", "http", "--wsgi-file", "/srv/wsgi/app.py", "--processes", "2"]
server = "uwsgi"
drain_timeout = "10s"
%s
[[listen]]
address = "127.0.0.1:%d"
`, extra, port)
		},
		Process: masterPID,
		Worker:  workerPID,
		WSGI:    true,
	},
}

// appIDs lists the apps' IDs for messages.
func appIDs() string {
	var ids []string
	for _, a := range apps {
		ids = append(ids, a.ID)
	}
	return strings.Join(ids, ", ")
}

// modeExtra gives a site the mode scenario 3 switches to, and the probe
// sitectl verifies the switch with (as an operator would configure it).
const modeExtra = `
[probe]
path = "/"
timeout = "10s"

[modes.read-only]
environment = { READ_ONLY = "1" }
`

// Install is what a scenario puts into the sandbox for one app.
type Install struct {
	Files map[string]string // path inside the sandbox → content
	Start []string          // units started before the load (a socket or a service)
	Stop  []string          // units stopped after the scenario
	Name  string            // the site or unit the switches act on
	Unit  string            // the service that runs the app (checked after every switch)
	Port  int
}

// A Scenario is one way of handing a running site over to a new process.
// Adding one is adding an entry to scenarios.
type Scenario struct {
	ID    string
	Title string
	// Command describes the switch, with SITE standing for the site name.
	Command string
	// Apps restricts the scenario to these apps (a server's own reload);
	// nil means every app.
	Apps []string
	// Peer marks what operators use instead of sitectl.
	Peer bool
	// Control marks the scenario that switches nothing: its command only
	// waits, and nothing is waited for after it. Its windows are as long
	// as a quick switch's, so its p99 ratios are what chance, the load
	// generator and the harness alone make of a ratio on this machine.
	Control bool
	// MaxSwitches caps the switches per repetition (0: -switches), for
	// methods that take long.
	MaxSwitches int
	// StopOnError ends a repetition's switches at the first that fails: a
	// failed multi-step switch leaves the server in a state the next one
	// was not written for.
	StopOnError bool
	// Install returns what the scenario needs for app a on port.
	Install func(a App, port int) Install
	// Switch is the command line of switch i (0-based).
	Switch func(in Install, i int) []string
	// Shown is how the tables show the switch command; nil means the
	// command lines of the first two switches.
	Shown func(in Install) string
	// Recent: the processes that count as serving before a switch are
	// those that answered within Recent before it; 0: every process that
	// ever answered. A warm rollback flips back to a process that answered
	// before the deploy that preceded it.
	Recent time.Duration
	// Counted tells which switches (numbered across repetitions) count in
	// the scenario's switch times; nil: all. The others (the deploy before
	// each rollback) switch and open windows all the same.
	Counted func(i int) bool
	// Available reports whether the sitectl under test can do this at all
	// with what Install returned, and if not, why (shown in the table). Nil
	// means always.
	Available func(ctx context.Context, h *host, in Install) (bool, string)
}

// runsWith tells whether the scenario applies to app id.
func (s Scenario) runsWith(id string) bool { return s.Apps == nil || slices.Contains(s.Apps, id) }

func siteInstall(a App, site, extra string, port int) Install {
	return Install{
		Files: map[string]string{"/etc/sitectl/sites/" + site + ".toml": a.Site(port, extra)},
		Start: []string{"site-" + site + ".socket"},
		Stop:  []string{"site-" + site + ".socket", "site-" + site + ".service"},
		Name:  site,
		Unit:  "site-" + site + ".service",
		Port:  port,
	}
}

// ownInstall is a plain unit NAME.service binding its own port, with args
// for the server and extra files.
func ownInstall(a App, name string, port int, args string, files map[string]string) Install {
	unit := name + ".service"
	in := Install{
		Files: map[string]string{"/etc/systemd/system/" + unit: a.Unit(name, port, args)},
		Start: []string{unit},
		Stop:  []string{unit},
		Name:  name,
		Unit:  unit,
		Port:  port,
	}
	maps.Copy(in.Files, files)
	return in
}

// alternate returns a when i is even, b when it is odd.
func alternate(i int, a, b string) string {
	if i%2 == 0 {
		return a
	}
	return b
}

// touchFile is the file a uWSGI scenario touches to reload unit name.
func touchFile(name string) string { return "/srv/bench/" + name + ".touch" }

var scenarios = []Scenario{
	{
		ID:    "control",
		Title: "0. control",
		Command: "`sleep 1` in the sandbox: nothing is switched. Its windows last as long as a quick switch's (1 s and the tail), " +
			"so its p99 ratios are what chance, the load generator and the harness alone give on this machine: the floor under every other row",
		Control: true,
		Install: func(a App, port int) Install { return siteInstall(a, a.ID+"-control", "", port) },
		Switch:  func(_ Install, _ int) []string { return []string{"sleep", "1"} },
	},
	{
		ID:      "own-port",
		Title:   "1. own port",
		Command: "`systemctl restart bench-SITE.service` (plain unit, the app binds its port, no socket unit)",
		Peer:    true,
		Install: func(a App, port int) Install { return ownInstall(a, "bench-"+a.ID+"-own", port, "", nil) },
		Switch:  func(in Install, _ int) []string { return []string{"systemctl", "restart", in.Unit} },
	},
	{
		ID:      "socket-held",
		Title:   "2. socket-held",
		Command: "`systemctl restart site-SITE.service` (sitectl's generated units)",
		Install: func(a App, port int) Install { return siteInstall(a, a.ID+"-socket", "", port) },
		Switch:  func(in Install, _ int) []string { return []string{"systemctl", "restart", in.Unit} },
	},
	{
		ID:      "sitectl-mode",
		Title:   "3. sitectl mode",
		Command: "`sitectl mode SITE read-only` / `normal`, alternating (restart handoff, verified by a probe)",
		Install: func(a App, port int) Install { return siteInstall(a, a.ID+"-mode", modeExtra, port) },
		Switch: func(in Install, i int) []string {
			return []string{"sitectl", "mode", in.Name, alternate(i, "read-only", "normal")}
		},
	},
	{
		ID:      "overlap-reload",
		Title:   "4a. overlap reload",
		Command: "`sitectl reload SITE` on a site with `handoff = \"overlap\"` (the new generation is ready before the old one drains)",
		Install: func(a App, port int) Install {
			return siteInstall(a, a.ID+"-ovreload", overlapExtra+modeExtra, port)
		},
		Switch:    func(in Install, _ int) []string { return []string{"sitectl", "reload", in.Name} },
		Available: overlapAvailable,
	},
	{
		ID:    "overlap-reload-normal",
		Title: "4c. overlap reload, normal start",
		Command: "`sitectl reload SITE` as in 4a, with `start_priority = \"normal\"`: the new generation starts at the priority of everything else " +
			"instead of under SCHED_IDLE (issue 16.3: what the idle start saves the neighbour, measured side by side)",
		Install: func(a App, port int) Install {
			return siteInstall(a, a.ID+"-ovnormal", overlapExtra+"start_priority = \"normal\"\n"+modeExtra, port)
		},
		Switch:    func(in Install, _ int) []string { return []string{"sitectl", "reload", in.Name} },
		Available: overlapAvailable,
	},
	{
		ID:    "overlap-reload-full-exit",
		Title: "4d. overlap reload, full exit",
		Command: "`sitectl reload SITE` as in 4a, with `fast_exit = false` (gunicorn only): the replaced generation's master and workers end " +
			"with Python's teardown of the interpreter, as gunicorn ends them, instead of right after their atexit handlers " +
			"(what the fast exit saves the visitors, measured side by side)",
		Apps: []string{"gunicorn"},
		Install: func(a App, port int) Install {
			return siteInstall(a, a.ID+"-ovfull", overlapExtra+"fast_exit = false\n"+modeExtra, port)
		},
		Switch:    func(in Install, _ int) []string { return []string{"sitectl", "reload", in.Name} },
		Available: overlapAvailable,
	},
	{
		ID:      "overlap-mode",
		Title:   "4b. overlap mode",
		Command: "`sitectl mode SITE read-only` / `normal`, alternating, on a site with `handoff = \"overlap\"`",
		Install: func(a App, port int) Install {
			return siteInstall(a, a.ID+"-ovmode", overlapExtra+modeExtra, port)
		},
		Switch: func(in Install, i int) []string {
			return []string{"sitectl", "mode", in.Name, alternate(i, "read-only", "normal")}
		},
		Available: overlapAvailable,
	},
	rollbackScenario(false),
	rollbackScenario(true),
	{
		ID:      "gunicorn-hup",
		Title:   "5a. gunicorn HUP",
		Command: "`systemctl reload bench-SITE.service`, which is `kill -s HUP $MAINPID` as in gunicorn's own systemd example: gunicorn starts new workers and stops the old ones; the command returns at once",
		Apps:    []string{"gunicorn"},
		Peer:    true,
		Install: func(a App, port int) Install { return ownInstall(a, "bench-gunicorn-hup", port, "", nil) },
		Switch:  func(in Install, _ int) []string { return []string{"systemctl", "reload", in.Unit} },
	},
	{
		ID:    "gunicorn-usr2",
		Title: "5b. gunicorn USR2 dance",
		Command: "gunicorn's binary upgrade under systemd, as its documentation describes it: `kill -USR2` the master, wait until the new master's workers answer, " +
			"`kill -WINCH` the old master, wait up to 3 s for its workers to stop, `kill -QUIT` it and wait for it to exit (a shell script, `usr2Script` in test/bench/scenarios.go)",
		Apps:        []string{"gunicorn"},
		Peer:        true,
		StopOnError: true,
		Install:     func(a App, port int) Install { return ownInstall(a, "bench-gunicorn-usr2", port, "", nil) },
		// Bounded: on an overloaded machine the checks could wait long.
		Switch: func(in Install, _ int) []string { return []string{"timeout", "120", "sh", "-c", usr2Script(in)} },
		Shown: func(in Install) string {
			return "`kill -USR2 $MAINPID`, `kill -WINCH` and `kill -QUIT` the old master"
		},
	},
	{
		ID:      "uwsgi-touch",
		Title:   "6a. uWSGI touch-reload",
		Command: "`touch FILE` of a plain unit running uWSGI with `--touch-reload FILE`: uWSGI reloads gracefully (its master execs itself again and loads the app before forking new workers); the command returns at once",
		Apps:    []string{"uwsgi"},
		Peer:    true,
		Install: func(a App, port int) Install {
			name := "bench-uwsgi-touch"
			return ownInstall(a, name, port, " --touch-reload "+touchFile(name), map[string]string{touchFile(name): ""})
		},
		Switch: func(in Install, _ int) []string { return []string{"touch", touchFile(in.Name)} },
	},
	{
		ID:    "uwsgi-chain",
		Title: "6b. uWSGI chain reload",
		Command: "`touch FILE` of a plain unit running uWSGI with `--lazy-apps --touch-chain-reload FILE`: uWSGI replaces one worker at a time, " +
			"each new one loading the app before the next old one stops; the command returns at once",
		Apps:        []string{"uwsgi"},
		Peer:        true,
		MaxSwitches: 5,
		Install: func(a App, port int) Install {
			name := "bench-uwsgi-chain"
			return ownInstall(a, name, port, " --lazy-apps --touch-chain-reload "+touchFile(name), map[string]string{touchFile(name): ""})
		},
		Switch: func(in Install, _ int) []string { return []string{"touch", touchFile(in.Name)} },
	},
}

// usr2Script is gunicorn's binary upgrade as an operator scripts it,
// following gunicorn's documentation: USR2 starts a new master (and its
// workers) beside the old one; WINCH asks the old master to stop its
// workers; QUIT stops the old master. It waits for the old master to exit
// and prints what it saw. Under systemd the old master is the unit's main
// process.
func usr2Script(in Install) string {
	return fmt.Sprintf(`set -u
unit=%s pidfile=/run/%s/gunicorn.pid url=http://127.0.0.1:%d/
old=$(systemctl show -p MainPID --value "$unit")
kill -USR2 "$old" || exit 1
i=0; until [ -s "$pidfile.2" ]; do i=$((i+1)); [ $i -lt 300 ] || { echo "no new master 30 s after USR2"; exit 1; }; sleep 0.1; done
new=$(cat "$pidfile.2")
i=0; until curl -fsS --max-time 2 "$url" 2>/dev/null | grep -q "\"ppid\": $new,"; do i=$((i+1)); [ $i -lt 300 ] || { echo "the new master's workers did not answer within 30 s"; exit 1; }; sleep 0.1; done
echo "USR2: new master $new answers after $i polls;"
kill -WINCH "$old"
i=0; while [ -n "$(pgrep -P "$old" | grep -vx "$new")" ] && [ $i -lt 30 ]; do i=$((i+1)); sleep 0.1; done
echo "WINCH: $(pgrep -P "$old" | grep -vx "$new" | wc -l) old workers still running after $i polls;"
kill -QUIT "$old"
i=0; while kill -0 "$old" 2>/dev/null && [ $i -lt 300 ]; do i=$((i+1)); sleep 0.1; done
sleep 1
echo "QUIT: the old master $old $(kill -0 "$old" 2>/dev/null && echo still runs || echo exited) after $i polls; a second later the new master $new $(kill -0 "$new" 2>/dev/null && echo runs || echo is gone) and $unit is $(systemctl show -p ActiveState --value "$unit")"
`, in.Unit, in.Name, in.Port)
}

// overlapExtra asks for the overlapped handoff (issue 5).
const overlapExtra = "handoff = \"overlap\"\n"

// keepPreviousExtra keeps the replaced generation warm for the whole run.
const keepPreviousExtra = "keep_previous = \"1h\"\n"

// recentAnswers is how recently a process must have answered to count as
// the one serving before a rollback: less than the gap between switches.
const recentAnswers = 500 * time.Millisecond

// rollbackScenario is 7a (warm) or 7b (cold): a deploy, not counted,
// before each rollback of a site with keep_previous.
func rollbackScenario(cold bool) Scenario {
	s := Scenario{
		ID:    "rollback-warm",
		Title: "7a. warm rollback",
		Command: "`sitectl mode SITE read-only` (a deploy, not counted), then `sitectl rollback SITE`, alternating, on a site with `handoff = \"overlap\"` and `keep_previous`: " +
			"the generation the deploy replaced is still warm and serves again without starting a process; the times are the rollbacks'",
		Recent:    recentAnswers,
		Counted:   rollbacks,
		Available: overlapAvailable,
	}
	if cold {
		s.ID, s.Title = "rollback-cold", "7b. cold rollback"
		s.Command = "the same as 7a with `sitectl rollback SITE --cold`: the rollback starts a new generation in the previous mode and hands over to it, " +
			"as a site without `keep_previous` does; the times are the rollbacks'"
	}
	suffix := strings.TrimPrefix(s.ID, "rollback-")
	s.Install = func(a App, port int) Install {
		return siteInstall(a, a.ID+"-rb"+suffix, overlapExtra+keepPreviousExtra+modeExtra, port)
	}
	s.Switch = func(in Install, i int) []string { return deployOrRollback(in, i, cold) }
	return s
}

// rollbacks are the odd switches of the rollback scenarios.
func rollbacks(i int) bool { return i%2 == 1 }

// deployOrRollback is switch i of a rollback scenario: a deploy (a switch
// to mode read-only) before each rollback.
func deployOrRollback(in Install, i int, cold bool) []string {
	if !rollbacks(i) {
		return []string{"sitectl", "mode", in.Name, "read-only"}
	}
	if cold {
		return []string{"sitectl", "rollback", in.Name, "--cold"}
	}
	return []string{"sitectl", "rollback", in.Name}
}

// overlapAvailable tells whether the sitectl under test has the overlapped
// handoff: a reload verb (cobra exits non-zero for an unknown verb, even
// with --help) and site files that may ask for it.
func overlapAvailable(ctx context.Context, h *host, in Install) (bool, string) {
	if _, err := h.run(ctx, "sitectl", "reload", "--help"); err != nil {
		return false, "not available: `sitectl reload --help` fails (overlapped reload is not implemented yet)"
	}
	if ok, out := h.checkSiteFiles(ctx, in); !ok {
		return false, "not available: `sitectl check` refuses the site file with `handoff = \"overlap\"`: " + firstLine(out)
	}
	return true, ""
}

// scenarioIDs lists the scenarios' IDs, in order.
func scenarioIDs() []string {
	var ids []string
	for _, s := range scenarios {
		ids = append(ids, s.ID)
	}
	return ids
}

// scenarioByID returns the scenario with the id.
func scenarioByID(id string) (Scenario, bool) {
	for _, s := range scenarios {
		if s.ID == id {
			return s, true
		}
	}
	return Scenario{}, false
}

func appByID(id string) (App, bool) {
	for _, a := range apps {
		if a.ID == id {
			return a, true
		}
	}
	return App{}, false
}

// commandFor renders the switch commands a scenario runs, as the table
// shows them: the distinct command lines of the first two switches.
func commandFor(s Scenario, in Install) string {
	if s.Shown != nil {
		return s.Shown(in)
	}
	var parts []string
	seen := map[string]bool{}
	for i := 0; i < 2; i++ {
		c := strings.Join(s.Switch(in, i), " ")
		if !seen[c] {
			seen[c] = true
			parts = append(parts, "`"+c+"`")
		}
	}
	return strings.Join(parts, " / ")
}
