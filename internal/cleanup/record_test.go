package cleanup

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// fakeJournalctl points journalctl at a script that writes its arguments,
// one a line, to the returned file and then runs script.
func fakeJournalctl(t *testing.T, script string) (argsFile string) {
	t.Helper()
	dir := t.TempDir()
	argsFile = filepath.Join(dir, "args")
	path := filepath.Join(dir, "journalctl")
	text := "#!/bin/sh\nprintf '%s\\n' \"$@\" >" + argsFile + "\n" + script + "\n"
	if err := os.WriteFile(path, []byte(text), 0o755); err != nil {
		t.Fatal(err)
	}
	old := journalctl
	journalctl = path
	t.Cleanup(func() { journalctl = old })
	return argsFile
}

// Any local process may log SITECTL_EVENT=cleanup SITECTL_SITE=karl; Last
// asks only for records journald attributes to the site's service.
func TestLastReadsOnlyTheSitesService(t *testing.T) {
	argsFile := fakeJournalctl(t, `echo '{"SITECTL_EVENT":"cleanup","SITECTL_SITE":"karl","SITECTL_RESULT":"ok","__REALTIME_TIMESTAMP":"1700000000123456"}'`)
	r := Last(context.Background(), "karl")
	if r == nil || r.Result != "ok" {
		t.Fatalf("Last = %+v, want the record", r)
	}
	data, err := os.ReadFile(argsFile)
	if err != nil {
		t.Fatal(err)
	}
	args := strings.Split(strings.TrimSpace(string(data)), "\n")
	for _, want := range []string{"SITECTL_EVENT=cleanup", "SITECTL_SITE=karl", "_SYSTEMD_UNIT=site-karl.service"} {
		if !slices.Contains(args, want) {
			t.Errorf("journalctl %q: no match %s", args, want)
		}
	}
}

// oversizeRecord is a script that prints a well-formed cleanup record of
// twice maxRecordRead bytes.
var oversizeRecord = `printf '{"SITECTL_EVENT":"cleanup","SITECTL_SITE":"karl","SITECTL_RESULT":"ok","SITECTL_HOOK_FAILURES":"'
head -c ` + strconv.Itoa(2*maxRecordRead) + ` /dev/zero | tr '\0' x
echo '"}'`

// A record larger than maxRecordRead is not read, nor held in memory.
func TestLastOversizeRecord(t *testing.T) {
	fakeJournalctl(t, oversizeRecord)
	if r := Last(context.Background(), "karl"); r != nil {
		t.Errorf("Last read a record of more than %d bytes: result %q, %d bytes of hook failures", maxRecordRead, r.Result, len(strings.Join(r.HookFailures, "")))
	}
}

// A process that keeps journalctl's output open after it exited does not
// hold Last up.
func TestLastOutputHeldOpen(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pid")
	fakeJournalctl(t, `echo '{"SITECTL_EVENT":"cleanup","SITECTL_SITE":"karl","SITECTL_RESULT":"ok"}'
sleep 30 &
echo $! >`+pidFile)
	t.Cleanup(func() {
		if b, err := os.ReadFile(pidFile); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
	start := time.Now()
	Last(context.Background(), "karl")
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Last took %s with journalctl's output held open", d)
	}
}
