package cli

import (
	"fmt"
	"slices"
	"testing"

	"github.com/sitectl/sitectl/internal/stateservice"
	"github.com/sitectl/sitectl/internal/status"
)

// A deployer's list of many sites is gathered as root's of all sites and
// cut to them; of a few, and a status, by name.
func TestManySitesAreGatheredAsRootsAll(t *testing.T) {
	few := []string{"a", "b"}
	if req, cut := gatherFor(stateservice.VerbList, few); cut || !slices.Equal(req.Names, few) || !req.Brief {
		t.Errorf("list of %d sites: %+v, cut %v", len(few), req, cut)
	}
	var many []string
	for i := range manySites {
		many = append(many, fmt.Sprintf("s%03d", i))
	}
	if req, cut := gatherFor(stateservice.VerbList, many); !cut || req.Names != nil || !req.Brief {
		t.Errorf("list of %d sites: %+v, cut %v", len(many), req, cut)
	}
	if req, cut := gatherFor(stateservice.VerbStatus, many); cut || len(req.Names) != len(many) || req.Brief {
		t.Errorf("status of %d sites: %+v, cut %v", len(many), req, cut)
	}
}

// cutTo keeps the named sites in the order named, and says which it
// found no site for.
func TestCutToKeepsTheNamedInTheirOrder(t *testing.T) {
	all := []status.Site{{Site: "a"}, {Site: "b"}, {Site: "c"}, {Site: "d"}}
	kept, gone := cutTo(all, []string{"d", "x", "b"})
	var names []string
	for _, s := range kept {
		names = append(names, s.Site)
	}
	if !slices.Equal(names, []string{"d", "b"}) || !slices.Equal(gone, []string{"x"}) {
		t.Errorf("kept %v, gone %v", names, gone)
	}
}
