package cli

import (
	"slices"
	"testing"
)

// sitectl logs pages as journalctl would, in secure mode unless told
// otherwise: run as root through sudo, a pager's shell escape is root's.
func TestJournalctlPager(t *testing.T) {
	for _, c := range []struct {
		env    map[string]string
		want   string // the pager's command line; "" for none
		secure bool
	}{
		{nil, "less", true},
		{map[string]string{"PAGER": "most"}, "less", true}, // not known to be secure
		{map[string]string{"PAGER": "most", "SYSTEMD_PAGERSECURE": "0"}, "most", false},
		{map[string]string{"PAGER": "most", "SYSTEMD_PAGERSECURE": "no"}, "most", false},
		{map[string]string{"PAGER": "most", "SYSTEMD_PAGERSECURE": "1"}, "most", true},
		{map[string]string{"SYSTEMD_PAGER": "less -S", "PAGER": "most", "SYSTEMD_PAGERSECURE": "true"}, "less -S", true},
		{map[string]string{"PAGER": "cat"}, "", false},
	} {
		cmd := journalctlPager(func(k string) string { return c.env[k] })
		if cmd == nil {
			if c.want != "" {
				t.Errorf("%v: no pager, want %q", c.env, c.want)
			}
			continue
		}
		if got := cmd.Args[len(cmd.Args)-1]; got != c.want || slices.Contains(cmd.Env, "LESSSECURE=1") != c.secure {
			t.Errorf("%v: pager %q (secure %v), want %q (secure %v)", c.env, got, slices.Contains(cmd.Env, "LESSSECURE=1"), c.want, c.secure)
		}
	}
}
