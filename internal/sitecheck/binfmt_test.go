package sitecheck

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"testing/fstest"

	"golang.org/x/sys/unix"
)

// The kernel runs only ELF binaries and #! scripts, and what a
// binfmt_misc handler takes; anything else fails its exec (203/EXEC from
// systemd, "exec format error" from the launcher), though a shell run by
// hand runs a script without a #! line itself.
func TestProgramTheKernelCannotRun(t *testing.T) {
	files := fstest.MapFS{
		"srv/bin/elf":      {Mode: 0o755, Data: []byte("\x7fELF\x02\x01\x01")},
		"srv/bin/script":   {Mode: 0o755, Data: []byte("#!/srv/bin/elf\n")},
		"srv/bin/plain":    {Mode: 0o755, Data: []byte("exec /srv/bin/elf\n")},
		"srv/bin/bom":      {Mode: 0o755, Data: []byte("\xef\xbb\xbf#!/srv/bin/elf\n")},
		"srv/bin/empty":    {Mode: 0o755},
		"srv/bin/app.jar":  {Mode: 0o755, Data: []byte("PK\x03\x04\x00\x00")},
		"srv/bin/app.pyc":  {Mode: 0o755, Data: []byte("\xa7\x0d\x0d\x0a\x00\x00")},
		"srv/bin/wrapper":  {Mode: 0o755, Data: []byte("#!/srv/bin/plain\n")},
		"srv/bin/private":  {Mode: 0o750, Data: []byte("exec /srv/bin/elf\n")},
		"srv/bin/blob":     {Mode: 0o755, Data: []byte("\x00\x01\x02\x03")},
		"srv/bin/bom-only": {Mode: 0o755, Data: []byte("\xef\xbb\xbfexec x\n")},
	}
	none := fakeHost(files, nil)
	none.Handlers = func() ([]Handler, error) { return nil, nil }
	some := none
	some.Handlers = func() ([]Handler, error) {
		return []Handler{{Extension: "jar"}, {Magic: []byte{0xa7, 0x0d, 0x0d, 0x0a}, Mask: []byte{0xff, 0xff, 0xff, 0xff}}}, nil
	}
	unknown := none
	unknown.Handlers = func() ([]Handler, error) { return nil, os.ErrPermission }
	checkStartable(t, []startableCase{
		{"an ELF binary", none, Start{Program: "/srv/bin/elf"}, nil},
		{"a #! script", none, Start{Program: "/srv/bin/script"}, nil},
		{"no #! line", none, Start{Program: "/srv/bin/plain", Commands: []Command{{"ExecStartPre=", "/srv/bin/plain", true}}},
			[]string{"the program /srv/bin/plain has no #! line: the kernel runs only ELF binaries and scripts whose first line is #! (exec format error); a shell run by hand runs it anyway: the start would fail",
				"the program /srv/bin/plain (ExecStartPre=) has no #! line: the kernel runs only ELF binaries and scripts whose first line is #! (exec format error); a shell run by hand runs it anyway: the start would fail with 203/EXEC"}},
		{"a byte order mark before #!", none, Start{Program: "/srv/bin/bom"},
			[]string{"the program /srv/bin/bom starts with a byte order mark before its #! line (an editor saved it so)"}},
		{"a byte order mark, no #!", none, Start{Program: "/srv/bin/bom-only"}, []string{"the program /srv/bin/bom-only has no #! line"}},
		{"empty", none, Start{Program: "/srv/bin/empty"}, []string{"the program /srv/bin/empty is empty: "}},
		{"binary data", none, Start{Program: "/srv/bin/blob"},
			[]string{`the program /srv/bin/blob is neither an ELF binary nor a script (it starts with "\x00\x01\x02\x03"), and no binfmt_misc handler takes it`}},
		{"an interpreter without #!", none, Start{Program: "/srv/bin/wrapper"},
			[]string{"the program /srv/bin/wrapper runs /srv/bin/plain (its #! line), which has no #! line"}},
		{"no handler for a jar, a pyc", none, Start{Program: "/srv/bin/app.jar", Commands: []Command{{"ExecStartPre=", "/srv/bin/app.pyc", false}}},
			[]string{"the program /srv/bin/app.jar is neither", "the program /srv/bin/app.pyc (ExecStartPre=) is neither"}},
		{"handlers by extension and by magic", some, Start{Program: "/srv/bin/app.jar", Commands: []Command{{"ExecStartPre=", "/srv/bin/app.pyc", false}}}, nil},
		{"the handlers take nothing else", some, Start{Program: "/srv/bin/plain"}, []string{"the program /srv/bin/plain has no #! line"}},
		{"handlers that cannot be read: cannot tell", unknown, Start{Program: "/srv/bin/plain"}, nil},
		{"a file not everyone may read is not read", none, Start{Program: "/srv/bin/private"}, nil},
	})
}

