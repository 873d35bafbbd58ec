package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"os/signal"
	"os/user"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/sitectl/sitectl/internal/bounded"
	"github.com/sitectl/sitectl/internal/modes"
	"github.com/sitectl/sitectl/internal/site"
	"github.com/sitectl/sitectl/internal/stateservice"
	"github.com/sitectl/sitectl/internal/term"
	"github.com/sitectl/sitectl/internal/units"
)

// logOptions are the flags of sitectl logs.
type logOptions struct {
	follow  bool
	since   string
	lines   int // -1: all
	output  string
	noPager bool
}

// journalOutputs are the -o formats sitectl logs passes on to journalctl.
var journalOutputs = []string{"short", "short-full", "short-iso", "short-iso-precise", "short-precise", "short-monotonic",
	"short-unix", "cat", "verbose", "json", "json-pretty", "json-seq", "with-unit"}

func logsCmd(e *env) *cobra.Command {
	o := logOptions{lines: -1}
	c := &cobra.Command{
		Use:     "logs SITE",
		GroupID: "run",
		Short:   "Show a site's journal: its app, its starts, stops, reloads and cleanups, in one stream",
		Long: `Show the journal of one site in one stream, oldest first: what its app writes (tagged
site-NAME, so journalctl -t site-NAME finds the app's lines too), what systemd says of
its service and sockets, its reloads (systemctl reload, sitectl reload, a touch of
its reload_trigger) and the cleanup after each stop. journalctl shows it, with a
pager on a terminal; reading the journal of a site needs root or membership of the
adm, systemd-journal or wheel group. A deployer (a member of sitectl-deploy whom the
site file names in deployers) who is in none of those reads it through sitectl's
state service, which shows them the journal of the sites they may deploy and no
other: the newest ` + strconv.Itoa(stateservice.MaxLogLines) + ` lines at most (fewer with --lines, or from --since on),
1 MiB at most, without --follow, which reads the journal as the user may. In every
format but JSON (which escapes them itself), the control characters of a line (the
escape sequences an app may write) are shown escaped, as \x1b, never passed to the
terminal.

--since takes a duration ago ("10m", "2h30m", "3d"), a time in the local time zone
("2026-11-21", "2026-11-21 06:00", "2026-11-21 06:00:00"), "today", "yesterday",
or @SECONDS since the epoch.

` + exitCodesHelp,
		Example: `  sitectl logs karl -n 50
  sitectl logs karl -f
  sitectl logs karl --since 1h -o short-iso`,
		Args:              args(1, 1, "one site"),
		ValidArgsFunction: e.completeOneSite,
		RunE: func(c *cobra.Command, a []string) error {
			if e.remote() && !o.follow && !readsTheJournal() {
				// A deployer: sitectl's state service reads the
				// journal of a site they are granted. Anyone else
				// who is not root reads it as journalctl lets them.
				err := e.remoteLogs(c.Context(), a[0], o)
				if !errors.Is(err, stateservice.ErrNoAccess) {
					return err
				}
			}
			argv, err := e.journalArgs(a[0], o)
			if err != nil {
				return err
			}
			return e.runJournal(c.Context(), argv, o)
		},
	}
	f := c.Flags()
	f.BoolVarP(&o.follow, "follow", "f", false, "keep showing new lines as they come")
	f.StringVar(&o.since, "since", "", "show lines from `WHEN` on: a duration ago (10m, 2h, 3d), a local time, today, yesterday or @SECONDS")
	f.IntVarP(&o.lines, "lines", "n", -1, "show only the last `N` lines")
	// -1 is the journal's "all": say that, not the number.
	f.Lookup("lines").DefValue = "all"
	f.StringVarP(&o.output, "output", "o", "short", "journalctl's output `FORMAT`: "+strings.Join(journalOutputs, ", "))
	f.BoolVar(&o.noPager, "no-pager", false, "do not pipe the output into a pager")
	return c
}

// journalArgs checks the options and the site and returns journalctl's
// command line for them.
func (e *env) journalArgs(name string, o logOptions) ([]string, error) {
	since, err := e.checkLogOptions(o)
	if err != nil {
		return nil, err
	}
	us, err := e.logUnits(name)
	if err != nil {
		return nil, err
	}
	return journalctlArgs(us, o, since), nil
}

