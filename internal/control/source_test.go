package control

import (
	"errors"
	"strings"
	"testing"
)

// When systemd says a unit is current, SourceChanged has the last word;
// without it, or without a unit file or source to compare, systemd's
// answer stands. Its error names the unit and the file.
func TestSourceChangedSeam(t *testing.T) {
	var asked [][2]string
	answer, fail := false, error(nil)
	m := &Manager{SourceChanged: func(fragment, source string) (bool, error) {
		asked = append(asked, [2]string{fragment, source})
		return answer, fail
	}}
	const unit, fragment, source = "site-shop.service", "/run/systemd/generator/site-shop.service", "/etc/sitectl/sites/shop.toml"

	answer = true
	if c, err := m.sourceChanged(unit, fragment, source); !c || err != nil {
		t.Errorf("changed source: %v, %v", c, err)
	}
	if len(asked) != 1 || asked[0] != [2]string{fragment, source} {
		t.Errorf("asked %v", asked)
	}
	answer = false
	if c, err := m.sourceChanged(unit, fragment, source); c || err != nil {
		t.Errorf("same source: %v, %v", c, err)
	}
	for _, paths := range [][2]string{{"", source}, {fragment, ""}} {
		asked = nil
		answer = true
		if c, err := m.sourceChanged(unit, paths[0], paths[1]); c || err != nil || len(asked) != 0 {
			t.Errorf("%q: %v, %v, asked %v", paths, c, err, asked)
		}
	}
	fail = errors.New("cannot read the file: permission denied")
	_, err := m.sourceChanged(unit, fragment, source)
	if !errors.Is(err, fail) || !strings.Contains(err.Error(), "cannot tell whether site-shop.service is older than /etc/sitectl/sites/shop.toml: ") {
		t.Errorf("error: %v", err)
	}
	if c, err := (&Manager{}).sourceChanged(unit, fragment, source); c || err != nil {
		t.Errorf("without SourceChanged: %v, %v", c, err)
	}
}
