// Package sitecache keeps what `sitectl list` reads of each site file, so
// that a list of 10,000 sites reads and parses only the files that changed
// since the last one: the way git's index avoids hashing unchanged files,
// a file whose identity (device, inode, size, modification and change time,
// site.FileID) is the one recorded is not read; its record stands in for
// it. It is the one owner of the cache file's format (Encode, Decode) and
// of the rules for trusting it (Store).
//
// A record holds exactly what list reads of a parsed site (its listeners,
// working directory, reload trigger and default mode), and only of files
// that were valid. Anything else of a site (what `sitectl status SITE`
// reads) comes from the file itself.
package sitecache

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"strings"
	"sync"

	"github.com/sitectl/sitectl/internal/site"
)

// Version is the format of the cache file. A change of the format or of
// what a record holds changes it; a cache of another version is ignored.
const Version = 1

// MaxSize bounds the cache file: a record is about 100 bytes, so this is
// room for several hundred thousand sites.
const MaxSize = 64 << 20

// magic opens every cache file.
const magic = "sitectl list cache\n"

// Cache is the content of the cache file.
type Cache struct {
	// Build is the sitectl build that wrote it (Build): another build may
	// parse site files differently, so its records are not trusted.
	Build string
	// Dir is the site directory the records are of.
	Dir     string
	Records []Record
}

// Record is what list reads of one valid site file.
type Record struct {
	// File is the file's name in the directory (NAME.toml).
	File string
	// ID is the file's identity when it was read.
	ID            site.FileID
	Workdir       string
	ReloadTrigger string
	DefaultMode   string
	Listeners     []Listener
}

// Listener is what list reads of a listener, and what the checks across
// site files compare (Resolved is worked out again at each load).
type Listener struct {
	Name      string
	Kind      site.ListenerKind
	Address   string
	Path      string
	Line, Col int
}

// FromSite is the record of s, read from the file called file (its base
// name) with identity id.
func FromSite(file string, id site.FileID, s *site.Site) Record {
	r := Record{File: file, ID: id, Workdir: s.Workdir, ReloadTrigger: s.ReloadTrigger, DefaultMode: s.DefaultMode,
		Listeners: make([]Listener, len(s.Listeners))}
	for i, l := range s.Listeners {
		r.Listeners[i] = Listener{Name: l.Name, Kind: l.Kind, Address: l.Address, Path: l.Path, Line: l.Line, Col: l.Col}
	}
	return r
}

// Site is the site r records, with what list reads of it and nothing
// else (the loader sets its Name and File): it must not be used for
// anything but list.
func (r Record) Site() *site.Site {
	s := &site.Site{Workdir: r.Workdir, ReloadTrigger: r.ReloadTrigger, DefaultMode: r.DefaultMode,
		Listeners: make([]site.Listener, len(r.Listeners))}
	for i, l := range r.Listeners {
		s.Listeners[i] = site.Listener{Name: l.Name, Kind: l.Kind, Address: l.Address, Path: l.Path, Line: l.Line, Col: l.Col}
	}
	return s
}

// Encode is the cache file of c: the magic line, the version, the build,
// the directory, the records, each string and number length-prefixed or a
// varint, and a CRC-32C of all that.
func Encode(c Cache) []byte {
	b := appendHeader(make([]byte, 0, 64+len(c.Records)*128), magic, Version, c.Build, c.Dir)
	b = binary.AppendUvarint(b, uint64(len(c.Records)))
	for _, r := range c.Records {
		b = appendString(b, r.File)
		b = appendFileID(b, r.ID)
		b = appendString(b, r.Workdir)
		b = appendString(b, r.ReloadTrigger)
		b = appendString(b, r.DefaultMode)
		b = binary.AppendUvarint(b, uint64(len(r.Listeners)))
		for _, l := range r.Listeners {
			b = appendString(b, l.Name)
			b = binary.AppendUvarint(b, uint64(l.Kind))
			b = appendString(b, l.Address)
			b = appendString(b, l.Path)
			b = binary.AppendUvarint(b, uint64(l.Line))
			b = binary.AppendUvarint(b, uint64(l.Col))
		}
	}
	return seal(b)
}

// appendHeader starts a cache file: its magic line, the format's version,
// the build that writes it and the directory its records are of.
func appendHeader(b []byte, magic string, version uint64, build, dir string) []byte {
	b = append(b, magic...)
	b = binary.AppendUvarint(b, version)
	b = appendString(b, build)
	return appendString(b, dir)
}

// seal ends a cache file with a CRC-32C of all that it holds.
func seal(b []byte) []byte {
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli()))
}

func appendFileID(b []byte, id site.FileID) []byte {
	b = binary.AppendUvarint(b, id.Dev)
	b = binary.AppendUvarint(b, id.Ino)
	b = binary.AppendVarint(b, id.Size)
	b = binary.AppendVarint(b, id.Mtime)
	return binary.AppendVarint(b, id.Ctime)
}

