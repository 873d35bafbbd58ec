package modes

import (
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sitectl/sitectl/internal/site"
)

func parsedSite(t *testing.T, name, src string) *site.Site {
	t.Helper()
	s, err := site.Parse("/etc/sitectl/sites/"+name+".toml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// The record says the listeners each site's units were generated with,
// read back as they were written.
func TestGeneratedRoundTrip(t *testing.T) {
	web := parsedSite(t, "web", "exec = [\"/bin/app\"]\n[[listen]]\naddress = \"127.0.0.1:8080\"\n[[listen]]\npath = \"/run/web.sock\"\nname = \"admin\"\n")
	api := parsedSite(t, "api", "exec = [\"/bin/app\"]\n[[listen]]\naddress = \"[::]:9000\"\n")
	got, err := DecodeGenerated(EncodeGenerated([]*site.Site{web, api}, nil))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || len(got["web"]) != 2 || !site.SameListener(got["web"][0], web.Listeners[0]) ||
		!site.SameListener(got["web"][1], web.Listeners[1]) || !site.SameListener(got["api"][0], api.Listeners[0]) {
		t.Errorf("read back %+v", got)
	}
	for _, bad := range []string{"", "{", `{"version":2,"sites":{}}`, `{"version":1,"sites":{"x":[{"kind":"udp","endpoint":"1"}]}}`} {
		if _, err := DecodeGenerated([]byte(bad)); err == nil {
			t.Errorf("%q read as a record", bad)
		}
	}
}

// A site whose units had a listener at the generator's last run holds it,
// though its service never started (it has no last good copy); a site
// whose units did not have it does not, however its file is named. A
// record that cannot be read leaves the last good copies to decide.
func TestHoldersFromTheRecord(t *testing.T) {
	st := Store{Dir: t.TempDir()}
	web := parsedSite(t, "web", "exec = [\"/bin/app\"]\n[[listen]]\naddress = \"127.0.0.1:8080\"\n")
	api := parsedSite(t, "api", "exec = [\"/bin/app\"]\n[[listen]]\naddress = \"127.0.0.1:9000\"\n")
	if err := st.WriteGenerated([]*site.Site{web, api}); err != nil {
		t.Fatal(err)
	}
	// api edited onto web's listener.
	edited := parsedSite(t, "api", "exec = [\"/bin/app\"]\n[[listen]]\naddress = \"127.0.0.1:8080\"\n")
	held := st.Holders()
	if !held(web, web.Listeners) {
		t.Error("web, generated with 127.0.0.1:8080, does not hold it")
	}
	if held(edited, edited.Listeners) {
		t.Error("api, generated with 127.0.0.1:9000, holds 127.0.0.1:8080")
	}
	// As the generator loads the directory: api, earlier by name, gets
	// the error; web keeps its listener.
	dir := t.TempDir()
	for name, src := range map[string]string{
		"web": "exec = [\"/bin/app\"]\n[[listen]]\naddress = \"127.0.0.1:8080\"\n",
		"api": "exec = [\"/bin/app\"]\n[[listen]]\naddress = \"127.0.0.1:8080\"\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name+".toml"), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	res, err := site.LoadDir(dir, st.Holders())
	if err != nil || len(res.Sites) != 1 || res.Sites[0].Name != "web" || len(res.Errors) != 1 || filepath.Base(res.Errors[0].File) != "api.toml" {
		t.Errorf("LoadDir: %v; sites %v, errors %v", err, res.Sites, res.Errors)
	}

	if err := os.WriteFile(filepath.Join(st.Dir, "generated-listeners.json"), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if st.Holders()(web, web.Listeners) {
		t.Error("a damaged record holds")
	}
}

// The generator runs at every daemon-reload: a record that says what it
// would write is not written again.
func TestWriteGeneratedOnlyWhenItChanges(t *testing.T) {
	st := Store{Dir: filepath.Join(t.TempDir(), "state")} // not there yet: created
	web := parsedSite(t, "web", "exec = [\"/bin/app\"]\n[[listen]]\naddress = \"127.0.0.1:8080\"\n")
	if err := st.WriteGenerated([]*site.Site{web}); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(st.Dir, "generated-listeners.json")
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != FileMode {
		t.Fatalf("%v %v", fi, err)
	}
	if di, err := os.Stat(st.Dir); err != nil || di.Mode().Perm() != DirMode {
		t.Fatalf("state directory %v %v", di, err)
	}
	if err := st.WriteGenerated([]*site.Site{web}); err != nil {
		t.Fatal(err)
	}
	if fi2, _ := os.Stat(path); !os.SameFile(fi, fi2) {
		t.Error("an unchanged record was written again")
	}
	api := parsedSite(t, "api", "exec = [\"/bin/app\"]\n[[listen]]\naddress = \"127.0.0.1:9000\"\n")
	if err := st.WriteGenerated([]*site.Site{web, api}); err != nil {
		t.Fatal(err)
	}
	if fi3, _ := os.Stat(path); os.SameFile(fi, fi3) {
		t.Error("a changed record was not written")
	}
}

// The record keeps the content of each file whose units the generator
// wrote; for a site whose units come from its last good copy, the
// content recorded before; nothing of a site gone; and no more than
// maxSources in all, by name.
func TestGeneratedSources(t *testing.T) {
	st := Store{Dir: t.TempDir()}
	load := func(name, src string) *site.Site {
		r := site.LoadBytes("/etc/sitectl/sites/"+name+".toml", name, []byte(src), nil)
		if len(r.Sites) != 1 {
			t.Fatal(r.Errors)
		}
		return r.Sites[0]
	}
	web1 := "exec = [\"/bin/app\"]\n[[listen]]\naddress = \"127.0.0.1:8080\"\n"
	api1 := "exec = [\"/bin/app\"]\n[[listen]]\naddress = \"127.0.0.1:9000\"\n"
	if err := st.WriteGenerated([]*site.Site{load("web", web1), load("api", api1)}); err != nil {
		t.Fatal(err)
	}
	if got, err := st.GeneratedSources(); err != nil || len(got) != 2 || got["web"] != web1 || got["api"] != api1 {
		t.Fatalf("sources %q, %v", got, err)
	}
	// web's file has a mistake: its units come from its copy, which
	// says another version; api is gone.
	copied := site.LoadCopy(st.paths().LastGoodFile("web"), "web", []byte("exec = [\"/bin/other\"]\n[[listen]]\naddress = \"127.0.0.1:8080\"\n"))
	if err := st.WriteGenerated(copied.Sites); err != nil {
		t.Fatal(err)
	}
	if got, err := st.GeneratedSources(); err != nil || len(got) != 1 || got["web"] != web1 {
		t.Errorf("after web ran from its copy and api was removed: %q, %v; want web's file as recorded before", got, err)
	}
	// A record of a sitectl that kept no content has none.
	if err := os.WriteFile(st.paths().GeneratedListenersFile(), []byte(`{"version":1,"sites":{"web":[]}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, err := st.GeneratedSources(); err != nil || len(got) != 0 {
		t.Errorf("an older record: %q, %v", got, err)
	}

	big := strings.Repeat("#", maxSources/3-100) + "\n" + web1
	sites := []*site.Site{load("d", big), load("c", big), load("a", big), load("b", big)}
	got := st.sources(sites, nil, os.ErrNotExist)
	if len(got) != 3 || got["a"] == "" || got["b"] == "" || got["c"] == "" {
		t.Errorf("sources beyond the bound: kept %v; want a, b and c, by name", slices.Sorted(maps.Keys(got)))
	}

}
