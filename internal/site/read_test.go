package site

import (
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

const validSite = "exec = [\"/bin/a\"]\n[[listen]]\naddress = \"127.0.0.1:8080\"\n"

// hostileDir makes a directory with a valid site and, next to it, every kind
// of entry that is not a site file; it returns the expected reason per file.
func hostileDir(t *testing.T) (string, map[string]string) {
	t.Helper()
	dir := t.TempDir()
	write := func(name string, data []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("good.toml", []byte(validSite))
	if err := syscall.Mkfifo(filepath.Join(dir, "fifo.toml"), 0o644); err != nil {
		t.Fatal(err)
	}
	link := func(target, name string) {
		if err := os.Symlink(target, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	link("/dev/zero", "zero.toml")
	link("/dev/null", "null.toml")
	link("fifo.toml", "tofifo.toml")
	link("nowhere.toml", "dangling.toml")
	link("loop.toml", "loop.toml")
	if err := os.Mkdir(filepath.Join(dir, "dir.toml"), 0o755); err != nil {
		t.Fatal(err)
	}
	write("big.toml", append([]byte(validSite), make([]byte, 2<<20)...))
	write("justover.toml", make([]byte, MaxFileSize+1))
	l, err := net.Listen("unix", filepath.Join(dir, "sock.toml"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return dir, map[string]string{
		"fifo.toml":     "is a named pipe (FIFO), not a regular file",
		"zero.toml":     "is a symlink to /dev/zero, which is a character device, not a regular file",
		"null.toml":     "is a symlink to /dev/null, which is a character device, not a regular file",
		"tofifo.toml":   "is a symlink to " + dir + "/fifo.toml, which is a named pipe (FIFO), not a regular file",
		"dangling.toml": "cannot read the file: no such file or directory",
		"loop.toml":     "cannot read the file: too many levels of symbolic links",
		"dir.toml":      "is a directory, not a regular file",
		"big.toml":      "is 2097208 bytes long; a site file may have at most 65536 (64 KiB)",
		"justover.toml": "is 65537 bytes long; a site file may have at most 65536 (64 KiB)",
		"sock.toml":     "is a socket, not a regular file",
	}
}

// noHang fails the test instead of letting it hang when fn blocks (a read
// of a pipe or of /dev/zero would).
func noHang(t *testing.T, what string, fn func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); fn() }()
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatalf("%s did not return: it blocks", what)
	}
}

func TestReadFileRefusesWhatIsNotASiteFile(t *testing.T) {
	dir, want := hostileDir(t)
	// ReadFile reads copies of site files, up to MaxCopySize (a copy an
	// older sitectl kept of a file of up to 1 MiB); a site file itself
	// is read up to MaxFileSize (TestReadFileTrustsNoDirectoryEntry).
	want["big.toml"] = "is 2097208 bytes long; at most 1048576 bytes are read"
	delete(want, "justover.toml")
	if data, err := ReadFile(filepath.Join(dir, "justover.toml")); err != nil || len(data) != MaxFileSize+1 {
		t.Errorf("ReadFile of a copy just over MaxFileSize: %d bytes, %v", len(data), err)
	}
	for name, reason := range want {
		p := filepath.Join(dir, name)
		var err error
		noHang(t, "ReadFile("+name+")", func() { _, err = ReadFile(p) })
		if err == nil || !strings.HasPrefix(err.Error(), p+": "+reason) {
			t.Errorf("ReadFile(%s) = %v\nwant %s: %s...", name, err, p, reason)
		}
	}
	if _, err := ReadFile(filepath.Join(dir, "dangling.toml")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a missing file must wrap fs.ErrNotExist: %v", err)
	}
}

func TestReadFileAcceptsRegularFilesAndLinksToThem(t *testing.T) {
	dir := t.TempDir()
	exact := filepath.Join(dir, "exact.toml")
	if err := os.WriteFile(exact, make([]byte, MaxFileSize), 0o644); err != nil {
		t.Fatal(err)
	}
	if data, err := ReadFile(exact); err != nil || len(data) != MaxFileSize {
		t.Errorf("a file of exactly MaxFileSize: %d bytes, %v", len(data), err)
	}
	if err := os.Symlink(exact, filepath.Join(dir, "link.toml")); err != nil {
		t.Fatal(err)
	}
	if data, err := ReadFile(filepath.Join(dir, "link.toml")); err != nil || len(data) != MaxFileSize {
		t.Errorf("a symlink to a regular file: %d bytes, %v", len(data), err)
	}
}

// The generator's view: every valid site is loaded, whatever else lies in
// the directory, and each other entry is one positioned mistake.
func TestLoadDirSurvivesHostileEntries(t *testing.T) {
	dir, want := hostileDir(t)
	var res Result
	noHang(t, "LoadDir", func() {
		var err error
		if res, err = LoadDir(dir, nil); err != nil {
			t.Error(err)
		}
	})
	if len(res.Sites) != 1 || res.Sites[0].Name != "good" {
		t.Errorf("sites = %v, want only good", res.Sites)
	}
	got := map[string]string{}
	for _, e := range res.Errors {
		got[filepath.Base(e.File)] = e.Error()
	}
	for name, reason := range want {
		if w := filepath.Join(dir, name) + ":1:1: " + reason; !strings.HasPrefix(got[name], w) {
			t.Errorf("%s: got %q, want %q...", name, got[name], w)
		}
	}
	if len(res.Errors) != len(want) {
		t.Errorf("%d errors for %d hostile entries: %v", len(res.Errors), len(want), res.Errors)
	}
}

// LoadDir skips the stat before the open for an entry the directory says
// is a regular file: whatever is there by the time it is opened (each
// hostile entry stands for a file swapped in after the directory was read)
// is still refused, by the fstat of the open file, without blocking.
func TestReadFileTrustsNoDirectoryEntry(t *testing.T) {
	dir, want := hostileDir(t)
	for name, reason := range want {
		p := filepath.Join(dir, name)
		var err error
		noHang(t, "readFile("+name+")", func() { _, err = readFile(unix.AT_FDCWD, p, p, true, true) })
		if name == "sock.toml" {
			reason = "cannot read the file: no such device or address" // open(2) of a socket: ENXIO
		}
		if err == nil || !strings.HasPrefix(err.Error(), p+": "+reason) {
			t.Errorf("readFile(%s, true) = %v\nwant %s: %s...", name, err, p, reason)
		}
	}
	// A file that says it is empty but is not, as files under /proc do,
	// is read to its end.
	data, err := readFile(unix.AT_FDCWD, "/proc/self/status", "/proc/self/status", true, false)
	if err != nil || !strings.Contains(string(data), "\nVmRSS:") {
		t.Errorf("/proc/self/status: %v, %q", err, data)
	}
	if data, err := readFile(unix.AT_FDCWD, filepath.Join(dir, "good.toml"), "good.toml", true, false); err != nil || string(data) != validSite {
		t.Errorf("good.toml: %v, %q", err, data)
	}
}

// A site file someone other than root may change is refused: it says what
// runs as whom and what root reads for the app.
func TestSiteFileMustBeRootsAlone(t *testing.T) {
	me := uint32(os.Geteuid())
	for _, c := range []struct {
		uid, gid uint32
		mode     uint32
		want     string // "" for trusted
	}{
		{0, 0, 0o644, ""},
		{0, 0, 0o600, ""},
		{0, 0, 0o664, ""}, // root's group
		{me, 0, 0o644, ""},
		{0, 100, 0o664, "may be changed by others than its owner (mode 0664)"},
		{0, 0, 0o666, "may be changed by others than its owner (mode 0666)"},
		{0, 0, 0o602, "may be changed by others than its owner (mode 0602)"},
		{65534, 65534, 0o644, "is owned by uid 65534, not root"},
	} {
		if c.uid == 65534 && me == 65534 {
			continue
		}
		st := unix.Stat_t{Uid: c.uid, Gid: c.gid, Mode: unix.S_IFREG | c.mode}
		err := trusted("/etc/sitectl/sites/karl.toml", &st, nil)
		if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("uid %d gid %d mode %04o: %v, want %q", c.uid, c.gid, c.mode, err, c.want)
		}
	}
	// As the generator loads the directory, and check loads files.
	dir := t.TempDir()
	p := filepath.Join(dir, "karl.toml")
	if err := os.WriteFile(p, []byte(validSite), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, 0o666); err != nil {
		t.Fatal(err)
	}
	res, err := LoadDir(dir, nil)
	if err != nil || len(res.Sites) != 0 || len(res.Errors) != 1 || !strings.Contains(res.Errors[0].Error(), "chmod go-w") {
		t.Errorf("LoadDir of a file anyone may write: %v, sites %v, errors %v", err, res.Sites, res.Errors)
	}
	if res := LoadFiles([]string{p}, nil, nil, nil); len(res.Sites) != 0 || len(res.Errors) != 1 {
		t.Errorf("LoadFiles of a file anyone may write: sites %v, errors %v", res.Sites, res.Errors)
	}
	// A last good copy, root's own, is read as it is.
	if _, err := ReadFile(p); err != nil {
		t.Errorf("ReadFile: %v", err)
	}
}
