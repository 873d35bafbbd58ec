package sitecache

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sitectl/sitectl/internal/modes"
	"github.com/sitectl/sitectl/internal/site"
)

func sampleStates() StateCache {
	return StateCache{Build: "build\x00\xff", Dir: "/var/lib/sitectl", Records: []StateRecord{
		{Site: "a", Files: modes.Files{
			Mode:  site.FileID{Dev: 1<<64 - 1, Ino: 42, Size: 96, Mtime: -5, Ctime: 1764536000123456789},
			State: site.FileID{Dev: 3, Ino: 43, Size: 448, Mtime: 1764536000123456789, Ctime: 1764536000123456790}},
			Mode: "maintenance", PreviousMode: "normal"},
		{Site: "b"},
		{Site: "c", Files: modes.Files{State: site.FileID{Dev: 3, Ino: 44, Size: 2, Mtime: 1, Ctime: 2}}, PreviousMode: "line\nbreak"},
	}}
}

func TestEncodeDecodeStatesRoundTrip(t *testing.T) {
	for _, c := range []StateCache{sampleStates(), {Records: []StateRecord{}}} {
		got, err := DecodeStates(EncodeStates(c))
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, c) {
			t.Fatalf("got %+v\nwant %+v", got, c)
		}
	}
}

// TestDecodeStatesRefusesDamage: a truncated file, any bit flipped, an
// oversized file, a list cache and another version are not decoded.
func TestDecodeStatesRefusesDamage(t *testing.T) {
	data := EncodeStates(sampleStates())
	for n := range len(data) {
		if _, err := DecodeStates(data[:n]); !errors.Is(err, ErrDamaged) {
			t.Fatalf("%d of %d bytes: %v", n, len(data), err)
		}
	}
	for i := range len(data) {
		for bit := range 8 {
			bad := append([]byte(nil), data...)
			bad[i] ^= 1 << bit
			if _, err := DecodeStates(bad); err == nil {
				t.Fatalf("byte %d bit %d flipped: decoded", i, bit)
			}
		}
	}
	if _, err := DecodeStates(append(data, make([]byte, MaxSize)...)); !errors.Is(err, ErrDamaged) {
		t.Fatalf("oversized: %v", err)
	}
	if _, err := DecodeStates(Encode(sample())); err == nil || !strings.Contains(err.Error(), "not a state cache") {
		t.Fatalf("a list cache: %v", err)
	}
	other := []byte(stateMagic)
	other = binary.AppendUvarint(other, StateVersion+1)
	other = append(other, data[len(stateMagic)+1:len(data)-4]...)
	other = binary.LittleEndian.AppendUint32(other, crc32.Checksum(other, castagnoli()))
	if _, err := DecodeStates(other); err == nil || !strings.Contains(err.Error(), "state cache of version 2") {
		t.Fatalf("another version: %v", err)
	}
}

// TestStateRecordIsWhatItWasMadeOf: a record gives back what list reads
// of a state (the mode file's time is its modification time), and a site
// without a mode file has no recorded mode.
func TestStateRecordIsWhatItWasMadeOf(t *testing.T) {
	written := time.Unix(1764536000, 123456789)
	f := modes.Files{Mode: site.FileID{Ino: 1, Mtime: written.UnixNano(), Ctime: 7}}
	l := modes.Listed{Mode: "maintenance", Recorded: true, Written: written, State: modes.State{PreviousMode: "normal"}}
	if got := FromListed("a", f, l).Listed(); !reflect.DeepEqual(got, l) {
		t.Fatalf("got %+v\nwant %+v", got, l)
	}
	none := modes.Listed{State: modes.State{PreviousMode: "normal"}}
	if got := FromListed("a", modes.Files{}, none).Listed(); !reflect.DeepEqual(got, none) {
		t.Fatalf("without a mode file: got %+v\nwant %+v", got, none)
	}
}
