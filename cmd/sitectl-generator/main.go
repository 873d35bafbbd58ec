// Command sitectl-generator is the systemd generator of sitectl. systemd runs
// it at boot and on every daemon-reload with three output directories; it
// writes the units of every valid site file into the first (the "normal"
// directory). A site file with mistakes gets the units of its last good
// copy (kept by sitectl prepare in the state directory), or, without one,
// is skipped; either way with one error line per mistake in the journal
// (in the kernel log at boot, before journald runs). Every valid
// site is still generated: one bad file never costs the other sites their
// units, and the generator never fails the boot. A site taken out of
// service (sitectl disable) gets its units but no link that starts it.
//
//	sitectl-generator NORMAL_DIR [EARLY_DIR LATE_DIR]
//	sitectl-generator --dryrun    # print what would be written, exit 1 on mistakes
//
// The site directory is /etc/sitectl/sites unless SITECTL_CONFIG_DIR says
// otherwise; SITECTL_STATE_DIR likewise for the state directory.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/sitectl/sitectl/internal/generator"
	"github.com/sitectl/sitectl/internal/journal"
	"github.com/sitectl/sitectl/internal/modes"
	"github.com/sitectl/sitectl/internal/paths"
	"github.com/sitectl/sitectl/internal/procfs"
	"github.com/sitectl/sitectl/internal/site"
	"github.com/sitectl/sitectl/internal/term"
	"github.com/sitectl/sitectl/internal/units"
	"golang.org/x/sys/unix"
)

// usage is the command line, as -h and a wrong one print it.
const usage = "sitectl-generator NORMAL_DIR [EARLY_DIR LATE_DIR] | --dryrun"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is the generator's command line: with one or three directories (as
// systemd calls it) it writes the units into the first; with --dryrun it
// prints them and exits 1 if any site file has mistakes. Under systemd it
// always exits 0: one bad site file must never fail the boot.
func run(args []string, stdout, stderr io.Writer) int {
	dryrun := len(args) > 0 && (args[0] == "--dryrun" || args[0] == "-dryrun")
	if len(args) > 0 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help") {
		fmt.Fprintln(stdout, usage)
		return 0
	}
	if !dryrun && len(args) != 1 && len(args) != 3 {
		fmt.Fprintln(stderr, "usage: "+usage)
		return 2
	}
	if !dryrun {
		// systemd passes directories; an option here is an operator's
		// typo, and taking it for the output directory would write units
		// into ./-x and the generator's listener record with them.
		for _, a := range args {
			if strings.HasPrefix(a, "-") {
				fmt.Fprintf(stderr, "sitectl-generator: unknown option %q; nothing written\nusage: %s\n", a, usage)
				return 2
			}
		}
	}
	log := newLogger(stderr, dryrun)
	defer log.Close()

	dirs := paths.FromEnv(os.Getenv)
	// Where two sites claim a listener, the one whose units had it at the
	// last run, or that held it when it last started, keeps it: a new or
	// edited file never takes a listening site off its socket.
	held := modes.Store{Dir: dirs.State}.Holders()
	res, err := site.LoadDir(dirs.Config, held)
	if err != nil {
		log.Printf(levelErr, "%v; no site units generated", err)
		return exitCode(dryrun)
	}
	opts := units.Options{Dirs: dirs}
	res, rendered := generator.CheckedRendered(res, opts)
	problem := generator.StateProblem(dirs.State)
	res, outcomes, pinned := generator.Settled(res, opts, problem, held)
	lines, skipped := generator.Mistakes(res.Errors, outcomes)
	for _, p := range pinned {
		lines = append(lines, generator.PinnedLine(p))
	}
	if problem != "" && len(res.Sites)+len(outcomes) > 0 {
		lines = append([]string{"the state directory cannot be read: " + problem +
			"; sites taken out of service with sitectl disable start anyway, and site files with mistakes have no last good version"}, lines...)
	}
	if log.kmsg != nil && len(lines) > kmsgBurst-2 {
		// The kernel drops what a writer sends to /dev/kmsg beyond 10
		// lines in 5 s: say how to see the rest rather than lose it
		// silently, and keep a line for the summary.
		more := len(lines) - (kmsgBurst - 3)
		lines = append(lines[:kmsgBurst-3], fmt.Sprintf("%d more lines about skipped sites not logged: sitectl check %s/*.toml shows every mistake", more, dirs.Config))
	}
	for _, l := range lines {
		log.Printf(levelErr, "%s", l)
	}
	files := generator.FilesRendered(res.Sites, opts, generator.OutOfService(res.Sites, opts), rendered)
	if dryrun {
		if err := generator.Print(stdout, files); err != nil {
			return 1
		}
		if len(res.Errors) > 0 {
			return 1
		}
		return 0
	}
	// A site that runs on the version its units were last generated
	// from gets it as its last good copy before its units, which name
	// the copy, are written: prepare starts the service from it.
	if problem == "" {
		for _, o := range outcomes {
			if o.Recovered == nil {
				continue
			}
			name := site.NameFromFile(o.File)
			if err := (modes.Store{Dir: dirs.State}).SaveLastGood(&site.Site{Name: name}, o.Recovered); err != nil {
				log.Printf(levelWarning, "%v: its socket listens, and its service will not start until the file is fixed", err)
			}
		}
	}
	if err := generator.WriteNew(args[0], files); err != nil {
		// What to do, after the error: the sites left out have no units
		// until the generator runs again.
		log.Printf(levelErr, "%v; fix what stopped the write (/run full: free space there) and run systemctl daemon-reload", err)
		return 0
	}
	// The listeners each site's units have now: at the next run, a site
	// file that claims one of them gets the error, not the site that
	// listens on it (modes.Store.Holders). A state directory that
	// cannot be written (a read-only root at early boot) keeps the record
	// of the run before, which still says what systemd had.
	if problem == "" {
		if err := (modes.Store{Dir: dirs.State}).WriteGenerated(res.Sites); err != nil {
			log.Printf(levelWarning, "%v", err)
		}
	}
	lastGood := ""
	if n := len(outcomes) - skipped; n > 0 {
		lastGood = fmt.Sprintf(", %d running the last good version", n)
	}
	if len(pinned) > 0 {
		lastGood += fmt.Sprintf(", %d pinned to the last good version after a failed start", len(pinned))
	}
	log.Printf(levelInfo, "generated units for %d sites from %s (%d skipped%s)", len(res.Sites), dirs.Config, skipped, lastGood)
	if soft, err := procfs.OpenFilesLimit(1); err == nil {
		if w := generator.DescriptorWarning(generator.Listeners(res.Sites), soft); w != "" {
			log.Printf(levelWarning, "%s", w)
		}
	}
	return 0
}

