// Package sitecheck finds what a valid site file may still get wrong on
// this host: a program that is not there or cannot run, a program or
// working directory under a path the site's unit hides from the app, a
// site file that anyone may read although it holds environment values, a
// secret in the environment that the site's unit shows to everyone, and
// keep_previous for a server that keeps connections alive in a way sitectl
// cannot switch off, a gunicorn site that undoes its preset, and a site
// that runs as the user of another site (SharedUser).
// These are warnings: sitectl check reports them and still exits 0, since
// the host the file is checked on need not be the one it runs on.
package sitecheck

import (
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/sitectl/sitectl/internal/gunicorn"
	"github.com/sitectl/sitectl/internal/pubpath"
	"github.com/sitectl/sitectl/internal/site"
	"github.com/sitectl/sitectl/internal/tomlpos"
	"github.com/sitectl/sitectl/internal/units"
)

// Host is what the checks read of the host; os's functions in production.
type Host struct {
	Stat         func(string) (fs.FileInfo, error)
	EvalSymlinks func(string) (string, error)
	// LookupName tells whether the host knows a user (db "passwd") or a
	// group (db "group"); an error is "cannot tell". nil: not checked.
	LookupName func(db, name string) (bool, error)
	// ReadHead reads the first bytes of a file, for a script's #! line;
	// nil: not read.
	ReadHead func(path string, n int) ([]byte, error)
	// Accounts reads the host's passwd and group files, for the ids a
	// site's user runs with; an error (NSS may read other sources too)
	// is "cannot tell". nil: not read, and no user's access checked.
	Accounts func() (passwd, group []byte, err error)
	// ModeDecides tells whether a path's owner, group and mode alone
	// decide who may use it (no POSIX ACL, a filesystem the kernel
	// checks itself); an error is "cannot tell". nil: never.
	ModeDecides func(path string) (bool, error)
	// Handlers reads the host's binfmt_misc handlers, which run files
	// other than ELF binaries and #! scripts; an error is "cannot tell".
	// nil: not read, and no program's format checked.
	Handlers func() ([]Handler, error)
	// NoExec tells whether the file system path is on is mounted noexec;
	// an error is "cannot tell". nil: not checked.
	NoExec func(path string) (bool, error)
}

// OS is the host sitectl runs on, as root sees it.
var OS = Host{Stat: os.Stat, EvalSymlinks: filepath.EvalSymlinks, LookupName: lookupName, ReadHead: readHead, Accounts: readAccounts, ModeDecides: modeDecides, Handlers: binfmtHandlers, NoExec: noExecMount}

// Public is the host as any user sees it, for root's checks on behalf of
// another user (a deployer, through sitectl's state service): paths are
// looked at through directories anyone may search, never through /proc,
// and never where r says the caller cannot see the host's (package
// pubpath). What cannot be seen so is "cannot tell", never "missing".
func Public(r pubpath.Resolver) Host {
	return Host{Stat: r.Stat, EvalSymlinks: r.Resolve, LookupName: lookupName, ReadHead: func(p string, n int) ([]byte, error) {
		f, err := r.Open(p)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		return readFull(f, n)
	}, Accounts: readAccounts, ModeDecides: func(p string) (bool, error) {
		// Whether a path has an ACL anyone may ask (getfacl) of a path
		// anyone may reach.
		real, err := r.Resolve(p)
		if err != nil {
			return false, err
		}
		return modeDecides(real)
	},
		// The kernel's handlers are the same for anyone (their files
		// are world-readable), no path of the caller's.
		Handlers: binfmtHandlers,
		NoExec: func(p string) (bool, error) {
			real, err := r.Resolve(p)
			if err != nil {
				return false, err
			}
			return noExecMount(real)
		}}
}

