package site

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// A site of more listeners than MaxListeners is refused at the first one
// too many; as many as allowed are accepted.
func TestTooManyListeners(t *testing.T) {
	file := func(n int) []byte {
		var b strings.Builder
		b.WriteString("exec = [\"/bin/true\"]\n")
		for i := 0; i < n; i++ {
			fmt.Fprintf(&b, "[[listen]]\naddress = \"127.0.%d.%d:80\"\n", i/250, i%250+1)
		}
		return []byte(b.String())
	}
	if _, err := Parse("/etc/sitectl/sites/shop.toml", file(MaxListeners)); err != nil {
		t.Errorf("%d listeners: %v", MaxListeners, err)
	}
	_, err := Parse("/etc/sitectl/sites/shop.toml", file(MaxListeners+1))
	want := fmt.Sprintf("/etc/sitectl/sites/shop.toml:%d:3: this is listener 257 of the site, and a site may have at most 256", 2+2*MaxListeners)
	if err == nil || err.Error() != want {
		t.Errorf("%d listeners: %v; want %s", MaxListeners+1, err, want)
	}
}

// The worst shapes of a site file the bound on its size lets through
// are each refused (or accepted) in a few milliseconds: at 1 MiB, before
// tables and sites were bounded, each took the generator 14-25 s. The
// bound here is loose, for a busy machine; BenchmarkParseWorstShapes
// says how long each takes.
func TestWorstShapesParseQuickly(t *testing.T) {
	wants := map[string]string{
		"environment":            "more than 1024 keys in the table environment",
		"listeners":              "more than 1024 [[listen]] tables",
		"unknown":                "more than 1024 keys in the table hardening",
		"listeners at the limit": "",
	}
	for name, data := range worstShapes() {
		if len(data) > MaxFileSize {
			t.Fatalf("%s: %d bytes", name, len(data))
		}
		start := time.Now()
		_, err := Parse("/etc/sitectl/sites/big.toml", data)
		if took := time.Since(start); took > time.Second {
			t.Errorf("%s: took %v", name, took)
		}
		switch want := wants[name]; {
		case want == "" && err != nil:
			t.Errorf("%s: %v", name, err)
		case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
			t.Errorf("%s: %.300v; want %q", name, err, want)
		}
	}
}

// An error repeats at most maxQuoted bytes of a key or value of the file,
// and one file's mistakes are listed up to MaxMistakes, then one line
// says how many more there are: a file of 100,000 unknown keys of a
// megabyte each once gave lines of a megabyte, 111,104 of them.
func TestMistakesAreBounded(t *testing.T) {
	long := strings.Repeat("k", 5000)
	var b strings.Builder
	b.WriteString("exec = [\"/bin/true\"]\n" + long + " = 1\n[[listen]]\naddress = \"127.0.0.1:1\"\n[hardening]\n")
	for i := 0; i < 500; i++ {
		fmt.Fprintf(&b, "k%d = 1\n", i)
	}
	// A listener with a mistake past the bound is not taken for a good one.
	b.WriteString("[[listen]]\naddress = \"" + long + "\"\n")
	_, err := Parse("/etc/sitectl/sites/shop.toml", []byte(b.String()))
	errs, ok := err.(Errors)
	if !ok || len(errs) != MaxMistakes+1 {
		t.Fatalf("%d mistakes listed, want %d and a line for the rest: %.500v", len(errs), MaxMistakes+1, err)
	}
	if first := errs[0].Error(); len(first) > 1000 || !strings.Contains(first, `unknown key "`+strings.Repeat("k", maxQuoted)+`…(5000 bytes)"`) {
		t.Errorf("the long key: %d bytes: %.300s", len(first), first)
	}
	last := errs[MaxMistakes]
	if want := "and 402 more mistakes, not listed: fix the ones above first"; last.Msg != want || last.More != 402 {
		t.Errorf("the last line: %s (More %d); want %q", last, last.More, want)
	}
	if len(err.Error()) > MaxMistakes*1000 {
		t.Errorf("the mistakes take %d bytes", len(err.Error()))
	}
}

// A site file's name with a newline or an escape sequence in it cannot
// start a line of its own where its mistakes are logged, nor act on a
// terminal.
func TestFileNameIsEscapedInErrors(t *testing.T) {
	name := "/etc/sitectl/sites/a\nsitectl-generator: all fine\x1b[2J.toml"
	for _, err := range []error{
		&Error{File: name, Line: 1, Col: 1, Msg: "exec is missing"},
		&FileError{Path: name, Reason: "is a directory, not a regular file"},
	} {
		if msg := err.Error(); strings.ContainsAny(msg, "\n\x1b") || !strings.Contains(msg, `a\nsitectl-generator`) {
			t.Errorf("%q", msg)
		}
	}
}

// A file saved as UTF-16 is told so, not "invalid character at start of
// key: U+00FF".
func TestUTF16File(t *testing.T) {
	for _, bom := range []string{"\xff\xfe", "\xfe\xff"} {
		_, err := Parse("/etc/sitectl/sites/shop.toml", []byte(bom+"e\x00x\x00"))
		want := "/etc/sitectl/sites/shop.toml:1:1: the file is saved as UTF-16 (it starts with UTF-16's byte order mark), and a site file must be UTF-8: save it as UTF-8 (iconv -f UTF-16 -t UTF-8)"
		if err == nil || err.Error() != want {
			t.Errorf("%q: %v", bom, err)
		}
	}
}

// user = "root" is refused for what it is; it does not also make group
// "set but user is not".
func TestGroupWithRootUser(t *testing.T) {
	_, err := Parse("/etc/sitectl/sites/shop.toml", []byte("exec = [\"/bin/true\"]\nuser = \"root\"\ngroup = \"www-data\"\n[[listen]]\naddress = \"127.0.0.1:1\"\n"))
	want := "/etc/sitectl/sites/shop.toml:2:8: user root is refused: a site runs unprivileged (leave user out for a dynamic user)"
	if err == nil || err.Error() != want {
		t.Errorf("%v; want %s", err, want)
	}
	_, err = Parse("/etc/sitectl/sites/shop.toml", []byte("exec = [\"/bin/true\"]\ngroup = \"www-data\"\n[[listen]]\naddress = \"127.0.0.1:1\"\n"))
	if err == nil || !strings.Contains(err.Error(), "group is set but user is not") {
		t.Errorf("group without user: %v", err)
	}
}