// kmsgBurst is how many lines the kernel takes from one writer of /dev/kmsg
// at a time (printk_devkmsg=ratelimit: 10 lines per 5 s).
const kmsgBurst = 10

// exitCode is 0 under systemd, which must never see a failed boot because of
// a site file, and 1 for an operator's dry run.
func exitCode(dryrun bool) int {
	if dryrun {
		return 1
	}
	return 0
}

// Syslog levels of kernel-log lines.
const (
	levelErr     = 3
	levelWarning = 4
	levelInfo    = 6
)

// logger writes to the journal when journald runs (a daemon-reload), and
// to the kernel log otherwise (at boot journald may not run yet; it reads
// the kernel log when it starts), falling back to stderr.
type logger struct {
	w       io.Writer
	journal bool
	kmsg    *os.File
	// send writes a record to the journal (journal.Send; tests replace
	// it).
	send func(priority int, message string, fields map[string]string) error
}

// newLogger logs to the journal or the kernel log unless this is a dry run
// or SYSTEMD_LOG_TARGET says console, the convention of systemd's own
// generators.
func newLogger(stderr io.Writer, dryrun bool) *logger {
	l := &logger{w: stderr, send: journal.Send}
	if dryrun || os.Getenv("SYSTEMD_LOG_TARGET") == "console" {
		return l
	}
	if journal.Available() {
		l.journal = true
		return l
	}
	if f, err := os.OpenFile(kmsgPath, os.O_WRONLY, 0); err == nil {
		l.kmsg = f
	}
	return l
}

// kmsgPath is the kernel log; a variable for tests.
var kmsgPath = "/dev/kmsg"

// Printf writes one record at a syslog level.
// A record is one line: what it says is escaped (term.Escape), so that a
// site file's name with a newline or an escape sequence in it cannot
// forge a line of the log or act on a terminal.
func (l *logger) Printf(level int, format string, args ...any) {
	msg := term.Escape(fmt.Sprintf(format, args...))
	if l.journal {
		err := l.send(level, msg, map[string]string{"SYSLOG_IDENTIFIER": "sitectl-generator"})
		if err == nil {
			return
		}
		if errors.Is(err, unix.EMSGSIZE) {
			// This record is too large; journald is there, and takes
			// the next. This one goes to stderr.
			fmt.Fprintf(l.w, "sitectl-generator: %s\n", msg)
			return
		}
		// journald that does not take one record (gone, or its queue
		// full for a second) is not asked again: each record would wait
		// that second, and PID 1 kills a generator that takes too long,
		// before it has written the units. The rest go to the kernel
		// log, which journald reads when it can.
		l.journal = false
		if f, err := os.OpenFile(kmsgPath, os.O_WRONLY, 0); err == nil {
			l.kmsg = f
		}
	}
	if l.kmsg != nil {
		// One write per record, as /dev/kmsg requires.
		if _, err := fmt.Fprintf(l.kmsg, "<%d>sitectl-generator[%d]: %s\n", level, os.Getpid(), msg); err == nil {
			return
		}
	}
	fmt.Fprintf(l.w, "sitectl-generator: %s\n", msg)
}

// Close closes the kernel log.
func (l *logger) Close() {
	if l.kmsg != nil {
		l.kmsg.Close()
	}
}
