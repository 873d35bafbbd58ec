package generator

import (
	"strings"
	"testing"

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
		res := Checked(site.Result{Sites: []*site.Site{s}}, units.Options{StateDir: dir})
		if len(res.Sites) != 0 || len(res.Errors) != 1 || !strings.HasPrefix(res.Errors[0].Error(), "/etc/sitectl/sites/karl.toml:1:1: site-karl.service would not say what the site file says") {
			t.Errorf("state dir %q: %+v %v", dir, res.Sites, res.Errors)
		}
	}
}
