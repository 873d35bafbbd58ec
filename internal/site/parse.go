package site

import (
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sitectl/sitectl/internal/tomlpos"
	"github.com/sitectl/sitectl/internal/unitfile"
)

// Parse reads one site file. The site's name comes from the file name
// (NAME.toml). It returns every mistake in the file as Errors.
func Parse(file string, data []byte) (*Site, error) {
	return ParseNamed(file, NameFromFile(file), data)
}

// ParseNamed is Parse with the name given, for files that are not yet in
// place under their final name (an Ansible validate step, say).
func ParseNamed(file, name string, data []byte) (*Site, error) {
	p := &parser{file: file}
	s := &Site{Name: name, File: file}
	if err := ValidateName(name); err != nil {
		p.errorf(tomlpos.Pos{Line: 1, Col: 1}, "%v (the name comes from the file name NAME.toml)", err)
	}
	if bytes.HasPrefix(data, []byte(byteOrderMark)) {
		// go-toml would say "invalid character at start of key: U+00EF",
		// which names no mistake an operator can see.
		p.errorf(tomlpos.Pos{Line: 1, Col: 1}, "the file starts with a UTF-8 byte order mark (an editor's), which TOML does not allow: save it without one (vim: :set nobomb)")
		return nil, p.errs
	}
	if bytes.HasPrefix(data, []byte{0xff, 0xfe}) || bytes.HasPrefix(data, []byte{0xfe, 0xff}) {
		// go-toml would say "invalid character at start of key: U+00FF".
		p.errorf(tomlpos.Pos{Line: 1, Col: 1}, "the file is saved as UTF-16 (it starts with UTF-16's byte order mark), and a site file must be UTF-8: save it as UTF-8 (iconv -f UTF-16 -t UTF-8)")
		return nil, p.errs
	}
	root, err := tomlpos.Parse(data)
	if err != nil {
		if te, ok := err.(*tomlpos.Error); ok {
			p.errorf(te.Pos, "%s", strings.TrimPrefix(te.Msg, "toml: "))
		} else {
			p.errorf(tomlpos.Pos{Line: 1, Col: 1}, "%v", err)
		}
		return nil, p.errs
	}
	p.site(s, root)
	if len(p.errs) > 0 {
		// In file order, as an operator reads them, whatever check found them.
		slices.SortStableFunc(p.errs, func(a, b *Error) int {
			if a.Line != b.Line {
				return a.Line - b.Line
			}
			return a.Col - b.Col
		})
		if p.dropped > 0 {
			p.errs = append(p.errs, &Error{File: p.file, Line: p.firstDropped.Line, Col: p.firstDropped.Col, More: p.dropped,
				Msg: fmt.Sprintf("and %d more mistakes, not listed: fix the ones above first", p.dropped)})
		}
		return nil, p.errs
	}
	return s, nil
}

type parser struct {
	file string
	errs Errors
	// dropped counts the mistakes past MaxMistakes, not listed; the
	// first of them was found at firstDropped.
	dropped      int
	firstDropped tomlpos.Pos
}

// MaxMistakes bounds the mistakes Parse lists for one file; one more
// line says how many more there are. A file of 100,000 unknown keys once
// gave 111,104 lines, each with the list of known keys: 15.9 MB of the
// generator's log.
const MaxMistakes = 100

func (p *parser) errorf(pos tomlpos.Pos, format string, args ...any) {
	if p.full(pos) {
		return
	}
	p.errs = append(p.errs, &Error{File: p.file, Line: pos.Line, Col: pos.Col, Msg: fmt.Sprintf(format, args...)})
}

// mistakes counts the mistakes found so far, listed or not.
func (p *parser) mistakes() int { return len(p.errs) + p.dropped }

// full says whether MaxMistakes are listed already, and then counts the
// mistake at pos as one more.
func (p *parser) full(pos tomlpos.Pos) bool {
	if len(p.errs) < MaxMistakes {
		return false
	}
	if p.dropped == 0 {
		p.firstDropped = pos
	}
	p.dropped++
	return true
}

// byteOrderMark is UTF-8's, which some editors put at a file's start.
const byteOrderMark = "\uFEFF"

// inSiteFile is where fields says a key of the site file itself is.
const inSiteFile = "in a site file"

// topLevelKeys are the keys of the site file itself (siteKeys' names,
// which fields, that siteKeys' handlers call, cannot refer to).
var topLevelKeys = map[string]bool{}

func init() {
	for k := range siteKeys {
		topLevelKeys[k] = true
	}
}

// fields walks a table's keys in document order, calling the handler for each
// known key and reporting unknown ones with the list of known keys.
func fields[T any](p *parser, where string, t *tomlpos.Value, known map[string]func(*parser, *T, *tomlpos.Value), dst *T) {
	for _, k := range t.Keys {
		v := t.Fields[k]
		handle, ok := known[k]
		if !ok && p.full(v.KeyPos) {
			continue
		}
		if !ok {
			names := make([]string, 0, len(known))
			for n := range known {
				names = append(names, n)
			}
			slices.Sort(names)
			hint := ""
			if near := nearestKey(k, names); near != "" {
				hint = fmt.Sprintf("; did you mean %s?", near)
			}
			if topLevelKeys[k] && where != inSiteFile {
				hint = fmt.Sprintf("; %s is a key of the site itself: TOML puts every key after a [section] or [[listen]] header into it, so move it above the first header", printable(k))
			}
			p.errorf(v.KeyPos, "unknown key %q %s (known keys: %s)%s", printable(k), where, strings.Join(names, ", "), hint)
			continue
		}
		handle(p, dst, v)
	}
}