// journalGroups are the groups whose members read the whole journal
// themselves (journalctl), as sitectl logs always let them.
var journalGroups = []string{"adm", "systemd-journal", "wheel"}

// readsTheJournal tells whether this process may read the whole journal
// itself: it is in one of journalGroups. Such a user's sitectl logs runs
// journalctl, for every site and without the state service's bounds.
func readsTheJournal() bool {
	gids, err := os.Getgroups()
	if err != nil {
		return false
	}
	gids = append(gids, os.Getegid())
	for _, name := range journalGroups {
		if g, err := user.LookupGroup(name); err == nil && slices.Contains(gids, atoiOr(g.Gid, -1)) {
			return true
		}
	}
	return false
}

// atoiOr is s as a number, or def.
func atoiOr(s string, def int) int {
	if n, err := strconv.Atoi(s); err == nil {
		return n
	}
	return def
}

// checkLogOptions checks the options of sitectl logs and returns the time
// --since gives (zero: none).
func (e *env) checkLogOptions(o logOptions) (time.Time, error) {
	if o.lines < -1 {
		return time.Time{}, usageErrorf("--lines %d: give a number of lines, 0 or more", o.lines)
	}
	if !slices.Contains(journalOutputs, o.output) {
		return time.Time{}, usageErrorf("--output %q is not one of: %s", o.output, strings.Join(journalOutputs, ", "))
	}
	if o.since == "" {
		return time.Time{}, nil
	}
	since, err := parseSince(o.since, e.now(), time.Local)
	if err != nil {
		return time.Time{}, withCode(exitUsage, err)
	}
	return since, nil
}

// remoteLogs is sitectl logs for a deployer: sitectl's state service reads
// the journal of the site, which the site file must grant the caller, and
// answers with its last lines (at most stateservice.MaxLogLines, and
// stateservice.MaxLogText bytes), shown here as root's sitectl shows
// them. --follow is not asked of the service.
func (e *env) remoteLogs(ctx context.Context, name string, o logOptions) error {
	since, err := e.checkLogOptions(o)
	if err != nil {
		return err
	}
	if o.lines > stateservice.MaxLogLines {
		return usageErrorf("--lines %d: sitectl's state service shows a deployer at most the last %d lines; use --since for older ones", o.lines, stateservice.MaxLogLines)
	}
	req := stateservice.Request{Verb: stateservice.VerbLogs, Site: name, Last: max(o.lines, 0), Output: o.output}
	if !since.IsZero() {
		req.Since = max(since.Unix(), 1)
	}
	if o.lines == 0 {
		// journalctl --lines=0 shows nothing, and the service's last
		// of 0 is all it gives: it is asked for one line, which is
		// not shown, so that it still says whether the caller may
		// read the site's journal.
		req.Last = 1
	}
	var logs stateservice.Logs
	if err := e.remoteCall(ctx, nil, req, &logs); err != nil {
		return err
	}
	if o.lines == 0 {
		return nil
	}
	if logs.Cut {
		term.Fprintf(e.stderr, "sitectl: only the newest %d MiB of the journal of site %s are shown; use --since or --lines for a part of it\n", stateservice.MaxLogText>>20, name)
	}
	if !escapedOutput(o.output) {
		if _, err := io.WriteString(e.stdout, logs.Text); err != nil && !errors.Is(err, syscall.EPIPE) {
			return withCode(exitFailed, fmt.Errorf("cannot write the journal to standard output: %w", err))
		}
		return nil
	}
	if _, werr := e.copyJournal(strings.NewReader(logs.Text), !o.noPager); werr != nil {
		return withCode(exitFailed, fmt.Errorf("cannot write the journal to standard output: %w", werr))
	}
	return nil
}

