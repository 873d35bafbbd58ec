// Package applog reads the cause of a failed start out of a site's journal
// lines (journalctl -o short-precise): the exception line that ends the
// app's last Python traceback, or else its last lines before it exited,
// and whether it tried to bind an address that systemd's socket holds.
// Everything here is a pure function of the lines.
package applog

import (
	"regexp"
	"strings"
	"sync"
	"unicode"
)

// prefix is the head of a short-precise journal line: "Nov 30 13:00:00.123456
// host ident[pid]: ". Its identifier is the first group.
// It is compiled on first use: most sitectl commands read no journal.
var prefix = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^[A-Z][a-z]{2} [ 0-9]\d \d\d:\d\d:\d\d(?:\.\d+)? \S+ ([^\s:\[]+)(?:\[\d+\])?: `)
})

// Line is one journal line split into its identifier and its message.
type Line struct {
	Ident   string // "" when the line had no recognisable prefix
	Message string
}

// Split splits a short-precise journal line; a line without the prefix is
// all message.
func Split(l string) Line {
	m := prefix().FindStringSubmatchIndex(l)
	if m == nil {
		return Line{Message: l}
	}
	return Line{Ident: l[m[2]:m[3]], Message: l[m[1]:]}
}

// fromSystemd tells systemd's own lines about the unit from the app's.
func (l Line) fromSystemd() bool { return l.Ident == "systemd" }

// fromSitectl tells sitectl's own lines in a site's journal from the
// app's: its launcher's notices, prepare's and the cleanup after each
// stop (ExecStopPost=) are written under the app's identifier, site-NAME,
// and each begins with "site NAME: " or "site NAME " (units.SyslogIdentifier,
// cli's logf, cleanup.SendLine). sitectl's own error on a failed launch
// ("sitectl: error: ...") is not one of them: it says why the app did not
// run.
func (l Line) fromSitectl() bool {
	name, ok := strings.CutPrefix(l.Ident, "site-")
	if !ok || name == "" {
		return false
	}
	rest, ok := strings.CutPrefix(l.Message, "site "+name)
	return ok && (strings.HasPrefix(rest, ": ") || strings.HasPrefix(rest, " "))
}

// lastLines is how many of the app's last lines stand for its error when
// there is no traceback.
const lastLines = 3

// Cause is what the journal says about why the app did not come up.
type Cause struct {
	// Error is the app's last error, from its own lines (not
	// systemd's, nor sitectl's launcher and cleanup notices): the
	// exception line of its last Python traceback (passing over a server's reaction to an earlier
	// one, gunicorn's HaltServer), or else its last lines. Empty when the app
	// wrote nothing.
	Error []string
	// Incomplete: the last traceback has no exception line yet (the
	// journal may not have everything the app wrote).
	Incomplete bool
	// AddrInUse: the app tried to bind an address already in use.
	AddrInUse bool
}

// Explain finds the cause of a failed start in journal lines: among the
// app's own, not systemd's or sitectl's, since systemd last said it starts
// the service. What the app wrote before belongs to the run that a restart
// stopped (a drain's last words), or to a start systemd tried before, and
// is not why this one failed; nor, when systemd stopped the service and
// never started it again (a socket unit it requires failed), is what the
// stopped run wrote after systemd said it stops it.
func Explain(lines []string) Cause {
	var app []string
	stopping := false // since systemd said it stops the service
	for _, l := range lines {
		s := Split(l)
		switch {
		case s.fromSystemd() && strings.HasPrefix(s.Message, "Starting "):
			app, stopping = app[:0], false
		case s.fromSystemd() && strings.HasPrefix(s.Message, "Stopping "):
			app, stopping = app[:0], true
		case !stopping && !s.fromSystemd() && !s.fromSitectl() && strings.TrimSpace(s.Message) != "":
			app = append(app, s.Message)
		}
	}
	var c Cause
	for _, m := range app {
		if addrInUse(m) {
			c.AddrInUse = true
		}
	}
	tbs := tracebacks(app)
	if len(tbs) == 0 || tbs[len(tbs)-1] == "" {
		// No traceback, or the last has no exception line yet.
		c.Incomplete = len(tbs) > 0
		c.Error = app[max(0, len(app)-lastLines):]
		return c
	}
	// The last traceback is the app's last error, unless it is its
	// server's own consequence of an earlier one: gunicorn's master, told
	// by a worker that it failed to boot, can die with a traceback of its
	// own (HaltServer raised in its SIGCHLD handler while it still forks
	// workers), after the worker's traceback that says why.
	for i := len(tbs) - 1; i >= 0; i-- {
		if tbs[i] != "" && !consequence(tbs[i]) {
			c.Error = []string{tbs[i]}
			return c
		}
	}
	c.Error = []string{tbs[len(tbs)-1]}
	return c
}

// tracebacks are the exception lines of the Python tracebacks among the
// app's lines, in order: each is the first line after a traceback's
// header that names an exception (exceptionLine), or "" for a traceback
// that has none yet. A chain of tracebacks (an exception raised
// while another was handled, or raised from it) is one: its exception is
// the chain's last, the one that ended the program, so that a server's
// reaction to an earlier error (gunicorn's HaltServer raised in its SIGCHLD
// handler while it handled a ProcessLookupError of a worker that had
// already exited) is passed over whole.
func tracebacks(app []string) []string {
	var exc []string
	in, chained := false, false
	for _, m := range app {
		switch {
		case strings.HasPrefix(strings.TrimSpace(m), "Traceback (most recent call last):"):
			if chained {
				exc[len(exc)-1] = ""
			} else {
				exc = append(exc, "")
			}
			in, chained = true, false
		case in && exceptionLine(m):
			exc[len(exc)-1], in = m, false
		case !in && len(exc) > 0 && chainLink(m):
			chained = true
		default:
			if !in {
				chained = false
			}
		}
	}
	return exc
}

// exceptionLine tells whether a line can end a traceback: it is not
// indented (a frame's lines are) and begins with the exception's dotted
// name, its module and qualified name, then ends or goes on with a colon
// ("KeyError: 'x'", "gunicorn.errors.HaltServer: ...", "KeyboardInterrupt",
// "app.main.<locals>.Err: x"). A line that is not one keeps a report
// waiting for the exception (journalLines, at most 5 s). Python prints an
// uncaught exception's traceback a line at a time, so another process of
// the app (a worker that logs its exit) can write lines in between: such a
// line ("[2026-11-30 13:30:01 +0000] [44] [INFO] Worker exiting") is not
// the exception.
func exceptionLine(m string) bool {
	name, _, _ := strings.Cut(m, ":")
	if name == "" || name != strings.TrimSpace(name) {
		return false
	}
	for i, r := range name {
		switch {
		case r == '_' || unicode.IsLetter(r):
		case i > 0 && (r == '.' || r == '<' || r == '>' || unicode.IsDigit(r)):
			// A class defined in a function: "app.main.<locals>.Err".
		default:
			return false
		}
	}
	return true
}

// chainLink tells whether a line is what Python prints between the
// tracebacks of a chain of exceptions.
func chainLink(m string) bool {
	m = strings.TrimSpace(m)
	return m == "During handling of the above exception, another exception occurred:" ||
		m == "The above exception was the direct cause of the following exception:"
}

// consequence tells whether an exception line is a server's reaction to
// an error reported before it, not a cause.
func consequence(exception string) bool {
	return strings.HasPrefix(exception, "gunicorn.errors.HaltServer")
}

// addrInUse recognises EADDRINUSE as Python, Go, Node and C programs word it.
func addrInUse(m string) bool {
	return strings.Contains(m, "Address already in use") ||
		strings.Contains(m, "address already in use") ||
		strings.Contains(m, "EADDRINUSE")
}

// AddrInUseHint is the one line that explains EADDRINUSE in a site's
// journal: systemd holds the site's addresses, so an app that binds them
// itself finds them taken.
func AddrInUseHint(site string) string {
	return "the app tried to bind an address that site-" + site + ".socket already holds: " +
		"it must take systemd's sockets (LISTEN_FDS) instead of binding its own, so remove its own bind or listen setting"
}
