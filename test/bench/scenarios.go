package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// An App is one of the applications every handoff scenario runs.
type App struct {
	ID    string // short, used in unit and site names
	Title string
	// OwnPortUnit is a hand-written service for the app binding port
	// itself, with no socket unit: what an operator writes without sitectl.
	OwnPortUnit func(site string, port int) string
	// SiteFile is a sitectl site file for the app on port; extra goes
	// before the [[listen]] table.
	SiteFile func(port int, extra string) string
	// Process names the process that answered a request (one per
	// generation of the app), "" if the response does not say.
	Process func(header http.Header, body string) string
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
		OwnPortUnit: func(site string, port int) string {
			return fmt.Sprintf(`[Unit]
Description=sitectl benchmark: the Go test app binding its own port (no socket unit)
StartLimitIntervalSec=10s
StartLimitBurst=30

[Service]
Type=notify
Environment=SITE=%s SITE_MODE=normal SITE_DRAIN_TIMEOUT=10s
ExecStart=/usr/local/bin/webapp --listen 127.0.0.1:%d
KillMode=mixed
TimeoutStopSec=15
`, site, port)
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
	},
	{
		ID:    "gunicorn",
		Title: "gunicorn from Debian, 2 workers (test/apps/wsgi/app.py)",
		OwnPortUnit: func(site string, port int) string {
			return fmt.Sprintf(`[Unit]
Description=sitectl benchmark: gunicorn binding its own port (no socket unit)
StartLimitIntervalSec=10s
StartLimitBurst=30

[Service]
Type=notify
WorkingDirectory=/srv/wsgi
Environment=SITE=%s SITE_MODE=normal
ExecStart=/usr/bin/gunicorn --workers 2 --graceful-timeout 10 --bind 127.0.0.1:%d app:application
KillMode=mixed
TimeoutStopSec=15
`, site, port)
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
	},
	{
		ID:    "uwsgi",
		Title: "uWSGI from Debian, 2 workers (test/apps/wsgi/app.py)",
		// uWSGI 2.0 treats SIGTERM as a brutal reload: the hook makes it a
		// graceful stop, as sitectl's uwsgi preset does.
		OwnPortUnit: func(site string, port int) string {
			return fmt.Sprintf(`[Unit]
Description=sitectl benchmark: uWSGI binding its own port (no socket unit)
StartLimitIntervalSec=10s
StartLimitBurst=30

[Service]
Type=notify
Environment=SITE=%s SITE_MODE=normal
Environment="UWSGI_HOOK_MASTER_START=unix_signal:15 gracefully_kill_them_all" UWSGI_WORKER_RELOAD_MERCY=10
ExecStart=/usr/bin/uwsgi --master --plugin python3 --http-socket 127.0.0.1:%d --wsgi-file /srv/wsgi/app.py --processes 2
KillMode=mixed
TimeoutStopSec=15
`, site, port)
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
}

// A Scenario is one way of handing a running site over to a new process.
// Adding one is adding an entry to scenarios.
type Scenario struct {
	ID    string
	Title string
	// Command describes the switch, with SITE standing for the site name.
	Command string
	// Install returns what the scenario needs for app a on port.
	Install func(a App, port int) Install
	// Switch is the command line of switch i (0-based) on in.Name.
	Switch func(name string, i int) []string
	// Available reports whether the sitectl under test can do this at all
	// with what Install returned, and if not, why (shown in the table). Nil
	// means always.
	Available func(ctx context.Context, h *host, in Install) (bool, string)
}

func siteInstall(a App, site, extra string, port int) Install {
	return Install{
		Files: map[string]string{"/etc/sitectl/sites/" + site + ".toml": a.SiteFile(port, extra)},
		Start: []string{"site-" + site + ".socket"},
		Stop:  []string{"site-" + site + ".socket", "site-" + site + ".service"},
		Name:  site,
	}
}

// alternate returns a when i is even, b when it is odd.
func alternate(i int, a, b string) string {
	if i%2 == 0 {
		return a
	}
	return b
}

var scenarios = []Scenario{
	{
		ID:      "own-port",
		Title:   "1. own port",
		Command: "`systemctl restart bench-SITE.service` (plain unit, the app binds its port, no socket unit)",
		Install: func(a App, port int) Install {
			name := "bench-" + a.ID + "-own"
			unit := name + ".service"
			return Install{
				Files: map[string]string{"/etc/systemd/system/" + unit: a.OwnPortUnit(name, port)},
				Start: []string{unit},
				Stop:  []string{unit},
				Name:  name,
			}
		},
		Switch: func(name string, _ int) []string { return []string{"systemctl", "restart", name + ".service"} },
	},
	{
		ID:      "socket-held",
		Title:   "2. socket-held",
		Command: "`systemctl restart site-SITE.service` (sitectl's generated units)",
		Install: func(a App, port int) Install { return siteInstall(a, a.ID+"-socket", "", port) },
		Switch: func(name string, _ int) []string {
			return []string{"systemctl", "restart", "site-" + name + ".service"}
		},
	},
	{
		ID:      "sitectl-mode",
		Title:   "3. sitectl mode",
		Command: "`sitectl mode SITE read-only` / `normal`, alternating (restart handoff, verified by a probe)",
		Install: func(a App, port int) Install { return siteInstall(a, a.ID+"-mode", modeExtra, port) },
		Switch: func(name string, i int) []string {
			return []string{"sitectl", "mode", name, alternate(i, "read-only", "normal")}
		},
	},
	{
		ID:      "overlap-reload",
		Title:   "4a. overlap reload",
		Command: "`sitectl reload SITE` on a site with `handoff = \"overlap\"` (the new generation is ready before the old one drains)",
		Install: func(a App, port int) Install {
			return siteInstall(a, a.ID+"-ovreload", overlapExtra+modeExtra, port)
		},
		Switch:    func(name string, _ int) []string { return []string{"sitectl", "reload", name} },
		Available: overlapAvailable,
	},
	{
		ID:      "overlap-mode",
		Title:   "4b. overlap mode",
		Command: "`sitectl mode SITE read-only` / `normal`, alternating, on a site with `handoff = \"overlap\"`",
		Install: func(a App, port int) Install {
			return siteInstall(a, a.ID+"-ovmode", overlapExtra+modeExtra, port)
		},
		Switch: func(name string, i int) []string {
			return []string{"sitectl", "mode", name, alternate(i, "read-only", "normal")}
		},
		Available: overlapAvailable,
	},
}

// overlapExtra asks for the overlapped handoff (issue 5).
const overlapExtra = "handoff = \"overlap\"\n"

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

// commandFor renders the switch commands a scenario runs on name, as the
// table shows them: the distinct command lines of the first two switches.
func commandFor(s Scenario, name string) string {
	var parts []string
	seen := map[string]bool{}
	for i := 0; i < 2; i++ {
		c := strings.Join(s.Switch(name, i), " ")
		if !seen[c] {
			seen[c] = true
			parts = append(parts, "`"+c+"`")
		}
	}
	return strings.Join(parts, " / ")
}
