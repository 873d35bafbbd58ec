package sitecache

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sitectl/sitectl/internal/site"
)

func sample() Cache {
	return Cache{Build: "build\x00\xff", Dir: "/etc/sitectl/sites", Records: []Record{
		{File: "a.toml", ID: site.FileID{Dev: 1<<64 - 1, Ino: 42, Size: 311, Mtime: -5, Ctime: 1764536000123456789},
			Workdir: "/srv/a/current", ReloadTrigger: "/srv/a/restart.txt", DefaultMode: "live",
			Listeners: []Listener{
				{Name: "http", Kind: site.TCP, Address: "[::]:8080", Line: 7, Col: 1},
				{Name: "admin", Kind: site.Unix, Path: "/run/a/admin.sock", Line: 1 << 20, Col: 3},
			}},
		{File: "line\nbreak.toml", Listeners: []Listener{}},
	}}
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	for _, c := range []Cache{sample(), {Records: []Record{}}} {
		got, err := Decode(Encode(c))
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, c) {
			t.Fatalf("got %+v\nwant %+v", got, c)
		}
	}
}

// TestDecodeRefusesDamage: every truncation and every flipped bit of a
// cache file is refused, never trusted and never a panic; so are a file
// larger than MaxSize and a cache of another version.
func TestDecodeRefusesDamage(t *testing.T) {
	data := Encode(sample())
	for n := range len(data) {
		if _, err := Decode(data[:n]); !errors.Is(err, ErrDamaged) {
			t.Fatalf("%d of %d bytes: %v", n, len(data), err)
		}
	}
	for i := range len(data) {
		for bit := range 8 {
			bad := append([]byte(nil), data...)
			bad[i] ^= 1 << bit
			if _, err := Decode(bad); err == nil {
				t.Fatalf("byte %d bit %d flipped: decoded", i, bit)
			}
		}
	}
	if _, err := Decode(append(data, make([]byte, MaxSize)...)); !errors.Is(err, ErrDamaged) {
		t.Fatalf("oversized: %v", err)
	}
	// Another version, with a good checksum.
	other := []byte(magic)
	other = binary.AppendUvarint(other, Version+1)
	other = append(other, data[len(magic)+1:len(data)-4]...)
	other = binary.LittleEndian.AppendUint32(other, crc32.Checksum(other, castagnoli()))
	if _, err := Decode(other); err == nil || !strings.Contains(err.Error(), "version") {
		t.Fatalf("another version: %v", err)
	}
}

// TestDecodeBoundsCounts: a count larger than the file could hold is
// refused before anything is allocated for it.
func TestDecodeBoundsCounts(t *testing.T) {
	b := []byte(magic)
	b = binary.AppendUvarint(b, Version)
	b = appendString(b, "x")
	b = appendString(b, "/d")
	b = binary.AppendUvarint(b, 1<<62)
	b = binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli()))
	if _, err := Decode(b); !errors.Is(err, ErrDamaged) {
		t.Fatalf("huge count: %v", err)
	}
}

func TestSettled(t *testing.T) {
	start := time.Unix(1764536000, 0)
	for _, c := range []struct {
		ctime time.Time
		want  bool
	}{
		{start.Add(-Settle - time.Nanosecond), true},
		{start.Add(-Settle), false},
		{start.Add(-time.Millisecond), false},
		{start.Add(time.Second), false},
	} {
		if got := Settled(site.FileID{Ctime: c.ctime.UnixNano()}, start); got != c.want {
			t.Errorf("changed %s before the load: %v, want %v", start.Sub(c.ctime), got, c.want)
		}
	}
	if Settled(site.FileID{}, start) {
		t.Error("an unknown change time counts as settled")
	}
}

