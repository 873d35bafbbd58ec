package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/sitectl/sitectl/internal/atomicfile"
	"github.com/sitectl/sitectl/internal/paths"
	"github.com/sitectl/sitectl/internal/site"
	"github.com/sitectl/sitectl/internal/trace"
)

// The manual sitectl docs writes:
//
//   - section 1: sitectl(1) and a page per command an operator or a
//     deployer runs (sitectl-mode(1), ...), each with its own title;
//   - section 5: sitectl.toml(5), every key of a site file, from site.Keys;
//   - section 7: sitectl-json(7), every field --json prints, from the Go
//     types it prints (jsonOutputs);
//   - section 8: sitectl-generator(8), and a page per verb that only the
//     generated units run (sitectl-launch(8), ...). Those verbs are hidden
//     from --help's list of commands and from shell completion.
const (
	groupInternal = "internal"
	manManual     = "sitectl manual"
)

// manPage is one page of the manual.
type manPage struct {
	Name    string // sitectl-mode
	Section string // 1, 5 or 8
	Text    string // roff
}

// File is the page's file name, e.g. sitectl-mode.1.
func (p manPage) File() string { return p.Name + "." + p.Section }

// docsCmd writes the man pages; packaging runs it.
func docsCmd(root *cobra.Command) *cobra.Command {
	return &cobra.Command{
		Use:    "docs DIR",
		Hidden: true,
		Short:  "Write the man pages into DIR (sections 1, 5, 7 and 8)",
		Args:   args(1, 1, "a directory"),
		RunE: func(c *cobra.Command, a []string) error {
			date, err := manDate()
			if err != nil {
				return err
			}
			if err := os.MkdirAll(a[0], 0o755); err != nil {
				return fmt.Errorf("cannot write man pages: %w", err)
			}
			for _, p := range manPages(root, date) {
				if err := atomicfile.Write(filepath.Join(a[0], p.File()), []byte(p.Text), 0o644); err != nil {
					return fmt.Errorf("cannot write man pages: %w", err)
				}
			}
			return nil
		},
	}
}

// manDate is the date on every page: SOURCE_DATE_EPOCH's, for builds that
// must be reproducible, or today's.
func manDate() (time.Time, error) {
	v := os.Getenv("SOURCE_DATE_EPOCH")
	if v == "" {
		return time.Now().UTC(), nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return time.Time{}, usageErrorf("SOURCE_DATE_EPOCH=%q is not a number of seconds", v)
	}
	return time.Unix(n, 0).UTC(), nil
}

// hideInternalVerbs hides the verbs that only the generated units and
// packaging run from --help's command list and from shell completion; their
// manual pages are in section 8. The help output names them in their
// group's title instead.
func hideInternalVerbs(root *cobra.Command) {
	var names []string
	for _, c := range root.Commands() {
		if c.GroupID == groupInternal {
			c.Hidden = true
			names = append(names, c.Name())
		}
	}
	for _, g := range root.Groups() {
		if g.ID == groupInternal {
			g.Title = "Run by the generated units, not by hand (see their pages in section 8 of the manual):\n  " +
				strings.Join(names, ", ")
		}
	}
}