// Warnings are the warnings of site s, read from data (its file's content,
// for positions). mode is the site file's permission bits, or 0 when the
// file is not one (standard input).
func Warnings(h Host, s *site.Site, data []byte, mode fs.FileMode, opts units.Options) []*site.Error {
	root, _ := tomlpos.Parse(data)
	at := func(key string, item int) tomlpos.Pos {
		if root == nil {
			return tomlpos.Pos{Line: 1, Col: 1}
		}
		v := root.Get(key)
		switch {
		case v == nil:
			return tomlpos.Pos{Line: 1, Col: 1}
		case item >= 0 && item < len(v.Items):
			return v.Items[item].Pos
		case v.KeyPos.Line > 0:
			return v.KeyPos
		}
		return v.Pos
	}
	var out []*site.Error
	warn := func(pos tomlpos.Pos, format string, args ...any) {
		out = append(out, &site.Error{File: s.File, Line: pos.Line, Col: pos.Col, Msg: "warning: " + fmt.Sprintf(format, args...)})
	}
	hidden := units.HiddenPaths(s, opts)
	// The site's user (none: a dynamic one) runs the app, its cleanup
	// hooks and the maintenance server, and systemd enters its workdir
	// as it.
	runAs := &RunAs{User: s.User, Group: s.Group}
	if s.User == "" {
		runAs = &RunAs{Dynamic: true}
	}
	id, _ := h.identity(runAs)
	if msg := h.program(s.Exec[0], id); msg != "" {
		warn(at("exec", 0), "exec: the program %s %s", s.Exec[0], msg)
	}
	if hd, ok := h.under(s.Exec[0], hidden); ok {
		warn(at("exec", 0), "exec: the program %s lies under %s, which the site's unit hides from the app (%s): the start would fail; install it elsewhere", s.Exec[0], hd.Path, hd.Directive)
	}
	// The cleanup hooks run in the app's sandbox too (ExecStopPost=,
	// as the site's user): a mistake there shows only at each stop, as a
	// failed hook in the status.
	for i, hook := range s.Cleanup {
		pos := at("cleanup", i)
		if v := root.Get("cleanup"); v != nil && i < len(v.Items) && len(v.Items[i].Items) > 0 {
			pos = v.Items[i].Items[0].Pos
		}
		if msg := h.program(hook[0], id); msg != "" {
			warn(pos, "cleanup[%d]: the program %s %s", i, hook[0], strings.Replace(msg, "the start would fail", "the hook would fail at every stop", 1))
		}
		if hd, ok := h.under(hook[0], hidden); ok {
			warn(pos, "cleanup[%d]: the program %s lies under %s, which the site's unit hides from the app and its cleanup hooks (%s): the hook would fail at every stop; install it elsewhere", i, hook[0], hd.Path, hd.Directive)
		}
	}
	if msg := h.accountProblem("passwd", s.User); msg != "" {
		warn(at("user", -1), "%s", msg)
	}
	if msg := h.accountProblem("group", s.Group); msg != "" {
		warn(at("group", -1), "%s", msg)
	}
	for i, l := range s.Listeners {
		for _, a := range []struct{ key, db, name, what string }{{"owner", "passwd", l.Owner, "user"}, {"group", "group", l.Group, "group"}} {
			if !h.Missing(a.db, a.name) {
				continue
			}
			pos := at("listen", i)
			if v := root.Get("listen"); v != nil && i < len(v.Items) {
				if o := v.Items[i].Get(a.key); o != nil {
					pos = o.Pos
				}
			}
			warn(pos, "listen[%d].%s: %s %q does not exist on this host: systemd could not start %s, and the site would not listen on %s", i, a.key, a.what, a.name, units.SocketNameOf(s, l), l.Endpoint())
		}
	}
	if msg := h.workdirProblem(s.Workdir, id); msg != "" {
		warn(at("workdir", -1), "workdir: %s", msg)
	}
	for _, c := range s.Credentials {
		for _, msg := range Startable(h, Start{Credentials: []string{c.Path}}) {
			pos := at("credentials", -1)
			if v := root.Get("credentials").Get(c.Name); v != nil && v.KeyPos.Line > 0 {
				pos = v.KeyPos
			}
			warn(pos, "credentials.%s: %s", c.Name, msg)
		}
	}
	for _, m := range s.Modes {
		for _, c := range []struct{ key, msg string }{{"page", h.pageProblem(m.Page, id, hidden)}, {"static_dir", h.staticDirProblem(m.StaticDir, id, hidden)}} {
			if c.msg == "" {
				continue
			}
			pos := at("modes", -1)
			if v := root.Get("modes").Get(m.Name).Get(c.key); v != nil {
				pos = v.Pos
			}
			warn(pos, "modes.%s.%s: %s: a switch to mode %s would fail", m.Name, c.key, c.msg, m.Name)
		}
	}
	for i, p := range s.Hardening.WritablePaths {
		for _, msg := range Startable(h, Start{Paths: []Needed{{Setting: "ReadWritePaths=", Path: p}}, Hidden: hidden}) {
			pos := at("hardening", -1)
			if v := root.Get("hardening").Get("writable_paths"); v != nil && i < len(v.Items) {
				pos = v.Items[i].Pos
			}
			if strings.Contains(msg, "does not exist") {
				msg += "; create it before the site starts"
			} else {
				msg += ": leave it out"
			}
			warn(pos, "hardening.writable_paths[%d]: %s", i, msg)
		}
	}
	if s.Workdir != "" {
		if hd, ok := h.under(s.Workdir, hidden); ok {
			warn(at("workdir", -1), "workdir %s lies under %s, which the site's unit hides from the app (%s): the start would fail with 200/CHDIR", s.Workdir, hd.Path, hd.Directive)
		}
	}
	if mode&0o004 != 0 && hasEnvironment(s) {
		pos := at("environment", -1)
		if root != nil && root.Get("environment") == nil {
			pos = at("modes", -1)
		}
		who, file := "anyone on this host may read it", s.File
		// The units hide /etc/sitectl from every app, not the file a
		// site file links to elsewhere: there, every site's app may
		// read it too.
		if real, err := h.EvalSymlinks(s.File); err == nil && real != s.File {
			if _, ok := h.under(real, hidden); !ok {
				who, file = "anyone on this host, every site's app included, may read it where it links to ("+real+": the units hide /etc/sitectl from apps, not what its links lead to)", real
			}
		}
		warn(pos, "the file holds environment values and %s (mode %04o): chmod o-r %s; keep secrets in systemd credentials", who, mode.Perm(), file)
	}
	for _, e := range s.Environment {
		if why := secretLike(e); why != "" {
			pos := at("environment", -1)
			if v := root.Get("environment").Get(e.Name); v != nil && v.KeyPos.Line > 0 {
				pos = v.KeyPos
			}
			warn(pos, "environment: %s %s, and a site's environment is written into its unit, which every user on this host can read (systemctl show %s -p Environment), whatever the site file's mode: put secrets in credentials, or in a mode's environment, which only root and the site read", e.Name, why, units.ServiceName(s.Name))
		}
	}
	gunicornPreset(s, root, at, warn)
	if word, i := detaches(s); word != "" {
		warn(at("exec", i), "exec: %s makes %s fork into the background and end its first process: systemd takes that for a failed start, so every start of the site would fail and be rolled back; take it out, systemd runs the app in the background itself", word, filepath.Base(s.Exec[0]))
	}
	if s.SettleTime >= LongestSettle {
		warn(at("settle_time", -1), "settle_time %s is not shorter than %s, the part of the longest timeout of a change (%s) that it keeps for a rollback, which must outlast the settle time: sitectl mode, restart, reload and rollback would refuse every change of this site whatever its --timeout; make it shorter than %s", s.SettleTime, LongestSettle, site.MaxDuration, LongestSettle)
	}
	if why := keepsAlive(s); why != "" && s.KeepPrevious > 0 {
		warn(at("keep_previous", -1), "keep_previous: %s, and sitectl cannot tell it to drop kept-alive connections without restarting its workers: a client that keeps a connection to the warm generation goes on being served by it until the connection idles out (see docs/warm-rollback.md)", why)
	}
	return out
}

