package site

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestDocumentedDefaultsAreTheParsers checks each default that Keys (and so
// sitectl.toml(5)) gives as a value against what the parser gives a file
// that leaves the key out: an operator who reads "30s" must get 30s. A key
// whose documented default is a value this test cannot read from a parsed
// site makes it fail: add how to read it.
func TestDocumentedDefaultsAreTheParsers(t *testing.T) {
	bare := func(extra string) *Site {
		t.Helper()
		s, err := ParseNamed("/etc/sitectl/sites/karl.toml", "karl", []byte(extra+"exec = [\"/usr/bin/app\"]\n\n[[listen]]\naddress = \"127.0.0.1:8080\"\n\n[[listen]]\npath = \"/run/karl/web.sock\"\n"+
			"\n[probe]\n\n[egress]\n\n[hardening]\n\n[modes.mine]\n\n[modes.down]\nserve = \"maintenance\"\n"))
		if err != nil {
			t.Fatalf("a file of defaults has mistakes: %v", err)
		}
		return s
	}
	s := bare("")
	gunicorn := bare("server = \"gunicorn\"\n")
	mode := func(name string) Mode {
		for _, m := range s.Modes {
			if m.Name == name {
				return m
			}
		}
		t.Fatalf("no mode %s", name)
		return Mode{}
	}
	// A duration is compared as a duration: "60s" is 1m0s.
	type dur time.Duration
	// What a file without the key gets, written as the manual writes it.
	actual := map[string]any{
		"server":                        string(s.Server),
		"handoff":                       string(s.Handoff),
		"start_priority":                string(s.StartPriority),
		"fast_exit":                     fmt.Sprintf("%t for gunicorn", gunicorn.FastExit && !s.FastExit),
		"drain_timeout":                 dur(s.DrainTimeout),
		"stop_timeout":                  dur(s.StopTimeout),
		"start_timeout":                 dur(s.StartTimeout),
		"settle_time":                   dur(s.SettleTime),
		"cleanup_timeout":               dur(s.CleanupTimeout),
		"default_mode":                  s.DefaultMode,
		"keep_previous":                 map[bool]string{true: "0 (off)"}[s.KeepPrevious == 0],
		"listen.name":                   s.Listeners[0].Name,
		"listen.mode":                   fmt.Sprintf("\"%04o\"", s.Listeners[1].Mode.Perm()),
		"listen.owner":                  map[bool]string{true: "root"}[s.Listeners[1].Owner == ""],
		"listen.group":                  map[bool]string{true: "root"}[s.Listeners[1].Group == ""],
		"modes.NAME.serve":              string(mode("mine").Serve),
		"modes.NAME.retry_after":        dur(mode("down").RetryAfter),
		"probe.path":                    fmt.Sprintf("%q", s.Probe.Path),
		"probe.status":                  fmt.Sprint(s.Probe.Status),
		"probe.timeout":                 dur(s.Probe.Timeout),
		"hardening.allow_write_execute": fmt.Sprint(s.Hardening.AllowWriteExecute),
		"egress.allow":                  map[bool]string{true: "[] (nothing)"}[len(s.Egress.Allow) == 0],
	}
	// Defaults that are not a value: requirements and absences.
	// (description: the units write "Site NAME" for an empty one.)
	described := map[string]bool{"required": true, "none": true, "\"Site NAME\"": true}
	for _, k := range Keys {
		name := k.Key
		if k.Table != "" {
			name = k.Table + "." + k.Key
		}
		got, ok := actual[name]
		if d, isDur := got.(dur); isDur {
			want, err := time.ParseDuration(k.Default)
			if err != nil || want != time.Duration(d) {
				t.Errorf("%s: sitectl.toml(5) says the default is %s, but a file without it gets %s", name, k.Default, time.Duration(d))
			}
			continue
		}
		switch {
		case ok && got != k.Default:
			t.Errorf("%s: sitectl.toml(5) says the default is %s, but a file without it gets %s", name, k.Default, got)
		case !ok && !described[k.Default] && !strings.HasPrefix(k.Default, "none") && !strings.Contains(k.Default, " "):
			t.Errorf("%s: sitectl.toml(5) gives the default %s, which this test does not compare with the parser's: add it to actual", name, k.Default)
		}
	}
}
