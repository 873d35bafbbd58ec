package flow

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sitectl/sitectl/internal/modes"
	"github.com/sitectl/sitectl/internal/site"
	"github.com/sitectl/sitectl/internal/sockheld"
	"github.com/sitectl/sitectl/internal/units"
)

func mustSite(t *testing.T, file, text string) *site.Site {
	t.Helper()
	r := site.LoadBytes(file, "shop", []byte(text), nil)
	if len(r.Errors) > 0 {
		t.Fatal(r.Errors)
	}
	return r.Sites[0]
}

// Only what a site's units say needs a full restart: not where the file
// was read from, not its modes (a handover renders the mode afresh).
func TestFullRestartReason(t *testing.T) {
	const base = "exec = [\"/bin/app\"]\ndrain_timeout = \"10s\"\n[[listen]]\naddress = \"127.0.0.1:8080\"\n"
	running := mustSite(t, "/var/lib/sitectl/sites/shop/last-good.toml", base+"[modes.ro]\nenvironment = { RO = \"1\" }\n")
	for _, tc := range []struct{ name, now, want string }{
		{"same", base + "[modes.ro]\nenvironment = { RO = \"1\" }\n", ""},
		{"a mode changed", base + "[modes.ro]\nenvironment = { RO = \"2\" }\n", ""},
		{"handoff", "handoff = \"overlap\"\n" + base, "handoff changed since the service started, which a handover inside it cannot apply: restarting fully"},
		{"keep_previous", "handoff = \"overlap\"\nkeep_previous = \"1m\"\n" + base, "handoff, keep_previous changed since the service started, which a handover inside it cannot apply: restarting fully"},
		{"listener and timeout", "exec = [\"/bin/app\"]\ndrain_timeout = \"7s\"\n[[listen]]\naddress = \"127.0.0.1:8081\"\n", "listen, drain_timeout changed since the service started, which a handover inside it cannot apply: restarting fully"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			now := mustSite(t, "/etc/sitectl/sites/shop.toml", tc.now)
			if got := FullRestartReason(running, now, units.Options{}); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
	if got := FullRestartReason(nil, running, units.Options{}); got != "" {
		t.Errorf("without a copy: %q", got)
	}
}

// A site whose active socket unit holds no socket is not restarted: the
// app would start without LISTEN_FDS. The error says the exact command,
// and nothing was recorded.
func TestSocketLostRefusesAndSaysTheCommand(t *testing.T) {
	e, f := newEnv(t)
	s := testSite(t)
	e.SocketsMissing = func(*site.Site) ([]string, error) { return []string{"127.0.0.1:8080"}, nil }
	_, err := Restart(context.Background(), e, s, time.Minute)
	if !errors.Is(err, ErrSocketLost) || !strings.Contains(err.Error(), "run `systemctl restart site-karl.socket`") {
		t.Fatalf("err = %v", err)
	}
	if len(f.restarts) != 0 {
		t.Errorf("restarted anyway: %v", f.restarts)
	}
	if st, _ := e.Store.ReadState("karl"); len(st.History) != 0 || st.Pending != nil {
		t.Errorf("recorded: %+v", st)
	}
	e.SocketsMissing = func(*site.Site) ([]string, error) { return nil, nil }
	if _, err := Restart(context.Background(), e, s, time.Minute); err != nil || len(f.restarts) != 1 {
		t.Errorf("with its sockets held: %v, restarts %v", err, f.restarts)
	}
}

// A named listener has a socket unit of its own: its socket is lost only
// when that unit is active (an inactive one opens it when the service
// starts it), and the refusal names that unit.
func TestSocketLostOfANamedListener(t *testing.T) {
	e, f := newEnv(t)
	s, err := site.Parse("/etc/sitectl/sites/karl.toml", []byte("exec = [\"/bin/app\"]\n[[listen]]\naddress = \"127.0.0.1:8080\"\n[[listen]]\nname = \"admin\"\naddress = \"127.0.0.1:8081\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	e.SocketsMissing = func(*site.Site) ([]string, error) { return []string{"127.0.0.1:8081"}, nil }
	f.socketStates = map[string]string{"site-karl@admin.socket": "inactive"}
	if _, err := Restart(context.Background(), e, s, time.Minute); err != nil || len(f.restarts) != 1 {
		t.Errorf("the named listener's socket unit inactive: %v, restarts %v", err, f.restarts)
	}
	f.socketStates = nil
	_, err = Restart(context.Background(), e, s, time.Minute)
	if !errors.Is(err, ErrSocketLost) || !strings.Contains(err.Error(), "although site-karl@admin.socket is active") {
		t.Errorf("the named listener's socket unit active: %v", err)
	}
}

// When the sockets cannot be checked (a table any local user can make too
// large to read), the change goes on without the check, and says so:
// refusing would let anyone stop every change.
func TestSocketsUnknownDoNotStopAChange(t *testing.T) {
	e, f := newEnv(t)
	var said []string
	e.Progress = func(format string, args ...any) { said = append(said, fmt.Sprintf(format, args...)) }
	e.SocketsMissing = func(*site.Site) ([]string, error) {
		return nil, fmt.Errorf("/proc/1/net/unix is larger than 16777216 bytes: %w", sockheld.ErrUnknown)
	}
	if _, err := Restart(context.Background(), e, testSite(t), time.Minute); err != nil || len(f.restarts) != 1 {
		t.Fatalf("restart with the sockets unknown: %v, restarts %v", err, f.restarts)
	}
	if !strings.Contains(strings.Join(said, "\n"), "going on without that check") {
		t.Errorf("nothing said of the check: %q", said)
	}
}

// A site taken out of service is not changed: starting its service would
// start its sockets and put it back in service, which only enable does.
func TestOutOfServiceSiteIsNotChanged(t *testing.T) {
	e, f := newEnv(t)
	s := testSite(t)
	if _, err := e.Store.SetOutOfService(s.Name, true, 0); err != nil {
		t.Fatal(err)
	}
	for _, change := range []func() error{
		func() error { _, err := Restart(context.Background(), e, s, time.Minute); return err },
		func() error {
			_, err := SwitchMode(context.Background(), e, s, "normal", Options{Force: true})
			return err
		},
	} {
		if err := change(); !errors.Is(err, ErrOutOfService) || !strings.Contains(err.Error(), "nothing was done") {
			t.Errorf("a change of a site out of service: %v", err)
		}
	}
	if len(f.restarts) != 0 {
		t.Errorf("restarted: %v", f.restarts)
	}
	if st, _ := e.Store.ReadState(s.Name); len(st.History) != 0 || st.Pending != nil {
		t.Errorf("recorded: %+v", st)
	}
}

// reloadingSystemd is fakeSystemd with units older than the site file,
// until a daemon-reload.
type reloadingSystemd struct {
	*fakeSystemd
	stale   bool
	reloads int
}

func (r *reloadingSystemd) NeedDaemonReload(context.Context, string) (bool, error) {
	return r.stale, nil
}

func (r *reloadingSystemd) DaemonReload(context.Context) error {
	r.reloads++
	r.stale = false
	return nil
}

// A listener changed in the file: the daemon-reload of a full restart
// makes systemd close the old sockets, so they are checked again after
// it, and the restart is refused while the old process still serves on
// its copies. The command to run says to reload the units first while
// they are older than the file.
func TestSocketsCheckedAgainAfterTheFlowsDaemonReload(t *testing.T) {
	e, f := newEnv(t)
	s := testSite(t)
	s.Handoff = site.HandoffOverlap
	r := &reloadingSystemd{fakeSystemd: f, stale: true}
	e.Systemd = r
	started := *s
	started.Listeners = []site.Listener{{Kind: site.TCP, Address: "127.0.0.1:9999", Name: "http"}}
	e.Started = func(string) (*site.Site, error) { return &started, nil }
	e.SocketsMissing = func(*site.Site) ([]string, error) {
		if r.reloads > 0 {
			return []string{"127.0.0.1:8080"}, nil
		}
		return nil, nil
	}
	_, err := e.fullRestartNeeded(context.Background(), s)
	if !errors.Is(err, ErrSocketLost) || r.reloads != 1 {
		t.Fatalf("after the daemon-reload: %v (%d reloads)", err, r.reloads)
	}
	if strings.Contains(err.Error(), "daemon-reload &&") {
		t.Errorf("units just reloaded, yet the command reloads them: %v", err)
	}
	r.stale = true
	err = e.socketsHeld(context.Background(), s)
	if !errors.Is(err, ErrSocketLost) || !strings.Contains(err.Error(), "run `systemctl daemon-reload && systemctl restart site-karl.socket`") {
		t.Errorf("stale units: %v", err)
	}
}

// failingFinish is a Writer whose Finish fails: a full or read-only /var.
type failingFinish struct{ modes.Writer }

func (failingFinish) Finish(*site.Site, string, string) error {
	return errors.New("no space left on device")
}

// A switch that succeeded but could not be written to the history says
// what was observed and what was not recorded, with the error.
func TestOKWhoseHistoryCouldNotBeWritten(t *testing.T) {
	e, _ := newEnv(t)
	e.Writer = failingFinish{e.Writer}
	rep, err := SwitchMode(context.Background(), e, testSite(t), "read-only", Options{})
	if err == nil || rep.Result != modes.ResultOK || !strings.Contains(rep.Reason, "the site serves in mode read-only, but its history could not be written") ||
		!strings.Contains(rep.Reason, "no space left on device") {
		t.Fatalf("report %+v, %v", rep, err)
	}
}