// LongestSettle is the settle_time from which no change of a site is
// possible: a change keeps 40% of its timeout, which is at most a day
// (flow.MaxTimeout, site.MaxDuration), for a rollback, and that part must
// be longer than the settle time (flow.CheckTimeout).
const LongestSettle = site.MaxDuration - site.MaxDuration/10*6

// gunicornPreset warns of what undoes the gunicorn preset without a
// word: GUNICORN_CMD_ARGS in the site's or a mode's environment replaces
// the preset's (its --graceful-timeout and, with fast_exit, sitectl's
// config file), and a config file on gunicorn's command line replaces
// sitectl's, so fast_exit does nothing.
func gunicornPreset(s *site.Site, root *tomlpos.Value, at func(string, int) tomlpos.Pos, warn func(tomlpos.Pos, string, ...any)) {
	if s.Server != site.ServerGunicorn {
		return
	}
	const name = "GUNICORN_CMD_ARGS"
	what := "its --graceful-timeout, so gunicorn no longer drains for drain_timeout"
	if s.FastExit {
		what += ", and its -c " + gunicorn.Path + ", so fast_exit does nothing"
	}
	envAt := func(table *tomlpos.Value, fallback tomlpos.Pos) tomlpos.Pos {
		if v := table.Get("environment").Get(name); v != nil && v.KeyPos.Line > 0 {
			return v.KeyPos
		}
		return fallback
	}
	if slices.ContainsFunc(s.Environment, func(e site.EnvVar) bool { return e.Name == name }) {
		warn(envAt(root, at("environment", -1)), "environment: %s replaces the gunicorn preset's (%s): put those arguments into yours, or pass yours on exec", name, what)
	}
	for _, m := range s.Modes {
		if slices.ContainsFunc(m.Environment, func(e site.EnvVar) bool { return e.Name == name }) {
			warn(envAt(root.Get("modes").Get(m.Name), at("modes", -1)), "modes.%s.environment: %s replaces the gunicorn preset's in that mode (%s): put those arguments into yours, or pass yours on exec", m.Name, name, what)
		}
	}
	if !s.FastExit {
		return
	}
	for i, a := range s.Exec[1:] {
		if namesConfig(a) {
			warn(at("exec", i+1), "exec: %s names gunicorn's config file, which replaces sitectl's (%s): fast_exit does nothing; set fast_exit = false to say so, or give your config file worker_exit and on_exit hooks of its own (see docs/overlap.md)", a, gunicorn.Path)
			return
		}
	}
}

