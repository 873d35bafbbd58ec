package cli

import (
	"fmt"
	"strings"
	"time"

	"github.com/sitectl/sitectl/internal/cleanup"
	"github.com/sitectl/sitectl/internal/status"
	"github.com/sitectl/sitectl/internal/term"
)

// printStatus prints one site as sitectl status does, in systemctl's
// manner: a dot and the name, then one labelled line per part.
func (e *env) printStatus(s status.Site) {
	w, st := e.stdout, e.style
	line := func(label, format string, args ...any) {
		term.Fprintf(w, "%11s: %s\n", label, term.Styled(fmt.Sprintf(format, args...)))
	}
	more := func(text string) { term.Fprintf(w, "%13s%s\n", "", term.Styled(text)) }

	term.Fprintf(w, "%s %s (%s)\n", term.Styled(e.siteGlyph(s)), term.Styled(st.Bold(term.Escape(s.Site))), s.File)
	state := s.State
	if !s.Running {
		state = st.Red(state)
	}
	line("state", "%s", state)
	e.printSiteFile(s, line, more)
	e.printMode(s, line)
	e.printSockets(s, line)
	e.printService(s, line)
	e.printLocalChanges(s, line)
	if t := s.Trigger; t != nil {
		armed := st.Green("armed")
		if !t.Armed {
			armed = st.Red("not armed") + fmt.Sprintf(" (%s/%s): touching does nothing; start it with systemctl start %s", t.ActiveState, t.SubState, t.Unit)
		}
		line("trigger", "%s: a touch of %s reloads the site (%s)", armed, term.Escape(t.Path), t.Unit)
	}
	line("listen", "%s", term.Escape(strings.Join(s.Listen, ", ")))
	if s.Release != "" {
		rel := term.Escape(s.Release)
		if s.ServedRelease != "" && s.ServedRelease != s.Release && !strings.HasPrefix(s.ServedRelease, s.Release+"/") {
			// The link moved and no reload followed (or a warm rollback
			// went back): what serves is not where it points.
			rel += "; serving " + term.Escape(s.ServedRelease) + " (the link points elsewhere: sitectl reload " + s.Site + " moves the site onto it)"
		}
		line("release", "%s", rel)
	}
	if c := s.Cleanup; c != nil {
		e.printCleanup(s.Site, c, line, more)
	}
}

// printCleanup prints the record of a site's last cleanup.
func (e *env) printCleanup(site string, c *cleanup.Record, line func(string, string, ...any), more func(string)) {
	st := e.style
	switch c.Result {
	case cleanup.ResultRunning:
		line("cleanup", "running since %s", e.ago(c.Time))
		return
	case cleanup.ResultUnfinished:
		line("cleanup", "%s", st.Red("the last stop's cleanup did not finish")+fmt.Sprintf(": it started %s and recorded no result (systemd killed it at TimeoutStopSec=, or it failed): whether the hooks ran is not known; sitectl logs %s shows its lines", e.ago(c.Time), site))
		return
	case cleanup.ResultFailed:
		line("cleanup", "%s", st.Red("failed")+fmt.Sprintf(" at %s, before it ran the hooks: %s", e.ago(c.Time), term.Escape(c.Reason)))
		return
	}
	result := term.Escape(c.Result)
	if c.Result != cleanup.ResultOK {
		result = st.Red(result)
	}
	left := fmt.Sprintf("%d processes left behind", c.Leftovers)
	if c.Result == cleanup.ResultListFailed {
		left = fmt.Sprintf("%d processes left behind as far as they were listed", c.Leftovers)
	}
	killed := fmt.Sprintf("%d killed by systemd", c.Remaining)
	if c.HookLeftovers > 0 {
		killed += fmt.Sprintf(" (%d left running by the hooks)", c.HookLeftovers)
	}
	line("cleanup", "%s at %s: %s, %s", result, e.ago(c.Time), left, killed)
	if c.Reason != "" {
		more("listing the processes failed: " + term.Escape(c.Reason))
	}
	for _, f := range c.HookFailures {
		more("hook failed: " + term.Escape(f))
	}
}

