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

// lastLines is how many of the app's last lines stand for its error when
// there is no traceback.
const lastLines = 3

// Cause is what the journal says about why the app did not come up.
type Cause struct {
	// Error is the app's last error: the exception line of its last
	// Python traceback, or else its last lines. Empty when the app
	// wrote nothing.
	Error []string
	// Incomplete: the last traceback has no exception line yet (the
	// journal may not have everything the app wrote).
	Incomplete bool
	// AddrInUse: the app tried to bind an address already in use.
	AddrInUse bool
}

// Explain finds the cause of a failed start in journal lines.
func Explain(lines []string) Cause {
	var app []string
	for _, l := range lines {
		if s := Split(l); !s.fromSystemd() && strings.TrimSpace(s.Message) != "" {
			app = append(app, s.Message)
		}
	}
	var c Cause
	for _, m := range app {
		if addrInUse(m) {
			c.AddrInUse = true
		}
	}
	tb := -1
	for i, m := range app {
		if strings.HasPrefix(strings.TrimSpace(m), "Traceback (most recent call last):") {
			tb = i
		}
	}
	if tb < 0 {
		c.Error = app[max(0, len(app)-lastLines):]
		return c
	}
	// The exception line is the first line after the frames that is not
	// indented (a frame's lines are).
	for _, m := range app[tb+1:] {
		if !strings.HasPrefix(m, " ") && !strings.HasPrefix(m, "\t") {
			c.Error = []string{m}
			return c
		}
	}
	c.Incomplete = true
	c.Error = app[max(0, len(app)-lastLines):]
	return c
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
