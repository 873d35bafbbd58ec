package lint

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Every printer of the command line escapes what it prints through package
// term (term.Fprintf, term.Fprintln, term.Escape), so that no control
// character from a stored field (a history reason, a status text, a file
// name) reaches a terminal. A direct fmt.Fprint*/Print* call in the
// command line is a printer that skips it. roff.go writes man pages into a
// buffer, not to a terminal.
func TestPrintersEscape(t *testing.T) {
	found := printCalls(t, "../cli", map[string]bool{"roff.go": true})
	for _, c := range found {
		t.Errorf("%s: %s prints without escaping: use term.Fprintf", c.pos, c.call)
	}
	// The check sees such a call where there is one.
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "x.go"), []byte("package x\n\nimport (\n\t\"fmt\"\n\t\"os\"\n)\n\nfunc f() { fmt.Fprintf(os.Stdout, \"%s\", \"x\") }\n"), 0o644)
	if got := printCalls(t, dir, nil); len(got) != 1 {
		t.Errorf("the check found %d calls in a file with one", len(got))
	}
}

type call struct{ pos, call string }

// printCalls finds calls of fmt's printing functions in the non-test files
// of dir.
func printCalls(t *testing.T, dir string, skip map[string]bool) []call {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no Go files in %s: %v", dir, err)
	}
	var out []call
	fset := token.NewFileSet()
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") || skip[filepath.Base(f)] {
			continue
		}
		file, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(file, func(n ast.Node) bool {
			sel, ok := n.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			if pkg, ok := sel.X.(*ast.Ident); ok && pkg.Name == "fmt" && (strings.HasPrefix(sel.Sel.Name, "Fprint") || strings.HasPrefix(sel.Sel.Name, "Print")) {
				out = append(out, call{fset.Position(sel.Pos()).String(), "fmt." + sel.Sel.Name})
			}
			return true
		})
	}
	return out
}
