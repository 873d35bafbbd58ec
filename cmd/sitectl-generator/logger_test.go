package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// After journald fails to take one record, the generator does not ask it
// again: each failure may cost a second, and a generator that takes too
// long is killed before it writes the units.
func TestLoggerStopsAskingAJournalThatFailed(t *testing.T) {
	kmsg := filepath.Join(t.TempDir(), "kmsg")
	if err := os.WriteFile(kmsg, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	defer func(p string) { kmsgPath = p }(kmsgPath)
	kmsgPath = kmsg
	var out bytes.Buffer
	calls := 0
	l := &logger{w: &out, journal: true, send: func(int, string, map[string]string) error {
		calls++
		return errors.New("journald did not take the record within 1s")
	}}
	for i := 0; i < 5; i++ {
		l.Printf(levelErr, "mistake %d", i)
	}
	l.Close()
	if calls != 1 {
		t.Errorf("journald was asked %d times, want once", calls)
	}
	logged, _ := os.ReadFile(kmsg)
	if n := strings.Count(string(logged), "]: mistake ") + strings.Count(out.String(), "sitectl-generator: mistake "); n != 5 {
		t.Errorf("%d of 5 records were logged; the kernel log has:\n%s\nstderr:\n%s", n, logged, out.String())
	}
}

// A record journald's socket refuses as too large (EMSGSIZE) says nothing
// about journald: the next records go to the journal still.
func TestLoggerKeepsTheJournalAfterATooLargeRecord(t *testing.T) {
	var out bytes.Buffer
	var sent []string
	l := &logger{w: &out, journal: true, send: func(_ int, msg string, _ map[string]string) error {
		if len(msg) > 100 {
			return fmt.Errorf("a record of %d bytes is too large for journald's socket: %w", len(msg), unix.EMSGSIZE)
		}
		sent = append(sent, msg)
		return nil
	}}
	l.Printf(levelErr, "%s", strings.Repeat("x", 200))
	l.Printf(levelErr, "next")
	l.Close()
	if !l.journal || len(sent) != 1 || sent[0] != "next" {
		t.Errorf("journal %v, sent %q", l.journal, sent)
	}
	if !strings.Contains(out.String(), strings.Repeat("x", 200)) {
		t.Errorf("the large record was lost; stderr: %.100q", out.String())
	}
}

// A record is one line, whatever it quotes: a site file's name with a
// newline in it cannot forge a line of the log.
func TestLoggerWritesOneLinePerRecord(t *testing.T) {
	var out bytes.Buffer
	l := &logger{w: &out}
	l.Printf(levelErr, "%s: site skipped", "/etc/sitectl/sites/a\nsitectl-generator: generated units for 0 sites\x1b[2J.toml")
	if got := out.String(); strings.Count(got, "\n") != 1 || strings.Contains(got, "\x1b") {
		t.Errorf("%q", got)
	}
}
