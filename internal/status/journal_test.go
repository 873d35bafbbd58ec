package status

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sitectl/sitectl/internal/cleanup"
)

// fakeJournalctl points journalctl at a script that writes its arguments,
// one a line, to the returned file and then runs script. A process the
// script leaves behind writes its pid to pidFile, and is killed at the end.
func fakeJournalctl(t *testing.T, script string) (argsFile, pidFile string) {
	t.Helper()
	dir := t.TempDir()
	argsFile, pidFile = dir+"/args", dir+"/pid"
	path := dir + "/journalctl"
	text := "#!/bin/sh\nprintf '%s\\n' \"$@\" >" + argsFile + "\n" + script + "\n"
	if err := os.WriteFile(path, []byte(text), 0o755); err != nil {
		t.Fatal(err)
	}
	old := journalctl
	journalctl = path
	t.Cleanup(func() {
		journalctl = old
		if b, err := os.ReadFile(pidFile); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
				if p, err := os.FindProcess(pid); err == nil {
					_ = p.Kill()
				}
			}
		}
	})
	return argsFile, pidFile
}

// echoLines is a script that prints lines, each quoted for the shell.
func echoLines(lines ...string) string {
	var b strings.Builder
	for _, l := range lines {
		fmt.Fprintf(&b, "echo '%s'\n", l)
	}
	return b.String()
}

const (
	exitRec    = `{"_PID":"1","UNIT":"site-karl.service","MESSAGE_ID":"98e322203f7a4ed290d09fe03c09fe15","INVOCATION_ID":"%s","EXIT_CODE":"%s","EXIT_STATUS":"%s","__REALTIME_TIMESTAMP":"%d"}`
	failedRec  = `{"_PID":"1","UNIT":"site-karl.service","MESSAGE_ID":"d9b373ed55a64feb8242e02dbe79a49c","INVOCATION_ID":"%s","UNIT_RESULT":%s,"__REALTIME_TIMESTAMP":"%d"}`
	cleanupRec = `{"SITECTL_EVENT":"cleanup","SITECTL_SITE":"karl","_SYSTEMD_UNIT":"site-karl.service","SITECTL_RESULT":"%s","__REALTIME_TIMESTAMP":"%d"}`
)

// One journalctl, newest first, reads both: the last failure is systemd's
// (an app's record that looks like one is not), with its run's exit, and
// the last cleanup is the newest of the site's service's records.
func TestLastJournalReadsTheFailureAndTheCleanupAtOnce(t *testing.T) {
	argsFile, _ := fakeJournalctl(t, echoLines(
		fmt.Sprintf(cleanupRec, "ok", 1700000095000000),
		// Sent by the app from the service's cgroup: it matches the
		// cleanup's match, and is no failure of systemd's.
		`{"SITECTL_EVENT":"cleanup","SITECTL_SITE":"karl","_SYSTEMD_UNIT":"site-karl.service","_PID":"4242","UNIT":"site-karl.service","MESSAGE_ID":"d9b373ed55a64feb8242e02dbe79a49c","UNIT_RESULT":"forged"}`,
		fmt.Sprintf(exitRec, "c", "exited", "0", 1700000090000000),
		fmt.Sprintf(failedRec, "b", "[115,105,103,110,97,108]", 1700000050200000),
		fmt.Sprintf(cleanupRec, "hook-failed", 1700000050100000),
		fmt.Sprintf(exitRec, "b", "killed", "SEGV", 1700000050000000),
		fmt.Sprintf(failedRec, "a", `"exit-code"`, 1700000000100000),
		fmt.Sprintf(exitRec, "a", "exited", "1", 1700000000000000),
	))
	f, rec := LastJournal(context.Background(), "karl")
	if f == nil || f.Result != "signal" || f.ExitCode != "killed" || f.ExitStatus != "SEGV" || f.Time == nil || f.Time.UnixMicro() != 1700000050200000 {
		t.Errorf("last failure %+v", f)
	}
	if rec == nil || rec.Result != cleanup.ResultOK || rec.Time.UnixMicro() != 1700000095000000 {
		t.Errorf("last cleanup %+v", rec)
	}
	data, err := os.ReadFile(argsFile)
	if err != nil {
		t.Fatal(err)
	}
	args := strings.Split(strings.TrimSpace(string(data)), "\n")
	plus := slices.Index(args, "+")
	if !slices.Contains(args, "--reverse") || plus < 0 {
		t.Fatalf("journalctl %q: not newest first, or not both matches", args)
	}
	for _, want := range []string{"_PID=1", "UNIT=site-karl.service", "MESSAGE_ID=" + messageUnitFailed, "MESSAGE_ID=" + messageProcessExit} {
		if i := slices.Index(args, want); i < 0 || i > plus {
			t.Errorf("journalctl %q: %s not in the failure's match", args, want)
		}
	}
	for _, want := range cleanup.Match("karl") {
		if i := slices.Index(args, want); i < plus {
			t.Errorf("journalctl %q: %s not in the cleanup's match", args, want)
		}
	}
}

