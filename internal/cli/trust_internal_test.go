package cli

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
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
	var b stateservice.Backend = backend{e: &env{dirs: d}}
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
	var b stateservice.Backend = backend{e: e}
	if _, err := b.LoadSite("karl"); !errors.As(err, &fe) {
		t.Errorf("the state service's LoadSite: %v, want the file's refusal", err)
	}
}

// A deployment tool checks a temporary copy of a site file before it puts
// it in place: Ansible's copy and template with validate, which the role
// uses, with become: true (which the role's README allows) put the copy in
// the connecting user's ~/.ansible/tmp, its owner and mode already the
// file's. The directories that count are those of the place the file will
// have (--display-name), where the generator reads it, not the copy's:
// check refused every such copy, and the role every site file.
func TestCheckOfACopyLooksAtTheWayToItsPlace(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: a directory must be another user's")
	}
	d := testDirs(t)
	home := t.TempDir()
	tmp := filepath.Join(home, ".ansible", "tmp", "ansible-tmp-1")
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		t.Fatal(err)
	}
	source := filepath.Join(tmp, "source")
	content := "exec = [\"/usr/local/bin/app\"]\n\n[[listen]]\naddress = \"127.0.0.1:8081\"\n"
	if err := os.WriteFile(source, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{home, filepath.Join(home, ".ansible"), filepath.Dir(tmp), tmp} {
		if err := os.Chown(dir, 4242, 4242); err != nil {
			t.Fatal(err)
		}
	}
	check := func(display string) (int, string) {
		var stdout, stderr strings.Builder
		code := Main([]string{"--config-dir", d.Config, "--state-dir", d.State, "check", "--name", "shop", "--display-name", display, source}, &stdout, &stderr)
		return code, stderr.String()
	}
	if code, stderr := check(filepath.Join(d.Config, "shop.toml")); code != 0 {
		t.Errorf("a copy of root's in another user's directory, to be put in the site directory: exit %d\n%s", code, stderr)
	}
	// A place whose directory others may change is refused, as the
	// generator would refuse the file there.
	open := filepath.Join(t.TempDir(), "open")
	if err := os.Mkdir(open, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(open, 0o777); err != nil {
		t.Fatal(err)
	}
	want := filepath.Join(open, "shop.toml") + ":1:1: refusing it: " + open + " on its path may be changed by users other than root"
	if code, stderr := check(filepath.Join(open, "shop.toml")); code != exitUsage || !strings.Contains(stderr, want) {
		t.Errorf("a copy to be put in a directory anyone may write: exit %d\n%s\nwant exit %d and %q", code, stderr, exitUsage, want)
	}
	// The copy itself must still be root's alone, as the file will be.
	if err := os.Chown(source, 4242, 4242); err != nil {
		t.Fatal(err)
	}
	if code, stderr := check(filepath.Join(d.Config, "shop.toml")); code != exitUsage || !strings.Contains(stderr, "is owned by uid 4242, not root") {
		t.Errorf("a copy of another user's: exit %d\n%s", code, stderr)
	}
}