// nearestKey is the one known key a mistyped key is closest to, within
// two edits (one for keys of up to four letters); "" when none is, or when
// two are as close.
func nearestKey(k string, known []string) string {
	limit := 2
	if len(k) <= 4 {
		limit = 1
	}
	best, bestDist, ties := "", limit+1, 0
	for _, n := range known {
		d := editDistance(k, n)
		switch {
		case d < bestDist:
			best, bestDist, ties = n, d, 0
		case d == bestDist:
			ties++
		}
	}
	if ties > 0 || bestDist > limit {
		return ""
	}
	return best
}

// editDistance is the Levenshtein distance of two keys, in bytes (keys are
// ASCII; an unknown one that is not is far from every key anyway).
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return max(len(a), len(b)) // no key is that long: not close
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// Keys of the top level of a site file.
const (
	keyDescription    = "description"
	keyExec           = "exec"
	keyWorkdir        = "workdir"
	keyUser           = "user"
	keyGroup          = "group"
	keyEnvironment    = "environment"
	keyListen         = "listen"
	keyBacklog        = "backlog"
	keyServer         = "server"
	keyReadiness      = "readiness"
	keyDrainTimeout   = "drain_timeout"
	keyStopTimeout    = "stop_timeout"
	keyStartTimeout   = "start_timeout"
	keySettleTime     = "settle_time"
	keyModes          = "modes"
	keyDefaultMode    = "default_mode"
	keyReloadTrigger  = "reload_trigger"
	keyCleanup        = "cleanup"
	keyCleanupTimeout = "cleanup_timeout"
	keyProbe          = "probe"
	keyHardening      = "hardening"
	keyHandoff        = "handoff"
	keyCredentials    = "credentials"
	keyEgress         = "egress"
	keyDeployers      = "deployers"
	keyKeepPrevious   = "keep_previous"
	keyStartPriority  = "start_priority"
	keyFastExit       = "fast_exit"
)

var siteKeys = map[string]func(*parser, *Site, *tomlpos.Value){
	keyDescription: func(p *parser, s *Site, v *tomlpos.Value) { s.Description = p.text(keyDescription, v) },
	keyExec:        func(p *parser, s *Site, v *tomlpos.Value) { s.Exec = p.argv(keyExec, v) },
	keyWorkdir:     func(p *parser, s *Site, v *tomlpos.Value) { s.Workdir = p.absPath(keyWorkdir, v) },
	keyUser:        func(p *parser, s *Site, v *tomlpos.Value) { s.User = p.account(keyUser, v) },
	keyGroup:       func(p *parser, s *Site, v *tomlpos.Value) { s.Group = p.account(keyGroup, v) },
	keyEnvironment: func(p *parser, s *Site, v *tomlpos.Value) { s.Environment = p.environment(keyEnvironment, v) },
	keyListen:      func(p *parser, s *Site, v *tomlpos.Value) { s.Listeners = p.listeners(v) },
	keyBacklog: func(p *parser, s *Site, v *tomlpos.Value) {
		s.Backlog = p.intRange(keyBacklog, v, 1, 65535)
	},
	keyServer: func(p *parser, s *Site, v *tomlpos.Value) {
		s.Server = Server(p.oneOf(keyServer, v, string(ServerGeneric), string(ServerGunicorn), string(ServerUWSGI)))
	},
	keyReadiness: func(p *parser, s *Site, v *tomlpos.Value) {
		s.Readiness = Readiness(p.oneOf(keyReadiness, v, string(ReadinessNotify), string(ReadinessNone)))
	},
	keyHandoff: func(p *parser, s *Site, v *tomlpos.Value) {
		s.Handoff = Handoff(p.oneOf(keyHandoff, v, string(HandoffRestart), string(HandoffOverlap)))
	},
	keyDrainTimeout:   func(p *parser, s *Site, v *tomlpos.Value) { s.DrainTimeout = p.duration(keyDrainTimeout, v) },
	keyStopTimeout:    func(p *parser, s *Site, v *tomlpos.Value) { s.StopTimeout = p.duration(keyStopTimeout, v) },
	keyStartTimeout:   func(p *parser, s *Site, v *tomlpos.Value) { s.StartTimeout = p.duration(keyStartTimeout, v) },
	keySettleTime:     func(p *parser, s *Site, v *tomlpos.Value) { s.SettleTime = p.duration(keySettleTime, v) },
	keyCleanupTimeout: func(p *parser, s *Site, v *tomlpos.Value) { s.CleanupTimeout = p.duration(keyCleanupTimeout, v) },
	keyModes:          func(p *parser, s *Site, v *tomlpos.Value) { s.Modes = p.modes(v) },
	keyDefaultMode: func(p *parser, s *Site, v *tomlpos.Value) {
		if name := p.str(keyDefaultMode, v); name != "" || v.Kind == tomlpos.String {
			if err := ValidateModeName(name); err != nil {
				p.errorf(v.Pos, "default_mode: %v", err)
				return
			}
			s.DefaultMode = name
		}
	},
	keyReloadTrigger: func(p *parser, s *Site, v *tomlpos.Value) { s.ReloadTrigger = p.absPath(keyReloadTrigger, v) },
	keyCleanup: func(p *parser, s *Site, v *tomlpos.Value) {
		if !p.kind(keyCleanup, v, tomlpos.Array) {
			return
		}
		for i, item := range v.Items {
			if argv := p.argv(fmt.Sprintf("cleanup[%d]", i), item); argv != nil {
				s.Cleanup = append(s.Cleanup, argv)
			}
		}
	},
	keyProbe:       func(p *parser, s *Site, v *tomlpos.Value) { s.Probe = p.probe(v) },
	keyHardening:   func(p *parser, s *Site, v *tomlpos.Value) { s.Hardening = p.hardening(v) },
	keyCredentials: func(p *parser, s *Site, v *tomlpos.Value) { s.Credentials = p.credentials(v) },
	keyEgress:      func(p *parser, s *Site, v *tomlpos.Value) { s.Egress = p.egress(v) },
	keyDeployers:   func(p *parser, s *Site, v *tomlpos.Value) { s.Deployers = p.deployers(v) },
	keyKeepPrevious: func(p *parser, s *Site, v *tomlpos.Value) {
		if d, err := time.ParseDuration(v.Str); v.Kind == tomlpos.String && err == nil && d == 0 {
			return // "0" or "0s": off, written out
		}
		s.KeepPrevious = p.durationMax(keyKeepPrevious, v, maxKeepPrevious)
	},
	keyStartPriority: func(p *parser, s *Site, v *tomlpos.Value) {
		s.StartPriority = StartPriority(p.oneOf(keyStartPriority, v, string(StartIdle), string(StartNormal)))
	},
	keyFastExit: func(p *parser, s *Site, v *tomlpos.Value) {
		if p.kind(keyFastExit, v, tomlpos.Bool) {
			s.FastExit = v.Bool
		}
	},
}

