// Package gunicorn owns the config file that the gunicorn preset hands to
// gunicorn: sitectl-gunicorn.conf.py, written by the generator next to the
// units and named in GUNICORN_CMD_ARGS (-c). It loads the config gunicorn
// would have loaded without it (gunicorn.conf.py in the working
// directory) and adds the hooks worker_exit and on_exit, which end a
// cleanly stopping worker or master without Python's teardown of the
// interpreter (site key fast_exit): that teardown costs 0.1-0.3 s of CPU
// per process, taken from the generation that serves while the old one
// drains.
package gunicorn

import (
	_ "embed"
	"path"
)

// Config is the content of the file.
//
//go:embed sitectl-gunicorn.conf.py
var Config string

// FileName is the file's name in the generator's output directory.
const FileName = "sitectl-gunicorn.conf.py"

// Dir is where systemd has the generator write units: the directory the
// units name the file in.
const Dir = "/run/systemd/generator"

// Path is where the units find the file.
func Path() string { return path.Join(Dir, FileName) }
