package generator

import (
	"fmt"
	"time"

	"github.com/sitectl/sitectl/internal/modes"
	"github.com/sitectl/sitectl/internal/paths"
	"github.com/sitectl/sitectl/internal/site"
	"github.com/sitectl/sitectl/internal/units"
)

// FileState is what the generator makes of one site's file, for status and
// list: ok, or invalid and run from its last good copy (or skipped).
type FileState struct {
	Invalid bool        // the site file has mistakes
	Since   time.Time   // when the invalid file was last written
	Errors  site.Errors // its mistakes, FILE:LINE:COL: what is wrong
	// LastGood: the generator writes the site's units from its last good
	// copy (Outcome.LastGood); the units systemd has loaded come from it
	// when the service's SourcePath= is dirs.LastGoodFile(name).
	LastGood bool
	Saved    time.Time // when the last good copy was saved
	NoCopy   string    // why the site has no units, when invalid and !LastGood
}

// SiteFileState reads the site directory as the generator does and says
// what it makes of site name's file. A site without a file is not invalid.
func SiteFileState(dirs paths.Dirs, name string) (FileState, error) {
	held := modes.Store{Dir: dirs.State}.Holders()
	res, err := site.LoadDir(dirs.Config, held)
	if err != nil {
		return FileState{}, err
	}
	opts := units.Options{Dirs: dirs}
	res = Checked(res, opts)
	// As the generator decides it: a valid file may lose its listener
	// to the last good copy of another site's file, or to the copy a
	// pinned site runs.
	res, outcomes, _ := Settled(res, opts, StateProblem(dirs.State), held)
	file := dirs.SiteFile(name)
	var mine site.Errors
	for _, e := range res.Errors {
		if e.File == file {
			mine = append(mine, e)
		}
	}
	if len(mine) == 0 {
		return FileState{}, nil
	}
	fs := FileState{Invalid: true, Errors: mine}
	if t, ok := site.WrittenAt(file); ok {
		fs.Since = t
	}
	for _, o := range outcomes {
		if o.File == file {
			fs.LastGood, fs.Saved, fs.NoCopy = o.LastGood != "", o.Saved, o.NoCopy
		}
	}
	return fs, nil
}

// Summary is the line status shows for an invalid file ("" for a valid one):
// "site file invalid since TIME (N errors); running the last good version".
func (f FileState) Summary() string {
	if !f.Invalid {
		return ""
	}
	n := fmt.Sprintf("%d errors", len(f.Errors))
	if len(f.Errors) == 1 {
		n = "1 error"
	}
	head := fmt.Sprintf("site file invalid since %s (%s)", f.Since.Format("2006-01-02 15:04:05 MST"), n)
	if f.LastGood {
		return head + "; running the last good version"
	}
	return head + "; no units: " + f.NoCopy
}
