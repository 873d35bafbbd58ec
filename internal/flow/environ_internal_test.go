package flow

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/sitectl/sitectl/internal/procfs"
)

// A serving process whose environ reads empty (forked and not yet
// exec'd, or exiting: an app that crashed at once) is read again until it
// has an environment, or is gone, which the caller tells as such: an app's
// crash was reported as a process that runs no mode ("SITE_MODE is unset").
func TestEmptyEnvironIsReadAgain(t *testing.T) {
	old := procfs.Root
	procfs.Root = t.TempDir()
	t.Cleanup(func() { procfs.Root = old })
	environ := filepath.Join(procfs.Root, "42", "environ")
	if err := os.MkdirAll(filepath.Dir(environ), 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(data string) {
		if err := os.WriteFile(environ, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	e := &Env{}

	write("")
	go func() { time.Sleep(50 * time.Millisecond); write("SITE=karl\x00SITE_MODE=normal\x00") }()
	if env, err := e.environ(42, "SITE=karl"); err != nil || !slices.Equal(env, []string{"SITE=karl", "SITE_MODE=normal"}) {
		t.Errorf("a process exec'd after a moment: %q, %v", env, err)
	}

	// Forked by systemd and not yet exec'd, the process has systemd's
	// environment: with Type=simple (an operator's drop-in) the restart
	// is done then, and the switch took it for the app running no mode,
	// rolled back, and said the site was down while it served.
	write("LANG=C.UTF-8\x00PATH=/usr/bin\x00")
	go func() { time.Sleep(50 * time.Millisecond); write("SITE=karl\x00SITE_MODE=normal\x00") }()
	if env, err := e.environ(42, "SITE=karl"); err != nil || !slices.Equal(env, []string{"SITE=karl", "SITE_MODE=normal"}) {
		t.Errorf("a process forked by systemd, exec'd after a moment: %q, %v", env, err)
	}

	write("")
	go func() { time.Sleep(50 * time.Millisecond); os.Remove(environ) }()
	if env, err := e.environ(42, "SITE=karl"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a process gone after a moment: %q, %v; want it gone", env, err)
	}

	// A process that exited and is not reaped yet (a zombie: its parent,
	// systemd, is busy) reads empty for as long: it is gone at once,
	// not after the wait, when it was taken for one that runs no mode.
	write("")
	stat := filepath.Join(procfs.Root, "42", "stat")
	if err := os.WriteFile(stat, []byte("42 (python3 (x)) Z 1 42 42 0 -1 4228108 0 0 0 0 0 0 0 0 20 0 1 0 123 0 0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if env, err := e.environ(42, "SITE=karl"); !errors.Is(err, syscall.ESRCH) || time.Since(start) > emptyEnvironWait/2 {
		t.Errorf("a zombie: %q, %v after %s; want it gone at once", env, err, time.Since(start))
	}
}
