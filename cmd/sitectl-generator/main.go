// Command sitectl-generator is the systemd generator of sitectl. systemd runs
// it at boot and on every daemon-reload with three output directories; it
// writes the units of every valid site file into the first (the "normal"
// directory). A site file with mistakes is skipped with one kernel-log line
// per mistake, and every valid site is still generated: one bad file never
// costs the other sites their units, and the generator never fails the boot.
//
//	sitectl-generator NORMAL_DIR [EARLY_DIR LATE_DIR]
//	sitectl-generator --dryrun    # print what would be written, exit 1 on mistakes
//
// The site directory is /etc/sitectl/sites unless SITECTL_CONFIG_DIR says
// otherwise; SITECTL_STATE_DIR likewise for the state directory.
package main

import (
	"os"

	"github.com/sitectl/sitectl/internal/generator"
)

func main() {
	os.Exit(generator.Main(os.Args[1:], os.Stdout, os.Stderr))
}