func TestParseBinfmtEntry(t *testing.T) {
	for _, c := range []struct {
		in      string
		want    Handler
		enabled bool
		err     bool
	}{
		{"enabled\ninterpreter /usr/bin/python3.11\nflags: \noffset 0\nmagic a70d0d0a\n", Handler{Magic: []byte{0xa7, 0x0d, 0x0d, 0x0a}}, true, false},
		{"enabled\ninterpreter /usr/bin/qemu-aarch64\nflags: OCF\noffset 0\nmagic 7f454c46\nmask ffffff00\n", Handler{Magic: []byte{0x7f, 'E', 'L', 'F'}, Mask: []byte{0xff, 0xff, 0xff, 0}}, true, false},
		{"disabled\ninterpreter /usr/bin/wine\nflags: \nextension .exe\n", Handler{Extension: "exe"}, false, false},
		{"enabled\ninterpreter /x\noffset 2\nmagic 4142\n", Handler{Offset: 2, Magic: []byte("AB")}, true, false},
		{"maybe\n", Handler{}, false, true},
		{"enabled\ninterpreter /x\nmagic zz\n", Handler{}, false, true},
		{"enabled\ninterpreter /x\n", Handler{}, false, true},
	} {
		got, enabled, err := parseBinfmtEntry([]byte(c.in))
		if (err != nil) != c.err || enabled != c.enabled || (err == nil && (got.Extension != c.want.Extension || got.Offset != c.want.Offset ||
			string(got.Magic) != string(c.want.Magic) || string(got.Mask) != string(c.want.Mask))) {
			t.Errorf("parseBinfmtEntry(%q) = %+v, %v, %v; want %+v, %v, error %v", c.in, got, enabled, err, c.want, c.enabled, c.err)
		}
	}
	// A mask leaves bytes out of the comparison.
	x := Handler{Offset: 1, Magic: []byte{0x10, 0x20}, Mask: []byte{0xf0, 0xff}}
	if !x.takes("/a", []byte{0, 0x1f, 0x20}) || x.takes("/a", []byte{0, 0x2f, 0x20}) || x.takes("/a", []byte{0, 0x10}) {
		t.Error("a magic under a mask is not compared as the kernel does")
	}
}