// detaches finds the word of a site's exec line that makes its server
// daemonize (gunicorn's -D and --daemon, or an abbreviation argparse
// takes; uWSGI's -d, --daemonize and --daemonize2), and its index in
// s.Exec; "" and -1 when there is none.
func detaches(s *site.Site) (string, int) {
	prog := filepath.Base(s.Exec[0])
	gunicorn := prog == "gunicorn" || s.Server == site.ServerGunicorn
	uwsgi := strings.HasPrefix(prog, "uwsgi") || s.Server == site.ServerUWSGI
	for i, a := range s.Exec[1:] {
		opt, _, _ := strings.Cut(a, "=")
		switch {
		case gunicorn && (a == "-D" || len(a) >= len("--da") && strings.HasPrefix("--daemon", a)),
			uwsgi && (a == "-d" || opt == "--daemonize" || opt == "--daemonize2"):
			return a, i + 1
		case a == "--":
			return "", -1
		}
	}
	return "", -1
}

// namesConfig says whether a word of gunicorn's command line names its
// config file: -c, -cFILE, --config, --config=FILE, or an abbreviation of
// --config that Python's argparse takes (--co at least).
func namesConfig(a string) bool {
	if strings.HasPrefix(a, "-c") && !strings.HasPrefix(a, "--") {
		return true
	}
	opt, _, _ := strings.Cut(a, "=")
	return len(opt) >= len("--co") && strings.HasPrefix("--config", opt)
}

// keepsAlive says which words of a site's exec line turn HTTP keep-alive
// on in a server that cannot switch it off while it runs (gunicorn's
// threaded and async workers without --keep-alive 0, uWSGI's HTTP/1.1
// socket or --http-keepalive), or "".
func keepsAlive(s *site.Site) string {
	prog := filepath.Base(s.Exec[0])
	args := s.Exec[1:]
	value := func(i int, a, name string) (string, bool) {
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v, true
		}
		if a == name && i+1 < len(args) {
			return args[i+1], true
		}
		return "", false
	}
	var found string
	off := false
	for i, a := range args {
		for _, name := range []string{"--threads", "-k", "--worker-class", "--keep-alive", "--http11-socket", "--http-keepalive"} {
			v, ok := value(i, a, name)
			switch {
			case !ok && !(a == name && (name == "--http11-socket" || name == "--http-keepalive")):
			case name == "--keep-alive":
				off = v == "0"
			case name == "--threads" && v != "1" && prog == "gunicorn",
				(name == "-k" || name == "--worker-class") && prog == "gunicorn" && (strings.Contains(v, "gthread") || strings.Contains(v, "gevent") || strings.Contains(v, "eventlet")),
				(name == "--http11-socket" || name == "--http-keepalive") && prog == "uwsgi":
				found = prog + " " + a
				if a == name && v != "" {
					found += " " + v
				}
			}
		}
	}
	if found == "" || off && prog == "gunicorn" {
		return ""
	}
	return found + " keeps connections alive"
}

