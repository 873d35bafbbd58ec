package cli

import (
	"flag"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/sitectl/sitectl/internal/jsonschema"
)

var update = flag.Bool("update", false, "rewrite docs/json.md and docs/json/*.schema.json from the Go types")

// docsDir is the repository's docs directory.
const docsDir = "../../docs"

// TestJSONDocs checks that the documented schemas and docs/json.md are
// what the Go types that --json prints say (-update rewrites them).
func TestJSONDocs(t *testing.T) {
	want := map[string]string{"json.md": jsonMarkdown()}
	for _, o := range jsonOutputs {
		b, err := jsonschema.Marshal(o.schema())
		if err != nil {
			t.Fatal(err)
		}
		want[filepath.Join("json", o.Name+".schema.json")] = string(b)
	}
	if *update {
		for name, content := range want {
			if err := os.MkdirAll(filepath.Dir(filepath.Join(docsDir, name)), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(docsDir, name), []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	for name, content := range want {
		got, err := os.ReadFile(filepath.Join(docsDir, name))
		if err != nil || string(got) != content {
			t.Errorf("docs/%s is not what the Go types say (err %v); run go test ./internal/cli -run TestJSONDocs -update", name, err)
		}
	}
	files, _ := filepath.Glob(filepath.Join(docsDir, "json", "*.schema.json"))
	for _, f := range files {
		if _, ok := want[filepath.Join("json", filepath.Base(f))]; !ok {
			t.Errorf("docs/json/%s is the schema of no output: remove it", filepath.Base(f))
		}
	}
}

// TestEveryJSONFlagHasASchema walks the command tree: a verb with --json
// has a documented output, and every documented verb has --json.
func TestEveryJSONFlagHasASchema(t *testing.T) {
	var withFlag []string
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Flags().Lookup("json") != nil {
			withFlag = append(withFlag, strings.TrimPrefix(c.CommandPath(), "sitectl "))
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(newRoot(io.Discard, io.Discard))
	var documented []string
	for _, o := range jsonOutputs {
		documented = append(documented, o.Verbs...)
	}
	sort.Strings(withFlag)
	sort.Strings(documented)
	if !slices.Equal(withFlag, documented) {
		t.Errorf("verbs with --json: %v; verbs with a documented output: %v", withFlag, documented)
	}
}

// TestJSONOneNameForOneThing checks that the outputs name alike what is
// alike: a site is "site" (never "name"), a unit "unit", a PID "..._pid".
func TestJSONOneNameForOneThing(t *testing.T) {
	forbidden := map[string]string{"name": "site", "site_name": "site", "pid": "main_pid or a ..._pid",
		"unit_name": "unit", "current_mode": "mode", "timestamp": "time", "error": "errors or reason"}
	for _, o := range jsonOutputs {
		for _, f := range jsonschema.Fields(o.Type) {
			leaf := f.Path[strings.LastIndex(f.Path, ".")+1:]
			if want, bad := forbidden[leaf]; bad && !allowedPID(o, f.Path) {
				t.Errorf("%s --json has %s: say %s, as the other outputs do", o.Name, f.Path, want)
			}
		}
	}
}

// allowedPID: a pending switch names the pid of the sitectl that runs it,
// which is no service's main PID.
func allowedPID(o jsonOutput, path string) bool {
	return path == "pending.pid" || strings.HasSuffix(path, "[].pending.pid")
}
