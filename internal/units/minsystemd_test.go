package units_test

import (
	"bufio"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/sitectl/sitectl/internal/site"
	"github.com/sitectl/sitectl/internal/units"
)

// valueKeys are the directives whose values appeared in systemd after the
// directive itself: the table must list each value sitectl writes.
var valueKeys = []string{"Type", "KillMode", "ProtectSystem", "ProtectHome", "ProtectProc", "ProcSubset", "KeyringMode",
	"NotifyAccess", "DevicePolicy", "StandardInput", "StandardOutput", "StandardError", "Restart", "SystemCallArchitectures"}

var tableRow = regexp.MustCompile("^\\| (`[^|]*) \\| [^|]* \\| ([^|]*) \\|")

// minimumSystemdTable reads the table of packaging/README.md ("The oldest
// systemd"): each directive or directive=value with its version (0 for
// "before 209").
func minimumSystemdTable(t *testing.T) map[string]int {
	t.Helper()
	f, err := os.Open("../../packaging/README.md")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	table := map[string]int{}
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "## The oldest systemd":
			in = true
			continue
		case in && strings.HasPrefix(line, "## "):
			in = false
		}
		m := tableRow.FindStringSubmatch(line)
		if !in || m == nil {
			continue
		}
		v := 0
		if cell := strings.TrimSpace(m[2]); cell != "before 209" {
			if v, err = strconv.Atoi(cell); err != nil {
				t.Fatalf("packaging/README.md: the version of %s is %q, want a number or \"before 209\"", m[1], cell)
			}
		}
		for _, d := range strings.Split(m[1], ", ") {
			table[strings.Trim(d, "`")] = v
		}
	}
	if len(table) == 0 {
		t.Fatal("packaging/README.md has no table under \"## The oldest systemd\"")
	}
	return table
}

// TestMinimumSystemd checks that every directive the generated units and
// the state service use is in the table of packaging/README.md with the
// systemd version that added it, and that the packages require the newest
// of them: a directive added to the units without finding its version
// fails here.
func TestMinimumSystemd(t *testing.T) {
	table := minimumSystemdTable(t)
	var contents []string
	inputs, _ := filepath.Glob("testdata/*.toml")
	hostile, _ := filepath.Glob("testdata/hostile/*.toml")
	inputs = append(inputs, hostile...)
	for _, file := range inputs {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		s, err := site.Parse(file, data)
		if err != nil {
			continue // the inputs that test mistakes
		}
		for _, u := range units.Render(s, units.Options{}) {
			contents = append(contents, u.Content)
		}
	}
	state, _ := filepath.Glob("../../packaging/systemd/sitectl-state*")
	for _, p := range state {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		contents = append(contents, string(b))
	}
	if len(contents) < 10 {
		t.Fatalf("rendered only %d units from testdata and packaging/systemd", len(contents))
	}
	want := map[string]bool{}
	for _, c := range contents {
		for _, line := range strings.Split(c, "\n") {
			key, value, ok := strings.Cut(line, "=")
			if !ok || strings.HasPrefix(line, "#") || strings.HasPrefix(line, "[") {
				continue
			}
			want[key+"="] = true
			switch {
			case slices.Contains(valueKeys, key):
				want[key+"="+value] = true
			case key == "SystemCallFilter":
				for _, w := range strings.Fields(value) {
					if w = strings.TrimPrefix(w, "~"); strings.HasPrefix(w, "@") {
						want[key+"="+w] = true
					}
				}
			case strings.HasPrefix(key, "Exec") && value != "" && strings.ContainsRune("+-!@:", rune(value[0])):
				want[key+"="+value[:1]] = true
			}
		}
	}
	newest, newestBy := 0, ""
	listed := slices.Collect(maps.Keys(table))
	for d := range want {
		v, ok := table[d]
		if !ok {
			// A directive listed only with its values ("Type=exec") is
			// covered by them.
			if strings.HasSuffix(d, "=") && slices.ContainsFunc(listed, func(k string) bool { return strings.HasPrefix(k, d) }) {
				continue
			}
			t.Errorf("the units write %s, which packaging/README.md (\"The oldest systemd\") does not list: add it with the systemd version that added it", d)
			continue
		}
		if v > newest {
			newest, newestBy = v, d
		}
	}
	nfpm, err := os.ReadFile("../../packaging/nfpm.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, dep := range []string{"- systemd (>= " + strconv.Itoa(newest) + ")", "- systemd >= " + strconv.Itoa(newest)} {
		if !strings.Contains(string(nfpm), "\n"+dep+"\n") && !strings.Contains(string(nfpm), " "+dep+"\n") {
			t.Errorf("packaging/nfpm.yaml has no dependency %q: the newest directive the units write is %s (systemd %d)", dep, newestBy, newest)
		}
	}
	t.Logf("the units need systemd %d (%s)", newest, newestBy)
}
