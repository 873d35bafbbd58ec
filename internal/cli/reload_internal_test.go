package cli

import (
	"bufio"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sitectl/sitectl/internal/modes"
	"github.com/sitectl/sitectl/internal/paths"
)

// Root's side of ExecReload= sends the recorded mode only to the
// launcher, the service's main process that systemd names in $MAINPID:
// the control socket is in a directory the site's app can write, and a
// socket another process listens on is sent nothing.
func TestReloadAsksOnlyTheMainProcess(t *testing.T) {
	e := &env{dirs: testDirs(t), stdout: io.Discard, stderr: io.Discard}
	s, err := e.loadSite("karl")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := (modes.Store{Dir: e.dirs.State}).Refresh(s); err != nil {
		t.Fatal(err)
	}
	run := t.TempDir()
	ln, err := net.Listen("unix", filepath.Join(run, paths.ControlSocket)) // this process listens
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan string, 4)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.SetDeadline(time.Now().Add(10 * time.Second))
			line, _ := bufio.NewReader(c).ReadString('\n')
			got <- line
			if line != "" {
				io.WriteString(c, "ok: generation 2 serves in mode normal\n")
			}
			c.Close()
		}
	}()
	t.Setenv("RUNTIME_DIRECTORY", run)
	for _, c := range []struct {
		mainPID string
		want    string // in the error; "" for none
	}{
		{strconv.Itoa(os.Getppid()), "is not the launcher's (pid " + strconv.Itoa(os.Getpid()) + " answered, the service's main PID is " + strconv.Itoa(os.Getppid()) + ")"},
		{"", "the service's main PID is not known; nothing was sent"},
		{strconv.Itoa(os.Getpid()), ""},
	} {
		t.Setenv("MAINPID", c.mainPID)
		err := e.reloadLauncher("karl")
		switch {
		case c.want == "" && err != nil:
			t.Errorf("$MAINPID %q, the listener's: %v", c.mainPID, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("$MAINPID %q: %v; want %q", c.mainPID, err, c.want)
		}
		line, connected := "", false
		select {
		case line = <-got:
			connected = true
		case <-time.After(time.Second):
		}
		switch {
		case c.want == "" && !strings.HasPrefix(line, "reload"):
			t.Errorf("$MAINPID %q: the launcher got %q", c.mainPID, line)
		case c.want != "" && line != "":
			t.Errorf("$MAINPID %q: a socket not the launcher's got %q", c.mainPID, line)
		case c.want != "" && c.mainPID == "" && connected:
			t.Errorf("without $MAINPID the socket was connected to")
		}
	}
}
