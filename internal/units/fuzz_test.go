package units_test

import (
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/sitectl/sitectl/internal/site"
	"github.com/sitectl/sitectl/internal/units"
)

// tomlString writes s as a TOML basic string, every control character
// escaped, so that any string can be put into a site file.
func tomlString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// FuzzUnitValues puts arbitrary strings into every free-form value of a
// site file (description, exec arguments, the site's and a mode's
// environment, a cleanup hook): whatever the parser accepts renders units
// that systemd 252 reads exactly as the site file says (units.Check), and
// what it refuses it refuses with a positioned error.
func FuzzUnitValues(f *testing.F) {
	for _, s := range []string{"plain", `ends\`, `two\\`, " lead", "trail ", "100%", "%n", "$HOME", "${X}", "$$", ";", `\;`, `"`, "'", "a\nb", "\x1b[2J", "\t", "", "é", "\u2028"} {
		f.Add(s, s, s)
	}
	f.Fuzz(func(t *testing.T, desc, arg, val string) {
		if !utf8.ValidString(desc) || !utf8.ValidString(arg) || !utf8.ValidString(val) {
			return // a TOML file is UTF-8: such strings cannot be written
		}
		src := fmt.Sprintf("description = %s\nexec = [\"/bin/app\", %s, %s]\nreload_trigger = \"/srv/t\"\ncleanup = [[\"/bin/hook\", %s]]\nlisten = [{ address = \"[::]:8080\" }, { name = \"u\", path = \"/run/x.sock\" }]\n[environment]\nA = %s\n[modes.m]\nenvironment = { B = %s }\n",
			tomlString(desc), tomlString(arg), tomlString(val), tomlString(arg), tomlString(val), tomlString(desc))
		s, err := site.Parse("/etc/sitectl/sites/fuzz.toml", []byte(src))
		if err != nil {
			if !strings.HasPrefix(err.Error(), "/etc/sitectl/sites/fuzz.toml:") {
				t.Fatalf("error without position: %v", err)
			}
			return
		}
		if err := units.Check(s, units.Options{}); err != nil {
			t.Fatalf("accepted desc=%q arg=%q val=%q, but: %v", desc, arg, val, err)
		}
		if s.Description != desc || s.Exec[1] != arg {
			t.Fatalf("parsed %q %q, want %q %q", s.Description, s.Exec[1], desc, arg)
		}
	})
}