func (p *parser) site(s *Site, root *tomlpos.Value) {
	fields(p, inSiteFile, root, siteKeys, s)

	if root.Get(keyExec) == nil {
		p.errorf(tomlpos.Pos{Line: 1, Col: 1}, "exec is missing: say which program runs the site, e.g. exec = [\"/usr/bin/gunicorn\", \"app:application\"]")
	}
	if root.Get(keyListen) == nil {
		p.errorf(tomlpos.Pos{Line: 1, Col: 1}, "listen is missing: a site needs at least one listener, e.g. [[listen]] address = \"127.0.0.1:8080\"")
	}
	// Whether user is written, not its value: user = "root" is refused
	// on its own, and does not make a group without a user.
	if s.Group != "" && root.Get(keyUser) == nil {
		p.errorf(root.Get(keyGroup).Pos, "group is set but user is not: a site without user runs as a dynamic user with its own group")
	}
	p.defaults(s, root)
	p.execLimits(s, root)
	p.keepPrevious(s, root)
	p.startPriority(s, root)
	p.fastExit(s, root)
}

// fastExit checks fast_exit: only gunicorn's preset has the hooks for it.
func (p *parser) fastExit(s *Site, root *tomlpos.Value) {
	v := root.Get(keyFastExit)
	switch {
	case s.Server != ServerGunicorn && v != nil:
		p.errorf(v.Pos, "fast_exit needs server = \"gunicorn\": sitectl shortens the exit of no other server")
		s.FastExit = false
	case s.Server == ServerGunicorn && v == nil:
		s.FastExit = true
	}
}

// startPriority checks start_priority: only an overlap starts a generation
// beside a serving one, which is what it is about.
func (p *parser) startPriority(s *Site, root *tomlpos.Value) {
	v := root.Get(keyStartPriority)
	switch {
	case s.StartPriority == "":
		s.StartPriority = StartIdle
	case s.Handoff != HandoffOverlap && v != nil:
		p.errorf(v.Pos, "start_priority needs handoff = \"overlap\": with a restart no generation starts beside a serving one")
	}
}

// maxKeepPrevious bounds keep_previous: a warm generation holds its memory
// for all that time.
const maxKeepPrevious = 24 * time.Hour

// keepPrevious checks what keep_previous needs of the rest of the file: an
// overlap handoff (the previous generation is the one an overlap leaves
// behind) and TCP listeners only (a reuseport group steers between two
// sockets of one address; a unix socket has no such group, see
// docs/warm-rollback.md).
func (p *parser) keepPrevious(s *Site, root *tomlpos.Value) {
	if s.KeepPrevious == 0 {
		return
	}
	pos := root.Get(keyKeepPrevious).Pos
	if s.Handoff != HandoffOverlap {
		p.errorf(pos, "keep_previous needs handoff = \"overlap\": only an overlap leaves a previous generation to keep warm")
	}
	for _, l := range s.Listeners {
		if l.Kind == Unix {
			p.errorf(tomlpos.Pos{Line: l.Line, Col: l.Col}, "keep_previous needs TCP listeners: unix listener %q cannot be steered (keep_previous is set at line %d)", l.Path, pos.Line)
		}
	}
}

// Reserves for what sitectl and systemd add to what a site file says.
const (
	// execLineReserve is kept free on the ExecStart= line for sitectl's
	// own words before the app's: its path, --config-dir and --state-dir
	// with their directories, "launch NAME --overlap --".
	execLineReserve = 16 << 10
	// execEnvReserve is kept free in unitfile.ArgBudget for what systemd
	// (PATH, INVOCATION_ID, LISTEN_*, NOTIFY_SOCKET, ...) and sitectl
	// (SITE, SITECTL_*, the server preset) add to the app's arguments
	// and environment.
	execEnvReserve = 32 << 10
)

// execLimits checks what only the whole site shows: the app's command line
// must fit one unit file line, and its arguments with the environment of
// each mode must fit what Linux accepts at exec (measured limits in package
// unitfile).
func (p *parser) execLimits(s *Site, root *tomlpos.Value) {
	if len(s.Exec) == 0 {
		return
	}
	execPos := root.Get(keyExec).Pos
	if n := len(unitfile.Command(s.Exec)); n > unitfile.MaxLine-execLineReserve {
		p.errorf(execPos, "exec is %d bytes long as a unit's ExecStart= line; systemd reads lines of at most %d bytes, and sitectl keeps %d of them for its own words", n, unitfile.MaxLine, execLineReserve)
		return
	}
	base := unitfile.ArgCost(s.Exec...) + envCost(s.Environment) + execEnvReserve
	if base > unitfile.ArgBudget {
		p.errorf(execPos, "exec and environment take %d bytes when the app starts; Linux starts a program with at most %d bytes of arguments and environment, and sitectl keeps %d of them for what systemd and sitectl add", base-execEnvReserve, unitfile.ArgBudget, execEnvReserve)
		return
	}
	for _, m := range s.Modes {
		if cost := base + envCost(m.Environment); cost > unitfile.ArgBudget {
			pos := execPos
			if mv := root.Get(keyModes).Get(m.Name).Get(keyModeEnvironment); mv != nil {
				pos = mv.Pos
			}
			p.errorf(pos, "in mode %s, exec and environment take %d bytes when the app starts; Linux starts a program with at most %d bytes of arguments and environment, and sitectl keeps %d of them for what systemd and sitectl add", m.Name, cost-execEnvReserve, unitfile.ArgBudget, execEnvReserve)
		}
	}
}

