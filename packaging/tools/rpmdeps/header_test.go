package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/rpmpack"
)

// testRPM builds a package the way nfpm does, with rpmpack: a file, the
// three scriptlets and one requirement.
func testRPM(t *testing.T, sign bool) []byte {
	t.Helper()
	r, err := rpmpack.NewRPM(rpmpack.RPMMetaData{
		Name: "demo", Version: "1.0", Release: "1", Arch: "x86_64", OS: "linux",
		Summary: "Demo", Description: "A demo.", Licence: "MIT",
		Requires: rpmpack.Relations{{Name: "systemd", Version: "248", Sense: rpmpack.SenseGreater | rpmpack.SenseEqual}},
	})
	if err != nil {
		t.Fatal(err)
	}
	r.AddFile(rpmpack.RPMFile{Name: "/usr/bin/demo", Body: []byte("#!/bin/sh\necho demo\n"), Mode: 0o100755, Owner: "root", Group: "root"})
	r.AddPostin("true\n")
	r.AddPreun("true\n")
	r.AddPostun("true\n")
	if sign {
		r.SetPGPSigner(func([]byte) ([]byte, error) { return []byte("not really a signature"), nil })
	}
	var b bytes.Buffer
	if err := r.Write(&b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestHeaderRoundTrip checks the header writer against rpmpack's: a header
// read and written again without changes is the same bytes.
func TestHeaderRoundTrip(t *testing.T) {
	b := testRPM(t, false)
	f, err := parseRPM(b)
	if err != nil {
		t.Fatal(err)
	}
	h, n, err := parseHeader(f.main)
	if err != nil {
		t.Fatal(err)
	}
	if n != len(f.main) {
		t.Fatalf("header length %d, want %d", n, len(f.main))
	}
	if got := h.bytes(); !bytes.Equal(got, f.main) {
		t.Fatalf("the main header written again differs from rpmpack's (%d bytes, want %d)", len(got), len(f.main))
	}
	if got := f.bytes(); !bytes.Equal(got, b) {
		t.Fatalf("the package reassembled differs from the original")
	}
}

func requires(t *testing.T, mainHdr []byte) []dep {
	t.Helper()
	h, _, err := parseHeader(mainHdr)
	if err != nil {
		t.Fatal(err)
	}
	names := strings.Split(strings.TrimSuffix(string(h.get(tagRequireName).data), "\x00"), "\x00")
	versions := strings.Split(strings.TrimSuffix(string(h.get(tagRequireVersion).data), "\x00"), "\x00")
	var out []dep
	for i := range names {
		out = append(out, dep{names[i], versions[i], binary.BigEndian.Uint32(h.get(tagRequireFlags).data[4*i:])})
	}
	return out
}

// TestAddRequires adds scriptlet requirements and checks the header's
// lists, the signature's digest and size, and, where rpm is installed,
// what rpm itself reads from the package.
func TestAddRequires(t *testing.T) {
	var deps []dep
	for _, s := range []string{"post:systemd", "preun:systemd", "postun:systemd", "post,interp:/bin/sh"} {
		d, err := parseDep(s)
		if err != nil {
			t.Fatal(err)
		}
		deps = append(deps, d)
	}
	out, err := rewrite(testRPM(t, false), deps)
	if err != nil {
		t.Fatal(err)
	}
	f, err := parseRPM(out)
	if err != nil {
		t.Fatal(err)
	}
	want := []dep{{"/bin/sh", "", 1<<8 | 1<<10}, {"systemd", "", 1 << 10}, {"systemd", "", 1 << 11}, {"systemd", "", 1 << 12},
		{"systemd", "248", uint32(rpmpack.SenseGreater | rpmpack.SenseEqual)}}
	if got := requires(t, f.main); !slices.Equal(got, want) {
		t.Errorf("requirements %v, want %v", got, want)
	}
	sum := sha256.Sum256(f.main)
	if got := string(f.sig.get(sigSHA256).data); got != hex.EncodeToString(sum[:])+"\x00" {
		t.Errorf("signature SHA256 %q does not match the new header", got)
	}
	if got := binary.BigEndian.Uint32(f.sig.get(sigSize).data); int(got) != len(f.main)+len(f.payload) {
		t.Errorf("signature size %d, want %d", got, len(f.main)+len(f.payload))
	}
	// Adding the same requirements again changes nothing.
	again, err := rewrite(bytes.Clone(out), deps)
	if err != nil || !bytes.Equal(again, out) {
		t.Errorf("a second rewrite changed the package (%v)", err)
	}

	if _, err := exec.LookPath("rpm"); err != nil {
		t.Log("rpm is not installed: not asking rpm (packaging/test does, on the real package)")
		return
	}
	p := filepath.Join(t.TempDir(), "demo.rpm")
	if err := os.WriteFile(p, out, 0o644); err != nil {
		t.Fatal(err)
	}
	q, err := exec.Command("rpm", "-qp", "--qf", "[%{REQUIRENAME} %{REQUIREFLAGS:deptype} %{REQUIREVERSION}\n]", p).CombinedOutput()
	if err != nil {
		t.Fatalf("rpm -qp: %v\n%s", err, q)
	}
	for _, line := range []string{"/bin/sh post,interp ", "systemd post ", "systemd preun ", "systemd postun ", "systemd manual 248"} {
		if !strings.Contains(string(q), line+"\n") {
			t.Errorf("rpm -qp does not show %q:\n%s", line, q)
		}
	}
	if k, err := exec.Command("rpmkeys", "--checksig", "--nosignature", p).CombinedOutput(); err != nil || !strings.Contains(string(k), "digests OK") {
		t.Errorf("rpmkeys --checksig: %v\n%s", err, k)
	}
}

func TestRefuses(t *testing.T) {
	d, _ := parseDep("post:systemd")
	if _, err := rewrite(testRPM(t, true), []dep{d}); err == nil || !strings.Contains(err.Error(), "signed") {
		t.Errorf("a signed package: %v, want a refusal", err)
	}
	b := testRPM(t, false)
	for name, bad := range map[string][]byte{
		"no lead":     []byte("hello"),
		"truncated":   b[:leadSize+20],
		"bad magic":   append(append([]byte{}, b[:leadSize]...), make([]byte, 64)...),
		"main header": b[:leadSize+len(b)/40],
	} {
		if _, err := rewrite(bad, []dep{d}); err == nil {
			t.Errorf("%s: rewritten, want an error", name)
		}
	}
	for _, s := range []string{"systemd", "post:", "later:systemd", "post:sys temd"} {
		if _, err := parseDep(s); err == nil {
			t.Errorf("parseDep(%q) succeeded", s)
		}
	}
}
