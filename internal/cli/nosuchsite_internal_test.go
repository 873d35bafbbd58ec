package cli

import (
	"errors"
	"io/fs"
	"os"
	"strings"
	"testing"
)

// A site whose file is gone but whose state stayed has run here: the
// answer says its units may run on, and how to stop them; a site that
// never was gets no such hint.
func TestMissingSiteThatRanSaysItsUnitsMayRunOn(t *testing.T) {
	e := &env{dirs: testDirs(t)}
	_, err := e.loadSite("gone")
	if !errors.Is(err, fs.ErrNotExist) || codeOf(err) != exitNotFound || len(hintsOf(err)) != 0 {
		t.Fatalf("a site that never was: %v (exit %d), hints %q", err, codeOf(err), hintsOf(err))
	}
	if err := os.MkdirAll(e.dirs.SiteState("gone"), 0o700); err != nil {
		t.Fatal(err)
	}
	_, err = e.loadSite("gone")
	if !errors.Is(err, fs.ErrNotExist) || codeOf(err) != exitNotFound || !strings.Contains(strings.Join(hintsOf(err), " "), "`sitectl remove gone` stops them") {
		t.Errorf("a site that ran: %v (exit %d), hints %q", err, codeOf(err), hintsOf(err))
	}
	// The state service tells a deployer only that it does not exist.
	_, err = backend{e: e}.LoadSite("gone")
	if !errors.Is(err, fs.ErrNotExist) || codeOf(err) != exitNotFound || len(hintsOf(err)) != 0 {
		t.Errorf("a deployer's answer: %v (exit %d), hints %q", err, codeOf(err), hintsOf(err))
	}
}

// A site or mode name typed as names are often mistyped gets the name it
// likely meant.
func TestNearNames(t *testing.T) {
	for in, want := range map[string]string{"read_only": "read-only", "Shop": "shop", "maintenance.": "maintenance", "a__b": "a--b"} {
		if got := nearName(in); got != want {
			t.Errorf("nearName(%q) = %q, want %q", in, got, want)
		}
	}
}