func envCost(env []EnvVar) int {
	n := 0
	for _, e := range env {
		n += unitfile.ArgCost(e.Name + "=" + e.Value)
	}
	return n
}

// defaults fills in what the file left out, and checks what depends on
// several keys at once.
func (p *parser) defaults(s *Site, root *tomlpos.Value) {
	if s.Server == "" {
		s.Server = ServerGeneric
	}
	if s.Readiness == "" {
		s.Readiness = ReadinessNone
		if s.Server == ServerGunicorn || s.Server == ServerUWSGI {
			s.Readiness = ReadinessNotify
		}
	}
	if s.Handoff == "" {
		s.Handoff = HandoffRestart
	}
	setDefault(&s.DrainTimeout, defaultDrainTimeout)
	setDefault(&s.StopTimeout, defaultStopTimeout)
	setDefault(&s.StartTimeout, defaultStartTimeout)
	setDefault(&s.SettleTime, defaultSettleTime)
	setDefault(&s.CleanupTimeout, defaultCleanupTimeout)

	// The two modes every site has unless the file redefines them.
	if _, ok := s.Mode(defaultModeName); !ok {
		s.Modes = append(s.Modes, Mode{Name: defaultModeName, Serve: ServeApp})
	}
	if _, ok := s.Mode(string(ServeMaintenance)); !ok {
		s.Modes = append(s.Modes, Mode{Name: string(ServeMaintenance), Serve: ServeMaintenance, RetryAfter: defaultRetryAfter})
	}
	slices.SortFunc(s.Modes, func(a, b Mode) int { return strings.Compare(a.Name, b.Name) })

	if s.DefaultMode == "" {
		s.DefaultMode = defaultModeName
	} else if _, ok := s.Mode(s.DefaultMode); !ok {
		p.errorf(root.Get(keyDefaultMode).Pos, "default_mode %q is not one of the site's modes (%s)", s.DefaultMode, strings.Join(s.ModeNames(), ", "))
	}
}

func setDefault(d *time.Duration, def time.Duration) {
	if *d == 0 {
		*d = def
	}
}

// --- scalar helpers -------------------------------------------------------

func (p *parser) kind(key string, v *tomlpos.Value, want tomlpos.Kind) bool {
	if v.Kind != want {
		p.errorf(v.Pos, "%s must be %s, not %s", key, want, v.Kind)
		return false
	}
	return true
}

func (p *parser) str(key string, v *tomlpos.Value) string {
	if !p.kind(key, v, tomlpos.String) {
		return ""
	}
	return v.Str
}

// MaxDescription bounds a description: it is one line that systemctl and
// the journal print with every start and stop.
const MaxDescription = 4096

// text is a free-form string on one line, written unquoted into units
// (Description=): systemd strips white space around it and reads a final
// backslash as "continued on the next line", so both are refused.
func (p *parser) text(key string, v *tomlpos.Value) string {
	s := p.str(key, v)
	switch {
	case strings.ContainsFunc(s, isControl):
		p.errorf(v.Pos, "%s must be one line of text without control characters", key)
	case len(s) > MaxDescription:
		p.errorf(v.Pos, "%s is %d bytes long; at most %d are allowed", key, len(s), MaxDescription)
	case unitfile.TextProblem(s) != "":
		p.errorf(v.Pos, "%s %s: a unit file cannot carry that", key, unitfile.TextProblem(s))
	default:
		return s
	}
	return ""
}

func isControl(r rune) bool { return r < 0x20 && r != '\t' || r == 0x7f }

func (p *parser) oneOf(key string, v *tomlpos.Value, allowed ...string) string {
	s := p.str(key, v)
	if v.Kind == tomlpos.String && !slices.Contains(allowed, s) {
		p.errorf(v.Pos, "%s %q is not one of: %s", key, printable(s), strings.Join(allowed, ", "))
		return ""
	}
	return s
}

func (p *parser) intRange(key string, v *tomlpos.Value, lo, hi int64) int {
	if !p.kind(key, v, tomlpos.Integer) {
		return 0
	}
	if v.Int < lo || v.Int > hi {
		p.errorf(v.Pos, "%s %d is out of range: it must be between %d and %d", key, v.Int, lo, hi)
		return 0
	}
	return int(v.Int)
}

// MaxDuration bounds every timeout in a site file.
const MaxDuration = 24 * time.Hour

func (p *parser) duration(key string, v *tomlpos.Value) time.Duration {
	return p.durationMax(key, v, MaxDuration)
}

