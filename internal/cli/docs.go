package cli

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
)

// docsCmd writes the man pages; packaging runs it.
func docsCmd(root *cobra.Command) *cobra.Command {
	return &cobra.Command{
		Use:    "docs DIR",
		Hidden: true,
		Short:  "Write man pages into DIR",
		Args:   args(1, 1, "a directory"),
		RunE: func(c *cobra.Command, a []string) error {
			if err := os.MkdirAll(a[0], 0o755); err != nil {
				return err
			}
			hdr := &doc.GenManHeader{Title: "SITECTL", Section: "1", Source: "sitectl " + Version, Manual: "sitectl manual"}
			root.DisableAutoGenTag = true
			if err := doc.GenManTree(root, hdr, a[0]); err != nil {
				return fmt.Errorf("cannot write man pages: %w", err)
			}
			return nil
		},
	}
}
