package sitecheck

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/sitectl/sitectl/internal/procfs"
)

// The kernel runs a file itself only if it is an ELF binary or a script
// whose first two bytes are "#!"; anything else (a shell script without a
// #! line, one saved with a byte order mark before it, an empty file)
// fails its exec with ENOEXEC, "exec format error", unless a binfmt_misc
// handler takes it. A shell run by hand falls back to running such a
// file itself, so it works when the operator tries it, and fails only
// when systemd (203/EXEC) or the launcher starts it.

// Handler is one binfmt_misc handler: the files it takes, by extension
// or by magic bytes at an offset (under a mask).
type Handler struct {
	Extension   string
	Offset      int
	Magic, Mask []byte
}

// takes says whether the handler takes the file p that starts with head.
func (x Handler) takes(p string, head []byte) bool {
	if x.Extension != "" {
		return strings.TrimPrefix(path.Ext(p), ".") == x.Extension
	}
	if x.Offset+len(x.Magic) > len(head) || len(x.Magic) == 0 {
		return false
	}
	for i, m := range x.Magic {
		b := head[x.Offset+i]
		if i < len(x.Mask) {
			b, m = b&x.Mask[i], m&x.Mask[i]
		}
		if b != m {
			return false
		}
	}
	return true
}

// binfmtDir is where the binfmt_misc file system is mounted, by systemd
// (an automount) and by the tools that register handlers.
const binfmtDir = "/proc/sys/fs/binfmt_misc"

// maxBinfmtEntry bounds the read of one handler's file.
const maxBinfmtEntry = 4096

// maxBinfmtEntries bounds how many handlers are read.
const maxBinfmtEntries = 1024

// binfmtHandlers reads the enabled binfmt_misc handlers of the host.
// binfmt_misc not mounted, or disabled as a whole, has none: handlers
// are registered through that mount, and a kernel unmounting it drops
// them (since Linux 6.0).
func binfmtHandlers() ([]Handler, error) {
	status, err := procfs.ReadBounded(filepath.Join(binfmtDir, "status"), maxBinfmtEntry)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if strings.TrimSpace(string(status)) == "disabled" {
		return nil, nil
	}
	entries, err := os.ReadDir(binfmtDir)
	if err != nil {
		return nil, err
	}
	if len(entries) > maxBinfmtEntries {
		return nil, fmt.Errorf("%s holds %d entries, more than the %d read", binfmtDir, len(entries), maxBinfmtEntries)
	}
	var out []Handler
	for _, e := range entries {
		if e.Name() == "status" || e.Name() == "register" {
			continue
		}
		data, err := procfs.ReadBounded(filepath.Join(binfmtDir, e.Name()), maxBinfmtEntry)
		if errors.Is(err, fs.ErrNotExist) {
			continue // removed meanwhile
		}
		if err != nil {
			return nil, err
		}
		x, enabled, err := parseBinfmtEntry(data)
		if err != nil {
			return nil, fmt.Errorf("%s/%s: %w", binfmtDir, e.Name(), err)
		}
		if enabled {
			out = append(out, x)
		}
	}
	return out, nil
}

// parseBinfmtEntry reads a handler's file under /proc/sys/fs/binfmt_misc:
// "enabled" or "disabled", then "interpreter ...", "flags: ...", and
// either "extension .EXT" or "offset N", "magic HEX" and "mask HEX".
func parseBinfmtEntry(data []byte) (x Handler, enabled bool, err error) {
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	switch lines[0] {
	case "enabled":
		enabled = true
	case "disabled":
	default:
		return x, false, fmt.Errorf("unexpected first line %q", lines[0])
	}
	for _, l := range lines[1:] {
		k, v, _ := strings.Cut(strings.TrimSpace(l), " ")
		switch k {
		case "extension":
			x.Extension = strings.TrimPrefix(v, ".")
		case "offset":
			if x.Offset, err = strconv.Atoi(v); err != nil || x.Offset < 0 {
				return x, false, fmt.Errorf("unexpected offset %q", v)
			}
		case "magic":
			if x.Magic, err = hex.DecodeString(v); err != nil {
				return x, false, fmt.Errorf("unexpected magic %q", v)
			}
		case "mask":
			if x.Mask, err = hex.DecodeString(v); err != nil {
				return x, false, fmt.Errorf("unexpected mask %q", v)
			}
		}
	}
	if x.Extension == "" && len(x.Magic) == 0 {
		return x, false, errors.New("neither an extension nor magic bytes")
	}
	return x, enabled, nil
}

// formatRefused is what the kernel's refusal of a file's format says.
const formatRefused = "(exec format error)"

// byteOrderMark is what some editors write before a UTF-8 file's text.
var byteOrderMark = []byte("\xef\xbb\xbf")

// formatProblem says why the kernel would not run the file p that starts
// with head (its first shebangMax bytes), or "": it is an ELF binary, a
// #! script, or one a binfmt_misc handler takes, or the host's handlers
// cannot be read.
func (h Host) formatProblem(p string, head []byte) string {
	if bytes.HasPrefix(head, []byte("\x7fELF")) || bytes.HasPrefix(head, []byte("#!")) || h.Handlers == nil {
		return ""
	}
	handlers, err := h.Handlers()
	if err != nil {
		return ""
	}
	for _, x := range handlers {
		if x.takes(p, head) {
			return ""
		}
	}
	const kernel = "the kernel runs only ELF binaries and scripts whose first line is #! " + formatRefused
	switch {
	case len(head) == 0:
		return "is empty: " + kernel
	case bytes.HasPrefix(head, append(byteOrderMark, "#!"...)):
		return "starts with a byte order mark before its #! line (an editor saved it so): " + kernel +
			", not after a mark; a shell run by hand runs it anyway"
	case bytes.IndexByte(head, 0) < 0:
		return "has no #! line: " + kernel + "; a shell run by hand runs it anyway"
	}
	return fmt.Sprintf("is neither an ELF binary nor a script (it starts with %q), and no binfmt_misc handler takes it %s", head[:min(len(head), 8)], formatRefused)
}