// durationMax is duration with its own upper limit.
func (p *parser) durationMax(key string, v *tomlpos.Value, limit time.Duration) time.Duration {
	if v.Kind == tomlpos.Integer {
		p.errorf(v.Pos, "%s must be a duration string with a unit, e.g. \"%ds\"", key, v.Int)
		return 0
	}
	s := p.str(key, v)
	if v.Kind != tomlpos.String {
		return 0
	}
	d, err := time.ParseDuration(s)
	switch {
	case err != nil:
		p.errorf(v.Pos, "%s %q is not a duration: write it like \"30s\", \"1m30s\" or \"500ms\"", key, printable(s))
	case d <= 0:
		p.errorf(v.Pos, "%s must be longer than zero", key)
	case d > limit:
		p.errorf(v.Pos, "%s %s is longer than the limit of %s", key, printable(s), limit)
	case d%time.Millisecond != 0:
		p.errorf(v.Pos, "%s %s is finer than a millisecond, which systemd cannot express", key, printable(s))
	default:
		return d
	}
	return 0
}

func (p *parser) absPath(key string, v *tomlpos.Value) string {
	s := p.str(key, v)
	if v.Kind != tomlpos.String {
		return ""
	}
	if msg := checkPath(s); msg != "" {
		p.errorf(v.Pos, "%s %q %s", key, printable(s), msg)
		return ""
	}
	return s
}

func checkPath(s string) string {
	switch {
	case !strings.HasPrefix(s, "/"):
		return "is not an absolute path"
	case path.Clean(s) != s:
		return fmt.Sprintf("is not in its simplest form: write %q", path.Clean(s))
	case !validPath(s):
		return "has characters sitectl does not accept in paths (allowed: letters, digits and . _ / @ + : , = ~ -)"
	case len(s) > 4095:
		return "is too long"
	}
	return ""
}

func (p *parser) argv(key string, v *tomlpos.Value) []string {
	if !p.kind(key, v, tomlpos.Array) {
		return nil
	}
	if len(v.Items) == 0 {
		p.errorf(v.Pos, "%s is empty: it needs at least the program to run", key)
		return nil
	}
	argv := make([]string, 0, len(v.Items))
	ok := true
	for i, item := range v.Items {
		elem := fmt.Sprintf("%s[%d]", key, i)
		if item.Kind != tomlpos.String {
			p.errorf(item.Pos, "%s must be a string, not %s", elem, item.Kind)
			ok = false
			continue
		}
		if strings.ContainsFunc(item.Str, isControl) {
			p.errorf(item.Pos, "%s contains a control character (a newline, say), which a command line cannot carry", elem)
			ok = false
			continue
		}
		if len(item.Str) > unitfile.MaxArg {
			p.errorf(item.Pos, "%s is %d bytes long; Linux runs a program only if each argument has at most %d", elem, len(item.Str), unitfile.MaxArg)
			ok = false
			continue
		}
		argv = append(argv, item.Str)
	}
	if ok {
		if msg := checkPath(argv[0]); msg != "" {
			p.errorf(v.Items[0].Pos, "%s: the program %q %s; give the full path, e.g. /usr/bin/gunicorn", key, printable(argv[0]), msg)
			ok = false
		}
	}
	if !ok {
		return nil
	}
	return argv
}

func (p *parser) account(key string, v *tomlpos.Value) string {
	s := p.str(key, v)
	if v.Kind != tomlpos.String {
		return ""
	}
	switch {
	case !validAccount(s):
		p.errorf(v.Pos, "%s %q is not a valid user or group name", key, printable(s))
	case s == "root":
		p.errorf(v.Pos, "%s root is refused: a site runs unprivileged (leave user out for a dynamic user)", key)
	default:
		return s
	}
	return ""
}

// reservedEnv are variables that systemd or sitectl set for the app, or
// for sitectl's own commands in the site's service. systemd 252 lets
// Environment= and EnvironmentFile= (the site's and the mode's
// environment) override every variable it sets itself, so each of these
// set in a site file would reach those commands in place of systemd's:
// $SERVICE_RESULT, $EXIT_CODE and $EXIT_STATUS of ExecStopPost= (a failed
// run marked as one that ended cleanly, a cleanup hook told the wrong
// result), $MAINPID, $RUNTIME_DIRECTORY and $INVOCATION_ID of an overlap
// site's launcher and its ExecReload=, $CREDENTIALS_DIRECTORY of the app's
// credentials. SITE_GENERATION is the launcher's mark on each generation
// of an overlap site (its failsafe finds what a generation left behind by
// it), which would replace a site's value without a word.
func reservedEnv(name string) bool {
	switch name {
	case "SITE", "SITE_MODE", "SITE_DRAIN_TIMEOUT", "SITE_GENERATION", "NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID",
		"MAINPID", "INVOCATION_ID", "RUNTIME_DIRECTORY", "CREDENTIALS_DIRECTORY",
		"SERVICE_RESULT", "EXIT_CODE", "EXIT_STATUS":
		return true
	}
	return strings.HasPrefix(name, "LISTEN_") || strings.HasPrefix(name, "SITECTL_")
}

func (p *parser) environment(key string, v *tomlpos.Value) []EnvVar {
	if !p.kind(key, v, tomlpos.Table) {
		return nil
	}
	env := make([]EnvVar, 0, len(v.Keys))
	for _, name := range v.Keys {
		val := v.Fields[name]
		switch {
		case !ValidEnvName(name):
			p.errorf(val.KeyPos, "%s: %q is not a valid variable name", key, printable(name))
		case reservedEnv(name):
			p.errorf(val.KeyPos, "%s: %s is set by sitectl or systemd and cannot be set here", key, printable(name))
		case val.Kind == tomlpos.Integer || val.Kind == tomlpos.Bool || val.Kind == tomlpos.Float:
			p.errorf(val.Pos, "%s: the value of %s must be a string: quote it", key, printable(name))
		case val.Kind != tomlpos.String:
			p.errorf(val.Pos, "%s: the value of %s must be a string, not %s", key, printable(name), val.Kind)
		case strings.ContainsFunc(val.Str, func(r rune) bool { return r == 0 || r == '\n' || r == '\r' }):
			p.errorf(val.Pos, "%s: the value of %s contains a line break, which an environment file cannot carry", key, printable(name))
		case len(name)+1+len(val.Str) > unitfile.MaxArg:
			p.errorf(val.Pos, "%s: %s=value is %d bytes long; Linux runs a program only if each variable has at most %d", key, printable(name), len(name)+1+len(val.Str), unitfile.MaxArg)
		default:
			env = append(env, EnvVar{name, val.Str})
		}
	}
	slices.SortFunc(env, func(a, b EnvVar) int { return strings.Compare(a.Name, b.Name) })
	return env
}

