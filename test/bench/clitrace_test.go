package main

import (
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseTraceNamesStepsAcrossRuns(t *testing.T) {
	stderr := []byte("sitectl: trace:     3.80 ms    +3.80 ms  read the command line: sitectl restart\n" +
		"sitectl: warning: cli: something to say\n" +
		"sitectl: trace:   194.12 ms  +190.32 ms  cli: verifying that pid 265 serves mode normal\n" +
		"sitectl: trace:   199.28 ms    +5.16 ms  cli: watching pid 265 settle for 49ms\n" +
		"sitectl: trace:   248.61 ms   +49.33 ms  cli: serving in mode normal (main PID 265) after 0.2s\n" +
		"sitectl: trace:   251.93 ms    +3.32 ms  exit 0\n")
	names, own, err := parseTrace(stderr)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"read the command line: sitectl restart", "cli: verifying that pid … serves mode normal", "cli: watching pid … settle for …",
		"cli: serving in mode normal (main PID …) after …", "exit 0"}
	if strings.Join(names, "\n") != strings.Join(want, "\n") {
		t.Errorf("names\n%s\nwant\n%s", strings.Join(names, "\n"), strings.Join(want, "\n"))
	}
	if len(own) != 5 || own[0] != 3800*time.Microsecond || own[1] != 190320*time.Microsecond || own[4] != 3320*time.Microsecond {
		t.Errorf("own times %v", own)
	}
	if _, _, err := parseTrace([]byte("sitectl: trace: garbled\n")); err == nil {
		t.Error("a garbled trace line was taken")
	}
	if _, _, err := parseTrace([]byte("sitectl: error: no such site\n")); err == nil {
		t.Error("a run without trace lines was taken")
	}
}

func TestSummarizeStepsKeepsTheFirstRunsOrder(t *testing.T) {
	steps := summarizeSteps([][]string{{"a", "b", "c"}, {"a", "x", "c"}, {"a", "b", "c"}}, [][]time.Duration{msList(1, 2, 3), msList(5, 7, 9), msList(3, 4, 6)})
	var got []string
	for _, s := range steps {
		got = append(got, s.Step+":"+ms2(s.Time.Median)+"/"+ms2(s.Time.Min)+"/"+ms2(s.Time.Max))
	}
	if want := "a:3/1/5 b:3/2/4 c:6/3/9 x:7/7/7"; strings.Join(got, " ") != want {
		t.Errorf("got %s, want %s", strings.Join(got, " "), want)
	}
}

func ms2(m Millis) string { return strings.TrimSuffix(strings.TrimSuffix(ms(m), ".00"), ".0") }

func TestTimeitKeepsTheStderrAskedFor(t *testing.T) {
	spec := `{"runs": 2, "commands": [{"argv": ["sh", "-c", "echo kept >&2"], "keep_stderr": true}, {"argv": ["sh", "-c", "echo dropped >&2"]}]}`
	var out strings.Builder
	if code := timeitMain(strings.NewReader(spec), &out); code != 0 {
		t.Fatalf("timeit exited %d", code)
	}
	var r TimeResult
	if err := json.Unmarshal([]byte(out.String()), &r); err != nil {
		t.Fatal(err)
	}
	if len(r.Stderr) != 2 || !slices.Equal(r.Stderr[0], []string{"kept\n", "kept\n"}) || len(r.Stderr[1]) != 0 {
		t.Errorf("stderr kept: %q", r.Stderr)
	}
}

func TestTracedRunsSayWhatIsOutsideTheSteps(t *testing.T) {
	r := TimeResult{Nanos: [][]int64{nil, {int64(30 * time.Millisecond), int64(50 * time.Millisecond)}}, Errors: [][]string{nil, {"", ""}},
		Stderr: [][]string{nil, {
			"sitectl: trace:     4.00 ms    +4.00 ms  read the command line: sitectl restart\nsitectl: trace:    20.00 ms   +16.00 ms  exit 0\n",
			"sitectl: trace:     6.00 ms    +6.00 ms  read the command line: sitectl restart\nsitectl: trace:    30.00 ms   +24.00 ms  exit 0\n",
		}}}
	tr, err := tracedFrom(r, 1)
	if err != nil {
		t.Fatal(err)
	}
	if tr.Runs != 2 || len(tr.Steps) != 2 || tr.Steps[1].Step != "exit 0" || tr.Steps[1].Time.Median != Millis(20*time.Millisecond) {
		t.Errorf("steps %+v", tr)
	}
	// 30 - 20 and 50 - 30 ms.
	if tr.Outside.Min != Millis(10*time.Millisecond) || tr.Outside.Max != Millis(20*time.Millisecond) || tr.Wall.Median != Millis(40*time.Millisecond) {
		t.Errorf("outside %+v, wall %+v", tr.Outside, tr.Wall)
	}
	r.Errors[1][0] = "sitectl restart cli: exit status 4"
	if _, err := tracedFrom(r, 1); err == nil {
		t.Error("a failed traced run was summarised")
	}
}

func TestTheCLIPartShowsWhereTheTimeGoes(t *testing.T) {
	r := sampleResults()
	if md := Markdown(r); strings.Contains(md, "Where the time of") {
		t.Error("a where-the-time-goes table without traced runs")
	}
	r.CLI.Traced = &TracedRestarts{Runs: 10, Wall: DurationStats{Runs: 10, Median: Millis(96 * time.Millisecond)},
		Outside: DurationStats{Runs: 10, Median: Millis(9 * time.Millisecond), Min: Millis(8 * time.Millisecond), Max: Millis(12 * time.Millisecond)},
		Steps: []TracedStep{
			{Step: "connected to systemd", Time: DurationStats{Runs: 10, Median: Millis(3300 * time.Microsecond), Min: Millis(2500 * time.Microsecond), Max: Millis(4 * time.Millisecond)}},
			{Step: "cli: systemd's restart job of site-cli.service is done", Time: DurationStats{Runs: 10, Median: Millis(73 * time.Millisecond), Min: Millis(69 * time.Millisecond), Max: Millis(88 * time.Millisecond)}},
		}}
	md := Markdown(r)
	for _, want := range []string{
		"Where the time of `sitectl restart cli` goes: 10 more runs with `SITECTL_TRACE=1`",
		"(median 96.0 ms)",
		"| connected to systemd | 3.30 | 2.50 | 4.00 |\n| cli: systemd's restart job of site-cli.service is done | 73.0 | 69.0 | 88.0 |\n| (exec, the Go runtime's start, exit) | 9.00 | 8.00 | 12.0 |\n",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("the CLI part lacks %q:\n%s", want, md[strings.Index(md, "## CLI overhead"):])
		}
	}
}

// The benchmark builds sitectl as packaging/build does, so that it times
// what the packages install.
func TestTheBenchBuildsAsThePackagesDo(t *testing.T) {
	script, err := os.ReadFile("../../packaging/build")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`ldflags="-s -w `, `amd64 | arm64 | ppc64le) mode=(-buildmode=pie)`, `go build -trimpath "${mode[@]}" -ldflags "$ldflags"`} {
		if !strings.Contains(string(script), want) {
			t.Errorf("packaging/build no longer has %q: make packagedFlags build as it does", want)
		}
	}
	for arch, pie := range map[string]bool{"amd64": true, "arm64": true, "ppc64le": true, "386": false, "riscv64": false} {
		flags := packagedFlags(arch)
		if slices.Contains(flags, "-buildmode=pie") != pie || !slices.Contains(flags, "-trimpath") || !slices.Contains(flags, "-s -w") {
			t.Errorf("%s: %q", arch, flags)
		}
	}
}
