package site

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"
)

// Every loader that reads a site file gives the site the digest of the
// bytes it parsed; sitectl list's loader, for a site it takes from its
// cache without reading the file, gives none.
func TestLoadersSetTheDigestOfWhatTheyRead(t *testing.T) {
	dir := t.TempDir()
	content := map[string]string{
		"a": "exec = [\"/bin/a\"]\n[[listen]]\naddress = \"127.0.0.1:8001\"\n",
		"b": "exec = [\"/bin/b\"]\n[[listen]]\naddress = \"127.0.0.1:8002\"\n",
	}
	want := map[string]string{}
	var files []string
	for name, c := range content {
		p := filepath.Join(dir, name+".toml")
		if err := os.WriteFile(p, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256([]byte(c))
		want[p] = hex.EncodeToString(sum[:])
		files = append(files, p)
	}
	check := func(what string, sites []*Site) {
		t.Helper()
		if len(sites) != len(want) {
			t.Fatalf("%s: %d sites, want %d", what, len(sites), len(want))
		}
		for _, s := range sites {
			if s.Digest != want[s.File] {
				t.Errorf("%s: %s has digest %q, want %q", what, s.File, s.Digest, want[s.File])
			}
		}
	}
	res, err := LoadDir(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	check("LoadDir", res.Sites)
	check("LoadFiles", LoadFiles(files, nil, nil, nil).Sites)
	var one []*Site
	for _, p := range files {
		one = append(one, LoadBytes(p, NameFromFile(p), []byte(content[NameFromFile(p)]), nil).Sites...)
	}
	check("LoadBytes", one)

	// Read by LoadDirReusing when the cache has nothing: the digest.
	res, _, err = LoadDirReusing(dir, func(string, FileID) *Site { return nil }, nil)
	if err != nil {
		t.Fatal(err)
	}
	check("LoadDirReusing, read", res.Sites)
	// Given by the cache: not read, so none.
	res, _, err = LoadDirReusing(dir, func(name string, _ FileID) *Site {
		s, err := ParseNamed(filepath.Join(dir, name), NameFromFile(name), []byte(content[NameFromFile(name)]))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range res.Sites {
		if s.Digest != "" {
			t.Errorf("LoadDirReusing gave %s from the cache with digest %q", s.File, s.Digest)
		}
	}
}
