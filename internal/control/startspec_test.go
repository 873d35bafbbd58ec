package control

import (
	"reflect"
	"testing"
)

// systemd keeps the prefixes of ReadWritePaths= and the like on the bus:
// "-" (a missing path is ignored) is no requirement, "+" (inside
// RootDirectory=) is one. A bind's source is one unless its flag says a
// missing source is ignored.
func TestRequiredPaths(t *testing.T) {
	got := namespacePaths("ReadWritePaths=", []string{"/srv/a", "-/srv/b", "+/srv/c", "-+/srv/d", "+-/srv/e", ""})
	want := []RequiredPath{{"ReadWritePaths=", "/srv/a"}, {"ReadWritePaths=", "/srv/c"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("namespacePaths = %v, want %v", got, want)
	}
	got = bindSources("BindPaths=", [][]any{
		{"/srv/src", "/srv/dst", false, uint64(0)},
		{"/srv/optional", "/srv/dst2", true, uint64(0)},
		{"/short"},
	})
	want = []RequiredPath{{"BindPaths=", "/srv/src"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("bindSources = %v, want %v", got, want)
	}
	got = mustRun("ExecStartPre=", [][]any{
		{"/usr/bin/sitectl", []string{"/usr/bin/sitectl", "prepare", "karl"}, false, uint64(0)},
		{"/usr/local/bin/hook", []string{"hook"}, true, uint64(0)},
		{"/usr/local/bin/fetch", []string{"fetch"}, false},
	})
	want = []RequiredPath{{"ExecStartPre=", "/usr/bin/sitectl"}, {"ExecStartPre=", "/usr/local/bin/fetch"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("mustRun = %v, want %v", got, want)
	}
	if got := mustRead([][]any{{"/run/sitectl/modes/karl.env", true}, {"/etc/default/karl", false}, {"/short"}}); !reflect.DeepEqual(got, []string{"/etc/default/karl"}) {
		t.Errorf("mustRead = %q", got)
	}
	if got := namespacePaths("ReadOnlyPaths=", 42); got != nil {
		t.Errorf("namespacePaths of a value of another type: %v", got)
	}
}
