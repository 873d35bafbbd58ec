package modes

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/sitectl/sitectl/internal/site"
)

func testLoad(name string) (*site.Site, error) {
	if name != "karl" {
		return nil, fmt.Errorf("site %s does not exist", name)
	}
	return site.Parse("/etc/sitectl/sites/karl.toml", []byte("exec = [\"/bin/app\"]\n[[listen]]\naddress = \"127.0.0.1:1\"\n[modes.read-only]\n"))
}

type readWriter struct {
	io.Reader
	io.Writer
}

func ask(t *testing.T, st Store, caller Caller, req request) string {
	t.Helper()
	in, _ := json.Marshal(req)
	out := new(bytes.Buffer)
	Serve(readWriter{bytes.NewReader(in), out}, caller, st, testLoad)
	var resp response
	if err := json.Unmarshal(out.Bytes(), &resp); err != nil {
		t.Fatalf("answer %q: %v", out.String(), err)
	}
	return resp.Error
}

// The state service writes only what the site file allows, and records the
// uid the kernel gave, not one the caller claims.
func TestServeSwitchForADeployer(t *testing.T) {
	st := Store{Dir: t.TempDir()}
	dana := Caller{UID: 1001, PID: 77}
	for _, req := range []request{
		{Op: "prepare", Site: "karl"},
		{Op: "begin", Site: "karl", To: "read-only"},
		{Op: "set-mode", Site: "karl", Mode: "read-only"},
		{Op: "finish", Site: "karl", Result: ResultOK},
	} {
		if msg := ask(t, st, dana, req); msg != "" {
			t.Fatalf("%s: %s", req.Op, msg)
		}
	}
	state, _ := st.ReadState("karl")
	if len(state.History) != 1 || state.History[0].UID != 1001 || state.History[0].From != "normal" || state.PreviousMode != "normal" {
		t.Fatalf("state %+v", state)
	}
	env, _ := os.ReadFile(st.EnvPath("karl"))
	if !strings.Contains(string(env), `SITE_MODE="read-only"`) {
		t.Fatalf("mode file:\n%s", env)
	}
}

func TestServeRefusesWhatTheSiteFileDoesNotAllow(t *testing.T) {
	st := Store{Dir: t.TempDir()}
	caller := Caller{UID: 1001}
	for _, c := range []struct {
		req  request
		want string
	}{
		{request{Op: "set-mode", Site: "karl", Mode: "party"}, `site karl has no mode "party"`},
		{request{Op: "begin", Site: "karl", To: "party"}, `site karl has no mode "party"`},
		{request{Op: "set-mode", Site: "../etc", Mode: "normal"}, "is not valid"},
		{request{Op: "set-mode", Site: "other", Mode: "normal"}, "does not exist"},
		{request{Op: "finish", Site: "karl", Result: "ok"}, "no switch in progress"},
		{request{Op: "finish", Site: "karl", Result: "hacked"}, "is not a result"},
		{request{Op: "rm", Site: "karl"}, "unknown operation"},
	} {
		if msg := ask(t, st, caller, c.req); !strings.Contains(msg, c.want) {
			t.Errorf("%+v: %q, want %q", c.req, msg, c.want)
		}
	}
	if _, err := os.Stat(st.EnvPath("karl")); err == nil {
		t.Errorf("a refused request wrote a mode file")
	}
}
