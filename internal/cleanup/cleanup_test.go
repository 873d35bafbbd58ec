package cleanup

import (
	"context"
	"strings"
	"testing"
	"time"
)

func TestRunHook(t *testing.T) {
	if msg := runHook(context.Background(), []string{"true"}, time.Second); msg != "" {
		t.Errorf("a succeeding hook reported %q", msg)
	}
	if msg := runHook(context.Background(), []string{"sh", "-c", "exit 3"}, time.Second); !strings.Contains(msg, "exit status 3") {
		t.Errorf("a failing hook reported %q", msg)
	}
	start := time.Now()
	msg := runHook(context.Background(), []string{"sleep", "30"}, 200*time.Millisecond)
	if !strings.Contains(msg, "did not finish within 200ms and was killed") {
		t.Errorf("a hanging hook reported %q", msg)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("a hanging hook held the cleanup for %s", d)
	}
	if msg := runHook(context.Background(), []string{"/nonexistent/hook"}, time.Second); !strings.Contains(msg, "no such file") {
		t.Errorf("a missing hook reported %q", msg)
	}
}

func TestReportResult(t *testing.T) {
	if r := (Report{}).Result(); r != "ok" {
		t.Errorf("empty report: %s", r)
	}
	if r := (Report{HookFailures: []string{"x"}}).Result(); r != "hook-failed" {
		t.Errorf("failed hook: %s", r)
	}
}
