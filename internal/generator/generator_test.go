package generator

import (
	"fmt"
	"strings"
	"testing"

	"github.com/sitectl/sitectl/internal/paths"
	"github.com/sitectl/sitectl/internal/site"
	"github.com/sitectl/sitectl/internal/units"
)

// A site whose units would say something else than its file (here because
// the state directory holds a line break, which would start a unit line of
// its own) is skipped with a positioned error.
func TestCheckedSkipsUnitsThatWouldNotSayWhatTheFileSays(t *testing.T) {
	s, err := site.Parse("/etc/sitectl/sites/karl.toml", []byte("exec = [\"/bin/app\"]\nlisten = [{ address = \"127.0.0.1:8080\" }]\n"))
	if err != nil {
		t.Fatal(err)
	}
	res := Checked(site.Result{Sites: []*site.Site{s}}, units.Options{})
	if len(res.Sites) != 1 || len(res.Errors) != 0 {
		t.Fatalf("default options: %+v", res)
	}
	for _, dir := range []string{"/var/lib/x\nExecStartPre=/bin/evil", "/var/lib/x\r"} {
		res := Checked(site.Result{Sites: []*site.Site{s}}, units.Options{Dirs: paths.Dirs{State: dir}})
		if len(res.Sites) != 0 || len(res.Errors) != 1 || !strings.HasPrefix(res.Errors[0].Error(), "/etc/sitectl/sites/karl.toml:1:1: site-karl.service would not say what the site file says") {
			t.Errorf("state dir %q: %+v %v", dir, res.Sites, res.Errors)
		}
	}
}

// The log groups each skipped file's mistakes with the line that says so.
func TestMistakesAreGroupedByFile(t *testing.T) {
	errs := site.Errors{
		{File: "a.toml", Line: 1, Col: 1, Msg: "one"}, {File: "b.toml", Line: 2, Col: 3, Msg: "two"}, {File: "a.toml", Line: 4, Col: 5, Msg: "three"},
	}
	lines, n := Mistakes(errs, nil)
	want := []string{"a.toml:1:1: one", "a.toml:4:5: three", "a.toml: site skipped: no units generated for it", "b.toml:2:3: two", "b.toml: site skipped: no units generated for it"}
	if n != 2 || strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Errorf("got %d files:\n%s", n, strings.Join(lines, "\n"))
	}
}

// BenchmarkChecked1000 reads back the units of 1000 sites, as the generator
// does at every daemon-reload on a host with 1000 sites.
//
//	go test -run '^$' -bench Checked1000 ./internal/generator
func BenchmarkChecked1000(b *testing.B) {
	var sites []*site.Site
	for i := 0; i < 1000; i++ {
		s, err := site.Parse(fmt.Sprintf("/etc/sitectl/sites/s%04d.toml", i), []byte(fmt.Sprintf(
			"exec = [\"/usr/local/bin/app\", \"--port\", \"%d\"]\nreadiness = \"notify\"\nreload_trigger = \"/srv/s/restart.txt\"\n[[listen]]\naddress = \"127.0.%d.%d:8080\"\n[modes.read-only]\nenvironment = { RO = \"1\" }\n",
			i, 1+i/250, 1+i%250)))
		if err != nil {
			b.Fatal(err)
		}
		sites = append(sites, s)
	}
	b.ResetTimer()
	for b.Loop() {
		if res := Checked(site.Result{Sites: sites}, units.Options{}); len(res.Errors) != 0 {
			b.Fatal(res.Errors)
		}
	}
}
