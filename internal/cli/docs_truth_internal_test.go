package cli

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sitectl/sitectl/internal/site"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// docFiles are the documents an operator follows, relative to the
// repository's root.
func docFiles(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, pattern := range []string{"README.md", "docs/*.md", "examples/*/README.md", "packaging/*.md",
		"packaging/ansible/*.md", "packaging/ansible/roles/*/README.md", "packaging/ansible/inventory/*.yml"} {
		m, err := filepath.Glob(filepath.Join("..", "..", pattern))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, m...)
	}
	if len(out) < 5 {
		t.Fatalf("found only %v", out)
	}
	return out
}

// docExample is a site file, or part of one, that a document shows.
type docExample struct {
	where string // FILE:LINE of its first line
	text  string
}

var yamlContent = regexp.MustCompile(`^(\s*)(- )?content: \|\s*$`)

// siteExamples are the site files the documents show: ```toml blocks, and
// the content of the Ansible role's site entries (content: |).
func siteExamples(t *testing.T) []docExample {
	t.Helper()
	var out []docExample
	for _, f := range docFiles(t) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(string(b), "\n")
		rel := strings.TrimPrefix(f, "../../")
		for i := 0; i < len(lines); i++ {
			switch trimmed := strings.TrimSpace(lines[i]); {
			case trimmed == "```toml":
				indent := lines[i][:strings.Index(lines[i], "`")]
				var body []string
				j := i + 1
				for ; j < len(lines) && strings.TrimSpace(lines[j]) != "```"; j++ {
					body = append(body, strings.TrimPrefix(lines[j], indent))
				}
				out = append(out, docExample{fmt.Sprintf("%s:%d", rel, i+2), strings.Join(body, "\n") + "\n"})
				i = j
			case yamlContent.MatchString(lines[i]):
				m := yamlContent.FindStringSubmatch(lines[i])
				base := len(m[1]) + len(m[2])
				var body []string
				j := i + 1
				for ; j < len(lines); j++ {
					l := lines[j]
					if strings.TrimSpace(l) != "" && len(l)-len(strings.TrimLeft(l, " ")) <= base {
						break
					}
					body = append(body, l)
				}
				ind := 0
				if len(body) > 0 {
					ind = len(body[0]) - len(strings.TrimLeft(body[0], " "))
				}
				for k := range body {
					body[k] = body[k][min(ind, len(body[k])):]
				}
				out = append(out, docExample{fmt.Sprintf("%s:%d", rel, i+2), strings.Join(body, "\n") + "\n"})
				i = j - 1
			}
		}
	}
	return out
}

var exampleName = regexp.MustCompile(`(?m)^# /etc/sitectl/sites/([a-z][a-z0-9-]*)\.toml$`)

