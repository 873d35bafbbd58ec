package cli_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/sitectl/sitectl/internal/cli"
	"github.com/sitectl/sitectl/internal/site"
)

// writeManPages runs `sitectl docs` into a new directory and returns it
// with the names of the files it wrote.
func writeManPages(t *testing.T) (string, []string) {
	t.Helper()
	t.Setenv("SOURCE_DATE_EPOCH", "1700000000")
	dir := t.TempDir()
	var stdout, stderr bytes.Buffer
	if code := cli.Main([]string{"docs", dir}, &stdout, &stderr); code != 0 {
		t.Fatalf("sitectl docs exited %d: %s", code, stderr.String())
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return dir, names
}

var thLine = regexp.MustCompile(`(?m)^\.TH "([^"]*)" "([^"]*)" "2023-11-14" "sitectl [^"]*" "sitectl manual"$`)

// TestManPageSections checks which pages the manual has, in which
// section: operators' commands in 1, the site file in 5, the generator and
// the verbs the units run in 8; and that each page has its own title.
func TestManPageSections(t *testing.T) {
	dir, names := writeManPages(t)
	for _, want := range []string{
		"sitectl.1", "sitectl-mode.1", "sitectl-check.1", "sitectl-units-render.1", "sitectl-completion-bash.1",
		"sitectl-enable.1", "sitectl-disable.1", "sitectl-remove.1",
		"sitectl.toml.5", "sitectl-json.7",
		"sitectl-generator.8", "sitectl-prepare.8", "sitectl-launch.8", "sitectl-cleanup.8", "sitectl-touched.8", "sitectl-state-server.8", "sitectl-dial-server.8",
	} {
		if !slices.Contains(names, want) {
			t.Errorf("sitectl docs wrote no %s (it wrote %s)", want, strings.Join(names, " "))
		}
	}
	for _, unwanted := range []string{"sitectl-prepare.1", "sitectl-launch.1", "sitectl-cleanup.1", "sitectl-touched.1",
		"sitectl-state-server.1", "sitectl-dial-server.1", "sitectl-docs.1", "sitectl-docs.8", "sitectl-help.1"} {
		if slices.Contains(names, unwanted) {
			t.Errorf("sitectl docs wrote %s", unwanted)
		}
	}
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			t.Fatal(err)
		}
		page, section := n[:strings.LastIndex(n, ".")], n[strings.LastIndex(n, ".")+1:]
		m := thLine.FindStringSubmatch(string(b))
		if m == nil {
			t.Errorf("%s has no .TH line with the date of SOURCE_DATE_EPOCH:\n%.300s", n, b)
			continue
		}
		if want := strings.ReplaceAll(strings.ToUpper(page), "-", `\-`); m[1] != want || m[2] != section {
			t.Errorf("%s is titled %s(%s), want %s(%s)", n, m[1], m[2], want, section)
		}
		if !strings.Contains(string(b), ".SH \"NAME\"\n"+strings.ReplaceAll(page, "-", `\-`)+` \- `) {
			t.Errorf("%s has no NAME line \"%s \\- ...\" for whatis", n, page)
		}
	}
}

// TestSiteFilePageHasEveryKey checks that sitectl.toml(5) documents every
// key of site.Keys (which a test in internal/site keeps equal to the
// parser's keys), each under its table.
func TestSiteFilePageHasEveryKey(t *testing.T) {
	dir, _ := writeManPages(t)
	b, err := os.ReadFile(filepath.Join(dir, "sitectl.toml.5"))
	if err != nil {
		t.Fatal(err)
	}
	sections := map[string]string{}
	parts := strings.Split(string(b), "\n.SS ")
	keys, _, _ := strings.Cut(parts[0], "\n.SH \"EXAMPLE\"")
	_, sections[""], _ = strings.Cut(keys, ".SH \"KEYS\"")
	for _, p := range parts[1:] {
		title, body, _ := strings.Cut(p, "\n")
		body, _, _ = strings.Cut(body, "\n.SH ")
		sections[title] = body
	}
	for _, tb := range site.Tables {
		if _, ok := sections[`"`+strings.ReplaceAll(tb.Syntax, "-", `\-`)+`"`]; !ok {
			t.Errorf("sitectl.toml(5) has no subsection %s", tb.Syntax)
		}
	}
	for _, k := range site.Keys {
		title := ""
		for _, tb := range site.Tables {
			if tb.Name == k.Table {
				title = `"` + tb.Syntax + `"`
			}
		}
		if !strings.Contains(sections[title], ".TP\n.B \""+strings.ReplaceAll(k.Key, "-", `\-`)+"\"\n") {
			t.Errorf("sitectl.toml(5) does not document the key %s under %s", k.Key, title)
		}
	}
	for _, key := range []string{"handoff", "description"} {
		if !strings.Contains(sections[""], ".B \""+key+"\"") {
			t.Errorf("sitectl.toml(5) does not document %s", key)
		}
	}
}

// TestManPagesRenderCleanly renders every page with groff, as man and
// lintian do, and fails on any warning.
func TestManPagesRenderCleanly(t *testing.T) {
	if _, err := exec.LookPath("groff"); err != nil {
		t.Skip("groff is not installed (apt-get install groff-base); packaging/test's lintian checks the pages too")
	}
	dir, names := writeManPages(t)
	for _, n := range names {
		cmd := exec.Command("groff", "-man", "-ww", "-z", "-Tutf8", filepath.Join(dir, n))
		out, err := cmd.CombinedOutput()
		if err != nil || len(out) > 0 {
			t.Errorf("groff on %s: %v\n%s", n, err, out)
		}
	}
}

// TestJSONOutputIsInTheManual checks that the page of each verb with
// --json lists the fields it prints, and that sitectl-json(7) lists them
// all, output by output.
func TestJSONOutputIsInTheManual(t *testing.T) {
	dir, _ := writeManPages(t)
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	for page, fields := range map[string][]string{
		"sitectl-status.1":   {`[].site_file.last_good`, `[].n_restarts`, `[].trigger.armed`, `[].socket`},
		"sitectl-list.1":     {`[].socket`, `[].state`},
		"sitectl-mode.1":     {`site`, `duration_seconds`, `journal`},
		"sitectl-rollback.1": {`result`},
		"sitectl-history.1":  {`[].kind`, `[].user`},
		"sitectl-check.1":    {`files[].warnings[].message`},
		"sitectl-json.7":     {`[].site_file.last_good`, `duration_seconds`, `[].kind`, `files[].warnings[].message`},
	} {
		text := read(page)
		if page != "sitectl-json.7" && !strings.Contains(text, ".SH \"JSON OUTPUT\"\n") {
			t.Errorf("%s has no JSON OUTPUT section", page)
		}
		if page != "sitectl-json.7" && !strings.Contains(text, `sitectl\-json(7)`) {
			t.Errorf("%s does not point to sitectl-json(7)", page)
		}
		for _, f := range fields {
			if !strings.Contains(text, ".TP\n.B "+strings.ReplaceAll(f, "-", `\-`)+"\n") && !strings.Contains(text, ".B \""+f+"\"") {
				t.Errorf("%s does not list the field %s", page, f)
			}
		}
	}
	if strings.Contains(read("sitectl-logs.1"), "JSON OUTPUT") {
		t.Errorf("sitectl-logs(1) has a JSON OUTPUT section, but logs prints journalctl's output")
	}
}