// manPages renders the whole manual.
func manPages(root *cobra.Command, date time.Time) []manPage {
	var pages []manPage
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if sec := manSection(c); sec != "" {
			pages = append(pages, manPage{pageName(c), sec, commandPage(c, sec, date)})
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	pages = append(pages,
		manPage{"sitectl.toml", "5", siteFilePage(date)},
		manPage{"sitectl-json", "7", jsonPage(date)},
		manPage{"sitectl-generator", "8", generatorPage(date)})
	return pages
}

// manSection is the section of a command's page: 1 for what people run, 8
// for the verbs the generated units run, "" for no page (help, docs, the
// hidden completion helpers).
func manSection(c *cobra.Command) string {
	switch {
	case c.Name() == "help" || c.IsAdditionalHelpTopicCommand():
		return ""
	case c.GroupID == groupInternal:
		return "8"
	case c.IsAvailableCommand() || !c.HasParent():
		return "1"
	}
	return ""
}

func pageName(c *cobra.Command) string { return strings.ReplaceAll(c.CommandPath(), " ", "-") }

func header(r *roff, name, section string, date time.Time) {
	r.title(name, section, date.Format("2006-01-02"), "sitectl "+Version, manManual)
}

func commandPage(c *cobra.Command, section string, date time.Time) string {
	r := &roff{}
	name := pageName(c)
	header(r, name, section, date)
	r.name(name, c.Short)

	r.section("SYNOPSIS")
	if c.Runnable() {
		r.line(".B %s", quoteArg(c.CommandPath()))
		r.line("%s", escapeRoff(strings.TrimSpace(strings.TrimPrefix(c.UseLine(), c.CommandPath()))))
	}
	if subs := manSubcommands(c, "1"); len(subs) > 0 {
		if c.Runnable() {
			r.line(".br")
		}
		r.line(".B %s", quoteArg(c.CommandPath()))
		r.line("COMMAND [flags]")
	}

	long, exitCodes, hasExitCodes := strings.Cut(c.Long, exitCodesHelp)
	if hasExitCodes {
		long += exitCodes
	}
	r.section("DESCRIPTION")
	if strings.TrimSpace(long) == "" {
		long = c.Short + "."
	}
	r.text(long)

	if subs := manSubcommands(c, "1"); len(subs) > 0 {
		r.section("COMMANDS")
		for _, s := range subs {
			r.item(s.Name(), "", s.Short+". See "+pageName(s)+"(1).")
		}
	}
	if !c.HasParent() {
		if subs := manSubcommands(c, "8"); len(subs) > 0 {
			r.section("COMMANDS RUN BY THE GENERATED UNITS")
			r.para("These verbs are hidden from --help and from shell completion: systemd runs them from the units the generator writes.")
			for _, s := range subs {
				r.item(s.Name(), "", s.Short+". See "+pageName(s)+"(8).")
			}
		}
	}
	c.InitDefaultHelpFlag()
	if !c.HasParent() {
		c.InitDefaultVersionFlag()
	}
	flagSection(r, "OPTIONS", c.NonInheritedFlags())
	flagSection(r, "GLOBAL OPTIONS", c.InheritedFlags())
	if c.Example != "" {
		r.section("EXAMPLES")
		r.pre(dedent(c.Example))
	}
	jsonSection(r, c)
	if hasExitCodes {
		exitStatusSection(r)
	}
	if !c.HasParent() {
		r.section("ENVIRONMENT")
		r.item("SITECTL_CONFIG_DIR", "", "The directory of site files, if --config-dir is not given (default "+paths.DefaultConfigDir+").")
		r.item("SITECTL_STATE_DIR", "", "The directory of mode state, if --state-dir is not given (default "+paths.DefaultStateDir+").")
		r.item(trace.Env, "", "1: print each step of the command on standard error, with the time since sitectl began and since the step before: reading the command line and the site file, connecting to systemd, the site's lock, the checks, systemd's job, the verification, the history, the report (for a change); each journal read (for status); every progress line. Lines begin with \""+trace.Prefix+"\". For an operator who asks where a command's time goes; unset or 0: nothing.")
		r.item(envPriority, "", "idle (the default): mode, restart, reload and rollback run at idle priority (SCHED_IDLE), root's sitectl until its verification of the change fails or has gone on for half a second, so that the site's visitors and the other sites come first; normal: at the priority sitectl was started with (for a host whose CPUs are always busy, where an idle command waits for a lull).")
		filesSection(r)
	}
	r.seeAlso(commandSeeAlso(c, section))
	return r.String()
}

// manSubcommands are the subcommands of c whose pages are in section sec.
func manSubcommands(c *cobra.Command, sec string) []*cobra.Command {
	var out []*cobra.Command
	for _, s := range c.Commands() {
		if manSection(s) == sec {
			out = append(out, s)
		}
	}
	slices.SortFunc(out, func(a, b *cobra.Command) int { return strings.Compare(a.Name(), b.Name()) })
	return out
}

func flagSection(r *roff, title string, fs *pflag.FlagSet) {
	var flags []*pflag.Flag
	fs.VisitAll(func(f *pflag.Flag) {
		if !f.Hidden && f.Deprecated == "" {
			flags = append(flags, f)
		}
	})
	if len(flags) == 0 {
		return
	}
	r.section(title)
	for _, f := range flags {
		tag := "--" + f.Name
		if f.Shorthand != "" && f.ShorthandDeprecated == "" {
			tag = "-" + f.Shorthand + ", " + tag
		}
		varname, usage := pflag.UnquoteUsage(f)
		if v, ok := flagValueNames[f.Name]; ok {
			varname = v
		}
		switch f.DefValue {
		case "", "false", "0", "[]", "0s":
		default:
			usage += " (default " + f.DefValue + ")"
		}
		r.item(tag, strings.ToUpper(varname), usage)
	}
}

// flagValueNames name the values of flags whose usage does not.
var flagValueNames = map[string]string{"config-dir": "DIR", "state-dir": "DIR"}

func exitStatusSection(r *roff) {
	r.section("EXIT STATUS")
	for _, l := range strings.Split(exitCodesHelp, "\n")[1:] {
		code, what, _ := strings.Cut(strings.TrimSpace(l), " ")
		r.item(code, "", strings.TrimSpace(what))
	}
}

func filesSection(r *roff) {
	r.section("FILES")
	r.item(paths.DefaultConfigDir+"/NAME.toml", "", "The site file of the site NAME: see sitectl.toml(5).")
	r.item(paths.DefaultStateDir+"/sites/NAME/", "", "The recorded mode, its environment and the history of the site NAME; held-fds there is a cache of which of systemd's open files held its sockets, so that a change or its status need not read them all (10,000 with as many sites).")
}

func commandSeeAlso(c *cobra.Command, section string) []string {
	var refs []string
	if section == "8" {
		refs = append(refs, "sitectl(1)", "sitectl.toml(5)", "sitectl-generator(8)", "systemd.service(5)")
		return refs
	}
	if c.HasParent() {
		refs = append(refs, pageName(c.Parent())+"(1)")
	}
	for _, s := range manSubcommands(c, "1") {
		refs = append(refs, pageName(s)+"(1)")
	}
	if !c.HasParent() {
		refs = append(refs, "sitectl.toml(5)", "sitectl-generator(8)")
		for _, s := range manSubcommands(c, "8") {
			refs = append(refs, pageName(s)+"(8)")
		}
		refs = append(refs, "sitectl-json(7)", "systemctl(1)", "journalctl(1)", "systemd.socket(5)", "systemd.service(5)")
	} else if _, ok := jsonOutputOf(c); ok {
		refs = append(refs, "sitectl-json(7)")
	}
	if c.Name() == "check" || c.Name() == "render" {
		refs = append(refs, "sitectl.toml(5)", "sitectl-generator(8)")
	}
	return refs
}

// dedent removes the indentation all lines of s share.
func dedent(s string) []string {
	lines := strings.Split(strings.Trim(s, "\n"), "\n")
	indent := -1
	for _, l := range lines {
		if strings.TrimSpace(l) == "" {
			continue
		}
		n := len(l) - len(strings.TrimLeft(l, " \t"))
		if indent < 0 || n < indent {
			indent = n
		}
	}
	for i, l := range lines {
		if len(l) >= indent && indent > 0 {
			lines[i] = l[indent:]
		}
	}
	return lines
}

// siteFilePage is sitectl.toml(5): the format, and every key from
// site.Keys, which a test keeps equal to the parser's keys.
func siteFilePage(date time.Time) string {
	r := &roff{}
	header(r, "sitectl.toml", "5", date)
	r.name("sitectl.toml", "site files of sitectl")
	r.section("SYNOPSIS")
	r.line("%s", escapeRoff(paths.DefaultConfigDir+"/NAME.toml"))
	r.section("DESCRIPTION")
	r.text(`Each web site sitectl runs is described by one file in TOML, named after the site.
sitectl's systemd generator, sitectl-generator(8), turns every valid site file into
the site's units at boot and on every systemctl daemon-reload: site-NAME.socket,
which holds the listeners, site-NAME.service, which runs the app, and, with a
reload_trigger, site-NAME-reload.path.

The site's name is the file's name without .toml. It uses lowercase letters, digits
and single hyphens, starts with a letter, has at most 32 characters, and does not end
in -reload, which is reserved for the reload units.

Every key is checked strictly: an unknown key, a value of the wrong type or out of
range, a relative path, or a listener that collides with another site's is a
mistake, reported as FILE:LINE:COL: what is wrong. sitectl check reports every
mistake of every file; the generator logs them (journalctl -t sitectl-generator),
runs a site whose file has mistakes from its last good copy (or skips it when it has
none), and still generates every other site.

The directory is ` + paths.DefaultConfigDir + ` unless sitectl is given --config-dir or
SITECTL_CONFIG_DIR.`)

	r.section("VALUES")
	r.item("durations", "", `Strings with a unit, as Go writes them: "500ms", "30s", "1m30s", "2h". `+
		`At most 24 hours, and no finer than a millisecond.`)
	r.item("paths", "", "Absolute, in their simplest form (no //, . or ..), and made of letters, digits and . _ / @ + : , = ~ - "+
		"only: they end up in unit files, where spaces separate list items and % and $ are specifiers.")
	r.item("user and group names", "", "Lowercase letters, digits, _ and -, starting with a letter or _, at most 31 characters.")

	r.section("KEYS")
	keyItems(r, "")
	for _, t := range site.Tables {
		r.subsection(t.Syntax)
		r.para(t.Doc)
		keyItems(r, t.Name)
	}

	r.section("EXAMPLE")
	r.pre(strings.Split(siteFileExample, "\n"))
	r.para("Check a file before it is put in place, then let the generator pick it up:")
	r.pre([]string{
		"sitectl check --name shop /tmp/shop.toml",
		"install -m 0644 /tmp/shop.toml /etc/sitectl/sites/shop.toml",
		"systemctl daemon-reload",
		"systemctl start site-shop.socket",
	})
	r.section("FILES")
	r.item(paths.DefaultConfigDir+"/NAME.toml", "", "The site file of the site NAME.")
	r.item("/usr/share/doc/sitectl/examples/example.toml", "", "An annotated site file; not active.")
	r.seeAlso([]string{"sitectl(1)", "sitectl-check(1)", "sitectl-units-render(1)", "sitectl-generator(8)",
		"systemd.socket(5)", "systemd.service(5)", "systemd.exec(5)"})
	return r.String()
}

func keyItems(r *roff, table string) {
	for _, k := range site.Keys {
		if k.Table != table {
			continue
		}
		r.detailItem(k.Key, k.Type+"; "+keyDefault(k.Default), k.Doc)
	}
}

func keyDefault(d string) string {
	if d == "required" {
		return "required"
	}
	return "default: " + d
}

const siteFileExample = `description = "Karl's shop"
exec = ["/usr/bin/gunicorn", "--workers", "4", "shop.wsgi:application"]
workdir = "/srv/karl/current"
user = "karl"
group = "karl"
server = "gunicorn"
handoff = "overlap"
drain_timeout = "30s"
environment = { DJANGO_SETTINGS_MODULE = "shop.settings" }
reload_trigger = "/srv/karl/current/tmp/restart.txt"
cleanup = [["/srv/karl/bin/release-locks"]]

[[listen]]
address = "127.0.0.1:8001"

[[listen]]
path = "/run/karl/web.sock"
owner = "karl"
group = "www-data"
mode = "0660"

[modes.read-only]
environment = { SHOP_READ_ONLY = "1" }

[probe]
path = "/healthz"`

// generatorPage is sitectl-generator(8).
func generatorPage(date time.Time) string {
	r := &roff{}
	header(r, "sitectl-generator", "8", date)
	r.name("sitectl-generator", "turn sitectl's site files into systemd units")
	r.section("SYNOPSIS")
	r.line(".B /usr/lib/systemd/system\\-generators/sitectl\\-generator")
	r.line("NORMAL_DIR [EARLY_DIR LATE_DIR]")
	r.line(".br")
	r.line(".B sitectl\\-generator \\-\\-dryrun")
	r.section("DESCRIPTION")
	r.text(`sitectl-generator is a systemd generator (see systemd.generator(7)). systemd runs it
early at boot and on every systemctl daemon-reload, before it loads units. It reads
every site file in ` + paths.DefaultConfigDir + ` (see sitectl.toml(5)) and writes the units
of each valid site into NORMAL_DIR:

  site-NAME.socket          the listeners of the first listener name
  site-NAME@OTHER.socket    the listeners of each other name
  site-NAME.service         the app, hardened, in the mode recorded for the site
  site-NAME-reload.path     with reload_trigger: watches the trigger file; the
                            main socket wants it, and it is part of that socket
  site-NAME-reload.service  with reload_trigger: runs sitectl touched

They are exactly what sitectl units render prints for the same files. The socket
units are wanted by sockets.target: a site's listeners are open from boot, and its
first connection starts the app. A site taken out of service with sitectl disable
gets its units but not that link, so it stays down across reboots until sitectl
enable. Drop-ins in /etc/systemd/system/UNIT.d/ apply to generated units as to any
other.

Each unit generated from a site file names in its comment header the content it was
generated from: "Site file sha256: HEX", the SHA-256 of the file's bytes as read.
systemd tells units older than their site file only by a modification time later
than the one it loaded, so a file put in place with its old time kept (cp -p,
rsync -a, tar x) passes for current with systemctl; sitectl compares the file with
that line, and takes such units as older than the file.

A site file with mistakes does not take its site down. Each mistake is logged as
FILE:LINE:COL: what is wrong, and the site's units are written from the last good
copy of its file: the version its service last started from, which sitectl prepare
keeps in ` + paths.DefaultStateDir + `/sites/NAME/last-good.toml. Those units name the
copy in their first comment line and as their SourcePath=, and the log says, first,
"FILE has N mistakes: running the last good version". The next daemon-reload after
the file is fixed writes the units from the file again. A site that never started
has no such copy: the generator records the content of every site file it writes
units from (in ` + paths.DefaultStateDir + `/generated-listeners.json, with their
listeners), and the version of the site's file it last generated the units from
stands in for the copy, and is kept as it; the log then says "(the version its units
were last generated from: ...)". A site whose file has mistakes and that has no
usable copy (its units were never generated, or the copy collides with another
site's listener) is skipped, and the log says why; so is a site whose copy
cannot be read because the state directory is not mounted yet at boot (a separate
/var), which the log also says. A site file that is gone is not a mistake: its site
has no units. A valid site file that failed to start is treated alike while the site
is pinned: sitectl's rollback put back the version the site ran before and wrote
` + paths.DefaultStateDir + `/pinned/NAME.json, which names the failed file by its
SHA-256; while the file's content is that, its units come from the last good copy, and
the log says "FILE failed to start on TIME and is pinned". Any edit of the file lifts
the pin. Every other site is still generated, and the generator never fails
the boot: under systemd it exits 0 whatever it found. It logs at priority err to the
journal under the identifier sitectl-generator (journalctl -t sitectl-generator -p err)
when journald runs, as on every daemon-reload; at boot, before journald runs, to the
kernel log, which journald reads when it starts; and to standard error when
SYSTEMD_LOG_TARGET is console. The kernel takes 10 lines at a time: past 8 lines of
mistakes it says how many it left out.`)
	r.section("OPTIONS")
	r.item("--dryrun", "", "Print the units it would write, each under a line ---PATH---, and "+
		"the mistakes of site files on standard error; write nothing. Exit 1 if a site file has mistakes.")
	r.section("ENVIRONMENT")
	r.item("SITECTL_CONFIG_DIR", "", "The directory of site files instead of "+paths.DefaultConfigDir+".")
	r.item("SITECTL_STATE_DIR", "", "The state directory the units refer to, instead of "+paths.DefaultStateDir+".")
	r.item("SYSTEMD_LOG_TARGET", "", "console logs to standard error instead of the journal or the kernel log.")
	r.section("EXIT STATUS")
	r.item("0", "", "The units were written (under systemd, always, even when sites were skipped); with --dryrun, every site file is valid.")
	r.item("1", "", "With --dryrun: a site file has mistakes, or the directory cannot be read.")
	r.item("2", "", "Bad usage: neither one nor three directories, nor --dryrun.")
	r.section("FILES")
	r.item(paths.DefaultConfigDir+"/*.toml", "", "The site files.")
	r.item(paths.DefaultStateDir+"/sites/NAME/last-good.toml", "", "The last good copy of a site's file (sitectl prepare keeps it).")
	r.item(paths.DefaultStateDir+"/sites/NAME/last-ran.toml", "", "The copy of a site's file its service last ran from and was seen to work with: its run ended cleanly (the service's ExecStopPost= leaves the mark ran-cleanly beside it, which the next start or change takes up), or a change saw it serve. A rollback goes back to it when a start that failed overwrote the last good copy.")
	r.item(paths.DefaultStateDir+"/sites/NAME/out-of-service", "", "Marks a site taken out of service with sitectl disable.")
	r.item(paths.DefaultStateDir+"/pinned/NAME.json", "", "Pins a site whose file failed to start to its last good copy, until the file changes.")
	r.item("/run/systemd/generator/", "", "Where systemd has its generators write units (NORMAL_DIR).")
	r.seeAlso([]string{"sitectl(1)", "sitectl.toml(5)", "sitectl-units-render(1)", "systemd.generator(7)",
		"systemctl(1)", "journalctl(1)"})
	return r.String()
}
