package modes

import (
	"errors"
	"os"
	"strings"
	"testing"
)

// Every way sitectl reads a site's state file or mode file back says of
// one it cannot read as it writes it that it is damaged, which file, and
// how to get past it, and leaves the file as it is.
func TestDamagedFilesSayWhichAndHowToGetPastThem(t *testing.T) {
	readers := map[string][]struct {
		name string
		read func(Store) error
	}{
		DamagedState: {
			{"ReadState", func(st Store) error { _, err := st.ReadState("karl"); return err }},
			{"ReadSummary", func(st Store) error { _, err := st.ReadSummary("karl"); return err }},
			{"ReadListed", func(st Store) error { _, _, err := st.ReadListed("karl"); return err }},
		},
		DamagedMode: {
			{"Current", func(st Store) error { _, _, err := st.Current("karl"); return err }},
			{"RecordedMode", func(st Store) error { _, err := st.RecordedMode("karl"); return err }},
			{"ReadListed", func(st Store) error { _, _, err := st.ReadListed("karl"); return err }},
		},
	}
	for _, c := range []struct {
		what, content string
	}{
		{DamagedState, `{"previous_mode":`},
		{DamagedState, "\x01garbage{{"},
		{DamagedState, `["normal"]`},
		{DamagedState, `{"pending": "now"}`},
		{DamagedMode, ""},
		{DamagedMode, "# only a comment\n"},
		{DamagedMode, "SITE_MODE=\"\"\n"},
		{DamagedMode, "SITE_MODE=normal\x00\n"},
		{DamagedMode, "SITECTL_SERVE=app\n"},
	} {
		st := Store{Dir: t.TempDir()}
		if err := st.siteDir("karl"); err != nil {
			t.Fatal(err)
		}
		// The other file is whole, so that the damaged one is read.
		if err := os.WriteFile(st.EnvPath("karl"), []byte("SITE_MODE=normal\n"), FileMode); err != nil {
			t.Fatal(err)
		}
		path := st.statePath("karl")
		if c.what == DamagedMode {
			path = st.EnvPath("karl")
		}
		if err := os.WriteFile(path, []byte(c.content), FileMode); err != nil {
			t.Fatal(err)
		}
		for _, r := range readers[c.what] {
			err := r.read(st)
			var d *DamagedError
			if !errors.As(err, &d) {
				t.Errorf("%s of a %s of %q: %v; want a DamagedError", r.name, c.what, c.content, err)
				continue
			}
			if d.Path != path || d.What != c.what || d.Site != "karl" {
				t.Errorf("%s of a %s of %q: %+v; want %s, %s, karl", r.name, c.what, c.content, d, path, c.what)
			}
			if want := "the " + c.what + " " + path + " of site karl is damaged: "; !strings.HasPrefix(err.Error(), want) && !strings.Contains(err.Error(), ": "+want) {
				t.Errorf("%s of a %s of %q: %q; want it to begin %q", r.name, c.what, c.content, err, want)
			}
			if want := "`mv " + path + " " + path + ".damaged`"; !strings.Contains(d.Recovery(), want) {
				t.Errorf("%s: recovery %q; want %q", r.name, d.Recovery(), want)
			}
		}
		if data, err := os.ReadFile(path); err != nil || string(data) != c.content {
			t.Errorf("the damaged %s is now %q, %v; want it left as it was, %q", c.what, data, err, c.content)
		}
	}
}

// What the recovery asks of the site after the file is moved aside.
func TestDamagedRecoveryNamesWhatComesNext(t *testing.T) {
	mode := (&DamagedError{Site: "karl", Path: "/s/mode.env", What: DamagedMode, Err: errors.New("x")}).Recovery()
	for _, want := range []string{"`sitectl mode karl MODE`", "`sitectl restart karl` in its default mode"} {
		if !strings.Contains(mode, want) {
			t.Errorf("mode file recovery %q lacks %q", mode, want)
		}
	}
	state := (&DamagedError{Site: "karl", Path: "/s/state.json", What: DamagedState, Err: errors.New("x")}).Recovery()
	for _, want := range []string{"starts a new history", "`sitectl rollback karl` has no previous mode"} {
		if !strings.Contains(state, want) {
			t.Errorf("state file recovery %q lacks %q", state, want)
		}
	}
}

func TestShellWord(t *testing.T) {
	for in, want := range map[string]string{
		"/var/lib/sitectl/sites/karl/state.json": "/var/lib/sitectl/sites/karl/state.json",
		"/srv/my state/mode.env":                 "'/srv/my state/mode.env'",
		"/srv/it's/mode.env":                     `'/srv/it'\''s/mode.env'`,
		"/srv/$HOME/x":                           "'/srv/$HOME/x'",
		"":                                       "''",
	} {
		if got := shellWord(in); got != want {
			t.Errorf("shellWord(%q) = %s; want %s", in, got, want)
		}
	}
}