func (e *env) printSiteFile(s status.Site, line func(string, string, ...any), more func(string)) {
	f := s.SiteFile
	if f.State == "gone" {
		line("site file", "%s", e.style.Red("gone")+term.Escape(fmt.Sprintf(": there is no %s, but systemd still runs the site's units as it loaded them; `sitectl remove %s` stops them and forgets the site, or put the file back and run systemctl daemon-reload", s.File, s.Site)))
		return
	}
	if p := f.Pinned; p != nil && f.State == "ok" {
		line("site file", "%s", e.style.Red("failed to start as it is")+term.Escape(fmt.Sprintf(" (%s); pinned since %s: running the last good version %s until the file changes (fix it and run systemctl daemon-reload)", p.Reason, e.ago(p.Since), p.Copy)))
		return
	}
	if f.State == "ok" {
		line("site file", "ok")
		return
	}
	text := e.style.Red("invalid")
	if f.InvalidSince != nil {
		text += " since " + e.ago(*f.InvalidSince)
	}
	text += fmt.Sprintf(" (%d %s)", len(f.Errors), plural(len(f.Errors), "error", "errors"))
	if f.LastGood {
		text += "; running the last good version"
	} else {
		text += "; no good version of it is kept: the generator leaves the site out"
	}
	line("site file", "%s", text)
	for _, m := range f.Errors {
		more(term.Escape(fmt.Sprintf("%s:%d:%d: %s", m.File, m.Line, m.Column, m.Message)))
	}
}

func (e *env) printMode(s status.Site, line func(string, string, ...any)) {
	const gone = "no longer in the site file"
	if s.Mode == "" {
		// No default mode from a site file with mistakes and none
		// recorded, or a state status.Gather could not read (its
		// warning says why, and its hint what to do).
		why := "sitectl cannot read the site's state (see the warning above)"
		switch s.SiteFile.State {
		case "invalid":
			why = "the site file has mistakes, and sitectl has no readable record of the site's mode"
		case "gone":
			why = "the site file is gone, and sitectl has no readable record of the site's mode"
		}
		line("mode", "%s", e.style.Red("unknown")+": "+why)
		return
	}
	mode := term.Escape(s.Mode)
	if s.ModeGone {
		mode += " (" + e.style.Red(gone) + ")"
	}
	if s.PreviousMode != "" {
		mode += " (previous: " + term.Escape(s.PreviousMode)
		if s.PreviousGone {
			mode += ", " + gone + ": sitectl rollback refuses"
		}
		mode += ")"
	}
	switch {
	case s.ServedMode != "" && s.ServedMode != s.Mode:
		mode += "; " + e.style.Red("the process that serves runs mode "+term.Escape(s.ServedMode)) + ": it applies at the next restart"
	case s.ServedMode != "" && len(s.ServedDiffers) > 0:
		mode += "; " + e.style.Red("the process that serves runs an older version of it: in its environment "+term.Escape(strings.Join(s.ServedDiffers, ", "))+" "+plural(len(s.ServedDiffers), "is not", "are not")+" as the site file has "+plural(len(s.ServedDiffers), "it", "them")) + ": it applies at the next restart"
	case s.ServedMode != "":
		mode += "; served (the serving process runs it)"
	case !s.ModeApplied && s.ActiveState == "active":
		mode += "; recorded after the running process started: it applies at the next restart"
	}
	if s.ModeGone {
		mode += "; sitectl restart and reload refuse: `sitectl mode " + term.Escape(s.Site) + " MODE` switches it to a mode the file has"
	}
	line("mode", "%s", mode)
	if w := s.Warm; w != nil {
		release := ""
		if w.Release != "" {
			release = ", release " + term.Escape(w.Release)
		}
		if w.MemoryBytes > 0 {
			release += fmt.Sprintf(", %.1f MiB", float64(w.MemoryBytes)/(1<<20))
		}
		rollback := "(keep_previous): sitectl rollback flips back to it"
		if !w.RollbackFlips {
			rollback = "or when the service restarts: sitectl rollback goes cold"
			if w.NoFlip != "" {
				rollback = "or when the service restarts: " + term.Escape(w.NoFlip) + ", so sitectl rollback goes cold"
			}
		}
		line("warm", "generation %d (pid %d), mode %s%s, warm since %s, drained at %s %s",
			w.Generation, w.MainPID, term.Escape(w.Mode), release, e.ago(w.Since), w.Until.Local().Format(time.TimeOnly), rollback)
	}
	if p := s.Pending; p != nil {
		what := "cut short (sitectl stopped before it finished); the next change closes it"
		if s.Busy {
			what = "in progress"
		}
		kind := ""
		if p.Kind != "" {
			kind = term.Escape(p.Kind) + " "
		}
		line("switch", "%s%s %s %s since %s, %s", kind, term.Escape(p.From), e.style.Arrow(), term.Escape(p.To), e.ago(p.Since), what)
	}
}

