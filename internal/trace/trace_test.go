package trace

import (
	"strings"
	"testing"
	"time"
)

func TestFromEnvTracesOnlyWhenAsked(t *testing.T) {
	for v, on := range map[string]bool{"": false, "0": false, "1": true, "yes": true} {
		var b strings.Builder
		tr := FromEnv(func(k string) string {
			if k != Env {
				t.Errorf("read %s, want %s", k, Env)
			}
			return v
		}, &b)
		if (tr != nil) != on {
			t.Errorf("%s=%q: tracing %v, want %v", Env, v, tr != nil, on)
		}
		tr.Step("a step") // a nil Tracer marks nothing
		if got := b.Len() > 0; got != on {
			t.Errorf("%s=%q: wrote %q", Env, v, b.String())
		}
	}
}

func TestStepsSayTheTimeSinceTheStartAndSinceTheStepBefore(t *testing.T) {
	var b strings.Builder
	at := []time.Duration{1500 * time.Microsecond, 4 * time.Millisecond, 250 * time.Millisecond}
	tr := New(&b, func() time.Duration {
		d := at[0]
		at = at[1:]
		return d
	})
	tr.Step("read the command line: %s", "sitectl restart")
	tr.Step("connected to systemd")
	tr.Step("site %s: \x1b[31mred", "shop")
	want := Prefix + "    1.50 ms    +1.50 ms  read the command line: sitectl restart\n" +
		Prefix + "    4.00 ms    +2.50 ms  connected to systemd\n" +
		Prefix + "  250.00 ms  +246.00 ms  site shop: \\x1b[31mred\n"
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
}