// --- listeners -------------------------------------------------------------

const (
	keyListenAddress = "address"
	keyListenPath    = "path"
	keyListenName    = "name"
	keyListenOwner   = "owner"
	keyListenGroup   = "group"
	keyListenMode    = "mode"
)

// MaxListeners bounds a site's listeners. A site has a few; each is a
// socket systemd holds and the app is handed, and each is checked against
// every other site's at every daemon-reload.
const MaxListeners = 256

// maxUnixPath is sun_path's size less the terminating NUL.
const maxUnixPath = 107

var listenKeys = map[string]func(*parser, *Listener, *tomlpos.Value){
	keyListenAddress: func(p *parser, l *Listener, v *tomlpos.Value) {
		s := p.str(keyListenAddress, v)
		if v.Kind != tomlpos.String {
			return
		}
		ap, err := netip.ParseAddrPort(s)
		switch {
		case err != nil:
			p.errorf(v.Pos, "listen address %q is not an IP address and port: write it like \"127.0.0.1:8080\" or \"[::1]:8080\"", printable(s))
		case ap.Port() == 0:
			p.errorf(v.Pos, "listen address %q has port 0: give the port to listen on", printable(s))
		case ap.Addr().Zone() != "":
			p.errorf(v.Pos, "listen address %q has an IPv6 zone (%%%s): systemd 252 cannot listen on a zoned address; use the interface's global address, or [::]", printable(s), printable(ap.Addr().Zone()))
		default:
			l.Kind, l.Address = TCP, ap.String()
		}
	},
	keyListenPath: func(p *parser, l *Listener, v *tomlpos.Value) {
		s := p.absPath("listen path", v)
		switch {
		case s == "":
		case len(s) > maxUnixPath:
			p.errorf(v.Pos, "listen path %q is %d bytes long; a unix socket path can have at most %d", printable(s), len(s), maxUnixPath)
		default:
			l.Kind, l.Path = Unix, s
		}
	},
	keyListenName: func(p *parser, l *Listener, v *tomlpos.Value) {
		s := p.str("listen name", v)
		if v.Kind == tomlpos.String && !validListenerName(s) {
			p.errorf(v.Pos, "listen name %q is not valid: use lowercase letters, digits, _ and -, starting with a letter, at most 32", printable(s))
			return
		}
		l.Name = s
	},
	keyListenOwner: func(p *parser, l *Listener, v *tomlpos.Value) { l.Owner = p.account("listen owner", v) },
	keyListenGroup: func(p *parser, l *Listener, v *tomlpos.Value) { l.Group = p.account("listen group", v) },
	keyListenMode: func(p *parser, l *Listener, v *tomlpos.Value) {
		s := p.str("listen mode", v)
		if v.Kind != tomlpos.String {
			return
		}
		m, err := strconv.ParseUint(s, 8, 32)
		if err != nil || m > 0o777 || len(s) < 3 || len(s) > 4 {
			p.errorf(v.Pos, "listen mode %q is not an octal permission like \"0660\"", printable(s))
			return
		}
		l.Mode = os.FileMode(m)
	},
}

func (p *parser) listeners(v *tomlpos.Value) []Listener {
	if !p.kind(keyListen, v, tomlpos.Array) {
		return nil
	}
	if len(v.Items) == 0 {
		p.errorf(v.Pos, "listen is empty: a site needs at least one listener")
		return nil
	}
	if len(v.Items) > MaxListeners {
		p.errorf(v.Items[MaxListeners].Pos, "this is listener %d of the site, and a site may have at most %d", MaxListeners+1, MaxListeners)
		return nil
	}
	var out []Listener
	for _, item := range v.Items {
		if item.Kind != tomlpos.Table {
			p.errorf(item.Pos, "each listen entry must be a table like { address = \"127.0.0.1:8080\" }, not %s", item.Kind)
			continue
		}
		if l, ok := p.listener(item); ok {
			out = append(out, l)
		}
	}
	p.listenerConsistency(out)
	return out
}

func (p *parser) listener(t *tomlpos.Value) (Listener, bool) {
	l := Listener{Name: defaultListenerName, Line: t.Pos.Line, Col: t.Pos.Col}
	before := p.mistakes()
	fields(p, "in a listen entry", t, listenKeys, &l)
	if a := t.Get(keyListenAddress); a != nil {
		l.Line, l.Col = a.Pos.Line, a.Pos.Col
	} else if a := t.Get(keyListenPath); a != nil {
		l.Line, l.Col = a.Pos.Line, a.Pos.Col
	}
	hasAddr, hasPath := t.Get(keyListenAddress) != nil, t.Get(keyListenPath) != nil
	switch {
	case hasAddr && hasPath:
		p.errorf(t.Get(keyListenPath).KeyPos, "a listen entry has either address (TCP) or path (unix socket), not both")
	case !hasAddr && !hasPath:
		p.errorf(t.Pos, "a listen entry needs address (TCP, e.g. \"127.0.0.1:8080\") or path (unix socket)")
	case hasAddr:
		for _, k := range []string{keyListenOwner, keyListenGroup, keyListenMode} {
			if v := t.Get(k); v != nil {
				p.errorf(v.KeyPos, "%s applies to unix sockets only, and this listener is TCP", k)
			}
		}
	}
	if l.Kind == Unix && l.Mode == 0 {
		l.Mode = 0o660
	}
	return l, p.mistakes() == before
}