// program says what is wrong with the program path, run as user id
// (nil: not checked), or "".
func (h Host) program(p string, id *identity) string {
	msg, _ := h.programProblem(p, id, namespace{})
	return msg
}

// under finds the hidden path p lies under, as written or with its
// symlinks resolved.
func (h Host) under(p string, hidden []units.Hidden) (units.Hidden, bool) {
	candidates := []string{p}
	if h.EvalSymlinks != nil {
		if r, err := h.EvalSymlinks(p); err == nil && r != p {
			candidates = append(candidates, r)
		}
	}
	for _, c := range candidates {
		for _, hd := range hidden {
			if c == hd.Path || strings.HasPrefix(c, strings.TrimSuffix(hd.Path, "/")+"/") {
				return hd, true
			}
		}
	}
	return units.Hidden{}, false
}

// secretWords are the words of a variable's name (split at "_") that
// name a secret.
var secretWords = []string{"PASSWORD", "PASSWD", "PASS", "SECRET", "SECRETS", "TOKEN", "KEY", "APIKEY", "CREDENTIAL", "CREDENTIALS", "PRIVATE", "AUTH"}

// secretLike says why an environment variable looks like it holds a
// secret ("" when it does not): a word of its name, or a URL with a
// password in it (DATABASE_URL = "postgres://shop:pw@db/shop").
func secretLike(e site.EnvVar) string {
	for _, w := range strings.Split(strings.ToUpper(e.Name), "_") {
		if slices.Contains(secretWords, w) {
			return "looks like a secret"
		}
	}
	if u, err := url.Parse(e.Value); err == nil && u.User != nil {
		if _, ok := u.User.Password(); ok {
			return "holds a URL with a password"
		}
	}
	return ""
}

func hasEnvironment(s *site.Site) bool {
	if len(s.Environment) > 0 {
		return true
	}
	for _, m := range s.Modes {
		if len(m.Environment) > 0 {
			return true
		}
	}
	return false
}

// Users indexes sites by the user they run as: each user of one of them
// to the names of its sites, sorted, each once. Sites of a dynamic user
// (no user) are left out: each has a user of its own.
func Users(sites []*site.Site) map[string][]string {
	out := map[string][]string{}
	for _, s := range sites {
		if s.User != "" {
			out[s.User] = append(out[s.User], s.Name)
		}
	}
	for u, names := range out {
		slices.Sort(names)
		out[u] = slices.Compact(names)
	}
	return out
}

// sharedNamed is how many of the other sites of a shared user
// SharedUser names; it counts the rest. A host whose sites all run as
// www-data would otherwise get each of its warnings naming every site.
const sharedNamed = 3

// SharedUser warns when site s, read from data, runs as a user that
// another site runs as too (users: Users of the sites to compare with).
// Sites are kept apart by their users: two apps of one user may signal
// each other's processes, read and change what that user owns (the
// other's credentials, which systemd gives the user), and reach the
// other's runtime directory, where an overlap site's launcher takes a
// reload into any mode environment from whoever reaches its control
// socket. A site without user runs as a dynamic user of its own.
func SharedUser(s *site.Site, data []byte, users map[string][]string) []*site.Error {
	if s.User == "" {
		return nil
	}
	var with []string
	for _, name := range users[s.User] {
		if name != s.Name {
			with = append(with, name)
		}
	}
	if len(with) == 0 {
		return nil
	}
	named := strings.Join(with[:min(len(with), sharedNamed)], ", ")
	if more := len(with) - sharedNamed; more > 0 {
		named = fmt.Sprintf("%s and %d more", named, more)
	}
	pos := tomlpos.Pos{Line: 1, Col: 1}
	if root, _ := tomlpos.Parse(data); root != nil {
		if v := root.Get("user"); v != nil && v.KeyPos.Line > 0 {
			pos = v.KeyPos
		}
	}
	return []*site.Error{{File: s.File, Line: pos.Line, Col: pos.Col, Msg: fmt.Sprintf(
		"warning: user %s is also the user of site %s: sites are kept apart by their users, and apps of one user can signal each other's processes, read each other's credentials and files, and ask each other's launcher for a reload with an environment of their choosing; give each site a user of its own, or leave user out for a dynamic one",
		s.User, named)}}
}
