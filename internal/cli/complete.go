package cli

import (
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/sitectl/sitectl/internal/site"
)

// completeSites offers the site names of the config directory.
func (e *env) completeSites(c *cobra.Command, a []string, prefix string) ([]cobra.Completion, cobra.ShellCompDirective) {
	entries, err := os.ReadDir(e.dirs.Config)
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var out []cobra.Completion
	for _, en := range entries {
		name, ok := strings.CutSuffix(en.Name(), ".toml")
		if ok && strings.HasPrefix(name, prefix) && site.ValidateName(name) == nil {
			out = append(out, name)
		}
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}

// completeSiteThenMode offers site names, then the modes of that site.
func (e *env) completeSiteThenMode(c *cobra.Command, a []string, prefix string) ([]cobra.Completion, cobra.ShellCompDirective) {
	switch len(a) {
	case 0:
		return e.completeSites(c, a, prefix)
	case 1:
		s, err := e.loadSite(a[0])
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var out []cobra.Completion
		for _, m := range s.ModeNames() {
			if strings.HasPrefix(m, prefix) {
				out = append(out, m)
			}
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	}
	return nil, cobra.ShellCompDirectiveNoFileComp
}

// completeOneSite offers site names for the first argument only.
func (e *env) completeOneSite(c *cobra.Command, a []string, prefix string) ([]cobra.Completion, cobra.ShellCompDirective) {
	if len(a) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	return e.completeSites(c, a, prefix)
}
