package generator

import (
	"math"
	"strings"
	"testing"
)

func TestDescriptorWarning(t *testing.T) {
	for _, c := range []struct {
		listeners int
		soft      uint64
		warn      bool
	}{
		{10000, 20000, true}, // this project's sandboxes: the reload is ignored
		{9000, 20000, false},
		{1, 1000, true},
		{1, 1026, false},
		{10000, 1073741816, false}, // systemd's own limit on a host
		{100000, math.MaxUint64, false},
		{0, 0, true},
	} {
		w := DescriptorWarning(c.listeners, c.soft)
		if (w != "") != c.warn {
			t.Errorf("DescriptorWarning(%d, %d) = %q, want a warning: %v", c.listeners, c.soft, w, c.warn)
		}
		if w != "" && !strings.Contains(w, "daemon-reload") {
			t.Errorf("the warning does not say what fails: %q", w)
		}
	}
}