// journalctlArgs is journalctl's command line: every unit of the site, then
// the options. It is pure; journalArgs has checked every value.
func journalctlArgs(us []string, o logOptions, since time.Time) []string {
	argv := []string{"journalctl"}
	for _, u := range us {
		argv = append(argv, "--unit="+u)
	}
	if !since.IsZero() {
		argv = append(argv, "--since=@"+strconv.FormatInt(since.Unix(), 10))
	}
	if o.lines >= 0 {
		argv = append(argv, "--lines="+strconv.Itoa(o.lines))
	}
	if o.follow {
		argv = append(argv, "--follow")
	}
	if o.noPager || escapedOutput(o.output) {
		// A text format goes through sitectl, which pages it itself.
		argv = append(argv, "--no-pager")
	}
	if escapedOutput(o.output) {
		// A line with control characters is shown escaped, not
		// hidden as "[N blob data]".
		argv = append(argv, "--all")
	}
	return append(argv, "--output="+o.output)
}

// logUnits are the units whose journal is the site's: its service (the
// app, its reloads and its cleanups run in it), its sockets, and its
// touch-to-reload units. A site whose file is invalid still has its
// journal: its units are named from the last good version, or from the
// name.
func (e *env) logUnits(name string) ([]string, error) {
	file := e.dirs.SiteFile(name)
	data, err := site.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		if _, lerr := os.Lstat(file); errors.Is(lerr, fs.ErrNotExist) {
			return nil, withCode(exitNotFound, fmt.Errorf("site %s does not exist: there is no %s", name, file))
		}
	}
	s, perr := site.ParseNamed(file, name, data)
	if err != nil || perr != nil {
		s = &site.Site{Name: name}
		if good, ok := (modes.Store{Dir: e.dirs.State}).LastGood(name); ok {
			s = good
		}
	}
	us := append([]string{units.ServiceName(name)}, units.SocketNames(s)...)
	return append(us, units.ReloadServiceName(name), units.ReloadPathName(name)), nil
}

// journalText is the journal of site name for a logs request to sitectl's
// state service: what root's sitectl logs shows with the request's
// options (the last req.Last lines, at most and by default MaxLogLines),
// read within LogsTimeout, and the newest lines of it that fit
// MaxLogText.
func (e *env) journalText(ctx context.Context, name string, req stateservice.Request) (*stateservice.Logs, error) {
	o := logOptions{lines: req.Last, output: req.Output, noPager: true}
	if o.lines == 0 {
		o.lines = stateservice.MaxLogLines
	}
	if o.output == "" {
		o.output = "short"
	}
	if req.Since > 0 {
		o.since = "@" + strconv.FormatInt(req.Since, 10)
	}
	argv, err := e.journalArgs(name, o)
	if err != nil {
		return nil, err
	}
	path, err := exec.LookPath(argv[0])
	if err != nil {
		return nil, fmt.Errorf("cannot read the journal of site %s: %w", name, err)
	}
	ctx, cancel := context.WithTimeout(ctx, stateservice.LogsTimeout)
	defer cancel()
	select {
	case logsSlots <- struct{}{}:
		defer func() { <-logsSlots }()
	case <-ctx.Done():
		return nil, fmt.Errorf("the journal of site %s was not read: %d other requests for journals took the %s: try again", name, stateservice.LogsAtOnce, stateservice.LogsTimeout)
	}
	out, stderr := bounded.Tail(stateservice.MaxLogText), bounded.Dropping(4096)
	cmd := exec.CommandContext(ctx, path, argv[1:]...)
	cmd.Stdout, cmd.Stderr = out, stderr
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return nil, fmt.Errorf("the journal of site %s was not read within %s: ask for fewer lines (--lines) or newer ones (--since)", name, stateservice.LogsTimeout)
		}
		return nil, fmt.Errorf("cannot read the journal of site %s: journalctl: %w: %s", name, err, bytes.TrimSpace(stderr.Bytes()))
	}
	text := out.Bytes()
	if out.Cut() {
		text = fromRecordStart(text, o.output)
	}
	return &stateservice.Logs{Text: string(text), Cut: out.Cut()}, nil
}

// logsSlots bound the journal reads of the state service's logs requests
// (stateservice.LogsAtOnce).
var logsSlots = make(chan struct{}, stateservice.LogsAtOnce)

