//go:build integration

package integration

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sitectl/sitectl/internal/modes"
)

// trickyValues are environment values full of what quoting gets wrong:
// the characters systemd's EnvironmentFile= parser treats specially in
// double quotes (\ " ` $), the ones a shell would (' % # ; =), escapes that
// must stay literal (\n is a backslash and an n), and space at both ends.
var trickyValues = []string{
	`back\slash`,
	`"double" quotes`,
	"`tick` and $HOME and ${HOME} and $$",
	`'single' quotes`,
	`100% and %n %% specifiers`,
	`# not a comment ; nor this`,
	`a=b=c`,
	`\n\t\\ are not escapes here`,
	`\"\$\` + "`" + `\\ escaped already`,
	`trailing backslash\`,
	"  spaces at both ends  ",
	"a\ttab",
	"ünïcödé €",
	"",
	"bell\x07esc\x1b[0mdel\x7fsoh\x01",
	"vt\x0bff\x0c",
}

// The mode file sitectl writes reaches the app exactly: through systemd's
// EnvironmentFile= (restart handoff: systemd parses the file) and through
// sitectl's own reader (overlap: the launcher reads it for each generation).
func TestModeEnvironmentReachesTheAppExactly(t *testing.T) {
	var env []string
	for i, v := range trickyValues {
		env = append(env, fmt.Sprintf("TRICKY_%d = %s", i, tomlString(v)))
	}
	mode := "\n[modes.tricky]\nenvironment = { " + strings.Join(env, ", ") + " }\n"
	pr, po := freePort(t), freePort(t)
	h := newHost(t, map[string]string{
		"restart": goSite(pr, mode),
		"overlap": goSite(po, "handoff = \"overlap\"\n"+mode),
	})
	h.run("systemctl", "start", "site-restart.socket", "site-overlap.socket")
	for name, port := range map[string]int{"restart": pr, "overlap": po} {
		base := fmt.Sprintf("http://127.0.0.1:%d", port)
		getReply(t, base+"/")
		if r, code, stderr := h.mode(name, "tricky"); code != 0 {
			t.Fatalf("%s: switch to tricky: exit %d %+v %s", name, code, r, stderr)
		}
		if m := getReply(t, base+"/").Mode; m != "tricky" {
			t.Fatalf("%s: serves mode %q after the switch", name, m)
		}
		for i, want := range trickyValues {
			got, ok := envOfApp(t, base, fmt.Sprintf("TRICKY_%d", i))
			if !ok || got != want {
				t.Errorf("%s: TRICKY_%d reached the app as %q (set: %v), want %q", name, i, got, ok, want)
			}
		}
	}
	t.Logf("mode file:\n%s", h.run("cat", "/var/lib/sitectl/sites/restart/mode.env"))
}

// envOfApp asks the test app for one variable of its environment.
func envOfApp(t *testing.T, base, name string) (string, bool) {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(base + "/env?name=" + url.QueryEscape(name))
	if err != nil {
		t.Fatalf("GET /env?name=%s: %v", name, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return string(body), resp.StatusCode == 200
}

// envFiles are hand-written environment files in every syntax systemd's
// parser knows, for TestEnvFileReaderIsSystemds.
var envFiles = []string{
	"A=1\nB=2\n",
	"  A = spaced value  \n",
	"A=\"  kept  \"\n",
	`A="\"\\` + "\\`" + `\$"`,
	`A="\n\t\x"`,
	`A=\n\"x`,
	"A='$HOME \\ \"'",
	`A="a"'b'c"d"`,
	"A=one \\\ntwo\n",
	"A=\"one \\\ntwo\"\n",
	"A=\"multi\nline\"\n",
	"# A=1\n; B=2\n#C=3 \\\nD=4\nE=5",
	"A=1 # not a comment\n",
	"NOEQUALS\nA=1\n",
	"A=\nB",
	"A=1\nB=2\nA=3\n",
	"1A=x\nA-B=y\nOK=z\n",
	"A=\"unterminated",
	"A=$HOME%n",
	"A=1\r\nB=2\r\n",
	"A=x\x00B=y\n",
	"A=\"tab\there\"",
	"A=\"ctl \x01\x1b\x7f\"",
	"A=\xff\n",
}

// sitectl's reader of the mode file (modes.ParseEnv) reads every file as
// systemd 252's EnvironmentFile= does: each file above goes to a unit that
// prints its environment, and the variables it got are compared with what
// ParseEnv reads. A file systemd refuses must be an error for ParseEnv.
func TestEnvFileReaderIsSystemds(t *testing.T) {
	h := newHost(t, nil)
	keys := []string{"A", "B", "C", "D", "E", "OK"}
	for i, content := range envFiles {
		dir := "/run/envprobe"
		h.writeFile(fmt.Sprintf("%s/%d.env", dir, i), content, 0o644)
		h.writeFile(fmt.Sprintf("/etc/systemd/system/envprobe%d.service", i), fmt.Sprintf(`[Service]
Type=oneshot
EnvironmentFile=%[1]s/%[2]d.env
ExecStart=/usr/bin/env -0
StandardOutput=file:%[1]s/%[2]d.out
`, dir, i), 0o644)
	}
	h.run("systemctl", "daemon-reload")
	for i, content := range envFiles {
		unit := fmt.Sprintf("envprobe%d.service", i)
		_, startErr := h.try("systemctl", "start", unit)
		ours, parseErr := modes.ParseEnv([]byte(content))
		if (startErr != nil) != (parseErr != nil) {
			t.Errorf("%q: systemd's start: %v; ParseEnv: %v", content, startErr, parseErr)
			continue
		}
		if startErr != nil {
			continue
		}
		out := h.run("cat", fmt.Sprintf("/run/envprobe/%d.out", i))
		var theirs, mine []string
		for _, kv := range strings.Split(out, "\x00") {
			if k, _, _ := strings.Cut(kv, "="); slices.Contains(keys, k) {
				theirs = append(theirs, kv)
			}
		}
		for _, v := range ours {
			mine = append(mine, v.Name+"="+v.Value)
		}
		slices.Sort(theirs)
		slices.Sort(mine)
		if !slices.Equal(theirs, mine) {
			t.Errorf("%q: systemd passes %q, ParseEnv reads %q", content, theirs, mine)
		}
	}
}