// listenerConsistency checks that no two listeners of the site collide,
// and what systemd can only express per socket unit: listeners sharing a
// name share one unit, hence one owner, group and mode. Each listener is
// looked up in an index of those before it (the first unix listener of
// each name stands for the others), so that a site of many listeners
// costs a look up for each, not a comparison of every pair.
func (p *parser) listenerConsistency(ls []Listener) {
	x, at := newListenerIndex(len(ls)), make(map[*Listener]int, len(ls))
	named := map[string]int{} // the first unix listener of each name
	for i := range ls {
		l := &ls[i]
		clash := x.firstCollision(*l, at, func(Listener) bool { return true })
		differs := -1
		if j, ok := named[l.Name]; ok && l.Kind == Unix {
			if prev := ls[j]; prev.Owner != l.Owner || prev.Group != l.Group || prev.Mode != l.Mode {
				differs = j
			}
		} else if l.Kind == Unix {
			named[l.Name] = i
		}
		switch {
		case clash >= 0 && (differs < 0 || clash <= differs):
			prev := ls[clash]
			p.errorf(tomlpos.Pos{Line: l.Line, Col: l.Col}, "listener %s %s", l.Endpoint(), collision(prev, fmt.Sprintf("line %d of this file", prev.Line)))
		case differs >= 0:
			p.errorf(tomlpos.Pos{Line: l.Line, Col: l.Col}, "unix listeners named %q must share owner, group and mode (they differ from line %d): give this one another name", l.Name, ls[differs].Line)
		}
		at[l] = i
		x.addListener(owned{nil, l})
	}
}

// collision words why l cannot be bound next to prev, which is at where.
func collision(prev Listener, where string) string {
	return fmt.Sprintf("collides with listener %s at %s: both cannot be bound at once", prev.Endpoint(), where)
}

// SameListener reports whether a and b are one listener, however written:
// the same unix path, or the same TCP address and port (an IPv4-mapped
// IPv6 address being the IPv4 address it maps).
func SameListener(a, b Listener) bool {
	if a.Kind != b.Kind {
		return false
	}
	if a.Kind == Unix {
		return a.Path == b.Path
	}
	return tcpKey(a) == tcpKey(b)
}

// overlaps reports whether two listeners cannot both be bound: the same unix
// path (as written, or with its directories' symlinks resolved, when the
// loader could resolve them), or the same TCP port where the addresses are
// equal or either is a wildcard. An IPv4-mapped IPv6 address
// ([::ffff:127.0.0.1]) is the IPv4 address it maps: the kernel refuses to
// bind both. sitectl binds IPv6 wildcards dual-stack (BindIPv6Only=both),
// so [::] takes the port on every IPv4 address too.
func overlaps(a, b Listener) bool {
	if a.Kind != b.Kind {
		return false
	}
	if a.Kind == Unix {
		return a.Path == b.Path || a.Resolved != "" && a.Resolved == b.Resolved ||
			a.Resolved != "" && a.Resolved == b.Path || b.Resolved != "" && b.Resolved == a.Path
	}
	pa, pb := netip.MustParseAddrPort(a.Address), netip.MustParseAddrPort(b.Address)
	if pa.Port() != pb.Port() {
		return false
	}
	ia, ib := pa.Addr().Unmap(), pb.Addr().Unmap()
	if ia == ib {
		return true
	}
	wildA, wildB := ia.IsUnspecified(), ib.IsUnspecified()
	switch {
	case wildA && wildB:
		return ia.Is6() || ib.Is6()
	case wildA:
		return ia.Is6() || ib.Is4()
	case wildB:
		return ib.Is6() || ia.Is4()
	}
	return false
}

// --- modes -----------------------------------------------------------------

const (
	keyModeEnvironment = "environment"
	keyModeServe       = "serve"
	keyModePage        = "page"
	keyModeStaticDir   = "static_dir"
	keyModeRetryAfter  = "retry_after"
)

var modeKeys = map[string]func(*parser, *Mode, *tomlpos.Value){
	keyModeEnvironment: func(p *parser, m *Mode, v *tomlpos.Value) {
		m.Environment = p.environment("modes."+m.Name+".environment", v)
	},
	keyModeServe: func(p *parser, m *Mode, v *tomlpos.Value) {
		m.Serve = Serve(p.oneOf(keyModeServe, v, string(ServeApp), string(ServeMaintenance)))
	},
	keyModePage:       func(p *parser, m *Mode, v *tomlpos.Value) { m.Page = p.absPath(keyModePage, v) },
	keyModeStaticDir:  func(p *parser, m *Mode, v *tomlpos.Value) { m.StaticDir = p.absPath(keyModeStaticDir, v) },
	keyModeRetryAfter: func(p *parser, m *Mode, v *tomlpos.Value) { m.RetryAfter = p.duration(keyModeRetryAfter, v) },
}

func (p *parser) modes(v *tomlpos.Value) []Mode {
	if !p.kind(keyModes, v, tomlpos.Table) {
		return nil
	}
	var out []Mode
	for _, name := range v.Keys {
		t := v.Fields[name]
		if err := ValidateModeName(name); err != nil {
			p.errorf(t.KeyPos, "%v", err)
			continue
		}
		if t.Kind != tomlpos.Table {
			p.errorf(t.Pos, "mode %s must be a table like [modes.%s], not %s", name, name, t.Kind)
			continue
		}
		m := Mode{Name: name, Serve: ServeApp}
		fields(p, "in mode "+name, t, modeKeys, &m)
		if m.Serve == ServeMaintenance {
			setDefault(&m.RetryAfter, defaultRetryAfter)
		} else {
			for _, k := range []string{keyModePage, keyModeStaticDir, keyModeRetryAfter} {
				if kv := t.Get(k); kv != nil {
					p.errorf(kv.KeyPos, "%s is only used with serve = \"maintenance\" (mode %s serves the app)", k, name)
				}
			}
		}
		out = append(out, m)
	}
	return out
}

