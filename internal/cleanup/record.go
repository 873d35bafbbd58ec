package cleanup

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/sitectl/sitectl/internal/journal"
	"github.com/sitectl/sitectl/internal/units"
)

// Record is the one journal record a cleanup leaves, which sitectl status
// reads back (journalctl SITECTL_EVENT=cleanup SITECTL_SITE=NAME
// _SYSTEMD_UNIT=site-NAME.service: Match). Send writes it and RecordOf
// reads it: its field names live here only. The JSON field names are part
// of sitectl status --json.
type Record struct {
	Site string `json:"-"`
	// Time is when journald received it, as journalctl says (RecordOf).
	Time time.Time `json:"time" doc:"when the cleanup recorded its result; for running and unfinished, when it started"`
	// Result is one of the Result constants.
	Result    string `json:"result" doc:"ok; hook-failed: a cleanup hook failed; listing-failed: the processes of the cgroup could not be listed (see reason), so what the app left behind, or what of it still runs, is not fully known; the hooks ran all the same; failed: the cleanup failed before it ran the hooks (see reason); running: the service runs it now; unfinished: the last stop's cleanup started but recorded no result, so it did not finish (systemd killed it at TimeoutStopSec=, or it died), and nothing of an earlier stop's cleanup applies" enum:"ok,hook-failed,listing-failed,failed,running,unfinished"`
	Leftovers int    `json:"leftovers" doc:"processes the app left behind in its cgroup"`
	Remaining int    `json:"remaining" doc:"processes still running when the cleanup ended, which systemd's final SIGKILL ends: leftovers that outlived the cleanup timeout, and what the hooks left running"`
	// HookLeftovers are processes the hooks left running, among Remaining.
	HookLeftovers int      `json:"hook_leftovers" doc:"of remaining, the processes that the cleanup hooks started and left running (a hook's daemon): systemd's final SIGKILL ends them"`
	HookFailures  []string `json:"hook_failures" doc:"each failed hook and how it failed"`
	Reason        string   `json:"reason" doc:"for listing-failed and failed, what went wrong; empty otherwise"`
	// HooksRun is for the message only.
	HooksRun int `json:"-"`
}

// Journal fields of the record.
const (
	fieldSite         = "SITECTL_SITE"
	fieldEvent        = "SITECTL_EVENT"
	fieldResult       = "SITECTL_RESULT"
	fieldLeftovers    = "SITECTL_LEFTOVERS"
	fieldRemaining    = "SITECTL_REMAINING"
	fieldHookFailures = "SITECTL_HOOK_FAILURES"
	fieldHookLeft     = "SITECTL_HOOK_LEFTOVERS"
	fieldReason       = "SITECTL_REASON"
	eventCleanup      = "cleanup"
	// fieldIdentifier tags the lines as the site's, as its service's
	// own output is (journalctl -t site-NAME).
	fieldIdentifier = "SYSLOG_IDENTIFIER"
	// fieldUnit is the unit journald finds the sender's process in, from
	// its cgroup; no sender can set it. Cleanup runs as the site's
	// service's ExecStopPost=, in that service's cgroup.
	fieldUnit = "_SYSTEMD_UNIT"
)

// Record is what the report leaves in the journal for site.
func (r Report) Record(site string) Record {
	return Record{Site: site, Result: r.result(), Leftovers: len(r.Leftovers), Remaining: len(r.Remaining), HookLeftovers: len(r.HookLeftovers),
		HookFailures: r.HookFailures, Reason: r.ListError, HooksRun: r.HooksRun}
}

// StartedRecord is the record a cleanup of site writes before it does
// anything: while it is the site's last, the last cleanup has no result.
func StartedRecord(site string) Record {
	return Record{Site: site, Result: ResultStarted}
}

// FailedRecord is the record of a cleanup of site that failed with err
// before it ran the hooks.
func FailedRecord(site string, err error) Record {
	return Record{Site: site, Result: ResultFailed, Reason: err.Error()}
}

