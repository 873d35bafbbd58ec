package site

import (
	"math/rand/v2"
	"regexp"
	"testing"
)

// The expressions the hand-written checks stand for.
var charsetChecks = []struct {
	re    *regexp.Regexp
	check func(string) bool
}{
	{regexp.MustCompile(`^[a-z][a-z0-9]*(-[a-z0-9]+)*$`), validName},
	{regexp.MustCompile(`^/[A-Za-z0-9._/@+:,=~-]*$`), validPath},
	{regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,30}$`), validAccount},
	{regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`), ValidEnvName},
	{regexp.MustCompile(`^[a-z][a-z0-9_-]{0,31}$`), validListenerName},
	{regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$`), validCredentialName},
	{regexp.MustCompile(`^(user|group):([a-z_][a-z0-9_-]{0,30}|[0-9]{1,10})$`), func(s string) bool { _, _, ok := parseDeployer(s); return ok }},
}

var charsetSeeds = []string{"", "a", "A", "_", "-", "/", "a-", "-a", "a--b", "a-b", "a-1", "1a", "ab\n", "a\x00", "/srv/x y", "/srv/ü",
	"/a/b.c@d+e:f,g=h~i-j_k", "user:", "user:x", "group:1234567890", "group:12345678901", "user:www-data", "users:x", "user:X",
	"user:_a", "user:1a", "x", "abcdefghijklmnopqrstuvwxyz0123456", "abcdefghijklmnopqrstuvwxyz01234", "abcdefghijklmnopqrstuvwxyz012345"}

// TestCharsetChecksAreTheirExpressions: every hand-written check says what
// its regular expression says, on edge cases and on 200,000 random
// strings of the bytes that matter.
func TestCharsetChecksAreTheirExpressions(t *testing.T) {
	alphabet := []byte("abzAZ09_-./@+:,=~ \n\x00\xc3usergop")
	r := rand.New(rand.NewPCG(1, 2))
	inputs := append([]string{}, charsetSeeds...)
	for range 200000 {
		b := make([]byte, r.IntN(70))
		for i := range b {
			b[i] = alphabet[r.IntN(len(alphabet))]
		}
		if r.IntN(4) == 0 {
			b = append([]byte([]string{"user:", "group:", "/"}[r.IntN(3)]), b...)
		}
		inputs = append(inputs, string(b))
	}
	for i, c := range charsetChecks {
		for _, s := range inputs {
			if got, want := c.check(s), c.re.MatchString(s); got != want {
				t.Fatalf("check %d (%s) of %q = %v, the expression says %v", i, c.re, s, got, want)
			}
		}
	}
}

func FuzzCharsetChecks(f *testing.F) {
	for _, s := range charsetSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for i, c := range charsetChecks {
			if got, want := c.check(s), c.re.MatchString(s); got != want {
				t.Fatalf("check %d (%s) of %q = %v, the expression says %v", i, c.re, s, got, want)
			}
		}
	})
}

// TestParseDeployerParts: the kind and name of a grant.
func TestParseDeployerParts(t *testing.T) {
	for s, want := range map[string][2]string{"user:www-data": {"user", "www-data"}, "group:1000": {"group", "1000"}} {
		if k, n, ok := parseDeployer(s); !ok || k != want[0] || n != want[1] {
			t.Errorf("parseDeployer(%q) = %q, %q, %v", s, k, n, ok)
		}
	}
}
