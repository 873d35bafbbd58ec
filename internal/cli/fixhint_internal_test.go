package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/sitectl/sitectl/internal/paths"
)

// TestFixHintCommandWorks: the hint a verb gives for a site file with
// mistakes names a sitectl check that runs, and reports those mistakes,
// not one that is refused for want of a file ("sitectl check takes at
// least one site file"). Both the file's own mistakes (restart) and its
// mistakes against the other sites (enable: a listener another site
// keeps) are tried.
func TestFixHintCommandWorks(t *testing.T) {
	config, state := t.TempDir(), t.TempDir()
	write := func(name, text string) {
		if err := os.WriteFile(filepath.Join(config, name+".toml"), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("karl", "exec = [\"/usr/bin/app\"]\ndrain_timout = \"5s\"\n[[listen]]\naddress = \"127.0.0.1:8001\"\n")
	write("anna", "exec = [\"/usr/bin/app\"]\n[[listen]]\naddress = \"127.0.0.1:8002\"\n")
	write("zoe", "exec = [\"/usr/bin/app\"]\n[[listen]]\naddress = \"127.0.0.1:8002\"\n")
	hint := regexp.MustCompile("check with `(sitectl [^`]*)`")
	var hints []string
	var stdout, stderr bytes.Buffer
	if code := Main([]string{"--config-dir", config, "--state-dir", state, "restart", "karl"}, &stdout, &stderr); code != exitUsage {
		t.Errorf("sitectl restart karl: exit %d\n%s", code, stderr.String())
	}
	hints = append(hints, stderr.String())
	// enable asks systemd first; its refusal is the env's.
	e := &env{dirs: paths.Dirs{Config: config, State: state}}
	s, err := e.loadSite("zoe")
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.enable(context.Background(), nil, s)
	if codeOf(err) != exitUsage {
		t.Errorf("enable zoe: %v (exit %d)", err, codeOf(err))
	}
	hints = append(hints, strings.Join(hintsOf(err), "\n"))
	for i, name := range []string{"karl", "zoe"} {
		m := hint.FindStringSubmatch(hints[i])
		if m == nil {
			t.Errorf("site %s: no hint to check the file:\n%s", name, hints[i])
			continue
		}
		stdout.Reset()
		stderr.Reset()
		code := Main(strings.Fields(m[1])[1:], &stdout, &stderr)
		if code != exitUsage || !strings.Contains(stderr.String()+stdout.String(), filepath.Join(config, name+".toml")+":") {
			t.Errorf("site %s: the hint `%s` exits %d without the file's mistakes:\n%s%s", name, m[1], code, stdout.String(), stderr.String())
		}
	}
}
