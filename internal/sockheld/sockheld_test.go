package sockheld

import (
	"errors"
	"fmt"
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
	got, err := Missing(proc, s, "")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"127.0.0.1:8081", "127.0.0.1:8082", "/run/other.sock"}; !slices.Equal(got, want) {
		t.Errorf("Missing = %q, want %q", got, want)
	}
}

// ReadHeld reads PID 1's sockets once for many sites, and says of each
// what Missing says of it alone.
func TestReadHeldIsMissingOfEachSite(t *testing.T) {
	proc := fakeProc(t)
	shop := &site.Site{Name: "shop", Listeners: []site.Listener{
		{Kind: site.TCP, Address: "127.0.0.1:8080"},
		{Kind: site.Unix, Path: "/run/shop.sock"},
	}}
	moved := &site.Site{Name: "moved", Listeners: []site.Listener{{Kind: site.TCP, Address: "127.0.0.1:8081"}}}
	gone := &site.Site{Name: "gone", Listeners: []site.Listener{
		{Kind: site.TCP, Address: "127.0.0.1:8082"},
		{Kind: site.Unix, Path: "/run/other.sock"},
	}}
	h, err := ReadHeld(proc, []*site.Site{shop, moved, gone}, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []*site.Site{shop, moved, gone} {
		alone, err := Missing(proc, s, "")
		if err != nil {
			t.Fatal(err)
		}
		if got := h.Missing(s); !slices.Equal(got, alone) {
			t.Errorf("%s: ReadHeld says %q missing, Missing %q", s.Name, got, alone)
		}
	}
	if got := h.Missing(gone); !slices.Equal(got, []string{"127.0.0.1:8082", "/run/other.sock"}) {
		t.Errorf("gone: %q", got)
	}
	if got := h.Missing(shop); len(got) != 0 {
		t.Errorf("shop: %q", got)
	}
	// Without PID 1's open files, 8081 (another process's listener)
	// listens; 8082 and /run/other.sock (not listening) do not.
	l, err := ReadListening(proc, []*site.Site{shop, moved, gone})
	if err != nil {
		t.Fatal(err)
	}
	if got := l.Missing(moved); len(got) != 0 {
		t.Errorf("moved, without PID 1's files: %q", got)
	}
	if got := l.Missing(gone); !slices.Equal(got, []string{"127.0.0.1:8082", "/run/other.sock"}) {
		t.Errorf("gone, without PID 1's files: %q", got)
	}
	if got := l.Missing(shop); len(got) != 0 {
		t.Errorf("shop, without PID 1's files: %q", got)
	}
}

// ReadListening does not read PID 1's open files.
func TestReadListeningReadsNoOpenFiles(t *testing.T) {
	proc := fakeProc(t)
	if err := os.RemoveAll(filepath.Join(proc, "1", "fd")); err != nil {
		t.Fatal(err)
	}
	s := &site.Site{Name: "shop", Listeners: []site.Listener{{Kind: site.TCP, Address: "127.0.0.1:8080"}, {Kind: site.TCP, Address: "127.0.0.1:8083"}}}
	if _, err := ReadHeld(proc, []*site.Site{s}, ""); err == nil {
		t.Fatal("ReadHeld without /proc/1/fd: no error")
	}
	l, err := ReadListening(proc, []*site.Site{s})
	if err != nil {
		t.Fatal(err)
	}
	if got := l.Missing(s); !slices.Equal(got, []string{"127.0.0.1:8083"}) {
		t.Errorf("Missing = %q", got)
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
	if err := scanTable(r, func(f [][]byte) bool { return parseTCP(f, map[int]bool{8080: true}, got) }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[8080][0] != 111 {
		t.Errorf("listeners %v", got)
	}
}

// A site's check reads only the tables of the kinds it listens on: the
// check of a TCP site does not fail for want of /proc/1/net/unix, nor a
// unix one for want of the TCP tables.
func TestOnlyTheTablesOfTheSitesKinds(t *testing.T) {
	proc := fakeProc(t)
	if err := os.Remove(filepath.Join(proc, "1", "net", "unix")); err != nil {
		t.Fatal(err)
	}
	got, err := Missing(proc, &site.Site{Name: "shop", Listeners: []site.Listener{{Kind: site.TCP, Address: "127.0.0.1:8080"}}}, "")
	if err != nil || len(got) != 0 {
		t.Errorf("TCP site without /proc/1/net/unix: %q, %v", got, err)
	}
	proc = fakeProc(t)
	for _, table := range []string{"tcp", "tcp6"} {
		if err := os.Remove(filepath.Join(proc, "1", "net", table)); err != nil {
			t.Fatal(err)
		}
	}
	got, err = Missing(proc, &site.Site{Name: "shop", Listeners: []site.Listener{{Kind: site.Unix, Path: "/run/shop.sock"}}}, "")
	if err != nil || len(got) != 0 {
		t.Errorf("unix site without the TCP tables: %q, %v", got, err)
	}
}

// With 10,000 sites PID 1 holds 10,000 listeners: checking one site must
// not allocate for every row of the table, only for the site's own.
func TestTableRowsOfOtherSitesCostNoAllocations(t *testing.T) {
	var b strings.Builder
	b.WriteString("  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n")
	for i := range 10000 {
		fmt.Fprintf(&b, "%4d: 0100007F:%04X 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 %d 1 0000000000000000 100 0 0 10 0\n", i, 10000+i, 1000+i)
	}
	table := b.String()
	ports := map[int]bool{10042: true}
	allocs := testing.AllocsPerRun(5, func() {
		got := map[int][]uint64{}
		if err := scanTable(strings.NewReader(table), func(f [][]byte) bool { return parseTCP(f, ports, got) }); err != nil {
			t.Fatal(err)
		}
		if len(got[10042]) != 1 || got[10042][0] != 1042 {
			t.Fatalf("listeners %v", got)
		}
	})
	if allocs > 20 {
		t.Errorf("%.0f allocations to read a table of 10,000 listeners for one port, want a handful", allocs)
	}
}

func TestParseUint(t *testing.T) {
	for _, c := range []struct {
		in   string
		base uint64
		want uint64
		ok   bool
	}{{"1F90", 16, 8080, true}, {"1f90", 16, 8080, true}, {"123", 10, 123, true}, {"", 10, 0, false},
		{"12a", 10, 0, false}, {"18446744073709551615", 10, 1<<64 - 1, true}, {"18446744073709551616", 10, 0, false}, {"-1", 10, 0, false}} {
		got, ok := parseUint([]byte(c.in), c.base)
		if got != c.want || ok != c.ok {
			t.Errorf("parseUint(%q, %d) = %d, %v; want %d, %v", c.in, c.base, got, ok, c.want, c.ok)
		}
	}
}

// padTable writes to path the table head, then rows of rowText until the
// file is larger than maxTable, then tail.
func padTable(t *testing.T, path, head, rowText, tail string) {
	t.Helper()
	var b strings.Builder
	b.Grow(maxTable + len(head) + len(tail) + len(rowText))
	b.WriteString(head)
	for b.Len() <= maxTable {
		b.WriteString(rowText)
	}
	b.WriteString(tail)
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

// A unix table larger than maxTable (a site's app opened many
// socketpairs) is an error: the site's listener past the cut is not
// reported missing, which would advise restarting a socket unit that is
// fine.
func TestUnixTableTooLargeIsAnErrorNotMissing(t *testing.T) {
	proc := fakeProc(t)
	padTable(t, filepath.Join(proc, "1", "net", "unix"),
		"Num       RefCount Protocol Flags    Type St Inode Path\n",
		"0000000000000000: 00000003 00000000 00000000 0001 03 777\n",
		"0000000000000000: 00000002 00000000 00010000 0001 01 333 /run/shop.sock\n")
	got, err := Missing(proc, &site.Site{Name: "shop", Listeners: []site.Listener{{Kind: site.Unix, Path: "/run/shop.sock"}}}, "")
	if err == nil {
		t.Fatalf("Missing = %q, nil; want an error for a table larger than %d bytes", got, maxTable)
	}
	if !errors.Is(err, ErrUnknown) || !strings.Contains(err.Error(), "cannot tell whether systemd holds the site's sockets") {
		t.Errorf("error %q does not say the check could not be done", err)
	}
}

// A TCP table larger than maxTable is read only up to its listeners, which
// come first: the connections after them do not make the check fail.
func TestTCPTableLargeWithConnectionsIsRead(t *testing.T) {
	proc := fakeProc(t)
	padTable(t, filepath.Join(proc, "1", "net", "tcp"),
		"  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"+
			"   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 111 1 0000000000000000 100 0 0 10 0\n",
		"   1: 0100007F:1F92 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 444 1 0000000000000000 100 0 0 10 0\n",
		"")
	got, err := Missing(proc, &site.Site{Name: "shop", Listeners: []site.Listener{{Kind: site.TCP, Address: "127.0.0.1:8080"}}}, "")
	if err != nil || len(got) != 0 {
		t.Errorf("Missing = %q, %v; want nothing missing", got, err)
	}
}

func TestLost(t *testing.T) {
	s, err := site.Parse("/etc/sitectl/sites/karl.toml", []byte("exec = [\"/bin/app\"]\n[[listen]]\naddress = \"127.0.0.1:8080\"\n[[listen]]\npath = \"/run/karl.sock\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	what, fix := Lost(s, []string{"127.0.0.1:8080"})
	if want := "systemd holds no socket for 127.0.0.1:8080 although site-karl.socket is active (its listeners changed while it ran)"; what != want {
		t.Errorf("what = %q, want %q", what, want)
	}
	if !strings.HasPrefix(fix, "run `sitectl restart karl`, which restarts site-karl.socket with the service") {
		t.Errorf("fix = %q", fix)
	}
}

// A named listener has a socket unit of its own: that is the one named.
func TestLostNamesTheSocketUnit(t *testing.T) {
	s, err := site.Parse("/etc/sitectl/sites/karl.toml", []byte("exec = [\"/bin/app\"]\n[[listen]]\naddress = \"127.0.0.1:8080\"\n[[listen]]\nname = \"admin\"\naddress = \"127.0.0.1:8081\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	what, fix := Lost(s, []string{"127.0.0.1:8081"})
	if want := "systemd holds no socket for 127.0.0.1:8081 although site-karl@admin.socket is active"; !strings.HasPrefix(what, want) {
		t.Errorf("what = %q, want %q", what, want)
	}
	if !strings.Contains(fix, "restarts site-karl@admin.socket with the service") {
		t.Errorf("fix = %q", fix)
	}
}
