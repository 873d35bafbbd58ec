package launcher

import (
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/sitectl/sitectl/internal/maintenance"
	"github.com/sitectl/sitectl/internal/site"
)

func TestNewSpec(t *testing.T) {
	s := &site.Site{Name: "karl", Readiness: site.ReadinessNone, StartTimeout: 9 * time.Second}
	base := []string{"PATH=/usr/bin", "SITE=karl"}
	app := []site.EnvVar{{Name: "SITE_MODE", Value: "read-only"}, {Name: "SITECTL_SERVE", Value: "app"}, {Name: "READ_ONLY", Value: "1"}}
	spec := NewSpec(s, app, base, "/srv/karl/r7")
	want := Spec{Env: []string{"PATH=/usr/bin", "SITE=karl", "SITE_MODE=read-only", "SITECTL_SERVE=app", "READ_ONLY=1"},
		Dir: "/srv/karl/r7", Mode: "read-only", Readiness: site.ReadinessNone, StartTimeout: 9 * time.Second}
	if !slices.Equal(spec.Env, want.Env) || spec.Dir != want.Dir || spec.Mode != want.Mode || spec.Readiness != want.Readiness || spec.Probe != nil || spec.StartTimeout != want.StartTimeout {
		t.Errorf("app mode: %+v, want %+v", spec, want)
	}
	base[0] = "PATH=changed"
	if spec.Env[0] != "PATH=/usr/bin" {
		t.Error("the spec shares its environment with the base")
	}

	maint := []site.EnvVar{{Name: "SITE_MODE", Value: "maintenance"}, {Name: "SITECTL_SERVE", Value: "maintenance"}}
	spec = NewSpec(s, maint, nil, "")
	if spec.Readiness != site.ReadinessNotify || spec.Probe == nil || spec.Probe.Path != maintenance.HealthPath {
		t.Errorf("maintenance mode: readiness %s, probe %+v; want notify and the health path", spec.Readiness, spec.Probe)
	}
}

func TestBaseAndAppEnv(t *testing.T) {
	environ := []string{"PATH=/bin", "SITE_MODE=old", "READ_ONLY=1", "SITECTL_SERVE=app", "LISTEN_FDS=2", "LISTEN_PID=1", "NOTIFY_SOCKET=/run/n", "WATCHDOG_USEC=5", "INVOCATION_ID=abc"}
	started := []site.EnvVar{{Name: "SITE_MODE"}, {Name: "READ_ONLY"}, {Name: "SITECTL_SERVE"}}
	if got, want := BaseEnv(environ, started), []string{"PATH=/bin", "INVOCATION_ID=abc"}; !slices.Equal(got, want) {
		t.Errorf("BaseEnv = %q, want %q", got, want)
	}
	if got, want := appEnv([]string{"A=1", "SITECTL_SERVE=app", "SITECTL_SET_LISTEN_PID=1", "B=SITECTL_X"}), []string{"A=1", "B=SITECTL_X"}; !slices.Equal(got, want) {
		t.Errorf("AppEnv = %q, want %q", got, want)
	}
}

func TestSetListenPID(t *testing.T) {
	t.Setenv("LISTEN_PID", "1")
	setListenPID()
	if os.Getenv("LISTEN_PID") != "1" {
		t.Fatal("LISTEN_PID changed without the launcher asking")
	}
	t.Setenv(envSetListenPID, "1")
	setListenPID()
	if os.Getenv("LISTEN_PID") != strconv.Itoa(os.Getpid()) {
		t.Fatalf("LISTEN_PID = %s, want this process's pid", os.Getenv("LISTEN_PID"))
	}
}

// A variable of the start mode that the service sets too comes back with
// the service's value (given as site.BaseValuePrefix+NAME); one the
// service does not set is dropped; the rest stays as it is.
func TestBaseEnvGivesTheServicesValueBack(t *testing.T) {
	environ := []string{"PATH=/bin", "SHADOWED=x", "ONLY_X=o", "SITECTL_BASE_SHADOWED=site", "SITE_MODE=x",
		"SITECTL_MODE_VARS=ONLY_X,SHADOWED", "LISTEN_FDS=1", "NOTIFY_SOCKET=/run/n"}
	start := []site.EnvVar{{Name: "SITE_MODE", Value: "x"}, {Name: "SITECTL_MODE_VARS", Value: "ONLY_X,SHADOWED"},
		{Name: "ONLY_X", Value: "o"}, {Name: "SHADOWED", Value: "x"}}
	got := BaseEnv(environ, start)
	want := []string{"PATH=/bin", "SHADOWED=site", "SITECTL_BASE_SHADOWED=site"}
	if !slices.Equal(got, want) {
		t.Errorf("BaseEnv = %q, want %q", got, want)
	}
}
