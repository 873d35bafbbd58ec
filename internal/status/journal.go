package status

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os/exec"
	"strconv"
	"time"

	"github.com/sitectl/sitectl/internal/bounded"
)

// Message IDs systemd (PID 1) gives its records about units
// (systemd/sd-messages.h): a unit failed with a result (UNIT_RESULT=), and
// a unit's process exited (EXIT_CODE=, EXIT_STATUS=). Both carry the
// unit's INVOCATION_ID.
const (
	messageUnitFailed  = "d9b373ed55a64feb8242e02dbe79a49c"
	messageProcessExit = "98e322203f7a4ed290d09fe03c09fe15"
	// journalRecords bounds what one read takes: the last failure and the
	// exits before it are among the last few records of either kind.
	journalRecords = 16
	maxJournalRead = 1 << 20
)

// LastFailure reads how a service last failed from the journal: systemd's
// own record of the failure (_PID=1, so no app can forge it) and, from the
// same run, the main process's exit. nil when the journal has none or
// cannot be read (a user outside the adm and systemd-journal groups).
func LastFailure(ctx context.Context, unit string) *Failure {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "journalctl", "--no-pager", "--quiet", "-o", "json", "-n", strconv.Itoa(journalRecords),
		"_PID=1", "UNIT="+unit, "MESSAGE_ID="+messageUnitFailed, "MESSAGE_ID="+messageProcessExit)
	out := bounded.Dropping(maxJournalRead)
	cmd.Stdout = out
	// A process that keeps journalctl's output open after it exited
	// must not hold status up (as cleanup.Last).
	cmd.WaitDelay = time.Second
	if err := cmd.Run(); err != nil && out.Len() == 0 {
		return nil
	}
	return parseFailure(out.Bytes())
}

// parseFailure finds the last failure among journal records (journalctl -o
// json, one per line, oldest first) and the exit of its run's main process.
func parseFailure(data []byte) *Failure {
	var records []map[string]json.RawMessage
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), maxJournalRead)
	for sc.Scan() {
		var r map[string]json.RawMessage
		if json.Unmarshal(sc.Bytes(), &r) == nil {
			records = append(records, r)
		}
	}
	for i := len(records) - 1; i >= 0; i-- {
		r := records[i]
		if field(r, "MESSAGE_ID") != messageUnitFailed {
			continue
		}
		f := &Failure{Result: field(r, "UNIT_RESULT")}
		if usec, err := strconv.ParseInt(field(r, "__REALTIME_TIMESTAMP"), 10, 64); err == nil {
			t := time.UnixMicro(usec).UTC()
			f.Time = &t
		}
		inv := field(r, "INVOCATION_ID")
		for j := i - 1; j >= 0 && inv != ""; j-- {
			if e := records[j]; field(e, "MESSAGE_ID") == messageProcessExit && field(e, "INVOCATION_ID") == inv {
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