// --- probe and hardening -----------------------------------------------------

var probeKeys = map[string]func(*parser, *Probe, *tomlpos.Value){
	"path": func(p *parser, pr *Probe, v *tomlpos.Value) {
		s := p.str("probe path", v)
		if v.Kind == tomlpos.String && (!strings.HasPrefix(s, "/") || strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r == 0x7f })) {
			p.errorf(v.Pos, "probe path %q must start with / and contain no spaces or control characters", printable(s))
			return
		}
		pr.Path = s
	},
	"status":  func(p *parser, pr *Probe, v *tomlpos.Value) { pr.Status = p.intRange("probe status", v, 100, 599) },
	"timeout": func(p *parser, pr *Probe, v *tomlpos.Value) { pr.Timeout = p.duration("probe timeout", v) },
}

func (p *parser) probe(v *tomlpos.Value) *Probe {
	if !p.kind(keyProbe, v, tomlpos.Table) {
		return nil
	}
	pr := &Probe{Path: "/", Status: defaultProbeStatus, Timeout: DefaultProbeTimeout}
	fields(p, "in probe", v, probeKeys, pr)
	return pr
}

var hardeningKeys = map[string]func(*parser, *Hardening, *tomlpos.Value){
	"allow_write_execute": func(p *parser, h *Hardening, v *tomlpos.Value) {
		if p.kind("allow_write_execute", v, tomlpos.Bool) {
			h.AllowWriteExecute = v.Bool
		}
	},
	"writable_paths": func(p *parser, h *Hardening, v *tomlpos.Value) {
		if !p.kind("writable_paths", v, tomlpos.Array) {
			return
		}
		for i, item := range v.Items {
			if s := p.absPath(fmt.Sprintf("writable_paths[%d]", i), item); s != "" {
				h.WritablePaths = append(h.WritablePaths, s)
			}
		}
	},
}

func (p *parser) hardening(v *tomlpos.Value) Hardening {
	var h Hardening
	if p.kind(keyHardening, v, tomlpos.Table) {
		fields(p, "in hardening", v, hardeningKeys, &h)
	}
	return h
}

// --- credentials, egress and deployers ---------------------------------------

func (p *parser) credentials(v *tomlpos.Value) []Credential {
	if !p.kind(keyCredentials, v, tomlpos.Table) {
		return nil
	}
	var out []Credential
	for _, name := range v.Keys {
		val := v.Fields[name]
		if !validCredentialName(name) {
			p.errorf(val.KeyPos, "credentials: %q is not a valid credential name: use letters, digits, _, . and -, at most 64, not starting with . or -", printable(name))
			continue
		}
		if path := p.absPath("credentials."+name, val); path != "" {
			out = append(out, Credential{Name: name, Path: path, Line: val.Pos.Line, Col: val.Pos.Col})
		}
	}
	slices.SortFunc(out, func(a, b Credential) int { return strings.Compare(a.Name, b.Name) })
	return out
}

var egressKeys = map[string]func(*parser, *Egress, *tomlpos.Value){
	"allow": func(p *parser, e *Egress, v *tomlpos.Value) {
		if !p.kind("egress allow", v, tomlpos.Array) {
			return
		}
		for i, item := range v.Items {
			if a := p.egressAddress(fmt.Sprintf("egress allow[%d]", i), item); a != "" {
				e.Allow = append(e.Allow, a)
			}
		}
	},
}

func (p *parser) egress(v *tomlpos.Value) *Egress {
	if !p.kind(keyEgress, v, tomlpos.Table) {
		return nil
	}
	e := &Egress{Allow: []string{}}
	fields(p, "in egress", v, egressKeys, e)
	return e
}

// egressAddress is one entry of an egress allow list, in the form systemd's
// IPAddressAllow= reads it.
func (p *parser) egressAddress(key string, v *tomlpos.Value) string {
	s := p.str(key, v)
	if v.Kind != tomlpos.String {
		return ""
	}
	switch s {
	case "localhost", "link-local", "multicast":
		return s
	case "any":
		p.errorf(v.Pos, "%s: \"any\" would allow everything: leave out the [egress] table instead", key)
		return ""
	}
	if pr, err := netip.ParsePrefix(s); err == nil && pr.Addr().Zone() == "" {
		return pr.Masked().String()
	}
	if a, err := netip.ParseAddr(s); err == nil && a.Zone() == "" {
		return a.String()
	}
	p.errorf(v.Pos, "%s %q is not an IP address, a prefix like \"10.0.0.0/8\", localhost, link-local or multicast", key, printable(s))
	return ""
}

func (p *parser) deployers(v *tomlpos.Value) []Deployer {
	if !p.kind(keyDeployers, v, tomlpos.Array) {
		return nil
	}
	var out []Deployer
	for i, item := range v.Items {
		s := p.str(fmt.Sprintf("deployers[%d]", i), item)
		if item.Kind != tomlpos.String {
			continue
		}
		kind, name, ok := parseDeployer(s)
		if !ok {
			p.errorf(item.Pos, "deployers[%d] %q is not user:NAME or group:NAME (a user or group name, or a numeric id)", i, printable(s))
			continue
		}
		d := Deployer{Kind: DeployerKind(kind), Name: name}
		if slices.Contains(out, d) {
			p.errorf(item.Pos, "deployers[%d] %s is listed twice", i, printable(s))
			continue
		}
		out = append(out, d)
	}
	return out
}
