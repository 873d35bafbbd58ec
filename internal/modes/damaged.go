package modes

import (
	"fmt"
	"strings"
)

// What a DamagedError names: the files of a site's state that sitectl
// writes and must read back as it wrote them.
const (
	DamagedState = "state file"
	DamagedMode  = "mode file"
)

// DamagedError is a file of a site's state that sitectl cannot read back
// as it writes it (whole and atomically, so never half-written by
// sitectl): edited by hand, cut short by a full disk under another tool,
// or written by something else. sitectl leaves such a file as it is, since
// it may be the only record of what happened, and refuses what needs it;
// Recovery says how an operator gets past it, and what that costs.
type DamagedError struct {
	Site string
	Path string
	What string // DamagedState or DamagedMode
	Err  error
}

func (e *DamagedError) Error() string {
	return fmt.Sprintf("the %s %s of site %s is damaged: %v", e.What, e.Path, e.Site, e.Err)
}

func (e *DamagedError) Unwrap() error { return e.Err }

// Recovery is what an operator does about the damaged file: move it aside,
// where it stays to be read, and what the site then does without it.
func (e *DamagedError) Recovery() string {
	mv := fmt.Sprintf("sitectl leaves it as it is; to go on, move it aside as root (`mv %s %s`)", shellWord(e.Path), shellWord(e.Path+".damaged"))
	if e.What == DamagedMode {
		return mv + fmt.Sprintf(", then `sitectl mode %s MODE` puts the site in the mode you choose, or `sitectl restart %s` in its default mode; the running process keeps the mode it started with until then", e.Site, e.Site)
	}
	return mv + fmt.Sprintf(": the site's next change starts a new history, and `sitectl rollback %s` has no previous mode until a change records one; its mode is in its mode file, which stays as it is", e.Site)
}

// shellWord quotes s for a POSIX shell where it needs it.
func shellWord(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("/._-+:@%,=", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
