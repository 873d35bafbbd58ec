package site

import (
	"fmt"
	"strings"
	"testing"
)

// A variable that systemd or sitectl sets is refused in a site's and a
// mode's environment, with where it is: systemd lets Environment= and
// EnvironmentFile= override its own (test/integration's
// TestUnitEnvironmentOverridesSystemds), so SERVICE_RESULT = "success"
// made every failed run look clean to the ExecStopPost= that marks the
// version a rollback goes back to.
func TestEnvironmentSetBySystemdOrSitectlIsRefused(t *testing.T) {
	const listen = "[[listen]]\naddress = \"127.0.0.1:8080\"\n"
	for _, name := range []string{"SITE", "SITE_MODE", "SITE_DRAIN_TIMEOUT", "SITE_GENERATION", "NOTIFY_SOCKET", "LISTEN_FDS", "SITECTL_X",
		"MAINPID", "INVOCATION_ID", "RUNTIME_DIRECTORY", "CREDENTIALS_DIRECTORY", "SERVICE_RESULT", "EXIT_CODE", "EXIT_STATUS"} {
		for _, src := range []string{
			fmt.Sprintf("exec = [\"/bin/app\"]\nenvironment = { %s = \"x\" }\n"+listen, name),
			fmt.Sprintf("exec = [\"/bin/app\"]\n"+listen+"[modes.busy]\nenvironment = { %s = \"x\" }\n", name),
		} {
			_, err := Parse("/etc/sitectl/sites/karl.toml", []byte(src))
			if err == nil || !strings.Contains(err.Error(), "karl.toml:") || !strings.Contains(err.Error(), name+" is set by sitectl or systemd") {
				t.Errorf("%q: %v, want it refused", src, err)
			}
		}
	}
	for _, name := range []string{"SITE_URL", "HOME", "PATH", "EXIT", "RESULT"} {
		if _, err := Parse("/etc/sitectl/sites/karl.toml", []byte(fmt.Sprintf("exec = [\"/bin/app\"]\nenvironment = { %s = \"x\" }\n"+listen, name))); err != nil {
			t.Errorf("%s refused: %v", name, err)
		}
	}
}
