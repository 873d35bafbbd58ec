package sockheld

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sitectl/sitectl/internal/site"
)

// countLinks counts the links read until the test ends.
func countLinks(t *testing.T) *int {
	t.Helper()
	n := new(int)
	readLink = func(dirfd int, path string, buf []byte) (int, error) {
		*n++
		return unix.Readlinkat(dirfd, path, buf)
	}
	t.Cleanup(func() { readLink = unix.Readlinkat })
	return n
}

// busyProc is fakeProc where PID 1 also holds many other sites' sockets,
// numbered before the shop's listener on port 8080 (inode 111), which it
// holds as file at.
func busyProc(t *testing.T, others, at int) string {
	t.Helper()
	proc := fakeProc(t)
	fd := filepath.Join(proc, "1", "fd")
	if err := os.Remove(filepath.Join(fd, "3")); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < others; i++ {
		if err := os.Symlink("socket:["+strconv.Itoa(100000+i)+"]", filepath.Join(fd, strconv.Itoa(10+i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("socket:[111]", filepath.Join(fd, strconv.Itoa(at))); err != nil {
		t.Fatal(err)
	}
	return proc
}

// checkHinted writes content to the hint file hint (unless it is "") and
// checks s with it, failing the test if the check fails.
func checkHinted(t *testing.T, proc string, s *site.Site, hint, content string) []string {
	t.Helper()
	if content != "" {
		if err := os.WriteFile(hint, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	missing, err := Missing(proc, s, hint)
	if err != nil {
		t.Fatal(err)
	}
	return missing
}

// wantHint fails the test unless the hint file holds want.
func wantHint(t *testing.T, hint, want string) {
	t.Helper()
	if data, _ := os.ReadFile(hint); string(data) != want {
		t.Errorf("hint file: %q, want %q", data, want)
	}
}

var shop8080 = &site.Site{Name: "shop", Listeners: []site.Listener{{Kind: site.TCP, Address: "127.0.0.1:8080"}}}

// With 10,000 sites PID 1 holds 10,000 sockets: the check of one site
// reads them until it found the site's, and from then on only those its
// hint names. (The site has two listeners, so that a read of everything
// reads more than two links whatever order the directory lists them in.)
func TestHintSavesReadingEveryOpenFile(t *testing.T) {
	proc := busyProc(t, 2000, 5000)
	shop := &site.Site{Name: "shop", Listeners: []site.Listener{
		{Kind: site.TCP, Address: "127.0.0.1:8080"},
		{Kind: site.Unix, Path: "/run/shop.sock"},
	}}
	links := countLinks(t)
	if missing, err := Missing(proc, shop, ""); err != nil || len(missing) != 0 {
		t.Fatalf("check without a hint: missing %q, %v", missing, err)
	}
	unhinted := *links
	if unhinted <= 2 {
		t.Fatalf("a check without a hint read %d links among 2000", unhinted)
	}

	hint := filepath.Join(t.TempDir(), "held-fds")
	*links = 0
	missing, err := Missing(proc, shop, hint)
	if err != nil || len(missing) != 0 {
		t.Fatalf("first check: missing %q, %v", missing, err)
	}
	if *links != unhinted {
		t.Errorf("first check with a hint file not yet written read %d links, without one %d", *links, unhinted)
	}
	if data, err := os.ReadFile(hint); err != nil || string(data) != "4 5000\n" {
		t.Fatalf("hint file: %q, %v; want %q", data, err, "4 5000\n")
	}
	info, err := os.Stat(hint)
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("hint file mode: %v, %v", info, err)
	}

	*links = 0
	missing, err = Missing(proc, shop, hint)
	if err != nil || len(missing) != 0 {
		t.Fatalf("second check: missing %q, %v", missing, err)
	}
	if *links != 2 {
		t.Errorf("second check read %d links, want the 2 its hint names (%d without it)", *links, unhinted)
	}
}

// A hint is only where to look first: whatever it names that is not one
// of the sockets sought is read past, and the verdict is the one a full
// read gives.
func TestWrongHintIsReadPast(t *testing.T) {
	for name, content := range map[string]string{
		"another site's socket":  "10\n",
		"not a socket":           "5\n",
		"no such file":           "99999\n",
		"several, none of them":  "10 5 99999\n",
		"not a hint":             "five\n",
		"cut short":              "50",
		"a number out of bounds": "1073741824\n",
		"too large":              strings.Repeat("11 ", 500) + "5000\n",
	} {
		t.Run(name, func(t *testing.T) {
			proc := busyProc(t, 100, 5000)
			hint := filepath.Join(t.TempDir(), "held-fds")
			if missing := checkHinted(t, proc, shop8080, hint, content); len(missing) != 0 {
				t.Fatalf("missing %q", missing)
			}
			wantHint(t, hint, "5000\n")
		})
	}
}

// A socket that systemd no longer holds is missing whatever the hint
// says, and a hint to nothing found is kept as it was.
func TestHintDoesNotHideAMissingSocket(t *testing.T) {
	proc := busyProc(t, 100, 5000)
	hint := filepath.Join(t.TempDir(), "held-fds")
	if _, err := Missing(proc, shop8080, hint); err != nil {
		t.Fatal(err)
	}
	// The socket unit closed its socket (file 5000); another site's
	// socket took the number.
	at := filepath.Join(proc, "1", "fd", "5000")
	if err := os.Remove(at); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("socket:[100001]", at); err != nil {
		t.Fatal(err)
	}
	if missing := checkHinted(t, proc, shop8080, hint, ""); !slices.Equal(missing, []string{"127.0.0.1:8080"}) {
		t.Errorf("missing %q, want the listener whose socket systemd closed", missing)
	}
	wantHint(t, hint, "5000\n")
}

// A site with two listeners, one of whose sockets moved: both are found,
// and the hint names both.
func TestHintOfSeveralListeners(t *testing.T) {
	proc := busyProc(t, 100, 5000)
	shop := &site.Site{Name: "shop", Listeners: []site.Listener{
		{Kind: site.TCP, Address: "127.0.0.1:8080"},
		{Kind: site.Unix, Path: "/run/shop.sock"},
	}}
	hint := filepath.Join(t.TempDir(), "held-fds")
	if missing := checkHinted(t, proc, shop, hint, "5000 7\n"); len(missing) != 0 {
		t.Fatalf("missing %q", missing)
	}
	wantHint(t, hint, "4 5000\n")
}

// No hint file can be written (the site has no state directory yet): the
// check is the same.
func TestHintThatCannotBeWritten(t *testing.T) {
	proc := busyProc(t, 10, 5000)
	hint := filepath.Join(t.TempDir(), "no-such-dir", "held-fds")
	missing, err := Missing(proc, shop8080, hint)
	if err != nil || len(missing) != 0 {
		t.Fatalf("missing %q, %v", missing, err)
	}
	if _, err := os.Stat(filepath.Dir(hint)); !os.IsNotExist(err) {
		t.Errorf("the check made the state directory: %v", err)
	}
}

func TestDecodeHint(t *testing.T) {
	for in, want := range map[string][]int{
		"12\n":                      {12},
		"3 4 10000\n":               {3, 4, 10000},
		"":                          nil,
		"\n":                        nil,
		"12":                        nil,
		"12  13\n":                  nil,
		" 12\n":                     nil,
		"-1\n":                      nil,
		"1073741823\n":              {1073741823},
		"1073741824\n":              nil,
		"12\n13\n":                  nil,
		"0x10\n":                    nil,
		"99999999999999999999999\n": nil,
	} {
		if got := decodeHint([]byte(in)); !slices.Equal(got, want) {
			t.Errorf("decodeHint(%q) = %v, want %v", in, got, want)
		}
	}
	var many []int
	for i := range maxHintFDs + 1 {
		many = append(many, i)
	}
	if got := decodeHint(encodeHint(many)); !slices.Equal(got, many[:maxHintFDs]) {
		t.Errorf("a hint of %d files keeps %d: %v", len(many), maxHintFDs, got)
	}
	if n := len(encodeHint(slices.Repeat([]int{maxFD - 1}, maxHintFDs))); n > maxHintSize {
		t.Errorf("the largest hint is %d bytes, more than the %d read", n, maxHintSize)
	}
}

func FuzzDecodeHint(f *testing.F) {
	f.Add([]byte("12 13\n"))
	f.Add([]byte("\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		fds := decodeHint(data)
		if fds == nil {
			return
		}
		if len(fds) > maxHintFDs {
			t.Fatalf("%d files", len(fds))
		}
		for _, fd := range fds {
			if fd < 0 || fd >= maxFD {
				t.Fatalf("file %d", fd)
			}
		}
		if got := decodeHint(encodeHint(fds)); !slices.Equal(got, fds) {
			t.Fatalf("%v does not survive encoding: %v", fds, got)
		}
	})
}

// BenchmarkMissingAmongManySockets: one site's check where PID 1 holds
// 10,000 other sockets before it, without and with its hint.
func BenchmarkMissingAmongManySockets(b *testing.B) {
	proc := b.TempDir()
	for _, dir := range []string{"1/net", "1/fd"} {
		if err := os.MkdirAll(filepath.Join(proc, dir), 0o755); err != nil {
			b.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(proc, "1/net/tcp"), []byte("  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 111 1 0000000000000000 100 0 0 10 0\n"), 0o644); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(proc, "1/net/tcp6"), []byte("  sl  local_address remote_address st\n"), 0o644); err != nil {
		b.Fatal(err)
	}
	for i := 0; i < 10000; i++ {
		if err := os.Symlink("socket:["+strconv.Itoa(100000+i)+"]", filepath.Join(proc, "1/fd", strconv.Itoa(10+i))); err != nil {
			b.Fatal(err)
		}
	}
	if err := os.Symlink("socket:[111]", filepath.Join(proc, "1/fd", "20000")); err != nil {
		b.Fatal(err)
	}
	for _, hinted := range []bool{false, true} {
		b.Run("hint="+strconv.FormatBool(hinted), func(b *testing.B) {
			hint := ""
			if hinted {
				hint = filepath.Join(b.TempDir(), "held-fds")
				if _, err := Missing(proc, shop8080, hint); err != nil {
					b.Fatal(err)
				}
			}
			for b.Loop() {
				if missing, err := Missing(proc, shop8080, hint); err != nil || len(missing) != 0 {
					b.Fatal(missing, err)
				}
			}
		})
	}
}

// A hint file that is a named pipe, a directory or /dev/zero is no hint,
// at once: opening a pipe for reading waits for a writer, and the check
// (a status, a restart) waited with it.
func TestHintThatIsNoFile(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	zero := filepath.Join(dir, "zero")
	if err := os.Symlink("/dev/zero", zero); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{fifo, dir, zero} {
		done := make(chan []int, 1)
		go func() { done <- readHint(p) }()
		select {
		case fds := <-done:
			if fds != nil {
				t.Errorf("%s: hint %v", p, fds)
			}
		case <-time.After(2 * time.Second):
			t.Fatalf("%s: the hint is still being read after 2s", p)
		}
	}
}