// Message is the record's one line for a person reading the journal.
func (r Record) Message() string {
	switch r.Result {
	case ResultStarted:
		return fmt.Sprintf("site %s: cleanup started", r.Site)
	case ResultFailed:
		return fmt.Sprintf("site %s: cleanup failed: %s", r.Site, r.Reason)
	}
	msg := fmt.Sprintf("site %s: cleanup %s: %d processes left behind, %d still running after the timeout, %d hooks run, %d failed",
		r.Site, r.Result, r.Leftovers, r.Remaining, r.HooksRun, len(r.HookFailures))
	if r.HookLeftovers > 0 {
		msg += fmt.Sprintf(", %d processes left running by the hooks", r.HookLeftovers)
	}
	if r.Reason != "" {
		msg += ": " + r.Reason
	}
	return msg
}

func (r Record) fields() map[string]string {
	return map[string]string{
		fieldSite: r.Site, fieldEvent: eventCleanup, fieldResult: r.Result,
		fieldLeftovers: strconv.Itoa(r.Leftovers), fieldRemaining: strconv.Itoa(r.Remaining),
		fieldHookFailures: strings.Join(r.HookFailures, "\n"),
		fieldHookLeft:     strconv.Itoa(r.HookLeftovers),
		fieldReason:       r.Reason,
		fieldIdentifier:   units.SyslogIdentifier(r.Site),
	}
}

// Send writes the record to the journal, as a warning when something
// failed.
func (r Record) Send() error {
	pri := journal.PriInfo
	if r.Result != ResultOK && r.Result != ResultStarted {
		pri = journal.PriWarning
	}
	return journal.Send(pri, r.Message(), r.fields())
}

// SendLine writes one line of a cleanup's log to the journal, tagged with
// the site.
func SendLine(site string, priority int, msg string) error {
	return journal.Send(priority, msg, map[string]string{fieldSite: site, fieldIdentifier: units.SyslogIdentifier(site)})
}

// Match is the journalctl match of the cleanup records of site: those its
// service's processes sent (status.LastJournal reads them).
func Match(site string) []string {
	return []string{fieldEvent + "=" + eventCleanup, fieldSite + "=" + site, fieldUnit + "=" + units.ServiceName(site)}
}

// MaxRecord bounds a cleanup record as journalctl -o json writes it: a
// few hundred bytes, a few KiB with many failed hooks, while a journal
// record may carry up to some 16 MiB of fields. A longer one is not read
// (status reports the cleanup as unknown).
const MaxRecord = 64 << 10

// RecordOf is the cleanup record of site in entry, one line of
// journalctl -o json; false when entry is not one that Match selects.
func RecordOf(entry []byte, site string) (*Record, bool) {
	var fields struct {
		Event string `json:"SITECTL_EVENT"`
		Site  string `json:"SITECTL_SITE"`
		Unit  string `json:"_SYSTEMD_UNIT"`
	}
	// A field journalctl writes as bytes (not text) does not decode as a
	// string, and so matches nothing here, as it matches nothing in
	// Match.
	if json.Unmarshal(entry, &fields) != nil || fields.Event != eventCleanup || fields.Site != site || fields.Unit != units.ServiceName(site) {
		return nil, false
	}
	r, err := parseRecord(entry)
	return r, err == nil
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
	r := &Record{Site: str(fieldSite), Result: str(fieldResult), Leftovers: num(fieldLeftovers), Remaining: num(fieldRemaining),
		HookLeftovers: num(fieldHookLeft), Reason: str(fieldReason), HookFailures: []string{}}
	if usec, err := strconv.ParseInt(str("__REALTIME_TIMESTAMP"), 10, 64); err == nil {
		r.Time = time.UnixMicro(usec).UTC()
	}
	if f := str(fieldHookFailures); f != "" {
		r.HookFailures = strings.Split(f, "\n")
	}
	return r, nil
}
