package activation

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestChildrenStopGracefullyThenKill(t *testing.T) {
	dir := t.TempDir()
	marker := filepath.Join(dir, "released")
	var c Children
	c.Grace = 500 * time.Millisecond
	// One child releases its resource on SIGTERM; one ignores SIGTERM.
	polite := exec.Command("sh", "-c", "trap 'echo done > "+marker+"; exit 0' TERM; while :; do sleep 0.05; done")
	stubborn := exec.Command("sh", "-c", "trap '' TERM; while :; do sleep 0.05; done")
	exits := make(chan error, 2)
	for _, cmd := range []*exec.Cmd{polite, stubborn} {
		if err := c.Start(cmd, func(err error) { exits <- err }); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(200 * time.Millisecond) // let the shells set their traps
	if c.Len() != 2 {
		t.Fatalf("%d children running, want 2", c.Len())
	}
	start := time.Now()
	killed := c.Stop()
	took := time.Since(start)
	if killed != 1 {
		t.Errorf("killed %d children, want the one that ignores SIGTERM", killed)
	}
	if took < 450*time.Millisecond || took > 3*time.Second {
		t.Errorf("Stop took %s, want about the grace of 500ms", took)
	}
	if b, err := os.ReadFile(marker); err != nil || strings.TrimSpace(string(b)) != "done" {
		t.Errorf("the polite child did not release its resource: %q %v", b, err)
	}
	if c.Len() != 0 {
		t.Errorf("%d children left", c.Len())
	}
	for i := 0; i < 2; i++ {
		<-exits
	}
	if err := c.Start(exec.Command("true"), nil); err != ErrStopped {
		t.Errorf("Start after Stop: %v, want ErrStopped", err)
	}
}
