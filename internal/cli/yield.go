package cli

import (
	"fmt"
	"os"

	"github.com/sitectl/sitectl/internal/launcher"
)

// priority is what launcher.Yield gave up, to take back.
type priority interface{ Restore() error }

// yieldPriority is launcher.Yield; tests replace it.
var yieldPriority = func() (priority, error) { return launcher.Yield() }

// envPriority, "normal", keeps a change at the priority sitectl was
// started with; "idle" or unset: yield.
const envPriority = "SITECTL_PRIORITY"

// yield puts this sitectl at idle priority for a change of a site: its own
// work, mostly the start of the program, is the least urgent on the host,
// and came at the very moment a change begins (launcher.Yield). Root's
// change takes it back once its verification of the site fails or has gone
// on for half a second (takeBackPriority, flow.Env.Verifying); a
// deployer's sitectl only waits for sitectl's state service, which does not
// yield: it serves every deployer at once. A priority that cannot be
// lowered leaves the command as it was.
func (e *env) yield() error {
	switch v := os.Getenv(envPriority); v {
	case "", "idle":
	case "normal":
		return nil
	default:
		return withCode(exitUsage, fmt.Errorf("%s=%q: want idle (the default) or normal", envPriority, v))
	}
	p, err := yieldPriority()
	if err != nil {
		if p != nil {
			_ = p.Restore()
		}
		return nil
	}
	e.yielded = p
	return nil
}

// takeBackPriority undoes yield while a change is verified, so that a
// busy host cannot starve the probe into a false failure. Without
// CAP_SYS_NICE the command keeps yielding.
func (e *env) takeBackPriority() {
	if e.yielded != nil {
		_ = e.yielded.Restore()
	}
}
