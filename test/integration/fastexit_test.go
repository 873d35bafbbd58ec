//go:build integration

package integration

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// A gunicorn site's processes end without Python's teardown of the
// interpreter (fast_exit, the default), under the hardened unit that reads
// sitectl's config file, which sitectl prepare wrote; with fast_exit =
// false they end as gunicorn ends them. Seen in the journal: the test app
// says "atexit of PID" from an atexit handler and "teardown of PID" when the
// teardown frees its objects. An overlapped reload ends the old generation
// while the new one serves; a stop ends the last one.
func TestGunicornEndsWithoutTeardown(t *testing.T) {
	fastPort, fullPort := freePort(t), freePort(t)
	extra := "handoff = \"overlap\"\nenvironment = { WSGI_MARK_EXIT = \"1\" }\n"
	h := newHost(t, map[string]string{
		"fast": gunicornSite(fastPort, extra),
		"full": gunicornSite(fullPort, extra+"fast_exit = false\n"),
	})
	for _, c := range []struct {
		name              string
		port              int
		teardowns, atexit int
	}{
		// Two workers per generation, two generations; the masters did
		// not import the app.
		{"fast", fastPort, 0, 4},
		{"full", fullPort, 4, 4},
	} {
		since := h.logMark()
		h.run("systemctl", "start", "site-"+c.name+".socket")
		getReply(t, fmt.Sprintf("http://127.0.0.1:%d/", c.port))
		h.run("sitectl", "reload", c.name)
		getReply(t, fmt.Sprintf("http://127.0.0.1:%d/", c.port))
		h.run("systemctl", "stop", "site-"+c.name+".socket", "site-"+c.name+".service")
		// journald reads the service's output on its own time: the lines
		// of the last processes to end may come in just after the stop.
		var logged string
		var teardowns, atexits int
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			logged = h.run("journalctl", "--no-pager", "-o", "cat", "--since", since, "-u", "site-"+c.name+".service")
			teardowns, atexits = strings.Count(logged, "teardown of "), strings.Count(logged, "atexit of ")
			if teardowns == c.teardowns && atexits == c.atexit || time.Now().After(deadline) {
				break
			}
		}
		if teardowns != c.teardowns || atexits != c.atexit {
			t.Errorf("%s: %d processes tore down the interpreter and %d ran their atexit handlers, want %d and %d:\n%s",
				c.name, teardowns, atexits, c.teardowns, c.atexit, logged)
		}
		if p := h.show("site-"+c.name+".service", "Result", "ExecMainStatus"); p["Result"] != "success" {
			t.Errorf("%s: the service ended with %v", c.name, p)
		}
	}
	if out := h.run("stat", "-c", "%U %a", "/run/sitectl", "/run/sitectl/gunicorn.conf.py"); out != "root 755\nroot 644\n" {
		t.Errorf("sitectl's config file for gunicorn and its directory: %q, want root's, 0755 and 0644", out)
	}
}
