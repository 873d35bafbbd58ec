package launcher

import (
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sitectl/sitectl/internal/paths"
	"github.com/sitectl/sitectl/internal/site"
)

// An abandon while a new generation starts keeps it from taking over,
// answers with how far it had come, stops it and fails the reload; the old
// generation serves on. Without a reload under way, or for
// a generation that does not serve, nothing is abandoned.
func TestAbandonStopsTheStartingGeneration(t *testing.T) {
	h := newHarness(t, "ready", "silent", "ready")
	h.run()
	first := h.pids(1)[0]
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	if _, err := Abandon(ctx, h.dir, os.Getpid(), first); !errors.Is(err, ErrNoReload) {
		t.Fatalf("abandon without a reload: %v", err)
	}
	reloaded := make(chan error, 1)
	go func() { reloaded <- Reload(h.dir, os.Getpid(), nil, nil) }()
	second := h.pidOf(2) // generation 2 runs, and never says READY=1
	if _, err := Abandon(ctx, h.dir, os.Getpid(), second); err == nil || err.Error() != "generation 1 (pid "+itoa(first)+") serves, not pid "+itoa(second) {
		t.Fatalf("abandon naming another generation: %v", err)
	}
	answer, err := Abandon(ctx, h.dir, os.Getpid(), first)
	if err != nil || answer != "generation 2 will not take over: it had not said READY=1; it is being stopped" {
		t.Fatalf("abandon: %q, %v", answer, err)
	}
	err = <-reloaded
	// The reload ends once it is stopped.
	if !gone(second) {
		t.Errorf("generation 2 (pid %d) still runs after the reload ended", second)
	}
	if err == nil || !strings.HasPrefix(err.Error(), "generation 2 was abandoned before it took over: the change that asked for it gave up on it while it had not said READY=1") {
		t.Fatalf("the abandoned reload: %v", err)
	}
	if gone(first) {
		t.Fatal("generation 1 is gone")
	}
	st, err := AskStatus(ctx, h.dir, os.Getpid())
	if err != nil || st.Serving == nil || st.Serving.PID != first {
		t.Fatalf("after the abandon, serving: %+v, %v", st.Serving, err)
	}
	// The next reload hands over as usual.
	if err := Reload(h.dir, os.Getpid(), nil, nil); err != nil {
		t.Fatalf("the reload after an abandoned one: %v", err)
	}
	h.waitFor("STATUS=mode m-ready, generation 3")
	if err := h.stop(); err != nil {
		t.Fatal(err)
	}
}

// An abandon during a probe that fails says what the probe last got.
func TestAbandonTellsTheProbesAnswer(t *testing.T) {
	h := newHarness(t, "ready", "ready")
	h.run()
	first := h.pids(1)[0]
	// Without READY=1 to wait for, the probe runs from the start.
	h.spec = func(s *Spec) {
		s.Readiness = site.ReadinessNone
		s.Probe = &site.Probe{Path: "/", Status: 204, Timeout: patience}
	}
	reloaded := make(chan error, 1)
	go func() { reloaded <- Reload(h.dir, os.Getpid(), nil, nil) }()
	h.pidOf(2)
	// Once generation 2 answers on its probe socket, the launcher's probe,
	// queued there first, has its answer too.
	client := http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", filepath.Join(h.dir, paths.ProbeSocket(2)))
	}}}
	resp, err := client.Get("http://generation/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	// The launcher's probe sends its second request only once it has
	// taken in the answer to its first: then an abandon gets that answer.
	probes := filepath.Join(h.dir, "probes-2")
	for end := time.Now().Add(patience); ; time.Sleep(10 * time.Millisecond) {
		if b, _ := os.ReadFile(probes); strings.Count(string(b), "\n") >= 2 {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("the launcher's probe did not get two answers; events:\n%s", h.log())
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	answer, err := Abandon(ctx, h.dir, os.Getpid(), first)
	const want = "it had not passed its probe: GET http://generation/: status 200, want 204"
	if err != nil || !strings.Contains(answer, want) {
		t.Fatalf("abandon: %q, %v", answer, err)
	}
	if err := <-reloaded; err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("the abandoned reload: %v", err)
	}
	if err := h.stop(); err != nil {
		t.Fatal(err)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