// castagnoli is made when the cache is first read or written: making it
// fills tables of some 8 KiB, which every sitectl run would pay at start.
var castagnoli = sync.OnceValue(func() *crc32.Table { return crc32.MakeTable(crc32.Castagnoli) })

func appendString(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

// ErrDamaged is a cache file that is not one Encode wrote: truncated,
// corrupt, too large, or not a cache file at all.
var ErrDamaged = errors.New("damaged list cache")

// Decode reads a cache file. A file of another version is an error that
// says so; any damage is ErrDamaged.
func Decode(data []byte) (Cache, error) {
	d, build, dir, err := openCache(data, magic, Version)
	if err != nil {
		return Cache{}, err
	}
	c := Cache{Build: build, Dir: dir}
	// Each record takes at least 10 bytes: no count can be larger than
	// what is left, so a damaged count cannot make a huge allocation.
	n := d.count(10)
	c.Records = make([]Record, 0, n)
	for i := 0; i < n && d.err == nil; i++ {
		c.Records = append(c.Records, d.record())
	}
	if err := d.end(); err != nil {
		return Cache{}, err
	}
	return c, nil
}

// openCache checks a cache file's size, magic line, checksum and version,
// and reads its build and directory; d reads on from there.
func openCache(data []byte, magic string, version uint64) (d *decoder, build, dir string, err error) {
	what := strings.TrimSuffix(magic, "\n")[len("sitectl "):]
	if len(data) > MaxSize {
		return nil, "", "", fmt.Errorf("%w: %d bytes, more than %d", ErrDamaged, len(data), MaxSize)
	}
	if len(data) < len(magic)+4 || string(data[:len(magic)]) != magic {
		return nil, "", "", fmt.Errorf("%w: not a %s", ErrDamaged, what)
	}
	body := data[:len(data)-4]
	if crc32.Checksum(body, castagnoli()) != binary.LittleEndian.Uint32(data[len(body):]) {
		return nil, "", "", fmt.Errorf("%w: checksum mismatch", ErrDamaged)
	}
	// One string for the whole file: every string of the records is a
	// slice of it, not an allocation of its own.
	d = &decoder{s: string(body), pos: len(magic)}
	if v := d.uvarint(); v != version {
		if d.err != nil {
			return nil, "", "", d.err
		}
		return nil, "", "", fmt.Errorf("%s of version %d, not %d", what, v, version)
	}
	build, dir = d.string(), d.string()
	return d, build, dir, d.err
}

// end is the error of a decoder that should have read all the file.
func (d *decoder) end() error {
	if d.err == nil && d.pos != len(d.s) {
		d.err = fmt.Errorf("%w: %d bytes after the records", ErrDamaged, len(d.s)-d.pos)
	}
	return d.err
}

func (d *decoder) fileID() site.FileID {
	var id site.FileID
	id.Dev, id.Ino = d.uvarint(), d.uvarint()
	id.Size, id.Mtime, id.Ctime = d.varint(), d.varint(), d.varint()
	return id
}

func (d *decoder) record() Record {
	r := Record{File: d.string(), ID: d.fileID()}
	r.Workdir, r.ReloadTrigger, r.DefaultMode = d.string(), d.string(), d.string()
	n := d.count(6)
	r.Listeners = make([]Listener, n)
	for i := range r.Listeners {
		l := &r.Listeners[i]
		l.Name, l.Kind, l.Address, l.Path = d.string(), site.ListenerKind(d.small()), d.string(), d.string()
		l.Line, l.Col = d.small(), d.small()
	}
	return r
}

// decoder reads what Encode wrote; the first mistake sticks in err, and
// everything read after it is zero.
type decoder struct {
	s   string
	pos int
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s at byte %d", ErrDamaged, what, d.pos)
	}
	d.pos = len(d.s)
}

func (d *decoder) uvarint() uint64 {
	var v uint64
	for shift := uint(0); shift < 64; shift += 7 {
		if d.pos >= len(d.s) {
			d.fail("truncated number")
			return 0
		}
		c := d.s[d.pos]
		d.pos++
		if shift == 63 && c > 1 {
			break
		}
		v |= uint64(c&0x7f) << shift
		if c < 0x80 {
			return v
		}
	}
	d.fail("number too long")
	return 0
}

func (d *decoder) varint() int64 {
	u := d.uvarint()
	v := int64(u >> 1)
	if u&1 != 0 {
		v = ^v
	}
	return v
}

// small is a number that fits an int with room (a line, a column, a kind).
func (d *decoder) small() int {
	v := d.uvarint()
	if v > 1<<31 {
		d.fail("number out of range")
		return 0
	}
	return int(v)
}

// count is a number of items of at least min bytes each in what is left.
func (d *decoder) count(min int) int {
	v := d.uvarint()
	if v > uint64((len(d.s)-d.pos)/min) {
		d.fail("count larger than the file")
		return 0
	}
	return int(v)
}

func (d *decoder) string() string {
	n := d.uvarint()
	if n > uint64(len(d.s)-d.pos) {
		d.fail("truncated string")
		return ""
	}
	s := d.s[d.pos : d.pos+int(n)]
	d.pos += int(n)
	return s
}
