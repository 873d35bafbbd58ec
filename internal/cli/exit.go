package cli

import (
	"errors"
	"fmt"
	"slices"

	"github.com/sitectl/sitectl/internal/modes"
)

// Exit codes are part of sitectl's contract with scripts and Ansible.
const (
	exitOK           = 0 // success
	exitFailed       = 1 // the operation failed; nothing was changed or nothing needed undoing
	exitUsage        = 2 // bad usage or bad input (flags, names, site files); nothing was changed
	exitNotFound     = 3 // the site or mode does not exist
	exitRolledBack   = 4 // the operation failed and the site is back in its previous mode
	exitRollbackFail = 5 // the operation failed and the site was not put back as it was (a change's rollback failed too): the site needs attention
	exitDenied       = 6 // permission denied (a site not granted, the state socket, or file permissions)
	exitUnavailable  = 7 // systemd or the system bus cannot be reached
)

// exitCodesHelp is shown in --help and the man page.
const exitCodesHelp = `Exit codes:
  0  success
  1  the operation failed; nothing was changed
  2  bad usage or bad input (flags, names, site files); nothing was changed
  3  the site or mode does not exist
  4  the operation failed and the site was rolled back to its previous mode
  5  the operation failed and the site was not put back as it was (a change's
     rollback failed too; enable, disable or remove failed part way, or units
     render --dir wrote some of the units, and the message says how far it
     got): the site needs attention
  6  permission denied
  7  systemd or the system bus cannot be reached`

// exitError carries an exit code and hints with an error.
type exitError struct {
	code  int
	err   error
	hints []string
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func withCode(code int, err error, hints ...string) error {
	if err == nil {
		return nil
	}
	return &exitError{code: code, err: err, hints: hints}
}

func usageErrorf(format string, args ...any) error {
	return withCode(exitUsage, fmt.Errorf(format, args...))
}

// codeOf finds the exit code for an error; plain errors are failures.
func codeOf(err error) int {
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return exitFailed
}

// hintsOf are the hints that go with err: its own, and how to get past a
// damaged file of a site's state when err comes from one.
func hintsOf(err error) []string {
	var hints []string
	var ee *exitError
	if errors.As(err, &ee) {
		hints = ee.hints
	}
	var d *modes.DamagedError
	if errors.As(err, &d) && !slices.Contains(hints, d.Recovery()) {
		hints = append(slices.Clip(hints), d.Recovery())
	}
	return hints
}

// reported marks an error whose details were already printed (each mistake
// of a site file on its own line), so only the exit code is left to give.
type reported struct{ code int }

func (r reported) Error() string { return "reported" }
