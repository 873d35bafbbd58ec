package paths

import (
	"os"
	"path"
	"slices"
	"strings"
	"testing"
)

// The layout is a contract with the packages (tmpfiles.d, the state
// service's socket unit), the docs and hosts already in use: pin it.
func TestLayout(t *testing.T) {
	d := defaults()
	for got, want := range map[string]string{
		d.SiteFile("karl"):           "/etc/sitectl/sites/karl.toml",
		d.SiteState("karl"):          "/var/lib/sitectl/sites/karl",
		d.ModeEnvFile("karl"):        "/var/lib/sitectl/sites/karl/mode.env",
		d.StateFile("karl"):          "/var/lib/sitectl/sites/karl/state.json",
		d.LockFile("karl"):           "/var/lib/sitectl/sites/karl/lock",
		d.ModeLockFile("karl"):       "/var/lib/sitectl/sites/karl/mode.lock",
		d.LastGoodFile("karl"):       "/var/lib/sitectl/sites/karl/last-good.toml",
		d.OutOfServiceFile("karl"):   "/var/lib/sitectl/sites/karl/out-of-service",
		RuntimeDirectory("karl"):     "site-karl",
		RuntimeDirectoryPath("karl"): "/run/site-karl",
		ProbeSocket(7):               "probe-7.sock",
	} {
		if got != want {
			t.Errorf("got %s, want %s", got, want)
		}
	}
}

func TestFromEnvAndFlags(t *testing.T) {
	env := map[string]string{}
	getenv := func(k string) string { return env[k] }
	if d := FromEnv(getenv); d != defaults() || len(d.Flags()) != 0 || StateSocket(getenv) != DefaultStateSocket {
		t.Fatalf("no environment: %+v, flags %q, socket %s", d, d.Flags(), StateSocket(getenv))
	}
	env[EnvStateDir] = "/srv/state"
	d := FromEnv(getenv)
	if want := []string{"--state-dir", "/srv/state"}; !slices.Equal(d.Flags(), want) {
		t.Errorf("flags %q, want %q", d.Flags(), want)
	}
	env[EnvConfigDir], env[envStateSocket] = "/srv/sites", "/tmp/s.sock"
	d = FromEnv(getenv)
	if want := []string{"--config-dir", "/srv/sites", "--state-dir", "/srv/state"}; !slices.Equal(d.Flags(), want) {
		t.Errorf("flags %q, want %q", d.Flags(), want)
	}
	if d.ModeEnvFile("k") != "/srv/state/sites/k/mode.env" || d.SiteFile("k") != "/srv/sites/k.toml" || StateSocket(getenv) != "/tmp/s.sock" {
		t.Errorf("paths under %+v: %s %s %s", d, d.ModeEnvFile("k"), d.SiteFile("k"), StateSocket(getenv))
	}
	env[EnvConfigDir] = "" // set but empty: the default
	if FromEnv(getenv).Config != DefaultConfigDir {
		t.Error("an empty SITECTL_CONFIG_DIR replaced the default")
	}
}

// The packaged units and tmpfiles.d are static files: they must name the
// same paths as this package.
func TestPackagingAgrees(t *testing.T) {
	for file, want := range map[string][]string{
		"../../packaging/systemd/sitectl-state.socket":  {"ListenStream=" + DefaultStateSocket},
		"../../packaging/systemd/sitectl-state.service": {"ReadWritePaths=" + DefaultStateDir},
		"../../packaging/systemd/sitectl-dial.socket":   {"ListenStream=" + DefaultDialSocket},
		"../../packaging/tmpfiles.d/sitectl.conf":       {"d " + DefaultStateDir + " 0700 ", "d " + path.Dir(defaults().SiteState("x")) + " 0700 "},
	} {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range want {
			if !strings.Contains(string(data), w) {
				t.Errorf("%s does not contain %q", file, w)
			}
		}
	}
}
