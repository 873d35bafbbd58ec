package cli

import (
	"strings"
	"testing"

	"github.com/sitectl/sitectl/internal/paths"
	"github.com/sitectl/sitectl/internal/site"
	"github.com/sitectl/sitectl/internal/unitfile"
	"github.com/sitectl/sitectl/internal/units"
)

// Every sitectl command line the generated units run from a valid site file
// is accepted by sitectl's own flag checks: a timeout the site file allows
// (any whole number of milliseconds up to a day, and --budget, the sum of
// two of them) must not make the site's service fail to start or its
// ExecStopPost= fail at every stop.
func TestRenderedCommandLinesAreAccepted(t *testing.T) {
	files := map[string]string{
		"short": `exec = ["/bin/sleep", "1000"]
handoff = "overlap"
readiness = "notify"
drain_timeout = "1ms"
stop_timeout = "500ms"
start_timeout = "999ms"
settle_time = "1ms"
cleanup_timeout = "250ms"
keep_previous = "1ms"
[[listen]]
address = "127.0.0.1:18001"
[probe]
path = "/"
timeout = "500ms"
`,
		"long": `exec = ["/bin/sleep", "1000"]
handoff = "overlap"
drain_timeout = "24h"
stop_timeout = "24h"
start_timeout = "24h"
cleanup_timeout = "24h"
keep_previous = "24h"
[[listen]]
address = "127.0.0.1:18002"
[probe]
path = "/"
timeout = "24h"
`,
	}
	for name, text := range files {
		s, err := site.ParseNamed("/etc/sitectl/sites/"+name+".toml", name, []byte(text))
		if err != nil {
			t.Fatalf("%s: the site file is not valid: %v", name, err)
		}
		opts := units.Options{Dirs: paths.Dirs{Config: "/etc/sitectl/sites", State: "/var/lib/sitectl"}}
		lines := 0
		for _, u := range units.Render(s, opts) {
			as, err := unitfile.Parse(u.Content)
			if err != nil {
				t.Fatalf("%s: %v", u.Name, err)
			}
			for _, a := range as {
				if !strings.HasPrefix(a.Key, "Exec") {
					continue
				}
				_, argv, err := unitfile.DecodeCommand(a.Value)
				if err != nil {
					t.Fatalf("%s: %s=%s: %v", u.Name, a.Key, a.Value, err)
				}
				if len(argv) == 0 || argv[0] != "/usr/bin/sitectl" {
					continue
				}
				lines++
				root, ran, stderr := stubbed(t)
				if code := exitOf(root, argv[1:]); code != exitOK || len(*ran) != 1 {
					t.Errorf("%s: %s=%s: exit %d, ran %v: %s", u.Name, a.Key, a.Value, code, *ran, stderr.String())
				}
			}
		}
		if lines < 4 { // prepare, launch, launch --reload, cleanup
			t.Errorf("%s: only %d sitectl command lines in its units", name, lines)
		}
	}
}
