package units_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/sitectl/sitectl/internal/units"
)

// Sites are spread evenly over the slice groups, each group is a child of
// sitectl.slice, and a site's group depends on its name only.
func TestSliceGroups(t *testing.T) {
	per := map[string]int{}
	const sites = 10000
	for i := 0; i < sites; i++ {
		name := fmt.Sprintf("site-%05d", i)
		sl := units.SliceName(name)
		if sl != units.SliceName(name) {
			t.Fatalf("%s: the slice changes", name)
		}
		if !strings.HasPrefix(sl, strings.TrimSuffix(units.Slice, ".slice")+"-") || !strings.HasSuffix(sl, ".slice") {
			t.Fatalf("%s: slice %s is not a child of %s", name, sl, units.Slice)
		}
		per[sl]++
	}
	if len(per) != units.SliceGroups {
		t.Fatalf("%d sites use %d slices, want %d", sites, len(per), units.SliceGroups)
	}
	mean := sites / units.SliceGroups
	for sl, n := range per {
		if n < mean/2 || n > mean*2 {
			t.Errorf("%s holds %d sites; the mean is %d", sl, n, mean)
		}
	}
}

func TestRenderSlice(t *testing.T) {
	u := units.RenderSlice()
	if u.Name != "sitectl.slice" || !strings.Contains(u.Content, "\n[Unit]\nDescription=Sites managed by sitectl\n") || u.WantedBy != "" {
		t.Errorf("sitectl.slice:\n%s", u.Content)
	}
}
