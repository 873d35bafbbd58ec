// Command sitectl manages the web sites of a systemd host: see `sitectl --help`.
package main

import (
	"os"

	"github.com/sitectl/sitectl/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr))
}
