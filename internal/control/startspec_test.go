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
	cmds := mustRun("ExecStartPre=", [][]any{
		{"/usr/bin/sitectl", []string{"/usr/bin/sitectl", "prepare", "karl"}, []string{"privileged"}, uint64(0)},
		{"/usr/local/bin/hook", []string{"hook"}, []string{"ignore-failure"}, uint64(0)},
		{"/usr/local/bin/fetch", []string{"fetch"}, []string{}},
		{"/usr/local/bin/mount", []string{"mount"}, []string{"no-setuid"}},
		{"/usr/local/bin/bind", []string{"bind"}, []string{"ambient", "no-env-expand"}},
		{"/usr/local/bin/env", []string{"env"}, []string{"no-env-expand"}},
		{"/usr/local/bin/old", []string{"old"}, false}, // the plain form's flag: unknown
	})
	wantCmds := []Command{{"ExecStartPre=", "/usr/bin/sitectl", false}, {"ExecStartPre=", "/usr/local/bin/fetch", true},
		{"ExecStartPre=", "/usr/local/bin/mount", false}, {"ExecStartPre=", "/usr/local/bin/bind", false}, {"ExecStartPre=", "/usr/local/bin/env", true}}
	if !reflect.DeepEqual(cmds, wantCmds) {
		t.Errorf("mustRun = %v, want %v", cmds, wantCmds)
	}
	if got := mustRead([][]any{{"/run/sitectl/modes/karl.env", true}, {"/etc/default/karl", false}, {"/short"}}); !reflect.DeepEqual(got, []string{"/etc/default/karl"}) {
		t.Errorf("mustRead = %q", got)
	}
	if got := namespacePaths("ReadOnlyPaths=", 42); got != nil {
		t.Errorf("namespacePaths of a value of another type: %v", got)
	}
}
