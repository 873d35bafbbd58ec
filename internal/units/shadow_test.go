package units_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/sitectl/sitectl/internal/site"
	"github.com/sitectl/sitectl/internal/units"
)

// A variable the service sets that a mode sets too: an overlap site's
// service also gives the service's value under site.BaseValuePrefix, for
// the launcher to start other modes' generations with; a restart site's
// service needs none (systemd gives each start the service's value).
func TestOverlapServiceGivesTheValuesModesShadow(t *testing.T) {
	const body = "exec = [\"/bin/app\"]\n" +
		"environment = { SHADOWED = \"site\", PLAIN = \"p\" }\n" +
		"[[listen]]\naddress = \"127.0.0.1:8080\"\n" +
		"[modes.x]\nenvironment = { SHADOWED = \"x\", ONLY_X = \"o\" }\n"
	for _, c := range []struct {
		name, head string
		want       []string
	}{
		{"overlap", "handoff = \"overlap\"\n", []string{"SITECTL_BASE_SHADOWED=site"}},
		{"restart", "", nil},
	} {
		s := parseSite(t, c.head+body)
		svc := findUnit(units.Render(s, units.Options{}), ".service")
		var base []string
		for _, v := range keyValues(svc.Content, "Service", "Environment") {
			if w, err := splitWords(v); err == nil && len(w) == 1 && strings.HasPrefix(w[0], site.BaseValuePrefix) {
				base = append(base, w[0])
			}
		}
		if !slices.Equal(base, c.want) {
			t.Errorf("%s: the service's values of shadowed variables %q, want %q\n%s", c.name, base, c.want, svc.Content)
		}
	}
}
