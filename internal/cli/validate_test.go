package cli

import (
	"bytes"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// hostileNames are names no verb may act on: paths, unit names, empty,
// case, non-ASCII, control characters, too long.
var hostileNames = []string{"../x", "..", ".", "", "a/b", "Karl", "x.service", "karl-reload", "kärl", "bad\x1b[31m", "a b", strings.Repeat("k", 300)}

// nonNameArgs are the commands whose positional arguments are not site or
// mode names, and what they are instead. A new command that takes
// arguments must either name them SITE or MODE in its usage line (and is
// then checked by guardInputs) or be listed here.
var nonNameArgs = map[string]string{
	"sitectl check":        "site files",
	"sitectl units render": "site files",
	"sitectl docs":         "a directory",
}

// stubbed is the command tree with every RunE replaced by one that records
// that it ran: the class test proves that bad input stops before RunE,
// without running any verb for real (cleanup would stop processes).
func stubbed(t *testing.T) (*cobra.Command, *[]string, *bytes.Buffer) {
	var stderr bytes.Buffer
	root := newRoot(&bytes.Buffer{}, &stderr)
	var ran []string
	walkCommands(root, func(c *cobra.Command) {
		if c.Runnable() {
			c.Run = nil
			c.RunE = func(c *cobra.Command, _ []string) error {
				ran = append(ran, c.CommandPath())
				return nil
			}
		}
	})
	return root, &ran, &stderr
}

// exitOf runs the tree as Main does and returns the exit code.
func exitOf(root *cobra.Command, args []string) int {
	root.SetArgs(args)
	err := root.Execute()
	if err == nil {
		return exitOK
	}
	if r, ok := err.(reported); ok {
		return r.code
	}
	return codeOf(err)
}

// Every command of the tree (internal verbs included) refuses every hostile
// name in every SITE and MODE position with exit 2, before it runs.
func TestEveryVerbRefusesBadNames(t *testing.T) {
	root, _, _ := stubbed(t)
	checked := 0
	walkCommands(root, func(c *cobra.Command) {
		if !c.Runnable() || c == root {
			return
		}
		path := c.CommandPath()
		kinds := argKinds(c.Use)
		if kinds == nil {
			if _, ok := nonNameArgs[path]; !ok && c.Args != nil && c.Args(c, []string{"x"}) == nil {
				t.Errorf("%s takes arguments, but its usage line %q names no SITE or MODE and it is not in nonNameArgs: say what its arguments are", path, c.Use)
			}
			return
		}
		for pos, k := range kinds {
			if k == argOther {
				continue
			}
			for _, bad := range hostileNames {
				if k == argMode && bad == "karl-reload" {
					continue // reserved for site names only
				}
				root, ran, stderr := stubbed(t)
				args := append(strings.Fields(strings.TrimPrefix(path, "sitectl ")), validArgs(kinds, pos, bad)...)
				if strings.HasPrefix(c.Use, "launch ") {
					args = append(args, "--", "/bin/true")
				}
				code := exitOf(root, args)
				if code != exitUsage || len(*ran) > 0 {
					t.Errorf("sitectl %q: exit %d, ran %v; want exit 2 before anything runs (stderr %q)", args, code, *ran, stderr.String())
				}
				checked++
			}
		}
	})
	// mode, history, restart, reload, rollback, status, prepare, launch,
	// cleanup, touched: at least 11 positions.
	if checked < 11*len(hostileNames)-1 {
		t.Errorf("only %d hostile calls were checked", checked)
	}
}

// validArgs fills every position with a valid name and puts bad at pos.
func validArgs(kinds []argKind, pos int, bad string) []string {
	var out []string
	for i, k := range kinds {
		v := "karl"
		if k == argMode {
			v = "normal"
		}
		if i == pos {
			v = bad
		}
		out = append(out, v)
	}
	return out
}

// The good names pass the guard (and reach RunE, stubbed here).
func TestGoodNamesReachTheVerb(t *testing.T) {
	for _, args := range [][]string{
		{"mode", "karl", "read-only"}, {"cleanup", "karl"}, {"launch", "karl", "--", "/bin/true"},
		{"launch", "karl", "--", "../not-checked", "ARG"}, {"status"}, {"status", "a", "b-2"}, {"history", "karl"},
	} {
		root, ran, stderr := stubbed(t)
		if code := exitOf(root, args); code != exitOK || len(*ran) != 1 {
			t.Errorf("sitectl %q: exit %d, ran %v, stderr %q", args, code, *ran, stderr.String())
		}
	}
	root, _, _ := stubbed(t)
	if code := exitOf(root, []string{"status", "a", "../b"}); code != exitUsage {
		t.Errorf("status with a bad second name: exit %d, want 2", code)
	}
}

// Every duration flag of every verb refuses non-positive and sub-second
// values with exit 2; those of the verbs the generated units run refuse
// what no site file can give them (renderedMin, renderedMax) and take the
// rest.
func TestEveryDurationFlagHasAFloorAndACeiling(t *testing.T) {
	root, _, _ := stubbed(t)
	flags := 0
	walkCommands(root, func(c *cobra.Command) {
		if !c.Runnable() {
			return
		}
		c.Flags().VisitAll(func(f *pflag.Flag) {
			if f.Value.Type() != "duration" {
				return
			}
			flags++
			base := strings.Fields(strings.TrimPrefix(c.CommandPath(), "sitectl"))
			kinds := argKinds(c.Use)
			base = append(base, validArgs(kinds, -1, "")...)
			refused := []string{"-1s", "0", "0s", "1ns", "999ms", "-5m", "soon", "24h0m1s", "500000h", "2562047h"}
			accepted := []string{"1s", "24h"}
			if c.GroupID == groupInternal {
				refused = []string{"-1s", "0", "0s", "1ns", "999us", "-5m", "soon", "48h0m0.001s", "500000h", "2562047h"}
				accepted = []string{"1ms", "999ms", "1s", "24h", "48h"}
			}
			for _, v := range refused {
				root, ran, stderr := stubbed(t)
				code := exitOf(root, append(append([]string{}, base...), "--"+f.Name, v))
				if code != exitUsage || len(*ran) > 0 {
					t.Errorf("%s --%s %s: exit %d, ran %v; want exit 2 (stderr %q)", c.CommandPath(), f.Name, v, code, *ran, stderr.String())
				}
			}
			for _, v := range accepted {
				root, ran, stderr := stubbed(t)
				if code := exitOf(root, append(append([]string{}, base...), "--"+f.Name, v)); code != exitOK || len(*ran) != 1 {
					t.Errorf("%s --%s %s: exit %d, stderr %q", c.CommandPath(), f.Name, v, code, stderr.String())
				}
			}
		})
	})
	if flags < 4 { // --timeout of mode, restart, reload, rollback
		t.Errorf("only %d duration flags found", flags)
	}
}

func TestArgKinds(t *testing.T) {
	cases := map[string][]argKind{
		"mode SITE MODE":   {argSite, argMode},
		"status [SITE...]": {argSites},
		"launch SITE [--overlap] -- PROGRAM [ARG...] | launch SITE --reload": {argSite},
		"check FILE...":    nil,
		"docs DIR":         nil,
		"history SITE":     {argSite},
		"x FILE SITE":      {argOther, argSite},
		"list":             nil,
		"render [FILE...]": nil,
	}
	for use, want := range cases {
		got := argKinds(use)
		if len(got) != len(want) {
			t.Errorf("argKinds(%q) = %v, want %v", use, got, want)
			continue
		}
		for i := range got {
			if got[i] != want[i] {
				t.Errorf("argKinds(%q) = %v, want %v", use, got, want)
			}
		}
	}
}
