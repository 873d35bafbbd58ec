package site

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// BenchmarkLoadDir1000 reads a directory of 1000 site files, as the
// generator and sitectl list do on a host with 1000 sites.
//
//	go test -run '^$' -bench LoadDir ./site
func BenchmarkLoadDir1000(b *testing.B) {
	dir := b.TempDir()
	for i := 0; i < 1000; i++ {
		content := fmt.Sprintf("exec = [\"/usr/local/bin/app\"]\nreadiness = \"notify\"\n[[listen]]\naddress = \"127.0.%d.%d:8080\"\n[modes.read-only]\nenvironment = { RO = \"1\" }\n", 1+i/250, 1+i%250)
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("s%04d.toml", i)), []byte(content), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for b.Loop() {
		res, err := LoadDir(dir, nil)
		if err != nil || len(res.Sites) != 1000 || len(res.Errors) != 0 {
			b.Fatalf("%v: %d sites, %d errors", err, len(res.Sites), len(res.Errors))
		}
	}
}

// BenchmarkParseLargestFile parses a site file of nearly MaxFileSize made of
// the smallest values ("" in exec), the worst case of values per byte: the
// generator and check must not take long over any file ReadFile accepts.
// Positions were once found by counting lines from the start of the file
// for every value, which took about 10 s for this file (at 1 MiB).
//
//	go test -run '^$' -bench ParseLargestFile ./internal/site
func BenchmarkParseLargestFile(b *testing.B) {
	var buf strings.Builder
	buf.WriteString("exec = [\"/bin/sh\"")
	for buf.Len() < MaxFileSize-100 {
		buf.WriteString(",\"\"")
	}
	buf.WriteString("]\n[[listen]]\naddress = \"127.0.0.1:1\"\n")
	data := []byte(buf.String())
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := Parse("/etc/sitectl/sites/big.toml", data); err != nil {
			b.Fatal(err)
		}
	}
}

// worstShapes are site files of nearly MaxFileSize bytes in the shapes
// that once cost the most time to parse: many keys in one table (go-toml
// compares each key with every one before it), many listeners (every
// pair was compared) and many unknown keys (each a mistake with the list
// of known keys). Each is refused, or accepted, in a few milliseconds.
func worstShapes() map[string][]byte {
	fill := func(head, format string) []byte {
		var b strings.Builder
		b.WriteString(head)
		for i := 0; ; i++ {
			line := fmt.Sprintf(format, i, i/250%250, i%250)
			if b.Len()+len(line) > MaxFileSize {
				return []byte(b.String())
			}
			b.WriteString(line)
		}
	}
	const site = "exec = [\"/bin/true\"]\n[[listen]]\naddress = \"127.0.0.1:1\"\n"
	return map[string][]byte{
		"environment": fill(site+"[environment]\n", "V%[1]d=\"\"\n"),
		"listeners":   fill("exec = [\"/bin/true\"]\n", "[[listen]]\naddress=\"127.%[2]d.%[3]d.1:80\"\n"),
		"unknown":     fill(site+"[hardening]\n", "k%[1]d=1\n"),
		"listeners at the limit": func() []byte {
			var b strings.Builder
			b.WriteString("exec = [\"/bin/true\"]\n")
			for i := 0; i < MaxListeners; i++ {
				fmt.Fprintf(&b, "[[listen]]\npath = \"/run/s/%d.sock\"\nname = \"n%d\"\n", i, i%2)
			}
			return []byte(b.String())
		}(),
	}
}

// BenchmarkParseWorstShapes parses each of worstShapes.
//
//	go test -run '^$' -bench ParseWorstShapes ./internal/site
func BenchmarkParseWorstShapes(b *testing.B) {
	for name, data := range worstShapes() {
		b.Run(strings.ReplaceAll(name, " ", "-"), func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				Parse("/etc/sitectl/sites/big.toml", data)
			}
		})
	}
}