func (e *env) printSockets(s status.Site, line func(string, string, ...any)) {
	var parts []string
	for _, so := range s.Sockets {
		text := so.State
		switch {
		case so.State == "stopped" && noUnits(s):
			text = e.style.Red(text) + ": visitors are refused; systemd has no such unit: the generator leaves the site out until its file is valid (`sitectl check " + term.Escape(s.File) + "` shows why), then systemctl daemon-reload"
		case so.State == "stopped" && so.ActiveState == "active":
			// readSocketsHeld: active, but no socket and no process.
			text = e.style.Red("not listening") + ": systemd holds no socket for it although the unit is active: visitors are refused"
		case so.State == "stopped" && (s.LoadState == "not-found" || s.LoadState == "not-loaded"):
			// A valid file put in place since the last daemon-reload:
			// systemctl start would say "Unit not found".
			text = e.style.Red(text) + ": visitors are refused; systemd has no units for the site yet: run systemctl daemon-reload (the generator writes them), then systemctl start " + so.Unit
		case so.State == "stopped":
			text = e.style.Red(text) + ": visitors are refused; start it with systemctl start " + so.Unit
		case so.State == "failed":
			text = e.style.Red(text) + ": visitors are refused; see systemctl status " + so.Unit
		}
		parts = append(parts, fmt.Sprintf("%s (%s)", text, so.Unit))
	}
	if t := s.OutOfService; t != nil {
		text := "no, since " + e.ago(*t) + " (sitectl disable)"
		if s.Socket != "stopped" {
			text += ", " + e.style.Red("but its sockets were started by hand")
		}
		line("in service", "%s: its sockets do not start at boot; `sitectl enable %s` puts it back", text, s.Site)
	}
	line("socket", "%s", strings.Join(parts, "; "))
	if len(s.SocketsLost) > 0 {
		var names []string
		for _, so := range s.Sockets {
			names = append(names, so.Unit)
		}
		what := ": the running process serves on its own copy, and from the service's next start visitors are refused"
		if s.Socket == "stopped" {
			what = ": nothing listens there, and visitors are refused"
		}
		line("socket", "%s", e.style.Red("systemd holds no socket for "+term.Escape(strings.Join(s.SocketsLost, ", ")))+
			what+"; `sitectl restart "+s.Site+"` restarts "+strings.Join(names, " and ")+" with the service to open them again")
	}
	if len(s.ListenersPending) > 0 {
		line("socket", "%s", e.style.Bold("not listened on yet: "+term.Escape(strings.Join(s.ListenersPending, ", ")))+
			" (the site file changed since systemd loaded the site's units, and systemd listens where they said); `systemctl daemon-reload && sitectl restart "+s.Site+"` moves the site there")
	}
}

