package status

import (
	"slices"
	"strings"
)

func sortEntries(ents []entry) {
	slices.SortFunc(ents, func(a, b entry) int { return strings.Compare(a.site.Name, b.site.Name) })
}
