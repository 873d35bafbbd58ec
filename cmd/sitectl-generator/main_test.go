package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/sitectl/sitectl/internal/cli"
)

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"sitectl":           func() { os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr)) },
		"sitectl-generator": func() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) },
	})
}

// TestScripts pins the generator's behaviour as systemd and an operator's
// dry run see it, and that `sitectl units render` writes the same bytes.
// See testdata/script/*.txtar.
//
// Every script gets a state directory of its own ($WORK/state, unless it
// sets SITECTL_STATE_DIR itself): the generator records the listeners it
// gave each site there, and must never touch the host's.
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{Dir: "testdata/script", Setup: func(env *testscript.Env) error {
		env.Setenv("SITECTL_STATE_DIR", filepath.Join(env.WorkDir, "state"))
		return nil
	}})
}
