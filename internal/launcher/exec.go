package launcher

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sitectl/sitectl/internal/maintenance"
	"github.com/sitectl/sitectl/internal/modes"
	"github.com/sitectl/sitectl/internal/site"
)

// Exec is sitectl launch without --overlap, in the process systemd (or the
// launcher, for a generation) started: it becomes what the current mode
// serves. For the app it execs argv in this process, so that systemd's
// main PID, LISTEN_PID and readiness stay the app's, with sitectl's own
// variables removed from the environment; in a maintenance mode it runs
// sitectl's maintenance server on the same sockets. The mode comes from
// the environment (the mode file, through EnvironmentFile= or the
// launcher). It returns only on failure, or when the maintenance server
// stopped.
func Exec(ctx context.Context, name string, argv []string, logf func(format string, args ...any)) error {
	setListenPID()
	// Starting at normal priority is slower for the neighbours, not
	// wrong: the launcher promotes the generation all the same.
	if err := idleStartInShim(); err != nil {
		logf("%v", err)
	}
	switch serve := site.Serve(os.Getenv(modes.VarServe)); serve {
	case "", site.ServeApp:
	case site.ServeMaintenance:
		return serveMaintenance(ctx, name, logf)
	default:
		return fmt.Errorf("site %s: mode %s serves %q, which this sitectl does not know", name, os.Getenv(modes.VarMode), serve)
	}
	prog, err := exec.LookPath(argv[0])
	if err != nil {
		return fmt.Errorf("site %s: cannot run %s: %w", name, argv[0], err)
	}
	return fmt.Errorf("site %s: cannot run %s: %w", name, prog, syscall.Exec(prog, argv, appEnv(os.Environ())))
}

// serveMaintenance runs the maintenance server with the mode's settings.
func serveMaintenance(ctx context.Context, name string, logf func(format string, args ...any)) error {
	page, err := maintenance.LoadPage(os.Getenv(modes.VarPage))
	if err != nil {
		return fmt.Errorf("site %s: %w", name, err)
	}
	retry, _ := strconv.Atoi(os.Getenv(modes.VarRetryAfter))
	cfg := maintenance.Config{Site: name, Page: page, StaticDir: os.Getenv(modes.VarStaticDir), RetryAfter: time.Duration(retry) * time.Second}
	for _, kv := range os.Environ() { // the server starts nothing, but keep it tidy
		if isOwnVar(kv) {
			k, _, _ := strings.Cut(kv, "=")
			os.Unsetenv(k)
		}
	}
	if err := maintenance.Run(ctx, cfg, logf); err != nil {
		return fmt.Errorf("site %s: %w", name, err)
	}
	return nil
}
