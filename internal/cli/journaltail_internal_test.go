package cli

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A failed start's journal larger than journalBytes keeps its newest
// lines, which say why the start failed: an app that logs long lines (a
// request dump, structured logging) wrote its traceback last, and the
// report must show its exception line, not the first 1 MiB of older
// lines cut in the middle of one.
func TestReadJournalKeepsTheNewestLines(t *testing.T) {
	dir := t.TempDir()
	// 299 lines of 8 KiB (2.3 MiB), then the exception line.
	script := `#!/bin/sh
awk 'BEGIN { s = sprintf("%8000s", ""); gsub(/ /, "x", s)
	for (i = 0; i < 299; i++) print "Jan 01 00:00:00.000000 host app[1]: old line " i " " s
	print "Jan 01 00:00:00.000000 host app[1]: ValueError: the last line" }'
`
	if err := os.WriteFile(filepath.Join(dir, "journalctl"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	lines, err := readJournal(ctx, "site-x.service", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(lines) == 0 || !strings.HasSuffix(lines[len(lines)-1], "ValueError: the last line") {
		last := ""
		if len(lines) > 0 {
			last = lines[len(lines)-1]
		}
		t.Fatalf("the last line read is %.100q…: the journal's newest lines were dropped", last)
	}
	if !strings.Contains(lines[0], "left out") {
		t.Errorf("the first line is %.100q: the lines left out are not told", lines[0])
	}
	total := 0
	for _, l := range lines[1:] {
		if !strings.HasPrefix(l, "Jan 01 ") {
			t.Fatalf("a line cut in two is kept: %.60q", l)
		}
		total += len(l) + 1
	}
	if total > journalBytes {
		t.Errorf("kept %d bytes of lines, more than %d", total, journalBytes)
	}
}

// tailLines of what fits is every line, with nothing said of a cut; of
// one line longer than the bound, its end, marked as cut.
func TestTailLines(t *testing.T) {
	lines, err := tailLines(strings.NewReader("a\nb\n\n"), 1<<10)
	if err != nil || strings.Join(lines, "|") != "a|b" {
		t.Fatalf("tailLines = %q, %v; want [a b]", lines, err)
	}
	if lines, err := tailLines(strings.NewReader(""), 1<<10); lines != nil || err != nil {
		t.Fatalf("tailLines of nothing = %q, %v", lines, err)
	}
	lines, err = tailLines(strings.NewReader(strings.Repeat("x", 100)+"END\n"), 10)
	if err != nil || len(lines) != 2 || lines[1] != "…xxxxxxEND" {
		t.Fatalf("tailLines of one long line = %q, %v", lines, err)
	}
}