// TestReadTrustsOnlyAPrivateRegularFile: the cache file is read only when
// it is a regular file of the reader's own, private to it, and not larger
// than MaxSize; a symlink is not followed.
func TestReadTrustsOnlyAPrivateRegularFile(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good")
	c := Cache{Build: "b", Dir: "/d", Records: []Record{{File: "a.toml", Listeners: []Listener{}}}}
	if err := os.WriteFile(good, Encode(c), 0o600); err != nil {
		t.Fatal(err)
	}
	st := Store{Path: good, Dir: "/d", Build: "b"}
	if recs, ok := st.read(); !ok || len(recs) != 1 {
		t.Fatalf("a good cache file is not read: %v %v", recs, ok)
	}
	for name, make := range map[string]func(p string) error{
		"readable by others": func(p string) error { return os.WriteFile(p, Encode(c), 0o644) },
		"a symlink":          func(p string) error { return os.Symlink(good, p) },
		"a directory":        func(p string) error { return os.Mkdir(p, 0o700) },
		"oversized": func(p string) error {
			if err := os.WriteFile(p, Encode(c), 0o600); err != nil {
				return err
			}
			return os.Truncate(p, MaxSize+1)
		},
	} {
		p := filepath.Join(dir, strings.ReplaceAll(name, " ", "-"))
		if err := make(p); err != nil {
			t.Fatal(err)
		}
		if recs, ok := (Store{Path: p, Dir: "/d", Build: "b"}).read(); ok || recs != nil {
			t.Errorf("%s: read: %v", name, recs)
		}
	}
	if os.Geteuid() == 0 {
		other := filepath.Join(dir, "other-owner")
		os.WriteFile(other, Encode(c), 0o600)
		if err := os.Chown(other, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		if _, ok := (Store{Path: other, Dir: "/d", Build: "b"}).read(); ok {
			t.Error("a cache file of another user is read")
		}
	}
	if _, ok := (Store{Path: good, Dir: "/d"}).read(); ok {
		t.Error("read without a build identity")
	}
}

func TestBuildIsStable(t *testing.T) {
	if b := Build(); b == "" || b != Build() {
		t.Fatalf("Build() = %q", b)
	}
}

// TestWriteOnlyIntoAPrivateDirectory: a cache directory that was there
// already is made 0700 again when it is not; one that is a symlink (or,
// for root, another user's directory) is not written through or into.
func TestWriteOnlyIntoAPrivateDirectory(t *testing.T) {
	run := filepath.Join(t.TempDir(), "run")
	cache := filepath.Join(run, "cache")
	if err := os.MkdirAll(cache, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(cache, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := writeCache(filepath.Join(cache, "list"), []byte("x")); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(cache); err != nil || fi.Mode() != os.ModeDir|0o700 {
		t.Errorf("cache directory: %v, %v; want 0700", fi.Mode(), err)
	}
	if fi, err := os.Lstat(filepath.Join(cache, "list")); err != nil || fi.Mode() != 0o600 {
		t.Errorf("cache file: %v, %v; want 0600", fi.Mode(), err)
	}

	elsewhere := filepath.Join(t.TempDir(), "elsewhere")
	if err := os.Mkdir(elsewhere, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(cache); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(elsewhere, cache); err != nil {
		t.Fatal(err)
	}
	if err := writeCache(filepath.Join(cache, "list"), []byte("x")); err == nil {
		t.Error("a cache directory that is a symlink was written through")
	}
	if entries, _ := os.ReadDir(elsewhere); len(entries) != 0 {
		t.Errorf("written through the symlink: %v", entries)
	}

	if os.Geteuid() == 0 {
		if err := os.Remove(cache); err != nil {
			t.Fatal(err)
		}
		if err := os.Mkdir(cache, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(cache, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		if err := writeCache(filepath.Join(cache, "list"), []byte("x")); err == nil {
			t.Error("another user's cache directory was written into")
		}
		if entries, _ := os.ReadDir(cache); len(entries) != 0 {
			t.Errorf("written into another user's directory: %v", entries)
		}
	}
}
