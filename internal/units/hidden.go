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
	return Hides(e.key, e.meant())
}

// Hides is what a service's setting key, with the values systemd reads
// (a list's items, as systemd's bus gives them too), hides from its
// processes: PrivateTmp= and ProtectHome= (yes or tmpfs) the host's
// directories they replace, InaccessiblePaths= its paths, with their "-"
// and "+" prefixes taken off.
func Hides(key string, values []string) []Hidden {
	value := strings.Join(values, " ")
	switch {
	case key == "PrivateTmp" && value == "yes":
		return hide(key+"=yes", "/tmp", "/var/tmp")
	case key == "ProtectHome" && (value == "yes" || value == "tmpfs"):
		return hide(key+"="+value, "/home", "/root", "/run/user")
	case key == "InaccessiblePaths":
		var out []Hidden
		for _, p := range values {
			if path := strings.TrimLeft(p, "-+"); path != "" {
				out = append(out, Hidden{Path: path, Directive: "InaccessiblePaths=" + p})
			}
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
