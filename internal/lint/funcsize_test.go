package lint

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// The state machines of sitectl stay readable as named steps: no function
// in these packages is longer than maxLines lines (from func to its closing
// brace) or more complex than maxComplexity (cyclomatic complexity as
// gocyclo counts it: 1, plus one per if, for, range, non-default case and
// comm clause, && and ||, function literals included).
var (
	checkedPackages = []string{"../../activation", "../flow", "../launcher"}
	maxLines        = 60
	maxComplexity   = 15
)

func TestFunctionsStayShortAndSimple(t *testing.T) {
	for _, dir := range checkedPackages {
		funcs, err := measure(dir)
		if err != nil {
			t.Fatal(err)
		}
		if len(funcs) == 0 {
			t.Fatalf("%s: no functions found", dir)
		}
		for _, f := range funcs {
			if f.lines > maxLines {
				t.Errorf("%s: %s is %d lines long (at most %d): split it into named steps", f.pos, f.name, f.lines, maxLines)
			}
			if f.complexity > maxComplexity {
				t.Errorf("%s: %s has cyclomatic complexity %d (at most %d): split it into named steps", f.pos, f.name, f.complexity, maxComplexity)
			}
		}
	}
}

// The measure itself: a function known to be long and branchy is seen as
// such, so the check above cannot pass by measuring nothing.
func TestMeasure(t *testing.T) {
	dir := t.TempDir()
	src := "package x\n\nfunc f(a, b bool) {\n" + strings.Repeat("\tprintln()\n", 70) +
		"\tif a && b || !a {\n\t}\n\tfor range 3 {\n\t}\n\tswitch {\n\tcase a:\n\tcase b:\n\tdefault:\n\t}\n" +
		"\tselect {\n\tcase <-make(chan int):\n\tdefault:\n\t}\n\tg := func() {\n\t\tif b {\n\t\t}\n\t}\n\t_ = g\n}\n"
	if err := os.WriteFile(filepath.Join(dir, "x.go"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "x_test.go"), []byte("package x\n\nfunc ignored() {\n"+strings.Repeat("\tprintln()\n", 100)+"}\n"), 0o644)
	funcs, err := measure(dir)
	if err != nil || len(funcs) != 1 {
		t.Fatalf("measure: %v, %+v", err, funcs)
	}
	// 1 + if + && + || + for + 2 cases + 1 comm clause + the literal's if
	if f := funcs[0]; f.name != "f" || f.lines != 90 || f.complexity != 9 {
		t.Fatalf("measured %+v, want f: 90 lines, complexity 9", f)
	}
}

type funcSize struct {
	pos               string
	name              string
	lines, complexity int
}

// measure reads the non-test Go files of dir.
func measure(dir string) ([]funcSize, error) {
	fset := token.NewFileSet()
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		return nil, err
	}
	sort.Strings(files)
	var out []funcSize
	for _, file := range files {
		if strings.HasSuffix(file, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, file, nil, 0)
		if err != nil {
			return nil, err
		}
		for _, d := range f.Decls {
			fn, ok := d.(*ast.FuncDecl)
			if !ok || fn.Body == nil {
				continue
			}
			start, end := fset.Position(fn.Pos()), fset.Position(fn.End())
			out = append(out, funcSize{pos: start.String(), name: funcName(fn), lines: end.Line - start.Line + 1, complexity: complexity(fn)})
		}
	}
	return out, nil
}

func funcName(fn *ast.FuncDecl) string {
	if fn.Recv == nil || len(fn.Recv.List) == 0 {
		return fn.Name.Name
	}
	t := fn.Recv.List[0].Type
	if s, ok := t.(*ast.StarExpr); ok {
		t = s.X
	}
	if id, ok := t.(*ast.Ident); ok {
		return id.Name + "." + fn.Name.Name
	}
	return fn.Name.Name
}

// complexity counts as gocyclo does.
func complexity(fn *ast.FuncDecl) int {
	c := 1
	ast.Inspect(fn.Body, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.IfStmt, *ast.ForStmt, *ast.RangeStmt:
			c++
		case *ast.CaseClause:
			if n.List != nil {
				c++
			}
		case *ast.CommClause:
			if n.Comm != nil {
				c++
			}
		case *ast.BinaryExpr:
			if n.Op == token.LAND || n.Op == token.LOR {
				c++
			}
		}
		return true
	})
	return c
}
