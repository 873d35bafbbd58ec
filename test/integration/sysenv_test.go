//go:build integration

package integration

import (
	"strings"
	"testing"
)

// Environment= (a site's environment) and EnvironmentFile= (its mode file)
// override what systemd 252 itself sets for a command: $MAINPID,
// $INVOCATION_ID, $RUNTIME_DIRECTORY, $CREDENTIALS_DIRECTORY and, for
// ExecStopPost=, $SERVICE_RESULT, $EXIT_CODE and $EXIT_STATUS, which
// sitectl's own commands in the unit read. The site file must not be able
// to set them.
func TestUnitEnvironmentOverridesSystemds(t *testing.T) {
	h := newHost(t, nil)
	h.writeFile("/etc/systemd/system/envwins.service", `[Service]
Type=exec
Environment=SERVICE_RESULT=success EXIT_CODE=exited EXIT_STATUS=0 MAINPID=1 INVOCATION_ID=forged RUNTIME_DIRECTORY=/tmp CREDENTIALS_DIRECTORY=/tmp
RuntimeDirectory=envwins
LoadCredential=c:/etc/hostname
ExecStart=/bin/sleep infinity
ExecReload=/bin/sh -c 'echo "$MAINPID $INVOCATION_ID $RUNTIME_DIRECTORY $CREDENTIALS_DIRECTORY" > /run/envwins.reload'
ExecStopPost=/bin/sh -c 'echo "$SERVICE_RESULT $EXIT_CODE $EXIT_STATUS" > /run/envwins.stop'
`, 0o644)
	h.run("systemctl", "daemon-reload")
	h.run("systemctl", "start", "envwins.service")
	h.run("systemctl", "reload", "envwins.service")
	h.run("systemctl", "kill", "-s", "KILL", "envwins.service")
	h.try("systemctl", "stop", "envwins.service")
	// If systemd ever stops letting a unit override these, the site
	// package may accept them again (its reservedEnv).
	if got := strings.TrimSpace(h.run("cat", "/run/envwins.reload")); got != "1 forged /tmp /tmp" {
		t.Errorf("ExecReload= saw MAINPID, INVOCATION_ID, RUNTIME_DIRECTORY, CREDENTIALS_DIRECTORY %q, want the unit's", got)
	}
	if got := strings.TrimSpace(h.run("cat", "/run/envwins.stop")); got != "success exited 0" {
		t.Errorf("ExecStopPost= after SIGKILL saw SERVICE_RESULT, EXIT_CODE, EXIT_STATUS %q, want the unit's", got)
	}
	// And sitectl refuses a site file that sets one, saying where.
	h.writeSite("karl", goSite(freePort(t), "environment = { SERVICE_RESULT = \"success\" }\n"))
	out, err := h.try("sitectl", "check", "/etc/sitectl/sites/karl.toml")
	if err == nil || !strings.Contains(out, "karl.toml:4:") || !strings.Contains(out, "SERVICE_RESULT is set by sitectl or systemd") {
		t.Errorf("sitectl check of a site file that sets SERVICE_RESULT: %v\n%s", err, out)
	}
}
