package cli

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/sitectl/sitectl/internal/site"
	"github.com/sitectl/sitectl/internal/stateservice"
)

// A site file someone other than root may change is refused by every
// reader of one site, as the generator refuses it: the state service does
// not take its deployers for a grant. Whoever may write the file (chmod
// 666 by mistake) would otherwise name themselves in deployers and change
// the site through the service, with the mode environment they wrote.
func TestStateServiceRefusesAGrantFromAFileOthersMayChange(t *testing.T) {
	d := testDirs(t)
	file := filepath.Join(d.Config, "karl.toml")
	content := "exec = [\"/usr/local/bin/app\"]\ndeployers = [\"user:4242\"]\n\n[[listen]]\naddress = \"127.0.0.1:8080\"\n"
	if err := os.WriteFile(file, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(file, 0o666); err != nil {
		t.Fatal(err)
	}
	// What the service's grant check loads (stateservice.Server.granted).
	var b stateservice.Backend = backend{&env{dirs: d}}
	_, err := b.LoadSite("karl")
	if err == nil {
		t.Fatalf("LoadSite read a site file others may change (mode 0666)")
	}
	var fe *site.FileError
	if !errors.As(err, &fe) {
		t.Errorf("LoadSite: %v, want the file's refusal", err)
	}
}
