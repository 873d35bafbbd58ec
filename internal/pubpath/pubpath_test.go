package pubpath

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// tree makes a directory anyone may search, with its parents.
func tree(t *testing.T) string {
	t.Helper()
	d := t.TempDir()
	for p := d; p != "/"; p = filepath.Dir(p) {
		if fi, err := os.Stat(p); err == nil && fi.Mode().Perm()&0o001 == 0 {
			if err := os.Chmod(p, fi.Mode().Perm()|0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	return d
}

func TestResolve(t *testing.T) {
	d := tree(t)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(d+"/releases/a/bin", 0o755))
	must(os.WriteFile(d+"/releases/a/bin/app", []byte("#!/bin/sh\n"), 0o755))
	must(os.Symlink("releases/a", d+"/current"))
	must(os.Symlink(d+"/releases/a/bin/app", d+"/abs"))
	must(os.Mkdir(d+"/private", 0o700))
	must(os.WriteFile(d+"/private/secret", nil, 0o600))
	must(os.Symlink(d+"/private/secret", d+"/to-private"))
	must(os.Symlink("/proc/self/root/etc/hostname", d+"/to-proc"))
	must(os.Symlink("loop", d+"/loop"))
	must(os.Symlink("../releases/a/bin/app", d+"/releases/up"))

	r := Resolver{Unseen: []string{d + "/unseen"}}
	for p, want := range map[string]string{
		d + "/current/bin/app": d + "/releases/a/bin/app",
		d + "/abs":             d + "/releases/a/bin/app",
		d + "/releases/up":     d + "/releases/a/bin/app",
		d + "/current/./bin/":  d + "/releases/a/bin",
	} {
		got, err := r.Resolve(p)
		if err != nil || got != want {
			t.Errorf("Resolve(%s) = %q, %v; want %s", p, got, err, want)
		}
	}
	if fi, err := r.Stat(d + "/current/bin/app"); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("Stat: %v %v", fi, err)
	}
	if _, err := r.Stat(d + "/current/bin/nope"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a file not there in a directory anyone may search: %v", err)
	}
	if _, err := r.Stat(d + "/current/bin/app/x"); !errors.Is(err, syscall.ENOTDIR) {
		t.Errorf("a path through a file: %v", err)
	}
	for _, p := range []string{d + "/private/secret", d + "/private/nope", d + "/to-private", d + "/to-proc", "/proc/1/root", d + "/unseen/x", "relative"} {
		if _, err := r.Stat(p); !errors.Is(err, ErrHidden) {
			t.Errorf("Stat(%s) = %v, want ErrHidden", p, err)
		}
	}
	if _, err := r.Stat(d + "/loop"); !errors.Is(err, syscall.ELOOP) {
		t.Errorf("a symlink loop: %v", err)
	}
	if fi, err := r.Stat(d + "/current/bin/.."); err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o755 {
		t.Errorf("Stat of a directory through ..: %v %v", fi, err)
	}

	// Open reads only files anyone may read, through what was resolved.
	f, err := r.Open(d + "/current/bin/app")
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 16)
	n, _ := f.Read(b)
	f.Close()
	if string(b[:n]) != "#!/bin/sh\n" {
		t.Errorf("Open read %q", b[:n])
	}
	must(os.WriteFile(d+"/releases/a/bin/mine", nil, 0o640))
	for _, p := range []string{d + "/releases/a/bin/mine", d + "/releases/a/bin", d + "/to-private"} {
		if _, err := r.Open(p); !errors.Is(err, ErrHidden) {
			t.Errorf("Open(%s) = %v, want ErrHidden", p, err)
		}
	}
}
