package main

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sitectl/sitectl/internal/loadgen"
	"github.com/sitectl/sitectl/internal/site"
)

var t0 = time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)

func at(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

func TestWindowOverlaps(t *testing.T) {
	w := Window{Start: at(1000), End: at(2000)}
	cases := []struct {
		name      string
		start, ms int
		want      bool
	}{
		{"ends before", 0, 999, false},
		{"ends at the start", 0, 1000, true},
		{"waiting when the switch began", 900, 300, true},
		{"inside", 1200, 5, true},
		{"starts at the end (in the tail)", 2000, 1, true},
		{"starts after", 2001, 1, false},
		{"spans the window", 500, 3000, true},
		{"zero latency inside", 1500, 0, true},
	}
	for _, c := range cases {
		if got := w.Overlaps(at(c.start), time.Duration(c.ms)*time.Millisecond); got != c.want {
			t.Errorf("%s: Overlaps = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestSplitByWindows(t *testing.T) {
	ws := []Window{{Start: at(1000), End: at(2000)}, {Start: at(5000), End: at(5500)}}
	rs := []loadgen.Result{
		{Start: at(100), Latency: time.Millisecond, Outcome: loadgen.OK},         // steady
		{Start: at(990), Latency: 20 * time.Millisecond, Outcome: loadgen.OK},    // reaches into window 1
		{Start: at(1500), Latency: time.Millisecond, Outcome: loadgen.Refused},   // inside window 1
		{Start: at(3000), Latency: time.Millisecond, Outcome: loadgen.OK},        // steady
		{Start: at(4000), Latency: 2 * time.Second, Outcome: loadgen.Timeout},    // reaches into window 2
		{Start: at(5600), Latency: time.Millisecond, Outcome: loadgen.OK},        // steady
		{Start: at(5500), Latency: time.Microsecond, Outcome: loadgen.BadStatus}, // at the end of window 2
	}
	steady, window := Split(Samples(rs), ws)
	if len(steady) != 3 || len(window) != 4 {
		t.Fatalf("steady %d, window %d; want 3 and 4", len(steady), len(window))
	}
	for _, r := range steady {
		if !r.OK() {
			t.Errorf("steady has a %s request at %s", outcomes[r.Outcome], r.StartTime().Sub(t0))
		}
	}
	if InAnyWindow(nil, at(0), time.Hour) {
		t.Error("no windows, but a request is inside one")
	}
}

func TestPercentileNearestRank(t *testing.T) {
	var ds []time.Duration
	for i := 1; i <= 100; i++ {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	for _, c := range []struct {
		p    float64
		want time.Duration
	}{{50, 50 * time.Millisecond}, {99, 99 * time.Millisecond}, {100, 100 * time.Millisecond}, {1, time.Millisecond}, {0.1, time.Millisecond}} {
		if got := Percentile(ds, c.p); got != c.want {
			t.Errorf("p%g of 1..100 ms = %s, want %s", c.p, got, c.want)
		}
	}
	// Few values: p99 of 10 values is the largest; p50 of 4 is the second.
	ten := ds[:10]
	if got := Percentile(ten, 99); got != 10*time.Millisecond {
		t.Errorf("p99 of 10 values = %s, want the largest", got)
	}
	if got := Percentile(ds[:4], 50); got != 2*time.Millisecond {
		t.Errorf("p50 of 1..4 ms = %s, want 2ms", got)
	}
	if got := Percentile(nil, 99); got != 0 {
		t.Errorf("p99 of nothing = %s", got)
	}
}

// msList is durations of v ms each.
func msList(v ...int) []time.Duration {
	var ds []time.Duration
	for _, x := range v {
		ds = append(ds, time.Duration(x)*time.Millisecond)
	}
	return ds
}

func TestMedian(t *testing.T) {
	ms := msList
	if got := Median(ms(5, 1, 3)); got != 3*time.Millisecond {
		t.Errorf("median of 5,1,3 = %s", got)
	}
	if got := Median(ms(4, 1, 3, 2)); got != 2500*time.Microsecond {
		t.Errorf("median of 4,1,3,2 = %s, want 2.5ms", got)
	}
	in := ms(3, 1, 2)
	Median(in)
	if in[0] != 3*time.Millisecond {
		t.Error("Median sorted its argument in place")
	}
}

func TestSummarizeLeavesFailuresOutOfLatencies(t *testing.T) {
	rs := []loadgen.Result{
		{Latency: 10 * time.Millisecond, Outcome: loadgen.OK},
		{Latency: 20 * time.Millisecond, Outcome: loadgen.OK},
		{Latency: 30 * time.Millisecond, Outcome: loadgen.OK},
		{Latency: 10 * time.Microsecond, Outcome: loadgen.Refused},
		{Latency: 10 * time.Microsecond, Outcome: loadgen.Refused},
		{Latency: 10 * time.Second, Outcome: loadgen.Timeout},
	}
	s := Summarize(Samples(rs))
	if s.Requests != 6 || s.OK != 3 || s.Failed != 3 || s.ByKind["refused"] != 2 || s.ByKind["timeout"] != 1 {
		t.Errorf("counts: %+v", s)
	}
	if s.P50.MS() != 20 || s.P99.MS() != 30 || s.Max.MS() != 30 {
		t.Errorf("latencies p50 %v p99 %v max %v, want 20/30/30 ms (failures left out)", s.P50.MS(), s.P99.MS(), s.Max.MS())
	}
	if got := Ratio(Millis(30*time.Millisecond), Millis(10*time.Millisecond)); got != 3 {
		t.Errorf("Ratio = %v", got)
	}
	if got := Ratio(1, 0); got != 0 {
		t.Errorf("Ratio with no steady samples = %v, want 0", got)
	}
	if z := Summarize(nil); z.P99 != 0 || z.Requests != 0 {
		t.Errorf("empty summary: %+v", z)
	}
}

func TestMillisJSONRoundTrip(t *testing.T) {
	m := Millis(1234567 * time.Nanosecond)
	b, err := json.Marshal(m)
	if err != nil || string(b) != "1.235" {
		t.Fatalf("marshal = %s, %v; want 1.235", b, err)
	}
	var back Millis
	if err := json.Unmarshal(b, &back); err != nil || back.MS() != 1.235 {
		t.Errorf("unmarshal = %v, %v", back.MS(), err)
	}
}

func TestTimeResultStats(t *testing.T) {
	r := TimeResult{
		Nanos:    [][]int64{{int64(10 * time.Millisecond), int64(30 * time.Millisecond), int64(20 * time.Millisecond), int64(time.Millisecond)}},
		Errors:   [][]string{{"", "", "", "sitectl list --json: exit status 1: boom"}},
		CPUNanos: [][]int64{{int64(5 * time.Millisecond), int64(7 * time.Millisecond), int64(6 * time.Millisecond), int64(100 * time.Millisecond)}},
	}
	// The failed run's CPU time is left out like its wall time.
	if cpu := r.CPUStats(0); cpu.Runs != 3 || cpu.Median.MS() != 6 {
		t.Errorf("CPU stats: %+v", cpu)
	}
	if got := withCPU(r.Stats(0, false), r.CPUStats(0)); got != "20.0 (**1 of 4 runs failed**)" {
		t.Errorf("withCPU = %q", got)
	}
	if got := withCPU(DurationStats{Runs: 3, Median: Millis(20 * time.Millisecond)}, r.CPUStats(0)); got != "20.0 (6.00)" {
		t.Errorf("withCPU = %q", got)
	}
	st := r.Stats(0, true)
	if st.Runs != 3 || st.Failed != 1 || st.Median.MS() != 20 || st.Min.MS() != 10 || st.Max.MS() != 30 || len(st.All) != 3 {
		t.Errorf("stats: %+v", st)
	}
	if !strings.Contains(st.Error, "boom") {
		t.Errorf("first error %q", st.Error)
	}
	if got := durCell(st); !strings.Contains(got, "1 of 4 runs failed") {
		t.Errorf("cell %q", got)
	}
	if got := durCell(DurationStats{Failed: 2, Error: "x"}); got != "**fails** (2 of 2 runs)" {
		t.Errorf("cell of an always failing command %q", got)
	}
}

func TestParsers(t *testing.T) {
	si := parseSlabInfo(`slabinfo - version: 2.1
# name            <active_objs> <num_objs> <objsize> <objperslab> <pagesperslab> : tunables <limit> <batchcount> <sharedfactor> : slabdata <active_slabs> <num_slabs> <sharedavail>
TCP                   78    130   2368   13    8 : tunables    0    0    0 : slabdata     10     10      0
sock_inode_cache     209    209    832   19    4 : tunables    0    0    0 : slabdata     11     11      0
`)
	if got := si.bytes("TCP", "sock_inode_cache", "missing"); got != 78*2368+209*832 {
		t.Errorf("slab bytes = %d", got)
	}
	n, err := parseTCPInUse("sockets: used 11\nTCP: inuse 7 orphan 0 tw 4 alloc 1 mem 65\nUDP: inuse 0 mem 0\n")
	if err != nil || n != 7 {
		t.Errorf("TCP inuse = %d, %v", n, err)
	}
	cpu, err := parseProcCPU("1 (systemd (x)) S 0 1 1 0 -1 4194560 100 200 0 0 250 130 0 0 20 0 1 0 5 100 200\n")
	if err != nil || cpu != 3800*time.Millisecond {
		t.Errorf("parseProcCPU = %v, %v", cpu, err)
	}
	if _, err := parseProcCPU("garbage"); err == nil {
		t.Error("parseProcCPU accepted garbage")
	}
	if st := procState("42 (systemd-shutdow) Z 1 2"); st != "Z" {
		t.Errorf("procState = %q", st)
	}
	ts := parseMonotonic("UserspaceTimestampMonotonic=1000000\nFinishTimestampMonotonic=3500000\nOther=x\n")
	if ts["FinishTimestampMonotonic"]-ts["UserspaceTimestampMonotonic"] != 2500*time.Millisecond || len(ts) != 2 {
		t.Errorf("parseMonotonic = %v", ts)
	}
	if _, err := parseTCPInUse("UDP: inuse 0\n"); err == nil {
		t.Error("no TCP line, no error")
	}
	if _, err := parseSites("100,10"); err == nil {
		t.Error("descending -sites accepted")
	}
	if _, err := parseSites("1000,60000"); err == nil {
		t.Error("more sites than ports accepted")
	}
	if ns, err := parseSites(" 10, 100 ,1000"); err != nil || len(ns) != 3 {
		t.Errorf("parseSites = %v, %v", ns, err)
	}
	if ns, err := parseSites(""); err != nil || ns != nil {
		t.Errorf("empty -sites = %v, %v", ns, err)
	}
}

func TestFlags(t *testing.T) {
	o, _, err := parseFlags([]string{"-switches", "20", "-rate", "100", "-quick"})
	if err != nil {
		t.Fatal(err)
	}
	if o.switches != 20 || o.rate != 100 || o.neighbourRate != 100 || o.reps != 3 || o.cliRuns != 10 || o.gap != time.Second {
		t.Errorf("quick options: %+v", o)
	}
	o, _, err = parseFlags([]string{"-quick", "-reps", "7", "-neighbour-rate", "50"})
	if err != nil || o.reps != 7 || o.neighbourRate != 50 {
		t.Errorf("explicit flags under -quick: %+v, %v", o, err)
	}
	if _, _, err := parseFlags([]string{"stray"}); err == nil {
		t.Error("a stray argument was accepted")
	}
	// The conditions by default; -quick runs each scenario once.
	o, _, err = parseFlags(nil)
	if err != nil || o.rate != 200 || o.neighbourRate != 100 || o.repeats != 3 || o.switches != 8 || o.wsgiImport != time.Second || o.wsgiCPU != 2*time.Millisecond || o.doneTimeout != 30*time.Second {
		t.Errorf("defaults: %+v, %v", o, err)
	}
	if o, _, _ := parseFlags([]string{"-quick"}); o.repeats != 1 {
		t.Errorf("-quick: %d repetitions", o.repeats)
	}
	if o, _, _ := parseFlags([]string{"-quick", "-repeats", "2"}); o.repeats != 2 {
		t.Errorf("-quick -repeats 2: %d repetitions", o.repeats)
	}
	goApp, _ := appByID("go")
	gun, _ := appByID("gunicorn")
	hup, _ := scenarioByID("gunicorn-hup")
	own, _ := scenarioByID("own-port")
	if checkPairs([]App{goApp}, []Scenario{hup}) == nil {
		t.Error("gunicorn's HUP alone with the Go app was accepted")
	}
	if checkPairs([]App{goApp, gun}, []Scenario{hup}) != nil || checkPairs([]App{goApp}, []Scenario{hup, own}) != nil || checkPairs(nil, []Scenario{hup}) != nil {
		t.Error("a selection with something to run was refused")
	}
	for _, bad := range [][]string{{"-repeats", "0"}, {"-wsgi-cpu", "-1ms"}, {"-done-timeout", "0s"}} {
		if _, _, err := parseFlags(bad); err == nil {
			t.Errorf("%v was accepted", bad)
		}
	}
}

func TestScenarioTable(t *testing.T) {
	ids := map[string]bool{}
	for _, s := range scenarios {
		if ids[s.ID] {
			t.Errorf("scenario %s twice", s.ID)
		}
		ids[s.ID] = true
		if s.Install == nil || s.Switch == nil || s.Title == "" {
			t.Errorf("scenario %s is incomplete", s.ID)
		}
		for _, a := range apps {
			if !s.runsWith(a.ID) {
				continue
			}
			in := s.Install(a, 12345)
			if len(in.Files) == 0 || in.Name == "" || len(in.Start) == 0 || in.Unit == "" || in.Port != 12345 {
				t.Errorf("%s/%s: install %+v", a.ID, s.ID, in)
			}
			for path, content := range in.Files {
				if (strings.HasSuffix(path, ".service") || strings.HasSuffix(path, ".toml")) && !strings.Contains(content, "127.0.0.1:12345") {
					t.Errorf("%s/%s: %s does not use the port:\n%s", a.ID, s.ID, path, content)
				}
			}
		}
	}
	for _, want := range []string{"own-port", "socket-held", "sitectl-mode", "overlap-reload", "overlap-mode", "gunicorn-hup", "gunicorn-usr2", "uwsgi-touch", "uwsgi-chain"} {
		if !ids[want] {
			t.Errorf("no scenario %s", want)
		}
	}
	mode, _ := scenarioByID("sitectl-mode")
	if got := commandFor(mode, Install{Name: "go-mode"}); got != "`sitectl mode go-mode read-only` / `sitectl mode go-mode normal`" {
		t.Errorf("mode command %q", got)
	}
	if got := mode.Switch(Install{Name: "x"}, 3); strings.Join(got, " ") != "sitectl mode x normal" {
		t.Errorf("switch 4 = %v", got)
	}
	own, _ := scenarioByID("own-port")
	goApp, _ := appByID("go")
	if got := commandFor(own, own.Install(goApp, 1)); got != "`systemctl restart bench-go-own.service`" {
		t.Errorf("own-port command %q", got)
	}
	for _, id := range []string{"overlap-reload", "overlap-mode"} {
		o, _ := scenarioByID(id)
		if o.Available == nil {
			t.Errorf("scenario %s must check that sitectl can do it", id)
		}
		for _, a := range apps {
			for _, content := range o.Install(a, 1).Files {
				if !strings.Contains(content, `handoff = "overlap"`) {
					t.Errorf("%s/%s: the site does not ask for the overlapped handoff:\n%s", a.ID, id, content)
				}
			}
		}
	}
	ovr, _ := scenarioByID("overlap-reload")
	if got := commandFor(ovr, Install{Name: "go-ovreload"}); got != "`sitectl reload go-ovreload`" {
		t.Errorf("overlap reload command %q", got)
	}
}

// TestPeerScenarios pins what the servers' own reloads run: the unit as
// gunicorn's documentation writes it, the touch files uWSGI watches, and a
// USR2 script that a shell accepts.
func TestPeerScenarios(t *testing.T) {
	gun, _ := appByID("gunicorn")
	uw, _ := appByID("uwsgi")
	hup, _ := scenarioByID("gunicorn-hup")
	if hup.runsWith("go") || hup.runsWith("uwsgi") || !hup.runsWith("gunicorn") || !hup.Peer {
		t.Errorf("gunicorn-hup must run with gunicorn only, as a peer")
	}
	in := hup.Install(gun, 4000)
	unit := in.Files["/etc/systemd/system/bench-gunicorn-hup.service"]
	for _, want := range []string{"ExecReload=/bin/kill -s HUP $MAINPID", "--pid /run/bench-gunicorn-hup/gunicorn.pid", "RuntimeDirectory=bench-gunicorn-hup", "Type=notify"} {
		if !strings.Contains(unit, want) {
			t.Errorf("gunicorn's unit lacks %q:\n%s", want, unit)
		}
	}
	if got := commandFor(hup, in); got != "`systemctl reload bench-gunicorn-hup.service`" {
		t.Errorf("HUP command %q", got)
	}
	usr2, _ := scenarioByID("gunicorn-usr2")
	in = usr2.Install(gun, 4001)
	argv := usr2.Switch(in, 0)
	if len(argv) != 5 || argv[0] != "timeout" || argv[2] != "sh" {
		t.Fatalf("USR2 switch %q", argv)
	}
	argv = argv[2:]
	for _, want := range []string{"unit=bench-gunicorn-usr2.service", "pidfile=/run/bench-gunicorn-usr2/gunicorn.pid", "url=http://127.0.0.1:4001/", "kill -USR2", "kill -WINCH", "kill -QUIT"} {
		if !strings.Contains(argv[2], want) {
			t.Errorf("USR2 script lacks %q", want)
		}
	}
	if out, err := exec.Command("sh", "-n", "-c", argv[2]).CombinedOutput(); err != nil {
		t.Errorf("sh -n refuses the USR2 script: %v: %s", err, out)
	}
	// A failed script is reported by its exit status and output, not its
	// text.
	exitErr := exec.Command("sh", "-c", "exit 124").Run()
	wrapped := fmt.Errorf("sandbox x: timeout 120 sh -c %q: %w", argv[2], exitErr)
	if got := switchError(usr2, wrapped, "USR2: new master 7 answers;\n"); got != "exit status 124 (timed out): USR2: new master 7 answers;" {
		t.Errorf("USR2 switch error %q", got)
	}
	if got := switchError(hup, wrapped, "x"); !strings.Contains(got, "sandbox x: timeout 120") {
		t.Errorf("a one-command switch's error must be whole: %q", got)
	}
	if !usr2.StopOnError || hup.StopOnError {
		t.Error("only the USR2 dance stops at a failed switch")
	}
	for id, flag := range map[string]string{"uwsgi-touch": " --touch-reload /srv/bench/bench-uwsgi-touch.touch", "uwsgi-chain": " --lazy-apps --touch-chain-reload /srv/bench/bench-uwsgi-chain.touch"} {
		s, _ := scenarioByID(id)
		if s.runsWith("gunicorn") || !s.runsWith("uwsgi") {
			t.Errorf("%s must run with uWSGI only", id)
		}
		in := s.Install(uw, 4002)
		touch := strings.TrimPrefix(flag[strings.LastIndex(flag, " "):], " ")
		if _, ok := in.Files[touch]; !ok {
			t.Errorf("%s: no touch file %s in %v", id, touch, in.Files)
		}
		if u := in.Files["/etc/systemd/system/"+in.Unit]; !strings.Contains(u, "--processes 2"+flag+"\n") {
			t.Errorf("%s: the unit does not run uWSGI with%s:\n%s", id, flag, u)
		}
		if got := strings.Join(s.Switch(in, 0), " "); got != "touch "+touch {
			t.Errorf("%s: switch %q", id, got)
		}
	}
	if own, _ := scenarioByID("own-port"); !own.runsWith("go") {
		t.Error("own-port must run with every app")
	}
}

// TestWithLoad: the WSGI apps get the realistic load in both the plain unit
// and the site file, which sitectl's parser accepts; the Go app gets none.
func TestWithLoad(t *testing.T) {
	l := AppLoad{ImportCPU: time.Second, RequestCPU: 5 * time.Millisecond}
	gun, _ := appByID("gunicorn")
	gun = gun.withLoad(l)
	if !slices.Equal(gun.Env, []string{"WSGI_IMPORT_CPU_SECONDS=1", "WSGI_REQUEST_CPU_MS=5"}) || gun.Settle != 3*time.Second {
		t.Errorf("gunicorn with load: env %q, settle %s", gun.Env, gun.Settle)
	}
	if !strings.Contains(gun.Title, "1s of CPU") {
		t.Errorf("title %q does not say the load", gun.Title)
	}
	if u := gun.Unit("x", 1, ""); !strings.Contains(u, "[Service]\nEnvironment=WSGI_IMPORT_CPU_SECONDS=1 WSGI_REQUEST_CPU_MS=5\n") {
		t.Errorf("unit without the load:\n%s", u)
	}
	f := gun.Site(8080, modeExtra)
	st, err := site.Parse("gunicorn.toml", []byte(f))
	if err != nil {
		t.Fatalf("sitectl refuses the site file: %v\n%s", err, f)
	}
	env := map[string]string{}
	for _, e := range st.Environment {
		env[e.Name] = e.Value
	}
	if env["WSGI_IMPORT_CPU_SECONDS"] != "1" || env["WSGI_REQUEST_CPU_MS"] != "5" {
		t.Errorf("site environment %v", st.Environment)
	}
	goApp, _ := appByID("go")
	if g := goApp.withLoad(l); len(g.Env) != 0 || g.Settle != time.Second || g.Site(1, "") != goApp.SiteFile(1, "") {
		t.Errorf("the Go app got a load: %+v", g)
	}
}

func TestTableRendering(t *testing.T) {
	tb := table{head: []string{"a", "b"}}
	tb.add("1", "x | y")
	tb.add("2")
	want := "| a | b |\n|---|---|\n| 1 | x \\| y |\n| 2 |  |\n"
	if got := tb.String(); got != want {
		t.Errorf("table:\n%s\nwant:\n%s", got, want)
	}
	if got := failedCell(Stats{Failed: 3, ByKind: map[string]int{"reset": 1, "refused": 2}}); got != "**3** (refused 2, reset 1)" {
		t.Errorf("failed cell %q", got)
	}
	if got := latCell(Stats{OK: 2, P50: Millis(1500 * time.Microsecond), P99: Millis(42 * time.Millisecond), Max: Millis(1234 * time.Millisecond)}); got != "1.50 / 42.0 / 1234" {
		t.Errorf("latency cell %q", got)
	}
	if got := latCell(Stats{}); got != "–" {
		t.Errorf("latency cell without successes %q", got)
	}
}

// sampleResults is a small but complete run, for the report and the plots.
func sampleResults() *Results {
	okStats := Stats{Requests: 1000, OK: 1000, ByKind: map[string]int{}, P50: Millis(time.Millisecond), P99: Millis(2 * time.Millisecond), Max: Millis(3 * time.Millisecond)}
	spike := okStats
	spike.P99 = Millis(300 * time.Millisecond)
	failed := okStats
	failed.OK, failed.Failed, failed.ByKind = 990, 10, map[string]int{"refused": 10}
	side := func(all, steady, window Stats) *Side {
		return &Side{All: all, Steady: steady, Window: window, P99Ratio: Ratio(window.P99, steady.P99)}
	}
	// ran fills in what runHandoff gives a scenario that ran: two
	// repetitions of 3 switches with these ratios.
	ran := func(h *HandoffResult, ratios ...float64) *HandoffResult {
		h.Available, h.SwitchCount, h.P99Ratios, h.P99RatioMedian = true, 6, ratios, medianFloat(ratios)
		h.NeighbourP99Ratios = []float64{1.01, 1.02}
		h.SwitchDuration = DurationStats{Runs: 6, Median: Millis(90 * time.Millisecond), Max: Millis(120 * time.Millisecond)}
		h.DoneAfter = DurationStats{Runs: 6 - h.Incomplete, Median: Millis(95 * time.Millisecond), Max: Millis(130 * time.Millisecond)}
		for i := range ratios {
			h.Repetitions = append(h.Repetitions, &Repetition{N: i + 1, Subject: h.Subject, Neighbour: h.Neighbour})
		}
		return h
	}
	usr2 := ran(&HandoffResult{App: "go", Scenario: "gunicorn-usr2", Title: "5b. gunicorn USR2 dance", Command: "`kill -USR2`", Peer: true, Incomplete: 1,
		Subject: side(failed, okStats, spike), Neighbour: side(okStats, okStats, okStats)}, 150, 140)
	usr2.Subject.Steady.P99 = Millis(900 * time.Millisecond)
	usr2.Repetitions[0].Notes = []string{"after switch 1: bench-gunicorn-usr2.service is not running (ActiveState=inactive)"}
	usr2.Repetitions[0].Switches = []SwitchRecord{{Output: "USR2: new master 42 answers;\nQUIT sent"}}
	r := &Results{
		Command: "go run ./test/bench -quick",
		Quick:   true,
		Started: t0,
		Config: Config{Apps: []string{"go"}, Scenarios: []string{"own-port", "socket-held", "sitectl-mode", "overlap-reload", "overlap-mode"}, Switches: 3, Repeats: 2, Rate: 100, NeighbourRate: 100,
			TailMS: 1000, GapMS: 1000, TimeoutMS: 10000, DoneTimeoutMS: 30000, WSGIImportMS: 1000, WSGIRequestCPUMS: 5, Sites: []int{10, 1000}, Reps: 3, ModeReps: 2, CLIRuns: 10},
		Handoff: []*HandoffResult{
			ran(&HandoffResult{App: "go", Scenario: "own-port", Title: "1. own port", Command: "`systemctl restart bench-go-own.service`", Peer: true, Subject: side(failed, okStats, okStats), Neighbour: side(okStats, okStats, okStats)}, 1, 1),
			ran(&HandoffResult{App: "go", Scenario: "socket-held", Title: "2. socket-held", Command: "`systemctl restart site-go-socket.service`", Subject: side(okStats, okStats, spike), Neighbour: side(okStats, okStats, okStats)}, 150, 160),
			ran(&HandoffResult{App: "go", Scenario: "sitectl-mode", Title: "3. sitectl mode", Command: "`sitectl mode go-mode read-only`", SwitchErrors: 1, Subject: side(okStats, okStats, spike), Neighbour: side(okStats, okStats, spike)}, 150, 150),
			{App: "go", Scenario: "overlap-reload", Title: "4a. overlap reload", Available: false, NotAvailable: "not available: `sitectl reload --help` fails"},
			ran(&HandoffResult{App: "go", Scenario: "overlap-mode", Title: "4b. overlap mode", Command: "`sitectl mode go-ovmode read-only`", Subject: side(okStats, okStats, Stats{Requests: 10, OK: 10, P99: Millis(3 * time.Millisecond)}), Neighbour: side(okStats, okStats, okStats)}, 1.1, 1.15),
			usr2,
		},
		Scale: []*ScaleResult{
			{N: 10, Listen: "127.0.0.1:10000-10009", GeneratorWrite: DurationStats{Runs: 3, Median: Millis(4 * time.Millisecond)}, SitectlList: DurationStats{Runs: 3, Median: Millis(20 * time.Millisecond)},
				StatusOne: DurationStats{Runs: 3, Median: Millis(10 * time.Millisecond)}},
			{N: 1000, Listen: "127.0.0.1:10000-10999", GeneratorWrite: DurationStats{Runs: 3, Median: Millis(150 * time.Millisecond)}, GeneratorDryrun: DurationStats{Runs: 3, Median: Millis(80 * time.Millisecond)},
				SitectlList: DurationStats{Failed: 3, Error: "sitectl: error: The maximum number of pending replies per connection has been reached"},
				Memory:      Memory{PID1RSSBaseKiB: 11000, PID1RSSKiB: 33000, PerSitePID1KiB: 22, KernelObjects: map[string]int{"TCP": 2368}, KernelPerSocketBytes: 2368}},
			{N: 10000, Listen: "127.0.0.1:10000-19999", GeneratorWrite: DurationStats{Runs: 3, Median: Millis(900 * time.Millisecond)},
				DaemonReload:     DurationStats{Failed: 3, Error: "systemd did not reload: daemon-reload exited 0 but systemd did not run its generators or reload any unit"},
				DaemonReloadIdle: DurationStats{Runs: 3, Median: Millis(9 * time.Second)}, DaemonReloadIdleCPU: DurationStats{Runs: 3, Median: Millis(8 * time.Second)},
				SitectlListText: DurationStats{Runs: 3, Median: Millis(250 * time.Millisecond)}, SitectlList: DurationStats{Runs: 3, Median: Millis(280 * time.Millisecond)},
				SitectlListJSONStated: DurationStats{Runs: 3, Median: Millis(400 * time.Millisecond)},
				StatusOne:             DurationStats{Runs: 3, Median: Millis(12 * time.Millisecond)},
				Boot: &BootResult{Wall: Millis(90 * time.Second), Listening: 10000, Poweroff: Millis(600 * time.Second), PoweroffTimedOut: true,
					LastSocket: &LastSocketStatus{Site: "site-07364", FD: 10031, OpenFiles: 10039,
						Hinted:   DurationStats{Runs: 10, Median: Millis(38 * time.Millisecond), Max: Millis(41 * time.Millisecond)},
						Unhinted: DurationStats{Runs: 10, Median: Millis(101 * time.Millisecond), Max: Millis(120 * time.Millisecond)}}}},
		},
		CLI: &CLIOverhead{Site: "cli", Runs: 10, Sitectl: DurationStats{Runs: 10, Median: Millis(94 * time.Millisecond)}, Systemctl: DurationStats{Runs: 10, Median: Millis(90 * time.Millisecond)}, Ratio: 1.04},
	}
	r.Targets = evaluateTargets(r)
	return r
}

func TestTargets(t *testing.T) {
	if st := timingTarget("never ran", 300, DurationStats{}, "").Status; st != statusNotMeasured {
		t.Errorf("a timing that never ran: %s", st)
	}
	r := sampleResults()
	status := map[string]string{}
	for _, tg := range r.Targets {
		status[tg.What] = tg.Status
	}
	for what, want := range map[string]string{
		"go, 2. socket-held: failed requests":                                     statusMet,
		"go, 3. sitectl mode: failed requests":                                    statusMissed, // a switch command failed
		"go, 4a. overlap reload: failed requests":                                 statusUnavailable,
		"go, 4a. overlap reload: p99 in switch windows / p99 steady":              statusUnavailable,
		"go, 4b. overlap mode: failed requests":                                   statusMet,
		"go, 4b. overlap mode: p99 in switch windows / p99 steady":                statusMet,
		"neighbour: failed requests, all scenarios":                               statusMet,
		"neighbour: p99 in switch windows / p99 steady, every scenario":           statusMissed,
		"1000 sites: `sitectl list --json`":                                       statusMissed,
		"1000 sites: generator (writing the units)":                               statusMet,
		"10000 sites, sockets listening: repeated `systemctl daemon-reload`":      statusMissed, // systemd ignored it
		"10000 sites, sockets not started: repeated `systemctl daemon-reload`":    statusMet,
		"10000 sites: `sitectl list`":                                             statusMet,
		"10000 sites: `sitectl list --json`":                                      statusMet,
		"10000 sites, every site with state: `sitectl list --json`":               statusMissed,
		"10000 sites: generator (writing the units)":                              statusMet,
		"10000 sites: `sitectl status SITE` stays flat":                           statusMet,
		"CLI overhead: `sitectl restart` / `systemctl restart`, ratio of medians": statusMet,
	} {
		if got := status[what]; got != want {
			t.Errorf("target %q: %q, want %q", what, got, want)
		}
	}
	// One repetition above the target misses it, whatever the median.
	ov := r.handoff("go", "overlap-mode")
	ov.P99Ratios, ov.P99RatioMedian = []float64{1.1, 1.12, 2.31}, 1.12
	for _, tg := range evaluateTargets(r) {
		if tg.What == "go, 4b. overlap mode: p99 in switch windows / p99 steady" {
			if tg.Status != statusMissed || !strings.Contains(tg.Measured, "worst 2.31 (each repetition: 1.10, 1.12, 2.31;") {
				t.Errorf("one repetition at 2.31: %+v", tg)
			}
		}
	}
}

// answer is a request that ended at end ms, answered by process id ("" for
// a failed one).
func answer(startMS, latMS int, id string) (loadgen.Result, string) {
	r := loadgen.Result{Start: at(startMS), Latency: time.Duration(latMS) * time.Millisecond, Outcome: loadgen.OK}
	if id == "" {
		r.Outcome = loadgen.Refused
	}
	return r, id
}

func TestDoneAt(t *testing.T) {
	type req struct {
		start, lat int
		id         string
	}
	cases := []struct {
		name   string
		reqs   []req
		issued int
		until  int
		want   int // ms; -1: not done
		since  int // ms; 0: every earlier answer counts
	}{
		{"a restart: old answers, a gap, new answers", []req{{0, 1, "a"}, {10, 1, "b"}, {100, 1, "a"}, {200, 500, "c"}, {210, 490, "c"}, {800, 1, "c"}}, 150, 2000, 700, 0},
		{"old still answers after new started (overlap, chain reload)", []req{{0, 1, "a"}, {200, 1, "n"}, {300, 1, "a"}, {400, 1, "n"}, {500, 1, "n"}}, 100, 2000, 401, 0},
		{"an old request still in flight at the switch counts as old", []req{{0, 1, "a"}, {90, 400, "a"}, {200, 1, "n"}, {600, 1, "n"}}, 100, 2000, 601, 0},
		{"failures are nobody's answers", []req{{0, 1, "a"}, {200, 1, ""}, {300, 1, "n"}}, 100, 2000, 301, 0},
		{"old answers until the next switch: not done", []req{{0, 1, "a"}, {200, 1, "n"}, {300, 1, "a"}}, 100, 2000, -1, 0},
		{"nothing new answered: not done", []req{{0, 1, "a"}, {200, 1, "a"}, {300, 1, ""}}, 100, 2000, -1, 0},
		{"answers after until are the next switch's", []req{{0, 1, "a"}, {200, 1, "n"}, {1500, 1, "a"}}, 100, 1000, 201, 0},
		{"a process that answered before an earlier switch is old too", []req{{0, 1, "a"}, {50, 1, "b"}, {200, 1, "a"}, {300, 1, "c"}}, 100, 2000, 301, 0},
		// A warm rollback: a served, a deploy made b serve, the rollback
		// at 1000 flips back to a. Only recent answers make a process old.
		{"a warm rollback goes back to a process that answered long before", []req{{0, 1, "a"}, {400, 1, "b"}, {900, 1, "b"}, {1010, 1, "b"}, {1020, 5, "a"}, {1100, 1, "a"}}, 1000, 2000, 1025, 500},
		{"without a recent bound the same rollback is never done", []req{{0, 1, "a"}, {400, 1, "b"}, {900, 1, "b"}, {1020, 5, "a"}}, 1000, 2000, -1, 0},
	}
	for _, c := range cases {
		var rs []loadgen.Result
		var ids []string
		for _, q := range c.reqs {
			r, id := answer(q.start, q.lat, q.id)
			rs, ids = append(rs, r), append(ids, id)
		}
		var since time.Time
		if c.since > 0 {
			since = at(c.issued - c.since)
		}
		got, ok := doneAt(rs, ids, since, at(c.issued), at(c.until))
		switch {
		case c.want < 0 && ok:
			t.Errorf("%s: done at %s, want not done", c.name, got.Sub(t0))
		case c.want >= 0 && (!ok || !got.Equal(at(c.want))):
			t.Errorf("%s: done at %s (%v), want %dms", c.name, got.Sub(t0), ok, c.want)
		}
	}
}

// TestAnswersWaitDone: the harness waits while old processes answer and
// stops once new ones alone have answered for the settle time, or at the
// deadline.
func TestAnswersWaitDone(t *testing.T) {
	a := newAnswers(func(h http.Header, _ string) string { return h.Get("X-Pid") })
	ok := func(id string, end time.Time) loadgen.Result {
		return loadgen.Result{Start: end.Add(-time.Millisecond), Latency: time.Millisecond, Outcome: loadgen.OK, Header: http.Header{"X-Pid": []string{id}}}
	}
	now := time.Now().Add(-2 * time.Second) // the switch was issued
	a.record(ok("old", now.Add(-time.Second)))
	a.record(loadgen.Result{Outcome: loadgen.Refused, Header: http.Header{"X-Pid": []string{"ignored"}}})
	before := a.serving(0)
	if len(before) != 1 || !before["old"] {
		t.Fatalf("seen %v", before)
	}
	// Only the old process answered since: not done by the deadline.
	if _, done := a.waitDone(context.Background(), before, now, 50*time.Millisecond, time.Now().Add(100*time.Millisecond)); done {
		t.Error("done without a new process")
	}
	// A new process answered after the old one's last answer, 200 ms ago.
	a.record(ok("old", time.Now().Add(-300*time.Millisecond)))
	a.record(ok("new", time.Now().Add(-200*time.Millisecond)))
	t1 := time.Now()
	if at, done := a.waitDone(context.Background(), before, now, 100*time.Millisecond, time.Now().Add(5*time.Second)); !done || at.Sub(t1) > time.Second {
		t.Errorf("waitDone = %s after, %v; want done at once", at.Sub(t1), done)
	}
	// The old process answers again: not done until it has been quiet for
	// the settle time.
	a.record(ok("old", time.Now()))
	t2 := time.Now()
	at, done := a.waitDone(context.Background(), before, now, 300*time.Millisecond, time.Now().Add(200*time.Millisecond))
	if done || at.Sub(t2) < 200*time.Millisecond {
		t.Errorf("waitDone with an old process answering just now = %s, %v", at.Sub(t2), done)
	}
	// Without a way to tell processes apart there is nothing to wait for.
	if _, done := newAnswers(nil).waitDone(context.Background(), nil, now, time.Hour, now.Add(time.Hour)); !done {
		t.Error("no id function: waitDone waited")
	}
}

// TestRepetitionsAndTotals: a scenario's totals keep every repetition's
// ratio, and a switch that was not done gets a window up to when the
// harness gave up.
func TestRepetitionsAndTotals(t *testing.T) {
	goApp, _ := appByID("go")
	mk := func(id string, startMS, latMS int) loadgen.Result {
		return loadgen.Result{Start: at(startMS), Latency: time.Duration(latMS) * time.Millisecond, Outcome: loadgen.OK, Header: http.Header{"X-Pid": []string{id}}}
	}
	rep := func(n int, slow time.Duration) *Repetition {
		var rs []loadgen.Result
		for ms := 0; ms < 10000; ms += 10 {
			id, lat := "a", 1
			if ms >= 2000 {
				id = "b"
			}
			if ms >= 2000 && ms < 2100 {
				lat = int(slow / time.Millisecond)
			}
			if ms >= 6000 && ms < 6500 {
				id = "a" // switch 2: only processes that answered before it answer; never done
			}
			rs = append(rs, mk(id, ms, lat))
		}
		r := &Repetition{N: n, loadStart: t0, Switches: []SwitchRecord{
			{IssuedS: 1.9, Duration: Millis(50 * time.Millisecond)},
			{IssuedS: 5.9, Duration: Millis(50 * time.Millisecond), waited: at(8000)},
		}}
		finishRepetition(r, goApp, rs, rs, at(10000), time.Second, Scenario{})
		return r
	}
	r1, r2 := rep(1, 100*time.Millisecond), rep(2, 400*time.Millisecond)
	if r1.Switches[0].Incomplete || r1.Switches[0].DoneAfter != Millis(200*time.Millisecond) {
		t.Errorf("switch 1: %+v, want done 200 ms after it was issued (the first answer of b ends at 2.1 s)", r1.Switches[0])
	}
	if !r1.Switches[1].Incomplete || r1.Incomplete != 1 || r1.DoneAfter.Runs != 1 {
		t.Errorf("switch 2 must not be done: %+v", r1.Switches[1])
	}
	if w := r1.windows[1]; !w.End.Equal(at(9000)) {
		t.Errorf("the window of a switch not done ends at %s, want when the harness gave up plus the tail (9s)", w.End.Sub(t0))
	}
	if w := r1.windows[0]; !w.End.Equal(at(3100)) {
		t.Errorf("the window of switch 1 ends at %s, want when it was done plus the tail (3.1s)", w.End.Sub(t0))
	}
	res := &HandoffResult{Available: true, Repetitions: []*Repetition{r1, r2}}
	aggregate(res, goApp, "s", "u", "n", HandoffOptions{Rate: 100, NeighbourRate: 100})
	if len(res.P99Ratios) != 2 || res.P99Ratios[0] != r1.Subject.P99Ratio || res.P99Ratios[1] != r2.Subject.P99Ratio || res.P99Ratios[1] <= res.P99Ratios[0] {
		t.Errorf("ratios %v, repetitions %.2f and %.2f", res.P99Ratios, r1.Subject.P99Ratio, r2.Subject.P99Ratio)
	}
	if res.P99RatioMedian != (res.P99Ratios[0]+res.P99Ratios[1])/2 || res.SwitchCount != 4 || res.Incomplete != 2 || res.DoneAfter.Runs != 2 {
		t.Errorf("totals: %+v", res)
	}
	if res.Subject.All.Requests != 2000 || res.Subject.Processes != 2 || res.Subject.results == nil || r2.Subject.results != nil {
		t.Errorf("pooled subject: %d requests, %d processes; plotted results kept: %v, %v", res.Subject.All.Requests, res.Subject.Processes, res.Subject.results != nil, r2.Subject.results != nil)
	}
	if b, err := json.Marshal(res); err != nil || !strings.Contains(string(b), `"p99_ratios":[`) || !strings.Contains(string(b), `"incomplete":true`) {
		t.Errorf("results.json: %v %s", err, b)
	}
}

func TestMarkdown(t *testing.T) {
	md := Markdown(sampleResults())
	for _, want := range []string{
		"**This is a quick run**",
		"go run ./test/bench -quick",
		"| 1. own port | `systemctl restart bench-go-own.service` | 1000 | **10** (refused 10) |",
		"| 4a. overlap reload | – | – | – | – | – | – | not available: `sitectl reload --help` fails | – | – |",
		// The side-by-side table: every repetition's ratio, the operator's
		// times, the switches that were not done.
		"| go | 2. socket-held: `systemctl restart site-go-socket.service` | sitectl | 0 | 155.00 (150.00, 160.00) | 0.09 s / 0.12 s | 0.10 s / 0.13 s | 6 of 6 |",
		"| go | 5b. gunicorn USR2 dance: `kill -USR2` | operator's own | **10** (refused 10) | 145.00 (150.00, 140.00) | 0.09 s / 0.12 s | 0.10 s / 0.13 s | **5 of 6** |",
		"- go, 5b. gunicorn USR2 dance, repetition 1, after switch 1: bench-gunicorn-usr2.service is not running (ActiveState=inactive)",
		"- go, 5b. gunicorn USR2 dance, switch 1: USR2: new master 42 answers; QUIT sent",
		"| 1.10, 1.15 | 90.0 / 120 | 95.0 / 130 | 6 of 6 |",
		"| 1.00 / 1.01, 1.02 |",
		"spends 1s of CPU importing",
		"**Overloaded:** the switched site's steady p99 was above 250 ms in go / 5b. gunicorn USR2 dance (900 ms)",
		"2 repetitions, each from a fresh start",
		"| **0** (expected 1) |",
		"![latency over time, Go app (test/apps/webapp)](handoff-go.png)",
		"**fails** (3 of 3 runs)",
		"The maximum number of pending replies",
		"Ratio of medians: **1.04**",
		"| 10000 | site-07364 | 10031 of 10039 | 38.0 (41.0) | 101 (120) |",
		"## Definitions",
		"## Notes",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("README.md lacks %q", want)
		}
	}
	// Every table row has as many cells as its header.
	var cols int
	for _, line := range strings.Split(md, "\n") {
		if !strings.HasPrefix(line, "|") {
			cols = 0
			continue
		}
		n := strings.Count(strings.ReplaceAll(line, `\|`, ""), "|") - 1
		if cols == 0 {
			cols = n
		} else if n != cols {
			t.Errorf("row with %d cells under a header of %d: %s", n, cols, line)
		}
	}
}

func TestCPUTimes(t *testing.T) {
	a := parseCPUTimes("cpu  100 0 100 700 100 0 0 0 0 0\ncpu0 1 2 3\n")
	b := parseCPUTimes("cpu  200 0 200 1200 200 0 0 0 50 0\n")
	if a.total != 1000 || a.idle != 800 {
		t.Errorf("parsed %+v", a)
	}
	// 800 more jiffies, 600 of them idle: 25% busy; guest time is not
	// counted twice.
	if got := busyPercent(a, b); got != 25 {
		t.Errorf("busy %.1f%%, want 25%%", got)
	}
	if got := busyPercent(b, a); got != 0 {
		t.Errorf("busy backwards = %v", got)
	}
}

func TestCountProcesses(t *testing.T) {
	goApp, _ := appByID("go")
	gun, _ := appByID("gunicorn")
	h := func(pid string) http.Header { return http.Header{"X-Pid": []string{pid}} }
	rs := []loadgen.Result{
		{Outcome: loadgen.OK, Header: h("10"), Body: `{"pid": 11, "ppid": 10}`},
		{Outcome: loadgen.OK, Header: h("10"), Body: `{"pid": 12, "ppid": 10}`},
		{Outcome: loadgen.OK, Header: h("20"), Body: `{"pid": 21, "ppid": 20}`},
		{Outcome: loadgen.Refused, Header: h("30"), Body: `{"pid": 31, "ppid": 30}`},
		{Outcome: loadgen.OK, Header: http.Header{}, Body: "not json"},
	}
	if n := countProcesses(rs, goApp.Process); n != 2 {
		t.Errorf("Go app: %d processes, want 2", n)
	}
	if n := countProcesses(rs, gun.Process); n != 2 {
		t.Errorf("gunicorn: %d masters, want 2", n)
	}
}

func TestPlotScripts(t *testing.T) {
	p := LatencyPlot{Output: "/x/handoff-go.png", Title: "it's `rm -rf /`", YMax: 1000, Panels: []Panel{
		{Title: "2. socket-held", Windows: [][2]float64{{1, 2.1}}, Issued: []float64{1}, SubjectOK: "/d/ok.dat", XMax: 8},
		{Title: "4. overlap", Message: "not available: `sitectl reload --help` fails"},
	}}
	s := p.Script()
	for _, want := range []string{
		"set multiplot layout 2,1",
		"set object 1 rect from 1.000, graph 0 to 2.100, graph 1",
		"set arrow 1 from 1.000, graph 0 to 1.000, graph 1",
		"'/d/ok.dat' using 1:2",
		"set label 1 'not available: `sitectl reload --help` fails'",
		"'it''s `rm -rf /`'",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("script lacks %q:\n%s", want, s)
		}
	}
	// Backquotes only ever appear inside single-quoted strings, where
	// gnuplot does not run them.
	for _, line := range strings.Split(s, "\n") {
		inSingle := false
		for _, c := range line {
			switch {
			case c == '\'':
				inSingle = !inSingle
			case c == '`' && !inSingle:
				t.Errorf("backquote outside single quotes: %s", line)
			}
		}
	}
	if strings.Contains(s, "failed") {
		t.Error("a series without data file was plotted")
	}
	rs := sampleResults().Scale
	data := scaleData(rs)
	if !strings.Contains(data, "\n1000 150.000 ") || !strings.Contains(data, "NaN") || !strings.Contains(data, "\n10000 900.000 ") {
		t.Errorf("scale data:\n%s", data)
	}
	// A poweroff that timed out is not plotted as if it had ended.
	if f := strings.Fields(data[strings.Index(data, "\n10000 "):]); f[len(scaleSeries)-1] != "90000.000" || f[len(scaleSeries)] != "NaN" {
		t.Errorf("boot and poweroff at 10000 sites: %v", f)
	}
	if sc := scaleMemoryPlotScript(rs, "/d/m.dat", "/x/scale-memory.png"); !strings.Contains(sc, "set output '/x/scale-memory.png'") || !strings.Contains(sc, "using 1:6") {
		t.Errorf("memory plot script:\n%s", sc)
	}
	if sc := scalePlotScript(rs, "/d/scale.dat", "/x/scale.png"); !strings.Contains(sc, "sitectl list --json (failed at 1000 sites)") {
		t.Errorf("scale script does not mark the failed series:\n%s", sc)
	}
	if niceCeil(130) != 200 || niceCeil(10) != 10 || niceCeil(0.3) != 0.5 {
		t.Errorf("niceCeil: %v %v %v", niceCeil(130), niceCeil(10), niceCeil(0.3))
	}
}

func TestAnsweredBy(t *testing.T) {
	for body, want := range map[string]string{
		`{"site":"a","pid":42,"ppid":7,"mode":"normal"}`: "42 7",
		`{"pid":42}`:             "42 0",
		`Service Unavailable`:    "- -",
		`{"mode":"maintenance"}`: "- -",
	} {
		if got := (Samples([]loadgen.Result{{Outcome: loadgen.OK, Body: body}})[0]).answeredBy(); got != want {
			t.Errorf("answeredBy(%q) = %q, want %q", body, got, want)
		}
	}
}

// TestRollbackRepetition: in a rollback scenario the deploy before each
// rollback is switched but not counted, and the rollback to a process that
// answered before the deploy is done once it answers again (Recent).
func TestRollbackRepetition(t *testing.T) {
	goApp, _ := appByID("go")
	var rs []loadgen.Result
	for ms := 0; ms < 10000; ms += 10 {
		id := "a"
		if ms >= 2000 && ms < 6000 {
			id = "b" // the deploy at 1.9 s; the rollback at 5.9 s goes back to a
		}
		rs = append(rs, loadgen.Result{Start: at(ms), Latency: time.Millisecond, Outcome: loadgen.OK, Header: http.Header{"X-Pid": []string{id}}})
	}
	r := &Repetition{N: 1, loadStart: t0, Switches: []SwitchRecord{
		{IssuedS: 1.9, Duration: Millis(300 * time.Millisecond), NotCounted: true},
		{IssuedS: 5.9, Duration: Millis(50 * time.Millisecond)},
	}}
	finishRepetition(r, goApp, rs, rs, at(10000), time.Second, Scenario{Recent: recentAnswers})
	if r.Switches[1].Incomplete || r.Switches[1].DoneAfter != Millis(101*time.Millisecond) {
		t.Errorf("the rollback: %+v, want done 101 ms after it was issued", r.Switches[1])
	}
	if r.SwitchDuration.Runs != 1 || r.SwitchDuration.Median != Millis(50*time.Millisecond) || r.DoneAfter.Runs != 1 {
		t.Errorf("counted: durations %+v, done %+v; want the rollback's alone", r.SwitchDuration, r.DoneAfter)
	}
	if len(r.windows) != 2 {
		t.Errorf("windows %v: the deploy opens one too", r.windows)
	}
}

// The control switches nothing: each window is its command and the tail,
// and none of its switches counts as not done, whatever answered.
func TestControlWindowsAreTheCommandAndTheTail(t *testing.T) {
	goApp, _ := appByID("go")
	var rs []loadgen.Result
	for ms := 0; ms < 6000; ms += 10 {
		rs = append(rs, loadgen.Result{Start: at(ms), Latency: time.Millisecond, Outcome: loadgen.OK, Header: http.Header{"X-Pid": []string{"a"}}})
	}
	control, ok := scenarioByID("control")
	if !ok || !control.Control || control.Peer {
		t.Fatalf("the control scenario: %+v", control)
	}
	r := &Repetition{N: 1, loadStart: t0, Switches: []SwitchRecord{{IssuedS: 1, Duration: Millis(time.Second), waited: at(4000)}}}
	finishRepetition(r, goApp, rs, rs, at(6000), time.Second, control)
	if r.Incomplete != 0 || r.Switches[0].Incomplete || r.DoneAfter.Runs != 0 {
		t.Errorf("a control switch counted as not done, or done: %+v", r.Switches[0])
	}
	if w := r.windows[0]; !w.Start.Equal(at(1000)) || !w.End.Equal(at(3000)) {
		t.Errorf("control window %s-%s, want 1s-3s (the command's second and the tail)", w.Start.Sub(t0), w.End.Sub(t0))
	}
	res := &HandoffResult{Control: true, Repetitions: []*Repetition{r}}
	aggregate(res, goApp, "go-control", "", "", HandoffOptions{})
	if res.DoneAfter.Runs != 0 || res.Incomplete != 0 || doneCell(res) != "–" {
		t.Errorf("the control's totals have switches done or not done: %+v, %q", res.DoneAfter, doneCell(res))
	}
	if got := control.Switch(Install{Name: "go-control"}, 0); strings.Join(got, " ") != "sleep 1" {
		t.Errorf("the control runs %v", got)
	}
}

// The launcher's handover lines, counted: all of them, and those at the
// quiet wait's cap.
func TestParseHandovers(t *testing.T) {
	journal := strings.Join([]string{
		"Started site-x.service.",
		"generation 2 takes over after 152ms of waiting: its 3 processes were unchanged for 100ms and none was busier than its share",
		"generation 3 takes over at the cap of 3s, not settled: worker 41 used 30ms of CPU",
		"sitectl-launch[12]: generation 4 takes over at once: the serving generation is gone",
		"generation 5 is ready",
		"a takes over line of the app, not the launcher's",
	}, "\n")
	if all, atCap := parseHandovers(journal); all != 3 || atCap != 1 {
		t.Errorf("parseHandovers = %d, %d; want 3 handovers, 1 at the cap", all, atCap)
	}
}

// Issue 16.2 and 16.3's targets: the control is not judged with the
// switches but shown beside them; the cap may be hit in 1 handover of 20;
// a WSGI app's overlapped reload may take its import and 0.5 s.
func TestHandoverAndNeighbourTargets(t *testing.T) {
	steady := Stats{Requests: 100, OK: 100, P99: Millis(2 * time.Millisecond)}
	mk := func(app, id, title string, neighbourRatio float64) *HandoffResult {
		s, _ := scenarioByID(id)
		return &HandoffResult{App: app, Scenario: id, Title: title, Control: s.Control, Available: true,
			Subject: &Side{Steady: steady}, Neighbour: &Side{All: steady, Steady: steady, P99Ratio: neighbourRatio}}
	}
	ov := mk("gunicorn", "overlap-reload", "4a. overlap reload", 1.04)
	ov.Handovers, ov.AtCap = 20, 1
	ov.SwitchDuration = DurationStats{Runs: 20, Median: Millis(1400 * time.Millisecond)}
	r := &Results{Config: Config{Apps: []string{"gunicorn"}, WSGIImportMS: 1000},
		Handoff: []*HandoffResult{mk("gunicorn", "control", "0. control", 1.3), ov, mk("gunicorn", "socket-held", "2. socket-held", 1.02)}}
	judged := func() map[string]Target {
		m := map[string]Target{}
		for _, tg := range evaluateTargets(r) {
			m[tg.What] = tg
		}
		return m
	}
	m := judged()
	n := m["neighbour: p99 in switch windows / p99 steady, every scenario"]
	if n.Status != statusMet || n.Target != "≤ 1.05" || !strings.Contains(n.Measured, "within target in 2 of 2 scenarios; the control, nothing switched: gunicorn 1.30") {
		t.Errorf("neighbour target: %+v", n)
	}
	if c := m["gunicorn, 4a. overlap reload: handovers at the cap of the quiet wait"]; c.Status != statusMet || c.Measured != "1 of 20" {
		t.Errorf("cap target: %+v", c)
	}
	if w := m["gunicorn, 4a. overlap reload: the operator's wait, median"]; w.Status != statusMet || w.Target != "≤ 1500 ms (its import, and 0.5 s)" {
		t.Errorf("wait target without scenario 2: %+v", w)
	}
	// The app's start under the run's load, when scenario 2 ran.
	held := r.Handoff[2]
	held.DoneAfter = DurationStats{Runs: 20, Median: Millis(1200 * time.Millisecond)}
	if w := judged()["gunicorn, 4a. overlap reload: the operator's wait, median"]; w.Status != statusMet || w.Target != "≤ 1700 ms (its start: 2. socket-held's done after, and 0.5 s)" {
		t.Errorf("wait target with scenario 2: %+v", w)
	}
	held.DoneAfter = DurationStats{}
	ov.AtCap, ov.SwitchDuration.Median = 2, Millis(1600*time.Millisecond)
	ov.Neighbour.P99Ratio = 1.06
	m = judged()
	for _, what := range []string{"neighbour: p99 in switch windows / p99 steady, every scenario",
		"gunicorn, 4a. overlap reload: handovers at the cap of the quiet wait", "gunicorn, 4a. overlap reload: the operator's wait, median"} {
		if m[what].Status != statusMissed {
			t.Errorf("%s: %+v, want missed", what, m[what])
		}
	}
}

// TestKeptRequestsHoldNoPointers: what a run keeps of every request (a
// full run keeps over a million) holds no pointer, so the garbage
// collector of the process that generates the load never marks it.
// Kept as loadgen.Results, they made each collection longer as the run
// went on, and the load generator's requests waited on it.
func TestKeptRequestsHoldNoPointers(t *testing.T) {
	side := reflect.TypeOf(Side{})
	for _, name := range []string{"results", "steady", "window"} {
		f, ok := side.FieldByName(name)
		if !ok {
			t.Fatalf("Side has no field %s", name)
		}
		if f.Type.Kind() != reflect.Slice {
			t.Fatalf("Side.%s is a %s, want a slice", name, f.Type)
		}
		if p := pointerIn(f.Type.Elem()); p != "" {
			t.Errorf("Side.%s keeps %s, which holds a pointer: %s", name, f.Type.Elem(), p)
		}
	}
	if p := pointerIn(reflect.TypeOf(loadgen.Result{})); p == "" {
		t.Error("pointerIn finds no pointer in loadgen.Result, which has headers and a body")
	}
}

// pointerIn names a field of t that holds a pointer; "" when none does.
func pointerIn(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64, reflect.Complex64, reflect.Complex128:
		return ""
	case reflect.Array:
		return pointerIn(t.Elem())
	case reflect.Struct:
		for i := 0; i < t.NumField(); i++ {
			if p := pointerIn(t.Field(i).Type); p != "" {
				return t.Field(i).Name + "." + p
			}
		}
		return ""
	}
	return t.String()
}

// The boot part finds the site whose socket is PID 1's last open file
// from what ss and find print.
func TestLastHeldPort(t *testing.T) {
	listeners := `LISTEN 0      4096       127.0.0.1:10001      0.0.0.0:*    ino:501 sk:1 cgroup:/system.slice/x <->
LISTEN 0      4096       127.0.0.1:10000      0.0.0.0:*    ino:500 sk:2 cgroup:/ <->
LISTEN 0      4096       127.0.0.1:10002      0.0.0.0:*    ino:502 sk:3 cgroup:/ <->
LISTEN 0      4096       127.0.0.1:22         0.0.0.0:*    ino:900 sk:4 cgroup:/ <->
LISTEN 0      4096            [::]:10003         [::]:*    ino:503 sk:5 cgroup:/ v6only:1 <->
`
	files := `0 /dev/null
3 socket:[501]
12 socket:[500]
9 socket:[502]
40 socket:[900]
13 anon_inode:[eventpoll]
14 socket:[77]
`
	port, fd, open, err := lastHeldPort(listeners, files, 10000, 10003)
	if err != nil || port != 10000 || fd != 12 || open != 7 {
		t.Errorf("lastHeldPort = port %d, file %d, %d open, %v; want 10000, 12, 7", port, fd, open, err)
	}
	// [::]:10003 counts once its port is in range.
	if port, fd, _, err := lastHeldPort(listeners, files+"20 socket:[503]\n", 10000, 10004); err != nil || port != 10003 || fd != 20 {
		t.Errorf("with an IPv6 listener last: port %d, file %d, %v", port, fd, err)
	}
	if _, _, _, err := lastHeldPort(listeners, "3 socket:[900]\n", 10000, 10003); err == nil {
		t.Error("no site socket among PID 1's files: no error")
	}
}

// generatedTar is a generator output directory as `tar -C DIR -cf - .`
// packs it: one site's socket and service, a slice and the wants link.
func generatedTar(t *testing.T) []byte {
	t.Helper()
	tw := newTar()
	for _, d := range []string{".", "./sockets.target.wants"} {
		if err := tw.dir(d); err != nil {
			t.Fatal(err)
		}
	}
	files := map[string]string{
		"./sitectl-a5.slice":  "# generated\n\n[Unit]\nDescription=Sites a5\n",
		"./site-shop.socket":  "# generated\n\n[Unit]\nDescription=Site shop: listener http\nDocumentation=man:sitectl(1)\n\n[Socket]\nListenStream=127.0.0.1:10042\nFileDescriptorName=http\nService=site-shop.service\nSlice=sitectl-a5.slice\n\n[Install]\nWantedBy=sockets.target\n",
		"./site-shop.service": "# generated\n\n[Unit]\nDescription=Site shop\nRequires=site-shop.socket\n\n[Service]\nType=notify\nExecStart=/usr/bin/sitectl launch shop -- /usr/local/bin/webapp\nSlice=sitectl-a5.slice\nSystemCallFilter=@system-service\nProtectSystem=strict\n",
	}
	for _, name := range []string{"./sitectl-a5.slice", "./site-shop.socket", "./site-shop.service"} {
		if err := tw.add(name, []byte(files[name]), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.link("./sockets.target.wants/site-shop.socket", "../site-shop.socket"); err != nil {
		t.Fatal(err)
	}
	b, err := tw.bytes()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// readTar maps each entry of a tar archive to its content, or to "-> TARGET"
// for a link and "/" for a directory.
func readTar(t *testing.T, data []byte) map[string]string {
	t.Helper()
	out := map[string]string{}
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		switch hdr.Typeflag {
		case tar.TypeSymlink:
			out[hdr.Name] = "-> " + hdr.Linkname
		case tar.TypeDir:
			out[hdr.Name] = "/"
		default:
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			out[hdr.Name] = string(b)
		}
	}
}

// TestFloorTars: the floor's "same units" are the generator's files byte for
// byte, and its plain pairs keep only a plain pair's directives, with the
// same names, slices, listeners and links.
func TestFloorTars(t *testing.T) {
	same, plain, units, err := floorTars(generatedTar(t))
	if err != nil {
		t.Fatal(err)
	}
	if units != 3 {
		t.Errorf("%d units, want 3 (socket, service, slice)", units)
	}
	gen, s, p := readTar(t, generatedTar(t)), readTar(t, same), readTar(t, plain)
	for name, content := range gen {
		name = strings.TrimPrefix(name, "./")
		if name == "" {
			continue
		}
		name = strings.TrimSuffix(name, "/")
		if content == "/" {
			name += "/"
		}
		if s[name] != content {
			t.Errorf("same units: %s is %q, want the generator's %q", name, s[name], content)
		}
	}
	if p["sockets.target.wants/site-shop.socket"] != "-> ../site-shop.socket" || p["sitectl-a5.slice"] != gen["./sitectl-a5.slice"] {
		t.Errorf("plain pairs lost the link or the slice: %q", p)
	}
	wantSocket := "[Unit]\nDescription=Site shop: listener http\n[Socket]\nListenStream=127.0.0.1:10042\nSlice=sitectl-a5.slice\n[Install]\n"
	if p["site-shop.socket"] != wantSocket {
		t.Errorf("plain socket:\n%s\nwant:\n%s", p["site-shop.socket"], wantSocket)
	}
	wantService := "[Unit]\nDescription=Site shop\n[Service]\nExecStart=/bin/true\nSlice=sitectl-a5.slice\n"
	if p["site-shop.service"] != wantService {
		t.Errorf("plain service:\n%s\nwant:\n%s", p["site-shop.service"], wantService)
	}
	if _, _, _, err := floorTars(func() []byte { b, _ := newTar().bytes(); return b }()); err == nil {
		t.Error("a generator that wrote nothing gave a floor")
	}
}

// TestListeningFloorTarget: the reload with every socket listening is at
// systemd's floor when it failed every time and so did the same units
// without sitectl and the plain pairs with as many sockets (systemd's
// limit, not sitectl's); when sitectl's alone failed, or one run of a
// floor sandbox succeeded, it stays missed. A reload that succeeded is
// judged by systemd's CPU, as before the sockets start, and the floor
// table has a row for it.
func TestListeningFloorTarget(t *testing.T) {
	const why = "systemd did not reload: PID 1 holds 10038 descriptors"
	ok := func(ms float64) DurationStats {
		return DurationStats{Runs: 10, Median: Millis(time.Duration(ms * float64(time.Millisecond)))}
	}
	failed := func(n int) DurationStats { return DurationStats{Failed: n, Error: why} }
	for _, c := range []struct {
		name               string
		alone, site, same  DurationStats
		plain, cpu, sameCP DurationStats
		want               string
	}{
		{"all fail", failed(10), failed(10), failed(10), failed(10), DurationStats{}, DurationStats{}, statusFloor},
		{"only sitectl's fail", failed(10), failed(10), ok(16000), ok(11000), DurationStats{}, ok(14000), statusMissed},
		{"one plain reload worked", failed(10), failed(10), failed(10), DurationStats{Runs: 1, Failed: 9, Error: why}, DurationStats{}, DurationStats{}, statusMissed},
		{"at the floor", ok(16500), ok(16400), ok(16300), ok(11000), ok(15000), ok(14800), statusFloor},
		{"above the floor", ok(16500), ok(16400), ok(13000), ok(11000), ok(15000), ok(12000), statusMissed},
	} {
		s := &ScaleResult{N: 10000, DaemonReload: c.alone, DaemonReloadCPU: c.cpu, DaemonReloadIdle: ok(5000), DaemonReloadIdleCPU: ok(4000),
			FloorListening: &FloorResult{Listening: 10000, Sitectl: c.site, SitectlCPU: c.cpu, Same: c.same, SameCPU: c.sameCP, Plain: c.plain}}
		if c.cpu.Runs == 0 {
			s.FloorListening.SitectlCPU = c.site
		}
		var got *Target
		for _, tg := range scaleTargets(&Results{Scale: []*ScaleResult{{N: 1000}, s}}) {
			if strings.Contains(tg.What, "sockets listening: repeated") {
				tg := tg
				got = &tg
			}
		}
		if got == nil {
			t.Fatalf("%s: no target for the listening reload", c.name)
		}
		if got.Status != c.want {
			t.Errorf("%s: %q, want %q: %s", c.name, got.Status, c.want, got.Measured)
		}
		if !strings.Contains(got.Measured, "timed alternately with it: the same units without sitectl") {
			t.Errorf("%s: the floor is not in the measured text: %s", c.name, got.Measured)
		}
		if c.want == statusFloor && c.site.Runs == 0 && !strings.Contains(got.Measured, "without sitectl the same: "+why) {
			t.Errorf("%s: the text does not say that the floor failed the same way: %s", c.name, got.Measured)
		}
	}
	md := floorMarkdown(&Results{Scale: []*ScaleResult{{N: 10000, DaemonReloadIdle: ok(15000),
		FloorListening: &FloorResult{Listening: 10000, Sitectl: failed(10), Same: failed(10), Plain: failed(10)}}}})
	if !strings.Contains(md, "| 10000 | 10000 | **fails** (10 of 10 runs) | **fails** (10 of 10 runs) | **fails** (10 of 10 runs) | – | – |") ||
		!strings.Contains(md, "every site's socket listening") {
		t.Errorf("floor table with every socket listening:\n%s", md)
	}
}

// TestFloorTarget: a reload above 10 s is at systemd's floor only when
// systemd's CPU for sitectl's sites is within floorMargin of the same
// units without sitectl, timed alternately; otherwise it stays missed, and
// a met target stays met.
func TestFloorTarget(t *testing.T) {
	stats := func(ms float64) DurationStats {
		return DurationStats{Runs: 10, Median: Millis(time.Duration(ms * float64(time.Millisecond)))}
	}
	step := func(wall, cpu, sameCPU float64) *ScaleResult {
		return &ScaleResult{N: 10000, DaemonReloadIdle: stats(wall), DaemonReloadIdleCPU: stats(cpu),
			Floor: &FloorResult{Units: 20257, Same: stats(wall - 800), SameCPU: stats(sameCPU), Plain: stats(8000), PlainCPU: stats(7000)}}
	}
	for _, c := range []struct {
		name string
		s    *ScaleResult
		want string
	}{
		{"at the floor", step(19000, 17800, 17500), statusFloor},
		{"above the floor", step(19000, 17800, 15000), statusMissed},
		{"under the target", step(9000, 8000, 8000), statusMet},
		{"no floor measured", &ScaleResult{N: 10000, DaemonReloadIdle: stats(19000), DaemonReloadIdleCPU: stats(17800)}, statusMissed},
	} {
		tg := floorTarget(timingTarget("reload", 10000, c.s.DaemonReloadIdle, ""), c.s.DaemonReloadIdle, c.s.DaemonReloadIdleCPU, c.s.Floor)
		if tg.Status != c.want {
			t.Errorf("%s: %q (%s), want %q", c.name, tg.Status, tg.Measured, c.want)
		}
		if c.s.Floor != nil && !strings.Contains(tg.Measured, "plain socket and service pairs 8000 ms (CPU 7000 ms)") {
			t.Errorf("%s: the measured text does not give the plain pairs: %s", c.name, tg.Measured)
		}
	}
	r := &Results{Scale: []*ScaleResult{step(19000, 17800, 17500)}}
	md := floorMarkdown(r)
	if !strings.Contains(md, "| 10000 | 0 | 19000 (17800) | 18200 (17500) | 8000 (7000) | 1.02 | 2.50 |") {
		t.Errorf("floor table:\n%s", md)
	}
	if strings.Contains(md, "every site's socket listening") {
		t.Errorf("a run without the listening comparison describes it:\n%s", md)
	}
	if floorMarkdown(&Results{Scale: []*ScaleResult{{N: 1000}}}) != "" {
		t.Error("a floor table without any floor measured")
	}
}
