package cli

import (
	"errors"
	"io/fs"
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

// completeGoneSites offers, for the first argument of remove, the sites
// sitectl kept state of whose site file is gone: remove refuses every site
// that still has its file, which completeSites would offer.
func (e *env) completeGoneSites(c *cobra.Command, a []string, prefix string) ([]cobra.Completion, cobra.ShellCompDirective) {
	if len(a) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	entries, err := os.ReadDir(e.dirs.SitesState())
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var out []cobra.Completion
	for _, en := range entries {
		name := en.Name()
		if !en.IsDir() || !strings.HasPrefix(name, prefix) || site.ValidateName(name) != nil {
			continue
		}
		if _, err := os.Lstat(e.dirs.SiteFile(name)); errors.Is(err, fs.ErrNotExist) {
			out = append(out, name)
		}
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}
