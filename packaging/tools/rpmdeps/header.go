package main

import (
	"bytes"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// The parts of the RPM v4 file format this tool touches (see rpm's
// docs/manual/format.md and lib/rpmtag.h): a 96-byte lead, the signature
// header padded to 8 bytes, the main header, and the payload. A header is
// an 8-byte magic, the number of index entries and the size of the data
// store, the 16-byte index entries (tag, type, offset, count), and the store.
const (
	leadSize     = 96
	entrySize    = 16
	maxHeaderLen = 64 << 20

	typeChar        = 1
	typeInt8        = 2
	typeInt16       = 3
	typeInt32       = 4
	typeInt64       = 5
	typeString      = 6
	typeBin         = 7
	typeStringArray = 8
	typeI18NString  = 9

	// tagImmutable is the region tag of the main header; tagSignatures the
	// signature header's.
	tagImmutable  = 63
	tagSignatures = 62

	tagRequireFlags   = 1048
	tagRequireName    = 1049
	tagRequireVersion = 1050

	sigSize      = 1000 // header + payload size, int32
	sigLongSize  = 270  // the same, int64
	sigMD5       = 1004 // md5 of header + payload
	sigSHA1      = 269  // hex sha1 of the header
	sigSHA256    = 273  // hex sha256 of the header
	sigDSA       = 267
	sigRSA       = 268
	sigPGP       = 1002
	sigGPG       = 1005
	sigPGP5      = 1006
	sigOpenPGP   = 278
	sigRSAHeader = 276
)

var headerMagic = []byte{0x8e, 0xad, 0xe8, 0x01, 0, 0, 0, 0}

// entry is one index entry with its data.
type entry struct {
	tag, typ, count int32
	offset          int32 // in the store, as read
	data            []byte
}

// header is a parsed header: its entries in index order.
type header struct {
	entries []*entry
	region  *entry // the region trailer's entry, or nil
}

// rpmFile is a package split into its parts.
type rpmFile struct {
	lead    []byte
	sig     *header // its entries' data point into sigRaw
	sigRaw  []byte  // the signature header with its padding
	main    []byte
	payload []byte
}

var typeAlign = map[int32]int{typeInt16: 2, typeInt32: 4, typeInt64: 8}

// dataLen is the length of an entry's data at the start of b.
func dataLen(typ, count int32, b []byte) (int, error) {
	switch typ {
	case typeChar, typeInt8, typeBin:
		return int(count), nil
	case typeInt16:
		return 2 * int(count), nil
	case typeInt32:
		return 4 * int(count), nil
	case typeInt64:
		return 8 * int(count), nil
	case typeString:
		i := bytes.IndexByte(b, 0)
		if i < 0 {
			return 0, errors.New("a string is not terminated")
		}
		return i + 1, nil
	case typeStringArray, typeI18NString:
		n := 0
		for range count {
			i := bytes.IndexByte(b[n:], 0)
			if i < 0 {
				return 0, errors.New("a string array is not terminated")
			}
			n += i + 1
		}
		return n, nil
	}
	return 0, fmt.Errorf("unknown entry type %d", typ)
}

// parseHeader reads the header at the start of b and returns it with its
// length.
func parseHeader(b []byte) (*header, int, error) {
	if len(b) < 16 || !bytes.Equal(b[:8], headerMagic) {
		return nil, 0, errors.New("no header magic where a header should start")
	}
	il := int(int32(binary.BigEndian.Uint32(b[8:])))
	dl := int(int32(binary.BigEndian.Uint32(b[12:])))
	if il < 1 || dl < 0 || il*entrySize+dl > maxHeaderLen || 16+il*entrySize+dl > len(b) {
		return nil, 0, fmt.Errorf("a header claims %d entries and %d bytes of data, which the file does not hold", il, dl)
	}
	store := b[16+il*entrySize : 16+il*entrySize+dl]
	h := &header{}
	for i := range il {
		e := b[16+i*entrySize:]
		en := &entry{
			tag:    int32(binary.BigEndian.Uint32(e[0:])),
			typ:    int32(binary.BigEndian.Uint32(e[4:])),
			offset: int32(binary.BigEndian.Uint32(e[8:])),
			count:  int32(binary.BigEndian.Uint32(e[12:])),
		}
		if en.offset < 0 || int(en.offset) > dl {
			return nil, 0, fmt.Errorf("entry %d (tag %d) points outside the header's data", i, en.tag)
		}
		n, err := dataLen(en.typ, en.count, store[en.offset:])
		if err != nil || int(en.offset)+n > dl {
			return nil, 0, fmt.Errorf("entry %d (tag %d): its data does not fit the header: %v", i, en.tag, err)
		}
		en.data = store[en.offset : int(en.offset)+n]
		if i == 0 && (en.tag == tagImmutable || en.tag == tagSignatures) && en.typ == typeBin && en.count == 16 {
			h.region = en
			continue
		}
		h.entries = append(h.entries, en)
	}
	return h, 16 + il*entrySize + dl, nil
}

// bytes lays the header out as rpmpack and rpmbuild do: the region entry
// first in the index and its trailer last in the store, the other entries
// in tag order, integers aligned.
func (h *header) bytes() []byte {
	entries := slices.Clone(h.entries)
	slices.SortStableFunc(entries, func(a, b *entry) int { return int(a.tag) - int(b.tag) })
	il := len(entries)
	if h.region != nil {
		il++
	}
	var store bytes.Buffer
	offsets := make([]int, len(entries))
	for i, e := range entries {
		if a := typeAlign[e.typ]; a > 0 && store.Len()%a != 0 {
			store.Write(make([]byte, a-store.Len()%a))
		}
		offsets[i] = store.Len()
		store.Write(e.data)
	}
	var out bytes.Buffer
	out.Write(headerMagic)
	index := func(tag, typ, off, count int32) {
		binary.Write(&out, binary.BigEndian, []int32{tag, typ, off, count})
	}
	if h.region != nil {
		trailer := make([]byte, 16)
		binary.BigEndian.PutUint32(trailer[0:], uint32(h.region.tag))
		binary.BigEndian.PutUint32(trailer[4:], typeBin)
		binary.BigEndian.PutUint32(trailer[8:], uint32(-int32(il*entrySize)))
		binary.BigEndian.PutUint32(trailer[12:], 16)
		regionOffset := store.Len()
		store.Write(trailer)
		binary.Write(&out, binary.BigEndian, []int32{int32(il), int32(store.Len())})
		index(h.region.tag, typeBin, int32(regionOffset), 16)
	} else {
		binary.Write(&out, binary.BigEndian, []int32{int32(il), int32(store.Len())})
	}
	for i, e := range entries {
		index(e.tag, e.typ, int32(offsets[i]), e.count)
	}
	out.Write(store.Bytes())
	return out.Bytes()
}

func (h *header) get(tag int32) *entry {
	i := slices.IndexFunc(h.entries, func(e *entry) bool { return e.tag == tag })
	if i < 0 {
		return nil
	}
	return h.entries[i]
}

// parseRPM splits a package into its parts.
func parseRPM(b []byte) (*rpmFile, error) {
	if len(b) < leadSize || !bytes.Equal(b[:4], []byte{0xed, 0xab, 0xee, 0xdb}) {
		return nil, errors.New("not an rpm package: no lead magic")
	}
	sig, sigLen, err := parseHeader(b[leadSize:])
	if err != nil {
		return nil, fmt.Errorf("signature header: %w", err)
	}
	if sigLen%8 != 0 {
		sigLen += 8 - sigLen%8
	}
	start := leadSize + sigLen
	if start > len(b) {
		return nil, errors.New("the package ends inside its signature header")
	}
	_, mainLen, err := parseHeader(b[start:])
	if err != nil {
		return nil, fmt.Errorf("main header: %w", err)
	}
	return &rpmFile{lead: b[:leadSize], sig: sig, sigRaw: b[leadSize:start], main: b[start : start+mainLen], payload: b[start+mainLen:]}, nil
}

// dep is one dependency to add: a name, an optional version and rpm's
// sense flags (the comparison and the scriptlet contexts).
type dep struct {
	name, version string
	flags         uint32
}

// RPM's dependency sense bits (rpm's include/rpm/rpmds.h).
var contexts = map[string]uint32{
	"interp": 1 << 8,
	"pre":    1 << 9,
	"post":   1 << 10,
	"preun":  1 << 11,
	"postun": 1 << 12,
}

// parseDep reads CONTEXT[,CONTEXT...]:NAME, e.g. post:systemd or
// post,interp:/bin/sh.
func parseDep(s string) (dep, error) {
	ctx, name, ok := strings.Cut(s, ":")
	if !ok || name == "" || strings.ContainsAny(name, " \t\x00") {
		return dep{}, fmt.Errorf("%q is not CONTEXT:NAME, e.g. post:systemd", s)
	}
	d := dep{name: name}
	for _, c := range strings.Split(ctx, ",") {
		f, ok := contexts[c]
		if !ok {
			return dep{}, fmt.Errorf("%q: %q is not one of interp, pre, post, preun, postun", s, c)
		}
		d.flags |= f
	}
	return d, nil
}

// addRequires adds deps to the main header's requirements, sorted as
// rpmbuild sorts them (name, version, flags), and returns the new header.
func addRequires(mainHdr []byte, deps []dep) ([]byte, error) {
	h, _, err := parseHeader(mainHdr)
	if err != nil {
		return nil, err
	}
	names, flags, versions := h.get(tagRequireName), h.get(tagRequireFlags), h.get(tagRequireVersion)
	if names == nil || flags == nil || versions == nil || names.count != flags.count || names.count != versions.count {
		return nil, errors.New("the package has no consistent list of requirements to add to")
	}
	var all []dep
	ns := strings.Split(strings.TrimSuffix(string(names.data), "\x00"), "\x00")
	vs := strings.Split(strings.TrimSuffix(string(versions.data), "\x00"), "\x00")
	for i := range ns {
		all = append(all, dep{ns[i], vs[i], binary.BigEndian.Uint32(flags.data[4*i:])})
	}
	for _, d := range deps {
		if !slices.Contains(all, d) {
			all = append(all, d)
		}
	}
	slices.SortStableFunc(all, func(a, b dep) int {
		if c := strings.Compare(a.name, b.name); c != 0 {
			return c
		}
		if c := strings.Compare(a.version, b.version); c != 0 {
			return c
		}
		return int(a.flags) - int(b.flags)
	})
	var nb, vb bytes.Buffer
	fb := make([]byte, 4*len(all))
	for i, d := range all {
		nb.WriteString(d.name + "\x00")
		vb.WriteString(d.version + "\x00")
		binary.BigEndian.PutUint32(fb[4*i:], d.flags)
	}
	n := int32(len(all))
	names.data, names.count = nb.Bytes(), n
	versions.data, versions.count = vb.Bytes(), n
	flags.data, flags.count = fb, n
	return h.bytes(), nil
}

// resign recomputes the digests and sizes of the signature header for a
// new main header, in place: their sizes do not change, so the signature
// header keeps its layout byte for byte but for them. A package signed with a key is refused: its signature
// would no longer match.
func (f *rpmFile) resign(mainHdr []byte) error {
	for _, tag := range []int32{sigDSA, sigRSA, sigPGP, sigGPG, sigPGP5, sigOpenPGP, sigRSAHeader} {
		if f.sig.get(tag) != nil {
			return errors.New("the package is signed: add the requirements before signing it")
		}
	}
	size := len(mainHdr) + len(f.payload)
	set := func(tag int32, value []byte) error {
		e := f.sig.get(tag)
		if e == nil {
			return nil
		}
		if len(e.data) != len(value) {
			return fmt.Errorf("signature tag %d has %d bytes, want %d", tag, len(e.data), len(value))
		}
		copy(e.data, value)
		return nil
	}
	sum256 := sha256.Sum256(mainHdr)
	sum1 := sha1.Sum(mainHdr)
	md := md5.New()
	md.Write(mainHdr)
	md.Write(f.payload)
	var i32 [4]byte
	var i64 [8]byte
	binary.BigEndian.PutUint32(i32[:], uint32(size))
	binary.BigEndian.PutUint64(i64[:], uint64(size))
	for tag, v := range map[int32][]byte{
		sigSHA256:   append([]byte(hex.EncodeToString(sum256[:])), 0),
		sigSHA1:     append([]byte(hex.EncodeToString(sum1[:])), 0),
		sigMD5:      md.Sum(nil),
		sigSize:     i32[:],
		sigLongSize: i64[:],
	} {
		if err := set(tag, v); err != nil {
			return err
		}
	}
	f.main = mainHdr
	return nil
}

// bytes reassembles the package.
func (f *rpmFile) bytes() []byte {
	var out bytes.Buffer
	out.Write(f.lead)
	out.Write(f.sigRaw)
	out.Write(f.main)
	out.Write(f.payload)
	return out.Bytes()
}