func (e *env) printService(s status.Site, line func(string, string, ...any)) {
	if noUnits(s) {
		line("service", "%s (%s): systemd has no such unit: the generator leaves the site out until its file is valid", s.Unit, s.LoadState)
		return
	}
	if s.LoadState != "loaded" && s.LoadState != "masked" {
		fix := "run systemctl daemon-reload"
		if s.SiteFile.State == "gone" {
			fix = "its site file is gone"
		}
		line("service", "%s (%s): systemd has no such unit; %s", s.Unit, s.LoadState, fix)
		return
	}
	text := s.ActiveState + " (" + s.SubState + ")"
	if s.LoadState == "masked" {
		text = e.style.Red("masked") + ", " + text
	}
	switch s.ActiveState {
	case "failed":
		text = e.style.Red(text)
	case "active":
		text = e.style.Green(text)
	}
	if s.Result != "" && s.Result != "success" {
		text += " with result " + s.Result
	}
	if s.Since != nil {
		text += " since " + e.ago(*s.Since)
	}
	if s.MainPID > 0 {
		text += fmt.Sprintf("; main PID %d", s.MainPID)
	}
	switch {
	case s.State == "idle":
		text += "; idle: the first request starts it"
	case s.LoadState == "masked" && s.State == "stopped" && s.Socket == "listening":
		text += "; " + e.style.Red("the first request fails its sockets") + ": systemd starts no masked unit (`systemctl unmask " + s.Unit + "` lets it start)"
	}
	line("service", "%s", text)
	if len(s.StartProblems) > 0 {
		line("start", "%s", e.style.Red("would fail")+": "+term.Escape(strings.Join(s.StartProblems, "; "))+"; sitectl refuses to restart it, and a crash restart would fail")
	}
	if s.StatusText != "" {
		line("status", "%s", term.Escape(s.StatusText))
	}
	if s.NRestarts > 0 || s.LastFailure != nil {
		line("restarts", "%s", e.restarts(s))
	}
}

// printLocalChanges names each unit of the site that systemd loaded other
// than sitectl generates it, and how to take that out.
func (e *env) printLocalChanges(s status.Site, line func(string, string, ...any)) {
	for _, c := range s.LocalChanges {
		var parts []string
		if c.Shadow != "" {
			text := "loaded from " + term.Escape(c.Shadow) + ", which shadows the unit sitectl generates: no daemon-reload brings the site file's changes into it"
			if c.ShadowStale {
				text = e.style.Red("loaded from "+term.Escape(c.Shadow)+", made from an older version of the site file") +
					": systemd runs the site as that version said, and no daemon-reload changes it (it shadows the unit sitectl generates)"
			}
			parts = append(parts, text)
		}
		if len(c.DropIns) > 0 {
			parts = append(parts, plural(len(c.DropIns), "drop-in ", "drop-ins ")+term.Escape(strings.Join(c.DropIns, ", ")))
		}
		if n := len(c.DropIns) + len(parts) - min(len(c.DropIns), 1); n > 0 {
			parts[len(parts)-1] += ": `" + c.Revert + "` takes " + plural(n, "it", "them") + " out"
		}
		if len(c.Shared) > 0 {
			parts = append(parts, plural(len(c.Shared), "drop-in ", "drop-ins ")+term.Escape(strings.Join(c.Shared, ", "))+
				", which "+plural(len(c.Shared), "applies", "apply")+" to other units as well (`systemctl revert` leaves "+plural(len(c.Shared), "it", "them")+")")
		}
		line("local", "%s: %s", c.Unit, strings.Join(parts, "; "))
	}
}

// noUnits tells whether systemd has no units of site s because its file
// is invalid and no good version of it is kept: the generator wrote none,
// and neither a start nor a daemon-reload brings them.
func noUnits(s status.Site) bool {
	return s.SiteFile.State == "invalid" && !s.SiteFile.LastGood && s.LoadState != "loaded"
}

// restarts words the restart count and the last failure.
func (e *env) restarts(s status.Site) string {
	text := fmt.Sprintf("%d after failures since the last deliberate start", s.NRestarts)
	if s.NRestarts > 0 {
		text = e.style.Red(text)
	}
	if f := s.LastFailure; f != nil {
		text += "; last failure: " + term.Escape(f.Result)
		if f.ExitCode != "" {
			text += " (" + term.Escape(f.ExitCode) + ", status " + term.Escape(f.ExitStatus) + ")"
		}
		if f.Time != nil {
			text += " at " + e.ago(*f.Time)
		}
	}
	return text
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
