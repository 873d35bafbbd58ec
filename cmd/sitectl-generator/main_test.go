package main

import (
	"os"
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
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{Dir: "testdata/script"})
}