// The same on real files, through the host's own handlers (none where
// binfmt_misc is not mounted, as in this project's containers).
func TestProgramFormatOnThisHost(t *testing.T) {
	handlers, err := binfmtHandlers()
	dir := t.TempDir()
	plain := filepath.Join(dir, "start")
	if err := os.WriteFile(plain, []byte("exec /bin/true\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	got := Startable(OS, Start{Program: plain})
	if err != nil {
		// Handlers that cannot be read are "cannot tell": no refusal.
		t.Logf("this host's binfmt_misc handlers cannot be read: %v", err)
		if len(got) != 0 {
			t.Errorf("a script without #! line, the handlers unknown: %q", got)
		}
		return
	}
	taken := false
	for _, x := range handlers {
		taken = taken || x.takes(plain, []byte("exec /bin/true\n"))
	}
	if taken {
		if len(got) != 0 {
			t.Errorf("a script a binfmt_misc handler of this host takes: %q", got)
		}
		return
	}
	if len(got) != 1 || !strings.Contains(got[0], "has no #! line") {
		t.Errorf("a script without #! line: %q (handlers: %+v)", got, handlers)
	}
	if err := os.WriteFile(plain, []byte("#!/bin/sh\nexec /bin/true\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if got := Startable(OS, Start{Program: plain}); len(got) != 0 {
		t.Errorf("the same with a #! line: %q", got)
	}
}

// A program on a file system mounted noexec, on the host or by the
// unit's NoExecPaths=, is not run (permission denied); a unit that mounts
// something of its own over the host's (ExecPaths=, a bind mount) may
// see another mount there, so the host's noexec is no reason then.
func TestProgramOnANoexecMount(t *testing.T) {
	files := fstest.MapFS{
		"mnt/tmp/app":         {Mode: 0o755, Data: []byte("\x7fELF")},
		"srv/bin/app":         {Mode: 0o755, Data: []byte("\x7fELF")},
		"srv/bin/script":      {Mode: 0o755, Data: []byte("#!/mnt/tmp/app\n")},
		"srv/release/current": {Mode: 0o755, Data: []byte("\x7fELF")},
	}
	h := fakeHost(files, map[string]string{"/srv/current": "/mnt/tmp/app"})
	h.NoExec = func(p string) (bool, error) {
		real, err := h.EvalSymlinks(p)
		if err != nil {
			return false, err
		}
		return strings.HasPrefix(real, "/mnt/tmp/"), nil
	}
	checkStartable(t, []startableCase{
		{"an exec mount", h, Start{Program: "/srv/bin/app"}, nil},
		{"a noexec mount", h, Start{Program: "/mnt/tmp/app", Commands: []Command{{"ExecStartPre=", "/mnt/tmp/app", false}}},
			[]string{"the program /mnt/tmp/app is on a file system mounted noexec on this host: the kernel runs no program from it (permission denied, noexec); mount it exec, or install the program elsewhere: the start would fail",
				"the program /mnt/tmp/app (ExecStartPre=) is on a file system mounted noexec on this host: the kernel runs no program from it (permission denied, noexec); mount it exec, or install the program elsewhere: the start would fail with 203/EXEC"}},
		{"through a symlink", h, Start{Program: "/srv/current"}, []string{"the program /srv/current is on a file system mounted noexec"}},
		{"an interpreter on a noexec mount", h, Start{Program: "/srv/bin/script"},
			[]string{"the program /srv/bin/script runs /mnt/tmp/app (its #! line), which is on a file system mounted noexec"}},
		{"the unit mounts over the host's", h, Start{Program: "/mnt/tmp/app", MountsOver: true}, nil},
		{"the unit's NoExecPaths=", h, Start{Program: "/srv/bin/app", NoExecPaths: []string{"/srv"}},
			[]string{"the program /srv/bin/app is on a path the unit mounts noexec (NoExecPaths=/srv): the kernel runs no program from there (permission denied, noexec)"}},
		{"NoExecPaths= of another path", h, Start{Program: "/srv/bin/app", NoExecPaths: []string{"/srv/bi", "/var"}}, nil},
		{"NoExecPaths= with ExecPaths=", h, Start{Program: "/srv/bin/app", NoExecPaths: []string{"/srv"}, MountsOver: true}, nil},
	})
}

// The same on a real mount: a tmpfs mounted noexec in a mount namespace
// of this test's own (a thread of its own, which is discarded after).
func TestNoExecMountOnThisHost(t *testing.T) {
	dir := t.TempDir()
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread goes with its namespace
		done <- func() error {
			if err := unix.Unshare(unix.CLONE_FS | unix.CLONE_NEWNS); err != nil {
				return fmt.Errorf("unshare (this test needs root): %w", err)
			}
			if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
				return err
			}
			if noexec, err := noExecMount(dir); err != nil || noexec {
				return fmt.Errorf("%s before the mount: noexec %v, %v", dir, noexec, err)
			}
			if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOEXEC, "size=1m"); err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(dir, "app"), []byte("\x7fELF"), 0o755); err != nil {
				return err
			}
			if noexec, err := noExecMount(filepath.Join(dir, "app")); err != nil || !noexec {
				return fmt.Errorf("on a noexec tmpfs: noexec %v, %v", noexec, err)
			}
			if got := Startable(OS, Start{Program: filepath.Join(dir, "app")}); len(got) != 1 || !strings.Contains(got[0], "mounted noexec") {
				return fmt.Errorf("a program on a noexec tmpfs: %q", got)
			}
			return nil
		}()
	}()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