// The failure is looked for among the last journalRecords of systemd's
// records, as far back as before; a journal without a failure or a cleanup
// has neither.
func TestLastJournalLooksBackAsFarAsBefore(t *testing.T) {
	var lines []string
	for i := range journalRecords {
		lines = append(lines, fmt.Sprintf(exitRec, strconv.Itoa(i), "exited", "0", 1700000100000000-i))
	}
	lines = append(lines, fmt.Sprintf(failedRec, "old", `"exit-code"`, 1700000000000000), fmt.Sprintf(cleanupRec, "ok", 1600000000000000))
	fakeJournalctl(t, echoLines(lines...))
	f, rec := LastJournal(context.Background(), "karl")
	if f != nil {
		t.Errorf("a failure older than the last %d of systemd's records: %+v", journalRecords, f)
	}
	if rec == nil || rec.Time.UnixMicro() != 1600000000000000 {
		t.Errorf("the cleanup older than them all: %+v", rec)
	}
	fakeJournalctl(t, "echo 'No journal files were found.' >&2; exit 1")
	if f, rec := LastJournal(context.Background(), "karl"); f != nil || rec != nil {
		t.Errorf("no journal: %+v, %+v", f, rec)
	}
}

// The read stops as soon as it has what it needs: journalctl, and a
// process that keeps its output open, do not hold status up.
func TestLastJournalStopsOnceItHasBoth(t *testing.T) {
	var lines []string
	lines = append(lines, fmt.Sprintf(cleanupRec, "ok", 1700000200000000), fmt.Sprintf(failedRec, "x", `"timeout"`, 1700000100000001))
	for i := range journalRecords {
		lines = append(lines, fmt.Sprintf(exitRec, "x", "killed", "KILL", 1700000100000000-i))
	}
	_, pidFile := fakeJournalctl(t, "sleep 30 &\necho $! >\"$(dirname \"$0\")/pid\"\n"+echoLines(lines...)+"sleep 30")
	start := time.Now()
	f, rec := LastJournal(context.Background(), "karl")
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("LastJournal took %s with journalctl still writing", d)
	}
	if f == nil || f.Result != "timeout" || f.ExitStatus != "KILL" || rec == nil || rec.Result != cleanup.ResultOK {
		t.Errorf("failure %+v, cleanup %+v", f, rec)
	}
	if _, err := os.Stat(pidFile); err != nil {
		t.Errorf("the script's process that held the output open did not start: %v", err)
	}
}

// A newest cleanup record larger than cleanup.MaxRecord is not read, nor
// held in memory: the cleanup is unknown, not an older one's, and the
// failure is still read.
func TestLastJournalOversizeCleanupRecord(t *testing.T) {
	fakeJournalctl(t, `printf '{"SITECTL_EVENT":"cleanup","SITECTL_SITE":"karl","_SYSTEMD_UNIT":"site-karl.service","SITECTL_RESULT":"ok","SITECTL_HOOK_FAILURES":"'
head -c `+strconv.Itoa(2*cleanup.MaxRecord)+` /dev/zero | tr '\0' x
echo '"}'
`+echoLines(fmt.Sprintf(cleanupRec, "hook-failed", 1700000000000000), fmt.Sprintf(failedRec, "z", `"exit-code"`, 1690000000000000)))
	f, rec := LastJournal(context.Background(), "karl")
	if rec != nil {
		t.Errorf("read past an oversize newest cleanup record: %+v", rec)
	}
	if f == nil || f.Result != "exit-code" {
		t.Errorf("failure %+v", f)
	}
}
