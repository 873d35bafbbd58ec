package cleanup

import (
	"slices"
	"testing"
)

// Any local process may log SITECTL_EVENT=cleanup SITECTL_SITE=karl: the
// match asks only for records journald attributes to the site's service,
// and RecordOf takes only those.
func TestOnlyTheSitesServicesRecordsAreRead(t *testing.T) {
	m := Match("karl")
	for _, want := range []string{"SITECTL_EVENT=cleanup", "SITECTL_SITE=karl", "_SYSTEMD_UNIT=site-karl.service"} {
		if !slices.Contains(m, want) {
			t.Errorf("Match %q: no %s", m, want)
		}
	}
	r, ok := RecordOf([]byte(`{"SITECTL_EVENT":"cleanup","SITECTL_SITE":"karl","_SYSTEMD_UNIT":"site-karl.service","SITECTL_RESULT":"hook-failed","SITECTL_LEFTOVERS":"2","SITECTL_HOOK_FAILURES":"a\nb","__REALTIME_TIMESTAMP":"1700000000123456"}`), "karl")
	if !ok || r.Result != ResultHookFailed || r.Leftovers != 2 || !slices.Equal(r.HookFailures, []string{"a", "b"}) || r.Time.UnixMicro() != 1700000000123456 {
		t.Errorf("RecordOf = %+v, %v", r, ok)
	}
	for _, entry := range []string{
		`{"SITECTL_EVENT":"cleanup","SITECTL_SITE":"karl","_SYSTEMD_UNIT":"site-other.service","SITECTL_RESULT":"ok"}`,
		`{"SITECTL_EVENT":"cleanup","SITECTL_SITE":"karl","SITECTL_RESULT":"ok"}`,
		`{"SITECTL_EVENT":"cleanup","SITECTL_SITE":"other","_SYSTEMD_UNIT":"site-karl.service","SITECTL_RESULT":"ok"}`,
		`{"SITECTL_EVENT":"started","SITECTL_SITE":"karl","_SYSTEMD_UNIT":"site-karl.service","SITECTL_RESULT":"ok"}`,
		`{"SITECTL_EVENT":"cleanup","SITECTL_SITE":[107,97,114,108],"_SYSTEMD_UNIT":"site-karl.service","SITECTL_RESULT":"ok"}`,
		`not json`,
	} {
		if r, ok := RecordOf([]byte(entry), "karl"); ok {
			t.Errorf("RecordOf(%s) = %+v: not a record of karl's service", entry, r)
		}
	}
}
