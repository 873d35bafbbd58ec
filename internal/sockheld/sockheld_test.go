package sockheld

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/sitectl/sitectl/internal/site"
)

// A fake /proc: PID 1 holds the TCP listener on port 8080 (inode 111) and
// the unix listener /run/shop.sock (inode 333); port 8081 listens, but in
// another process (inode 222).
func fakeProc(t *testing.T) string {
	t.Helper()
	proc := t.TempDir()
	write := func(name, text string) {
		p := filepath.Join(proc, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("1/net/tcp", `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 111 1 0000000000000000 100 0 0 10 0
   1: 0100007F:1F91 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 222 1 0000000000000000 100 0 0 10 0
   2: 0100007F:1F92 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 444 1 0000000000000000 100 0 0 10 0
`)
	write("1/net/tcp6", "  sl  local_address remote_address st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n")
	write("1/net/unix", `Num       RefCount Protocol Flags    Type St Inode Path
0000000000000000: 00000002 00000000 00010000 0001 01 333 /run/shop.sock
0000000000000000: 00000002 00000000 00000000 0001 03 555 /run/other.sock
`)
	if err := os.MkdirAll(filepath.Join(proc, "1", "fd"), 0o755); err != nil {
		t.Fatal(err)
	}
	for fd, target := range map[string]string{"3": "socket:[111]", "4": "socket:[333]", "5": "/dev/null", "6": "socket:[555]"} {
		if err := os.Symlink(target, filepath.Join(proc, "1", "fd", fd)); err != nil {
			t.Fatal(err)
		}
	}
	return proc
}

func TestMissing(t *testing.T) {
	proc := fakeProc(t)
	s := &site.Site{Name: "shop", Listeners: []site.Listener{
		{Kind: site.TCP, Address: "127.0.0.1:8080"},
		{Kind: site.TCP, Address: "127.0.0.1:8081"},
		{Kind: site.TCP, Address: "127.0.0.1:8082"},
		{Kind: site.Unix, Path: "/run/shop.sock"},
		{Kind: site.Unix, Path: "/run/other.sock"},
	}}
	got, err := Missing(proc, s)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"127.0.0.1:8081", "127.0.0.1:8082", "/run/other.sock"}; !slices.Equal(got, want) {
		t.Errorf("Missing = %q, want %q", got, want)
	}
}

// The TCP tables are read up to the first row that is not a listener: the
// kernel lists listeners first, and a busy host has many connections after
// them. A reader that fails past the listeners shows nothing more is read.
func TestTCPTableStopsAfterTheListeners(t *testing.T) {
	head := "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n" +
		"   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 111 1 0000000000000000 100 0 0 10 0\n" +
		"   1: 0100007F:1F92 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 444 1 0000000000000000 100 0 0 10 0\n"
	r := io.MultiReader(strings.NewReader(head), iotest.ErrReader(errors.New("read past the listeners")))
	got := map[int][]uint64{}
	if err := scanTable(r, func(f []string) bool { return parseTCP(f, got) }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[8080][0] != 111 {
		t.Errorf("listeners %v", got)
	}
}
