package units

import (
	"strings"

	"github.com/sitectl/sitectl/internal/site"
)

// Hidden is a path that a site's service does not see as the host has it,
// and the directive of the service that hides it.
type Hidden struct {
	Path      string // e.g. /tmp
	Directive string // e.g. PrivateTmp=yes
}

// HiddenPaths lists what the site's service hides from the app, read from
// the service it renders: a program or working directory under one of them
// is not there for the app (or is an empty directory of its own).
func HiddenPaths(s *site.Site, opts Options) []Hidden {
	var out []Hidden
	svc := renderService(s, opts.withDefaults())
	for _, sec := range svc.src.sections {
		if sec.name != "Service" {
			continue
		}
		for _, e := range sec.entries {
			out = append(out, hiddenBy(e)...)
		}
	}
	return out
}

// hiddenBy is what one directive hides.
func hiddenBy(e entry) []Hidden {
	value := strings.Join(e.meant(), " ")
	switch {
	case e.key == "PrivateTmp" && value == "yes":
		return hide(e.key+"=yes", "/tmp", "/var/tmp")
	case e.key == "ProtectHome" && (value == "yes" || value == "tmpfs"):
		return hide(e.key+"="+value, "/home", "/root", "/run/user")
	case e.key == "InaccessiblePaths":
		var out []Hidden
		for _, p := range e.want {
			out = append(out, Hidden{Path: strings.TrimLeft(p, "-+"), Directive: "InaccessiblePaths=" + p})
		}
		return out
	}
	return nil
}

func hide(directive string, paths ...string) []Hidden {
	out := make([]Hidden, len(paths))
	for i, p := range paths {
		out[i] = Hidden{Path: p, Directive: directive}
	}
	return out
}
