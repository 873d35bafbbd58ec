// Package trace times the steps of one sitectl command for an operator
// who asks where its time goes: with SITECTL_TRACE=1, each step is a line
// on standard error with the time since the program began and since the
// step before. The CLI marks its own steps (command line read, site file
// read, systemd connected, site locked, report printed) and a change's
// flow marks its own (flow.Env.Trace). A nil *Tracer marks nothing, so
// that callers need not ask whether tracing is on.
package trace

import (
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/sitectl/sitectl/internal/term"
)

// Env is the variable that turns tracing on: any value but "" and "0".
const Env = "SITECTL_TRACE"

// Prefix begins every line a Tracer writes, which test/bench parses.
const Prefix = "sitectl: trace: "

// begin is when this package was initialised: early in the program's
// start, once the Go runtime and the few standard packages this one needs
// were; what came before (the exec, the runtime's own start) is not
// counted.
var begin = time.Now()

// Tracer writes the steps of one command.
type Tracer struct {
	mu    sync.Mutex
	w     io.Writer
	since func() time.Duration
	last  time.Duration
}

// FromEnv is a Tracer writing to w when getenv(Env) turns tracing on,
// else nil.
func FromEnv(getenv func(string) string, w io.Writer) *Tracer {
	if v := getenv(Env); v == "" || v == "0" {
		return nil
	}
	return New(w, func() time.Duration { return time.Since(begin) })
}

// New is a Tracer writing to w, with since the time since the program
// began (a seam for tests).
func New(w io.Writer, since func() time.Duration) *Tracer {
	return &Tracer{w: w, since: since}
}

// Step writes one line: the time since the program began, the time since
// the step before, and what was done, which is escaped as every line
// sitectl prints (term.Fprintf).
func (t *Tracer) Step(format string, args ...any) {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.since()
	term.Fprintf(t.w, Prefix+"%8.2f ms %+8.2f ms  %s\n", ms(now), ms(now-t.last), fmt.Sprintf(format, args...))
	t.last = now
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
