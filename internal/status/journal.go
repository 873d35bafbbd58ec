package status

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"strconv"
	"time"

	"github.com/sitectl/sitectl/internal/cleanup"
	"github.com/sitectl/sitectl/internal/units"
)

// Message IDs systemd (PID 1) gives its records about units
// (systemd/sd-messages.h): a unit failed with a result (UNIT_RESULT=), and
// a unit's process exited (EXIT_CODE=, EXIT_STATUS=). Both carry the
// unit's INVOCATION_ID.
const (
	messageUnitFailed  = "d9b373ed55a64feb8242e02dbe79a49c"
	messageProcessExit = "98e322203f7a4ed290d09fe03c09fe15"
	// journalRecords bounds how far back the last failure is looked for:
	// among the last this many of systemd's records of the service's
	// failures and exits, which hold the exits before it too.
	journalRecords = 16
	// maxJournalLines bounds the records one read takes in all: when a
	// site's cleanup records are missing (lost to journald's rate limit),
	// the read would otherwise go back through every one of its exits.
	maxJournalLines = 4096
)

// journalctl is the command LastJournal runs; a variable for tests.
var journalctl = "journalctl"

// LastJournal reads what status says of site from the journal, with one
// journalctl (its start costs more than both queries): how its service
// last failed and the record of its last cleanup. The failure is
// systemd's own record of it (_PID=1, so no app can forge it) with, from
// the same run, the main process's exit, among the last journalRecords of
// systemd's records of the service's failures and exits; the cleanup
// record is the last its service sent (cleanup.Match; nil when it is
// larger than cleanup.MaxRecord, which status reports as unknown). The
// journal is read newest first and no further than both need. Each is
// nil when the journal has none or cannot be read (a user outside the
// adm and systemd-journal groups).
func LastJournal(ctx context.Context, site string) (*Failure, *cleanup.Record) {
	unit := units.ServiceName(site)
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	args := append([]string{"--no-pager", "--quiet", "-o", "json", "--reverse"}, failureMatch(unit)...)
	args = append(append(args, "+"), cleanup.Match(site)...)
	cmd := exec.CommandContext(ctx, journalctl, args...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, nil
	}
	// A process that keeps journalctl's output open after it exited
	// must not hold status up.
	cmd.WaitDelay = time.Second
	if err := cmd.Start(); err != nil {
		return nil, nil
	}
	failure, rec := readNewestFirst(out, site)
	// What journalctl would write next is older than what was needed.
	cancel()
	_ = cmd.Wait()
	return failure, rec
}

// failureMatch is the journalctl match of systemd's records of unit's
// failures and of its processes' exits.
func failureMatch(unit string) []string {
	return []string{"_PID=1", "UNIT=" + unit, "MESSAGE_ID=" + messageUnitFailed, "MESSAGE_ID=" + messageProcessExit}
}

// isFailureRecord reports whether r is one that failureMatch(unit) selects.
func isFailureRecord(r map[string]json.RawMessage, unit string) bool {
	id := field(r, "MESSAGE_ID")
	return field(r, "_PID") == "1" && field(r, "UNIT") == unit && (id == messageUnitFailed || id == messageProcessExit)
}

// readNewestFirst reads journalctl -o json --reverse's records of the
// failure and cleanup matches of site until it has journalRecords of
// systemd's records and the newest cleanup record, or there are no more,
// and returns the last failure among the former and the latter.
func readNewestFirst(r io.Reader, site string) (*Failure, *cleanup.Record) {
	unit := units.ServiceName(site)
	br := bufio.NewReaderSize(r, cleanup.MaxRecord)
	var failures []map[string]json.RawMessage
	var rec *cleanup.Record
	cleanupKnown := false
	for n := 0; n < maxJournalLines && (!cleanupKnown || len(failures) < journalRecords); n++ {
		line, tooLong, err := readLine(br)
		if err != nil {
			break
		}
		var fields map[string]json.RawMessage
		if !tooLong && json.Unmarshal(line, &fields) == nil && isFailureRecord(fields, unit) {
			if len(failures) < journalRecords {
				failures = append(failures, fields)
			}
			continue
		}
		// Any other record is one of the cleanup match's (systemd's
		// records are short and well-formed), newest first: the first is
		// the last cleanup's, unknown when it is too large or not a
		// record of the site's (cleanup.RecordOf).
		if !cleanupKnown {
			cleanupKnown = true
			if !tooLong {
				rec, _ = cleanup.RecordOf(line, site)
			}
		}
	}
	return lastFailure(failures), rec
}

// readLine reads one line of br: tooLong when it does not fit br's buffer
// (it is then read to its end and left out); an error at the end of the
// output, and for a last line journalctl did not end.
func readLine(br *bufio.Reader) (line []byte, tooLong bool, err error) {
	line, err = br.ReadSlice('\n')
	for errors.Is(err, bufio.ErrBufferFull) {
		tooLong = true
		_, err = br.ReadSlice('\n')
	}
	return line, tooLong, err
}

// lastFailure finds the last failure among records, newest first, and the
// exit of its run's main process, which comes after it.
func lastFailure(records []map[string]json.RawMessage) *Failure {
	for i, r := range records {
		if field(r, "MESSAGE_ID") != messageUnitFailed {
			continue
		}
		f := &Failure{Result: field(r, "UNIT_RESULT")}
		if usec, err := strconv.ParseInt(field(r, "__REALTIME_TIMESTAMP"), 10, 64); err == nil {
			t := time.UnixMicro(usec).UTC()
			f.Time = &t
		}
		inv := field(r, "INVOCATION_ID")
		for _, e := range records[i+1:] {
			if inv != "" && field(e, "MESSAGE_ID") == messageProcessExit && field(e, "INVOCATION_ID") == inv {
				f.ExitCode, f.ExitStatus = field(e, "EXIT_CODE"), field(e, "EXIT_STATUS")
				break
			}
		}
		return f
	}
	return nil
}

// field is a journal field as text. journalctl writes a field as a string,
// or as an array of bytes when it is not printable text.
func field(r map[string]json.RawMessage, k string) string {
	var s string
	if json.Unmarshal(r[k], &s) == nil {
		return s
	}
	var ints []int
	if json.Unmarshal(r[k], &ints) == nil {
		b := make([]byte, len(ints))
		for i, v := range ints {
			b[i] = byte(v)
		}
		return string(b)
	}
	return ""
}
