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

// A site file linked through a directory another user may change (a
// deployer's checkout) is refused by every reader of one site, with exit
// 2 as for a file others may change: that user could point the link at
// any file of root's, another site's file with its secrets say, and have
// the state service grant from it and prepare keep it as the site's last
// good copy.
func TestSiteFileThroughAnotherUsersDirectoryIsRefused(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: a directory must be another user's")
	}
	d := testDirs(t)
	deploy := t.TempDir()
	file := filepath.Join(d.Config, "karl.toml")
	if err := os.Rename(file, filepath.Join(deploy, "karl.toml")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(deploy, "karl.toml"), file); err != nil {
		t.Fatal(err)
	}
	e := &env{dirs: d}
	if _, err := e.loadSite("karl"); err != nil {
		t.Fatalf("through a directory of root's: %v", err)
	}
	if err := os.Chown(deploy, 4242, 4242); err != nil {
		t.Fatal(err)
	}
	_, err := e.loadSite("karl")
	var fe *site.FileError
	if !errors.As(err, &fe) || codeOf(err) != exitUsage {
		t.Fatalf("loadSite: %v (exit %d), want the file's refusal with exit %d", err, codeOf(err), exitUsage)
	}
	var b stateservice.Backend = backend{e}
	if _, err := b.LoadSite("karl"); !errors.As(err, &fe) {
		t.Errorf("the state service's LoadSite: %v, want the file's refusal", err)
	}
}
