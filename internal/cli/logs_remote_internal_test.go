package cli

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sitectl/sitectl/internal/paths"
	"github.com/sitectl/sitectl/internal/stateservice"
)

// fakeJournalctl puts a journalctl on PATH that records its arguments in
// args and runs script.
func fakeJournalctl(t *testing.T, script string) (args string) {
	bin := t.TempDir()
	args = filepath.Join(bin, "args")
	sh := "#!/bin/sh\nprintf '%s\\n' \"$@\" > " + args + "\n" + script + "\n"
	if err := os.WriteFile(filepath.Join(bin, "journalctl"), []byte(sh), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+":"+os.Getenv("PATH"))
	return args
}

func logsEnv(t *testing.T) *env {
	d := paths.Dirs{Config: t.TempDir(), State: t.TempDir()}
	site := "exec = [\"/bin/true\"]\n[[listen]]\naddress = \"127.0.0.1:28080\"\n"
	if err := os.WriteFile(filepath.Join(d.Config, "karl.toml"), []byte(site), 0o644); err != nil {
		t.Fatal(err)
	}
	return &env{dirs: d, now: time.Now}
}

// The state service's journal for a deployer: root's journalctl command
// line for the site's units, the newest lines by default, and of a journal
// larger than MaxLogText the newest whole lines that fit, saying so.
func TestJournalTextKeepsTheNewestWholeLines(t *testing.T) {
	args := fakeJournalctl(t, `i=0; while [ $i -lt 60000 ]; do printf 'line %06d %s\n' $i xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx; i=$((i+1)); done`)
	e := logsEnv(t)
	logs, err := e.journalText(context.Background(), "karl", stateservice.Request{Verb: stateservice.VerbLogs, Site: "karl"})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(args)
	for _, want := range []string{"--unit=site-karl.service", "--unit=site-karl.socket", "--lines=10000", "--no-pager", "--all", "--output=short"} {
		if !strings.Contains(string(got), want+"\n") {
			t.Errorf("journalctl ran without %s:\n%s", want, got)
		}
	}
	if !logs.Cut || len(logs.Text) > stateservice.MaxLogText || !strings.HasPrefix(logs.Text, "line ") || !strings.HasSuffix(logs.Text, "line 059999 "+strings.Repeat("x", 84)+"\n") {
		t.Errorf("cut %v, %d bytes from %.20q to %.20q; want the newest whole lines within %d bytes",
			logs.Cut, len(logs.Text), logs.Text, logs.Text[max(0, len(logs.Text)-20):], stateservice.MaxLogText)
	}

	args = fakeJournalctl(t, "echo one; echo two")
	logs, err = e.journalText(context.Background(), "karl", stateservice.Request{Verb: stateservice.VerbLogs, Site: "karl", Last: 2, Since: 1700000000, Output: "cat"})
	if err != nil || logs.Cut || logs.Text != "one\ntwo\n" {
		t.Errorf("a small journal: %+v, %v", logs, err)
	}
	got, _ = os.ReadFile(args)
	for _, want := range []string{"--since=@1700000000", "--lines=2", "--output=cat"} {
		if !strings.Contains(string(got), want+"\n") {
			t.Errorf("journalctl ran without %s:\n%s", want, got)
		}
	}
}

// A journalctl that fails, or an output format it does not know, is the
// request's error; the format is refused before journalctl runs.
func TestJournalTextErrors(t *testing.T) {
	args := fakeJournalctl(t, "echo 'Failed to open journal' >&2; exit 1")
	e := logsEnv(t)
	_, err := e.journalText(context.Background(), "karl", stateservice.Request{Verb: stateservice.VerbLogs, Site: "karl"})
	if err == nil || !strings.Contains(err.Error(), "Failed to open journal") {
		t.Errorf("journalctl failed: %v", err)
	}
	os.Remove(args)
	_, err = e.journalText(context.Background(), "karl", stateservice.Request{Verb: stateservice.VerbLogs, Site: "karl", Output: "export"})
	if err == nil || codeOf(err) != exitUsage {
		t.Errorf("output export: %v (exit %d), want exit %d", err, codeOf(err), exitUsage)
	}
	if _, serr := os.Stat(args); serr == nil {
		t.Error("journalctl ran for an output format sitectl refuses")
	}
}

// A logs answer cut to its newest bytes starts at a whole record: a line
// for the one-line formats, "{" alone on a line for json-pretty, the
// record separator for json-seq, a line not indented for verbose.
func TestCutLogsStartAtARecord(t *testing.T) {
	for _, c := range []struct{ output, text, want string }{
		{"short", "ne 1\nline 2\nline 3\n", "line 2\nline 3\n"},
		{"json-pretty", "\"a\" : 1\n}\n{\n\t\"b\" : 2\n}\n", "{\n\t\"b\" : 2\n}\n"},
		{"json-seq", "\"a\":1}\n\x1e{\"b\":2}\n", "\x1e{\"b\":2}\n"},
		{"verbose", "    FIELD=1\n    MESSAGE=x\nMon 2026-12-07 [s=1]\n    MESSAGE=y\n", "Mon 2026-12-07 [s=1]\n    MESSAGE=y\n"},
		{"verbose", "    FIELD=1\n    MESSAGE=x\n", ""},
		{"short", "no newline at all", ""},
	} {
		if got := string(fromRecordStart([]byte(c.text), c.output)); got != c.want {
			t.Errorf("%s: %q, want %q", c.output, got, c.want)
		}
	}
}

// The service reads the journal for LogsAtOnce logs requests at once; the
// next waits, and gives up with its caller.
func TestLogsRequestsWaitForASlot(t *testing.T) {
	fakeJournalctl(t, "echo one")
	e := logsEnv(t)
	for range stateservice.LogsAtOnce {
		logsSlots <- struct{}{}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := e.journalText(ctx, "karl", stateservice.Request{Verb: stateservice.VerbLogs, Site: "karl"})
	for range stateservice.LogsAtOnce {
		<-logsSlots
	}
	if err == nil || !strings.Contains(err.Error(), "was not read") {
		t.Errorf("a logs request while the slots are taken: %v", err)
	}
	if logs, err := e.journalText(context.Background(), "karl", stateservice.Request{Verb: stateservice.VerbLogs, Site: "karl"}); err != nil || logs.Text != "one\n" {
		t.Errorf("once a slot is free: %+v, %v", logs, err)
	}
}