// fromRecordStart drops what precedes the first whole record of text, the
// newest part of journalctl's output in format output, cut at any byte: a
// line for the one-line formats; a record of several lines starts with
// "{" alone on a line (json-pretty), with the record separator RS
// (json-seq), or with a line not indented (verbose: its fields are).
func fromRecordStart(text []byte, output string) []byte {
	start := func(line []byte) bool { return true }
	switch output {
	case "json-pretty":
		start = func(line []byte) bool { return string(line) == "{" }
	case "json-seq":
		start = func(line []byte) bool { return len(line) > 0 && line[0] == 0x1e }
	case "verbose":
		start = func(line []byte) bool { return len(line) > 0 && line[0] != ' ' && line[0] != '\t' }
	}
	i := bytes.IndexByte(text, '\n') + 1 // the first line may have lost its start
	for i > 0 && i < len(text) {
		end := bytes.IndexByte(text[i:], '\n')
		if end < 0 {
			end = len(text) - i
		}
		if start(text[i : i+end]) {
			return text[i:]
		}
		i += end + 1
	}
	return nil
}

// runJournal runs journalctl for sitectl logs. Its text formats show what
// the site's app wrote as it wrote it (-o cat does not even hide a line
// with control characters, as short does): journalctl then writes to a
// pipe, every line goes through term.CopyEscaped, and sitectl starts the
// pager itself (journalctlPager). Its JSON formats escape every field
// themselves and go to the terminal (or pipe) sitectl has, through
// journalctl's own pager. An interrupt (Ctrl-C) or SIGTERM is passed on
// to journalctl; sitectl waits for it to end, and a follow stopped that
// way is a success, as is a pager quit before the end.
func (e *env) runJournal(ctx context.Context, argv []string, o logOptions) error {
	path, err := exec.LookPath(argv[0])
	if err != nil {
		return withCode(exitFailed, fmt.Errorf("cannot show the journal: %w", err), "journalctl comes with systemd")
	}
	cmd := exec.CommandContext(ctx, path, argv[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, e.stdout, e.stderr
	var lines, w *os.File // journalctl's output, when escaped
	if escapedOutput(o.output) {
		if lines, w, err = os.Pipe(); err != nil {
			return withCode(exitFailed, fmt.Errorf("cannot show the journal: %w", err))
		}
		defer lines.Close()
		cmd.Stdout = w
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	err = cmd.Start()
	if w != nil {
		w.Close() // journalctl has it
	}
	if err != nil {
		return withCode(exitFailed, fmt.Errorf("cannot show the journal: %w", err))
	}
	quit := false  // the pager (or whoever reads) stopped reading
	var werr error // standard output could not be written (a full disk)
	done := make(chan error, 1)
	go func() {
		if lines != nil {
			quit, werr = e.copyJournal(lines, !o.noPager && !o.follow)
			if quit || werr != nil {
				cmd.Process.Kill()
			}
		}
		done <- cmd.Wait()
	}()
	interrupted := false
	for waiting := true; waiting; {
		select {
		case sig := <-sigs:
			// From a terminal journalctl has it too; from kill(1) only
			// sitectl does.
			interrupted = true
			cmd.Process.Signal(sig)
		case err = <-done:
			waiting = false
		}
	}
	var ee *exec.ExitError
	switch {
	case werr != nil:
		return withCode(exitFailed, fmt.Errorf("cannot write the journal to standard output: %w", werr))
	case err == nil, interrupted && o.follow, quit:
		return nil
	case errors.As(err, &ee):
		return reported{exitFailed} // journalctl said why
	}
	return withCode(exitFailed, fmt.Errorf("cannot show the journal: %w", err))
}

// escapedOutput tells whether sitectl escapes journalctl's output format
// itself: every format but JSON, which escapes each field.
func escapedOutput(output string) bool { return !strings.HasPrefix(output, "json") }

// copyJournal copies journalctl's lines to standard output escaped, through
// a pager when paging is wanted and standard output is a terminal. It
// tells whether the reader stopped reading before the end (a pager quit,
// a pipe nobody reads any more), or else why standard output could not
// be written (a full disk), which is a failure.
func (e *env) copyJournal(lines io.Reader, paging bool) (quit bool, _ error) {
	var pager *exec.Cmd
	var dst io.Writer = e.stdout
	if paging && isTerminal(e.stdout) {
		pager = journalctlPager(os.Getenv)
	}
	if pager != nil {
		pager.Stdout, pager.Stderr = e.stdout, e.stderr
		in, err := pager.StdinPipe()
		if err == nil {
			err = pager.Start()
		}
		if err != nil {
			pager = nil // shown without one
		} else {
			dst = in
			defer func() {
				in.Close()
				pager.Wait()
			}()
		}
	}
	out := &reportOut{w: dst}
	if err := term.CopyEscaped(out, lines); !errors.Is(err, term.ErrWrite) {
		return false, nil
	}
	if pager != nil || errors.Is(out.err, syscall.EPIPE) {
		return true, nil
	}
	return false, out.err
}

// journalctlPager is the pager journalctl would start: $SYSTEMD_PAGER,
// else $PAGER, else less, which gets journalctl's LESS=FRSXMK unless LESS
// is set; nil when paging is turned off (a pager of "cat"). As
// journalctl's, it runs in secure mode (LESSSECURE=1: no shell escape,
// no file opened from within it) unless $SYSTEMD_PAGERSECURE turns that
// off: sitectl logs runs as root, maybe through sudo. With
// $SYSTEMD_PAGERSECURE unset, only less, which knows secure mode, is
// started.
func journalctlPager(getenv func(string) string) *exec.Cmd {
	pager := ""
	for _, v := range []string{"SYSTEMD_PAGER", "PAGER"} {
		if pager = strings.TrimSpace(getenv(v)); pager != "" {
			break
		}
	}
	secureSet := getenv("SYSTEMD_PAGERSECURE") != ""
	secure := true
	if secureSet {
		if b, err := strconv.ParseBool(getenv("SYSTEMD_PAGERSECURE")); err == nil {
			secure = b
		} else {
			switch getenv("SYSTEMD_PAGERSECURE") {
			case "no", "off", "n":
				secure = false
			}
		}
	}
	switch {
	case pager == "cat":
		return nil
	case pager == "", secure && !secureSet && pager != "less":
		pager = "less"
	}
	cmd := exec.Command("/bin/sh", "-c", pager)
	cmd.Env = os.Environ()
	if getenv("LESS") == "" {
		cmd.Env = append(cmd.Env, "LESS=FRSXMK")
	}
	if secure {
		cmd.Env = append(cmd.Env, "LESSSECURE=1")
	}
	return cmd
}

var (
	shortDuration = regexp.MustCompile(`^([0-9]+)d$`)
	localLayouts  = []string{"2006-01-02", "2006-01-02 15:04", "2006-01-02 15:04:05"}
)

// parseSince reads --since: a duration ago, a local time, today,
// yesterday or @SECONDS.
func parseSince(v string, now time.Time, loc *time.Location) (time.Time, error) {
	switch v {
	case "today", "yesterday":
		y, m, d := now.In(loc).Date()
		t := time.Date(y, m, d, 0, 0, 0, 0, loc)
		if v == "yesterday" {
			t = t.AddDate(0, 0, -1)
		}
		return t, nil
	}
	if secs, ok := strings.CutPrefix(v, "@"); ok {
		if n, err := strconv.ParseInt(secs, 10, 64); err == nil && n >= 0 {
			return time.Unix(n, 0), nil
		}
	}
	if m := shortDuration.FindStringSubmatch(v); m != nil {
		if n, err := strconv.Atoi(m[1]); err == nil && n <= 100000 {
			return now.AddDate(0, 0, -n), nil
		}
	}
	if d, err := time.ParseDuration(v); err == nil && d > 0 {
		return now.Add(-d), nil
	}
	for _, l := range localLayouts {
		if t, err := time.ParseInLocation(l, v, loc); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf(`--since %q is not a time: give a duration ago ("10m", "2h", "3d"), a local time ("2026-11-21 06:00"), today, yesterday or @SECONDS`, v)
}
