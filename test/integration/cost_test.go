//go:build integration

package integration

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

// Issue 16.4: while a change waits for systemd, root's sitectl holds one
// connection to systemd, not go-systemd's two: systemd sends every signal
// of every unit to every connection on its private socket, and sitectl
// would read and decode each of them twice. A site whose app takes 3 s to
// start is restarted; while the job runs, the sockets sitectl holds are
// counted in /proc (it has no other socket open at that point: the probe
// comes after the job).
func TestChangeHoldsOneSystemdConnection(t *testing.T) {
	port := freePort(t)
	h := newHost(t, map[string]string{"karl": goSite(port, "[modes.slow]\nenvironment = { WEBAPP_START_DELAY = \"3s\" }\n")})
	h.run("systemctl", "start", "site-karl.socket")
	getReply(t, fmt.Sprintf("http://127.0.0.1:%d/", port))

	ctx, cancel := context.WithTimeout(h.ctx, time.Minute)
	defer cancel()
	cmd := h.sb.Command(ctx, "sitectl", "mode", "karl", "slow")
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	h.waitFor("the restart job to run", 20*time.Second, func() bool {
		return h.show("site-karl.service", "ActiveState")["ActiveState"] == "activating"
	})
	// The pattern's brackets keep sh's own command line from matching.
	fds := h.run("sh", "-c", `p=$(pgrep -f 'sitectl mod[e] karl slow'); [ -n "$p" ] && ls -l /proc/$p/fd`)
	sockets := strings.Count(fds, "socket:[")
	if err := cmd.Wait(); err != nil {
		t.Fatalf("sitectl mode karl slow: %v\n%s", err, out.String())
	}
	if sockets != 1 {
		t.Fatalf("sitectl held %d sockets while its job ran, want 1 (one connection to systemd):\n%s", sockets, fds)
	}
}