// TestDocumentedSiteFilesPassCheck runs every site file the documents
// show through sitectl check, as an operator who copies one would. A
// part of a file (a key or a table shown alone) is checked with the
// least that makes it a file: an exec and a listener.
func TestDocumentedSiteFilesPassCheck(t *testing.T) {
	examples := siteExamples(t)
	t.Logf("%d examples", len(examples))
	if len(examples) < 5 {
		t.Fatalf("found only %d examples: %+v", len(examples), examples)
	}
	config, dir := t.TempDir(), t.TempDir()
	for i, ex := range examples {
		text := ex.text
		if !regexp.MustCompile(`(?m)^exec\s*=`).MatchString(text) {
			text = "exec = [\"/usr/bin/app\"]\n" + text
		}
		if !strings.Contains(text, "[[listen]]") {
			text += "\n[[listen]]\naddress = \"127.0.0.1:8080\"\n"
		}
		name := "example"
		if m := exampleName.FindStringSubmatch(text); m != nil {
			name = m[1]
		}
		file := filepath.Join(dir, fmt.Sprintf("%d.toml", i))
		if err := os.WriteFile(file, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		var stdout, stderr bytes.Buffer
		if code := Main([]string{"--config-dir", config, "--state-dir", t.TempDir(), "check", "--name", name, file}, &stdout, &stderr); code != 0 {
			t.Errorf("%s: the example does not pass sitectl check (exit %d):\n%s\n%s", ex.where, code, stderr.String(), text)
		}
	}
}

// TestREADMEKeysAreTheManuals checks the README's table of site-file keys
// against site.Keys, from which sitectl.toml(5) is made: every top-level
// key is in it, and a default given there as a duration is the manual's.
func TestREADMEKeysAreTheManuals(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, table, ok := strings.Cut(string(b), "\n### Keys\n")
	if !ok {
		t.Fatal("README.md has no section ### Keys")
	}
	if i := strings.Index(table, "\n| key |"); i >= 0 {
		table = table[i+1:]
	}
	table, _, _ = strings.Cut(table, "\n\n")
	rows := map[string]string{} // key: default cell
	cellKey := regexp.MustCompile("`([a-z_]+)`")
	for _, l := range strings.Split(table, "\n") {
		cells := strings.Split(l, "|")
		if len(cells) < 5 {
			continue
		}
		for _, m := range cellKey.FindAllStringSubmatch(cells[1], -1) {
			rows[m[1]] = strings.TrimSpace(cells[3])
		}
	}
	if len(rows) < 10 {
		t.Fatalf("read only %v from README.md's table of keys", rows)
	}
	for _, k := range site.Keys {
		if k.Table != "" {
			continue
		}
		cell, ok := rows[k.Key]
		if !ok {
			t.Errorf("README.md's table of keys has no row for %s", k.Key)
			continue
		}
		want, err := time.ParseDuration(k.Default)
		if err != nil {
			continue
		}
		got, err := time.ParseDuration(strings.Trim(cell, "`\""))
		if err != nil || got != want {
			t.Errorf("README.md gives %s the default %s, sitectl.toml(5) %s", k.Key, cell, k.Default)
		}
	}
}

// TestREADMEExitCodesAreTheHelps checks README.md's table of exit codes
// against the one sitectl help and sitectl(1) print: the same codes, each
// with the same meaning (the README may say more after it).
func TestREADMEExitCodesAreTheHelps(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, table, ok := strings.Cut(string(b), "\n## Exit codes\n")
	if !ok {
		t.Fatal("README.md has no section ## Exit codes")
	}
	table, _, _ = strings.Cut(strings.TrimLeft(table, "\n"), "\n\n")
	readme := map[string]string{}
	for _, l := range strings.Split(table, "\n") {
		cells := strings.Split(l, "|")
		if len(cells) == 4 && regexp.MustCompile(`^\d+$`).MatchString(strings.TrimSpace(cells[1])) {
			readme[strings.TrimSpace(cells[1])] = strings.TrimSpace(cells[2])
		}
	}
	help := map[string]string{}
	code := regexp.MustCompile(`^  (\d+)  (.*)$`)
	last := ""
	for _, l := range strings.Split(exitCodesHelp, "\n")[1:] {
		if m := code.FindStringSubmatch(l); m != nil {
			last = m[1]
			help[last] = m[2]
		} else if last != "" {
			help[last] += " " + strings.TrimSpace(l)
		}
	}
	for c, h := range help {
		// The meaning is what comes before the first parenthesis,
		// colon or semicolon.
		meaning := strings.TrimSpace(regexp.MustCompile(`[(:;].*`).ReplaceAllString(h, ""))
		r, ok := readme[c]
		switch {
		case !ok:
			t.Errorf("README.md's table of exit codes has no %s (%s)", c, h)
		case !strings.HasPrefix(r, meaning):
			t.Errorf("exit code %s: README.md says %q, sitectl help %q", c, r, h)
		}
	}
	for c := range readme {
		if _, ok := help[c]; !ok {
			t.Errorf("README.md documents exit code %s, which sitectl help does not", c)
		}
	}
	for c, want := range map[int]string{exitOK: "0", exitFailed: "1", exitUsage: "2", exitNotFound: "3", exitRolledBack: "4", exitRollbackFail: "5", exitDenied: "6", exitUnavailable: "7"} {
		if fmt.Sprint(c) != want {
			t.Errorf("an exit code constant is %d, the help says %s", c, want)
		}
	}
}

// TestDurationFlagsDoNotOfferZero: every duration flag refuses 0 (and
// anything under its least), so no flag's help may say what 0 does, and
// none shows a default of 0s it would itself refuse.
func TestDurationFlagsDoNotOfferZero(t *testing.T) {
	walkCommands(newRoot(io.Discard, io.Discard), func(c *cobra.Command) {
		c.Flags().VisitAll(func(f *pflag.Flag) {
			if f.Value.Type() != "duration" {
				return
			}
			if strings.Contains(f.Usage, "(0:") || strings.Contains(f.Usage, "; 0:") {
				t.Errorf("sitectl %s --%s says what 0 does, but refuses 0: %s", c.Name(), f.Name, f.Usage)
			}
			if err := f.Value.Set("0"); err == nil {
				t.Errorf("sitectl %s --%s takes 0", c.Name(), f.Name)
			}
			if f.DefValue == "0s" {
				t.Errorf("sitectl %s --%s shows a default of 0s, which it refuses", c.Name(), f.Name)
			}
		})
	})
}

// TestStatusHelpHasEveryExitCode: status's help lists every code status
// exits with, its own LSB codes and sitectl's it shares with the other
// verbs (a deployer refused, systemd out of reach).
func TestStatusHelpHasEveryExitCode(t *testing.T) {
	for _, c := range []int{exitOK, exitUsage, statusNotRunning, statusNoSuchSite, exitDenied, exitUnavailable} {
		if !regexp.MustCompile(fmt.Sprintf(`(?m)^  %d  `, c)).MatchString(statusExitHelp) {
			t.Errorf("sitectl status --help does not list exit code %d", c)
		}
	}
}

// sitectlCommand is a sitectl command line a document shows: in `code`,
// or on a line of a code block.
var sitectlCommand = regexp.MustCompile("(?:`|^\\s*[#$]?\\s*)sitectl((?: [^`|;&#]*)?)")

// TestDocumentedFlagsExist: every flag a document gives a sitectl verb
// (`sitectl mode karl normal --timeout 2m`) is a flag of that verb, so
// that an operator who copies it is not refused for a flag renamed or
// removed since.
func TestDocumentedFlagsExist(t *testing.T) {
	root := newRoot(io.Discard, io.Discard)
	flag := regexp.MustCompile(`^(--[a-z][a-z-]*|-[a-zA-Z])(=.*)?$`)
	checked := 0
	for _, f := range docFiles(t) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, line := range strings.Split(string(b), "\n") {
			for _, m := range sitectlCommand.FindAllStringSubmatch(line, -1) {
				words := strings.Fields(m[1])
				c := root
				for len(words) > 0 {
					sub, _, err := c.Find(words[:1])
					if err != nil || sub == c {
						break
					}
					c, words = sub, words[1:]
				}
				if c == root {
					continue // prose: "sitectl keeps", or global flags only
				}
				for _, w := range words {
					fm := flag.FindStringSubmatch(w)
					if fm == nil {
						continue
					}
					checked++
					name := fm[1]
					var found *pflag.Flag
					if strings.HasPrefix(name, "--") {
						found = c.Flags().Lookup(name[2:])
						if found == nil {
							found = c.InheritedFlags().Lookup(name[2:])
						}
					} else {
						found = c.Flags().ShorthandLookup(name[1:])
					}
					if found == nil && name != "--help" && name != "-h" {
						t.Errorf("%s:%d: %s has no flag %s: %s", strings.TrimPrefix(f, "../../"), i+1, c.CommandPath(), name, strings.TrimSpace(line))
					}
				}
			}
		}
	}
	if checked < 20 {
		t.Fatalf("checked only %d flags", checked)
	}
}
