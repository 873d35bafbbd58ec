package cleanup

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/sitectl/sitectl/internal/journal"
)

// Record is the one journal record a cleanup leaves, which sitectl status
// reads back (journalctl SITECTL_EVENT=cleanup SITECTL_SITE=NAME). Send
// writes it and Last reads it: its field names live here only. The JSON
// field names are part of sitectl status --json.
type Record struct {
	Site         string    `json:"-"`
	Time         time.Time `json:"time"`   // when journald received it; set by Last
	Result       string    `json:"result"` // ok or hook-failed
	Leftovers    int       `json:"leftovers"`
	Remaining    int       `json:"remaining"`
	HookFailures []string  `json:"hook_failures"`
	HooksRun     int       `json:"-"` // for the message only
}

// Journal fields of the record.
const (
	fieldSite         = "SITECTL_SITE"
	fieldEvent        = "SITECTL_EVENT"
	fieldResult       = "SITECTL_RESULT"
	fieldLeftovers    = "SITECTL_LEFTOVERS"
	fieldRemaining    = "SITECTL_REMAINING"
	fieldHookFailures = "SITECTL_HOOK_FAILURES"
	eventCleanup      = "cleanup"
)

// Record is what the report leaves in the journal for site.
func (r Report) Record(site string) Record {
	return Record{Site: site, Result: r.result(), Leftovers: len(r.Leftovers), Remaining: len(r.Remaining), HookFailures: r.HookFailures, HooksRun: r.HooksRun}
}

// Message is the record's one line for a person reading the journal.
func (r Record) Message() string {
	return fmt.Sprintf("site %s: cleanup %s: %d processes left behind, %d still running after the timeout, %d hooks run, %d failed",
		r.Site, r.Result, r.Leftovers, r.Remaining, r.HooksRun, len(r.HookFailures))
}

func (r Record) fields() map[string]string {
	return map[string]string{
		fieldSite: r.Site, fieldEvent: eventCleanup, fieldResult: r.Result,
		fieldLeftovers: strconv.Itoa(r.Leftovers), fieldRemaining: strconv.Itoa(r.Remaining),
		fieldHookFailures: strings.Join(r.HookFailures, "\n"),
	}
}

// Send writes the record to the journal, as a warning when a hook failed.
func (r Record) Send() error {
	pri := journal.PriInfo
	if r.Result != "ok" {
		pri = journal.PriWarning
	}
	return journal.Send(pri, r.Message(), r.fields())
}

// SendLine writes one line of a cleanup's log to the journal, tagged with
// the site.
func SendLine(site string, priority int, msg string) error {
	return journal.Send(priority, msg, map[string]string{fieldSite: site})
}

// Last reads the last cleanup record of a site from the journal; nil when
// there is none or the journal cannot be read (status reports it as
// unknown).
func Last(ctx context.Context, site string) *Record {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "journalctl", "--no-pager", "--quiet", "-o", "json", "-n", "1",
		fieldEvent+"="+eventCleanup, fieldSite+"="+site).Output()
	if err != nil || len(bytes.TrimSpace(out)) == 0 {
		return nil
	}
	r, err := parseRecord(out)
	if err != nil {
		return nil
	}
	return r
}

// parseRecord reads one entry of journalctl -o json. journalctl writes a
// field as a string, or as an array of bytes when it holds what it does
// not print as text.
func parseRecord(data []byte) (*Record, error) {
	var entry map[string]json.RawMessage
	if err := json.Unmarshal(data, &entry); err != nil {
		return nil, fmt.Errorf("cannot read the journal entry: %w", err)
	}
	str := func(k string) string {
		var s string
		if json.Unmarshal(entry[k], &s) == nil {
			return s
		}
		var b []byte
		var ints []int
		if json.Unmarshal(entry[k], &ints) == nil {
			for _, i := range ints {
				b = append(b, byte(i))
			}
		}
		return string(b)
	}
	num := func(k string) int { n, _ := strconv.Atoi(str(k)); return n }
	r := &Record{Site: str(fieldSite), Result: str(fieldResult), Leftovers: num(fieldLeftovers), Remaining: num(fieldRemaining), HookFailures: []string{}}
	if usec, err := strconv.ParseInt(str("__REALTIME_TIMESTAMP"), 10, 64); err == nil {
		r.Time = time.UnixMicro(usec).UTC()
	}
	if f := str(fieldHookFailures); f != "" {
		r.HookFailures = strings.Split(f, "\n")
	}
	return r, nil
}
