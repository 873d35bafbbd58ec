package generator

import (
	"fmt"
	"io"
	"os"

	"github.com/sitectl/sitectl/internal/site"
	"github.com/sitectl/sitectl/internal/units"
)

// Main is the generator's command line: with one or three directories (as
// systemd calls it) it writes the units into the first; with --dryrun it
// prints them and exits 1 if any site file has mistakes. Under systemd it
// always exits 0: one bad site file must never fail the boot.
func Main(args []string, stdout, stderr io.Writer) int {
	dryrun := len(args) > 0 && (args[0] == "--dryrun" || args[0] == "-dryrun")
	if !dryrun && len(args) != 1 && len(args) != 3 {
		fmt.Fprintln(stderr, "usage: sitectl-generator NORMAL_DIR [EARLY_DIR LATE_DIR] | --dryrun")
		return 2
	}
	log := newLogger(stderr, dryrun)
	defer log.Close()

	configDir := envOr("SITECTL_CONFIG_DIR", site.DefaultConfigDir)
	opts := units.Options{ConfigDir: configDir, StateDir: envOr("SITECTL_STATE_DIR", units.DefaultStateDir)}
	res, err := site.LoadDir(configDir)
	if err != nil {
		log.Printf(levelErr, "%v; no site units generated", err)
		return exitCode(dryrun)
	}
	for _, m := range res.Errors {
		log.Printf(levelErr, "%v", m)
	}
	skipped := map[string]bool{}
	for _, m := range res.Errors {
		if !skipped[m.File] {
			skipped[m.File] = true
			log.Printf(levelErr, "%s: site skipped: no units generated for it", m.File)
		}
	}
	files := Files(res.Sites, opts)
	if dryrun {
		if err := Print(stdout, files); err != nil {
			return 1
		}
		if len(res.Errors) > 0 {
			return 1
		}
		return 0
	}
	if err := WriteNew(args[0], files); err != nil {
		log.Printf(levelErr, "%v", err)
		return 0
	}
	log.Printf(levelInfo, "generated units for %d sites from %s (%d skipped)", len(res.Sites), configDir, len(skipped))
	return 0
}

// exitCode is 0 under systemd, which must never see a failed boot because of
// a site file, and 1 for an operator's dry run.
func exitCode(dryrun bool) int {
	if dryrun {
		return 1
	}
	return 0
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// Syslog levels of kernel-log lines.
const (
	levelErr  = 3
	levelInfo = 6
)

// logger writes to the kernel log, where generator output belongs (journald
// may not run yet), falling back to stderr.
type logger struct {
	w    io.Writer
	kmsg *os.File
}

// newLogger logs to the kernel log unless this is a dry run or
// SYSTEMD_LOG_TARGET says console, the convention of systemd's own generators.
func newLogger(stderr io.Writer, dryrun bool) *logger {
	l := &logger{w: stderr}
	if !dryrun && os.Getenv("SYSTEMD_LOG_TARGET") != "console" {
		if f, err := os.OpenFile("/dev/kmsg", os.O_WRONLY, 0); err == nil {
			l.kmsg = f
		}
	}
	return l
}

func (l *logger) Printf(level int, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if l.kmsg != nil {
		// One write per record, as /dev/kmsg requires.
		if _, err := fmt.Fprintf(l.kmsg, "<%d>sitectl-generator[%d]: %s\n", level, os.Getpid(), msg); err == nil {
			return
		}
	}
	fmt.Fprintf(l.w, "sitectl-generator: %s\n", msg)
}

func (l *logger) Close() {
	if l.kmsg != nil {
		l.kmsg.Close()
	}
}
