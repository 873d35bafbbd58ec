package cli

import (
	"context"
	"errors"
	"io"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/sitectl/sitectl/internal/stateservice"
	"github.com/sitectl/sitectl/internal/status"
)

// deployerService runs sitectl's state service, with root's backend, on a
// socket in a temporary directory, for a caller the kernel would report as
// uid 1000, and points the client at it.
func deployerService(t *testing.T, e *env) { serveDeployer(t, e, nil) }

// serveDeployer is deployerService with the grants' lookup (nil: the
// system's).
func serveDeployer(t *testing.T, e *env, lookup stateservice.Lookup) {
	t.Helper()
	serveBackend(t, backend{e: e}, lookup)
}

// serveBackend runs a state service with backend b for a caller the kernel
// would report as uid 1000, and points the client at it.
func serveBackend(t *testing.T, b stateservice.Backend, lookup stateservice.Lookup) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "state.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv := &stateservice.Server{
		Backend: b,
		Creds:   func(net.Conn) (stateservice.Caller, error) { return stateservice.Caller{UID: 1000, GID: 1000}, nil },
		Lookup:  lookup,
		Logf:    func(string, ...any) {},
	}
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(ctx, ln) }()
	t.Cleanup(func() { cancel(); ln.Close(); <-done })
	t.Setenv("SITECTL_STATE_SOCKET", sock)
}

// A deployer's verb on a site that does not exist exits as root's does:
// 3 for a change or history, and for status the LSB's 4, which its help
// documents, not 3 ("a site does not run") or 2 ("bad usage").
func TestDeployerAsksOfASiteThatDoesNotExist(t *testing.T) {
	e := &env{dirs: testDirs(t), stdout: io.Discard, stderr: io.Discard}
	deployerService(t, e)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out any
	err := e.remoteCall(ctx, nil, stateservice.Request{Verb: stateservice.VerbHistory, Site: "nosuch"}, &out)
	if codeOf(err) != exitNotFound {
		t.Errorf("history of a site that does not exist: exit %d (%v), want %d", codeOf(err), err, exitNotFound)
	}
	err = e.remoteCall(ctx, nil, stateservice.Request{Verb: stateservice.VerbRestart, Site: "nosuch"}, &out)
	if codeOf(err) != exitNotFound {
		t.Errorf("restart of a site that does not exist: exit %d (%v), want %d", codeOf(err), err, exitNotFound)
	}
	res, err := e.remoteGather(ctx, status.Request{Names: []string{"nosuch"}})
	code := codeOf(err)
	if err == nil {
		var r reported
		if errors.As(e.statusCode(res), &r) {
			code = r.code
		}
	}
	if code != statusNoSuchSite {
		t.Errorf("status of a site that does not exist: exit %d (%v), want %d", code, err, statusNoSuchSite)
	}
}
