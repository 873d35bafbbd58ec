// Package unitfile owns the syntax of systemd unit files for sitectl: how a
// value is written for each kind of key (Text, Command, Env), a small reader
// that reads a file back the way systemd 252 does (Parse, and the decoders
// DecodeText, DecodeCommand, DecodeEnv, DecodeList), and the limits systemd
// and Linux put on what a unit can carry.
//
// The writer and the reader live together so that the units package can
// prove, for every unit it renders, that systemd will read each value as
// sitectl meant it: no value ends a line early, continues onto the next, has
// a specifier expanded, a variable substituted, or a word split.
//
// The rules follow systemd 252's config_parse and config_parse_exec, and
// were checked against Debian 12's systemd 252 (test/integration).
package unitfile

// Limits of systemd 252 and Linux, each measured at its boundary on Debian
// 12 (systemd 252.39, 8 MiB stack limit) by test/integration's
// TestUnitLimitsAtTheBoundary.
const (
	// MaxLine is the longest line systemd reads: LONG_LINE_MAX (1 MiB)
	// less one. A unit with a line one byte longer does not load at all
	// ("No buffer space available").
	MaxLine = 1<<20 - 1

	// MaxArg is the longest single argument or NAME=value environment
	// string execve accepts: MAX_ARG_STRLEN (32 pages, 128 KiB) less the
	// terminating NUL. One byte more and the unit loads but its command
	// fails with status 203/EXEC (E2BIG).
	MaxArg = 1<<17 - 1

	// ArgBudget is what execve accepts for all arguments and environment
	// strings together, each counted with its NUL and its pointer: a
	// quarter of the 8 MiB stack limit services run with.
	ArgBudget = 2 << 20

	// PointerSize is what each argument and environment string costs in
	// ArgBudget besides its bytes.
	PointerSize = 8
)

// ArgCost is what strings cost in ArgBudget.
func ArgCost(strs ...string) int {
	n := 0
	for _, s := range strs {
		n += len(s) + 1 + PointerSize
	}
	return n
}
